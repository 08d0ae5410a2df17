"""``benchmarks/auto_pairs.py``: paired migrations of two ``auto`` configurations, their
order alternating from seed to seed, and a summary computed from the pairs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.benchmark_module import benchmark_module
from tests.plugin_dist import REPO

SCRIPT = REPO / "benchmarks" / "auto_pairs.py"


def _module():
    return benchmark_module("auto_pairs")


def _run(policy: str, seed: int, mb_s: float, converged: bool) -> dict:
    return {
        "policy": policy,
        "seed": seed,
        "converged": converged,
        "throughput_mb_s": mb_s,
        "total_time_s": 1.0,
        "passes": 3,
        "pages_by_codec": {"zstd": 100},
    }


def test_the_summary_compares_the_configurations_seed_by_seed():
    runs = [
        _run("a", 0, 100.0, True),
        _run("b", 0, 110.0, True),
        _run("b", 1, 90.0, False),
        _run("a", 1, 120.0, True),
        _run("a", 2, 100.0, False),
        _run("b", 2, 105.0, True),
        _run("a", 3, 50.0, True),  # b never ran seed 3: not a pair
    ]
    summary = _module().summarize(runs, "a", "b")
    assert summary["pairs"] == 3
    assert summary["median_mb_s"] == {"a": 100.0, "b": 105.0}
    assert summary["converged"] == {"a": 2, "b": 2}
    assert summary["median_difference_mb_s"] == 5.0  # of +10, -30, +5
    assert summary["pairs_b_faster"] == 2
    assert summary["converged_alone"] == {"a": 1, "b": 1}


def test_a_summary_without_a_pair_is_refused():
    with pytest.raises(ValueError, match="no seed was migrated with both"):
        _module().summarize([_run("a", 0, 100.0, True)], "a", "b")


def test_two_configurations_migrate_in_alternating_order_each_in_its_own_process():
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "auto",
            "auto:balance=1",
            "--seeds",
            "2",
            "--memory",
            "8MiB",
            "--dirty-rate",
            "20MB/s",
            "--pause",
            "0.01",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    order = [(run["seed"], run["policy"]) for run in result["runs"]]
    assert order == [(0, "auto"), (0, "auto:balance=1"), (1, "auto:balance=1"), (1, "auto")]
    assert all(run["throughput_mb_s"] > 0 and run["pages_by_codec"] for run in result["runs"])
    assert result["summary"] == _module().summarize(result["runs"], "auto", "auto:balance=1")


def test_one_configuration_twice_is_refused():
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "auto", "auto"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "give two different policy specifications" in done.stderr
