"""``benchmarks/pipeline.py`` runs end to end: both transfers in every round reach the
destination process whole (it compares them with the source's memory), and the JSON holds
the ratio it exists to print."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_pipeline_benchmark_verifies_both_transfers_and_prints_its_ratio():
    command = [sys.executable, str(REPO / "benchmarks" / "pipeline.py")]
    done = subprocess.run(
        [*command, "--memory", "8MiB", "--rounds", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["memory_bytes"] == 8 << 20 and result["rounds"] == 2
    assert result["pipeline_over_socket"] > 0
    # every page once, raw: the wire carries the memory plus its frames and the preamble
    assert 8 << 20 < result["pipeline_wire_bytes"] < (8 << 20) * 1.01
