"""benchmarks/capture.py runs end to end on a small child and reports what it says."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.plugin_dist import REPO


@pytest.mark.skipif(
    not os.path.exists("/proc/self/pagemap") or os.geteuid() != 0,
    reason="capture needs /proc and root (or ptrace rights over the child)",
)
def test_the_capture_benchmark_reports_its_columns_for_the_memory_asked() -> None:
    script = str(REPO / "benchmarks" / "capture.py")
    out = subprocess.run(
        [sys.executable, script, "--mib", "8", "--windows", "4", "--interval-ms", "20", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    doc = json.loads(out)
    assert doc["mib"] == 8 and doc["interval_s"] == pytest.approx(0.02)
    assert doc["capture_s"] > 0 and doc["bare_read_s"] > 0
    assert doc["capture_over_bare_read"] == pytest.approx(doc["capture_s"] / doc["bare_read_s"])
    assert doc["snapshot_gb_per_s"] == pytest.approx(8 * 2**20 / doc["capture_s"] / 1e9)
    assert 0 < doc["window_s_median"] <= doc["window_s_max"]
    assert doc["mappings"] == doc["mappings_captured"] == 1 and doc["start_s"] > 0
    small = ["--mib", "1", "--windows", "3", "--interval-ms", "20"]
    split = subprocess.run(
        [sys.executable, script, *small, "--mappings", "64", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert json.loads(split)["mappings_captured"] == 64
