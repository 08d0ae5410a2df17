"""``benchmarks/selector.py`` times ``auto``'s decision and update on windows of a later
pass and of a first pass: the two must be the windows they are said to be, the delta
arms' and the compressors', or the budget is checked on only one of the update's paths."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from migcodec.selector import Outcome, Selector, Throughput, online, parse_arms, parse_policy
from migcodec.selector.costmodel import CostModel
from tests.benchmark_module import benchmark_module

#: a cost model recorded on a quiet machine (``tests/selector/data``)
RECORDED = Path(__file__).parent / "selector" / "data" / "cost-model.json"


@pytest.mark.parametrize(("first_pass", "kind"), [(False, "delta"), (True, "compress")])
def test_the_timed_windows_are_played_by_the_arms_they_stand_for(first_pass, kind, monkeypatch):
    """With the recorded cost model: the machine's own, calibrated during the test run
    beside the other tests' work, once priced the arms so that raw played most of a first
    pass's windows (110 of 150), and what this checks is the benchmark's windows, not a
    calibration."""
    model = CostModel.load(RECORDED)
    monkeypatch.setattr(online, "machine_cost_model", lambda arms, page_size=4096: model)
    bench = benchmark_module("selector")
    arms = parse_arms(None)
    pool = bench.window_features(arms, first_pass)
    selector = Selector(parse_policy("auto"), arms, Throughput(1.25e9, 2))
    kinds = Counter()
    for w in range(200):
        features = pool[w // 20 % len(pool)]
        cheap = features.cheap()
        selector.policy.probe_mask(cheap)
        decision = selector.choose(features=cheap)
        if w >= 50:
            kinds[decision.codec.kind] += 1
        window = 4 << 20
        selector.finish(decision, Outcome(window, window / 2, 4e-3, 4e-3))
    assert kinds[kind] > 0.5 * sum(kinds.values()), kinds


@pytest.mark.parametrize("objective", ["throughput", "cpu", "wire"])
def test_the_latency_of_each_kind_of_window_is_timed(objective):
    bench = benchmark_module("selector")
    arms = parse_arms(None)
    later = bench.decision_latency("auto", arms, 60, objective=objective)
    first = bench.decision_latency("auto", arms, 60, True, objective)
    assert all(t > 0 for t in later) and first[0] > 0 and first[3] > 0


def _doc(auto_first_pass: float) -> dict:
    one = {"fixed": [1.6, 1.7, 1.6], "auto": [19.5, 19.6, 19.7]}
    return {
        "arms": ["raw", "lz4"],
        "budget_us": 20.0,
        "decision_update_median_us": one,
        "first_pass_decision_update_median_us": {
            "fixed": [1.6, 1.6, 1.6],
            "auto": [auto_first_pass, auto_first_pass, 17.0],
        },
        "decision_update_without_features_median_us": {"auto": [19.0, 19.2, 19.1]},
        "first_pass_decision_update_without_features_median_us": {"auto": [13.7, 13.8, 13.9]},
        "probe_decision_median_us": {"auto": [73.0, 73.4, 74.0]},
        "decision_update_with_probes_median_us": {"auto": [77.0, 78.2, 78.4]},
        "features": [
            {
                "workload": "memcached",
                "pages": 2048,
                "cheap_us": 27.0,
                "cheap_share_of_lz4_encode": 0.006,
                "probe_us": {"raw": 4.0, "lz4": 34.0},
                "probe_share_of_own_encode": {"raw": 0.031, "lz4": 0.008},
            }
        ],
        "windows": 3000,
        "processes": 3,
        "machine": {"cores": 2, "python": "3.11.7", "numpy": "2.4.6", "filter_update": "C"},
        "commit": "abc1234",
        "command": "python benchmarks/selector.py --markdown x.md",
    }


def test_the_document_holds_every_kind_of_window_to_the_budget():
    bench = benchmark_module("selector")
    within = bench.render(_doc(auto_first_pass=18.0)).splitlines()
    assert "| auto | 19.6 (19.5-19.7) | 18.0 (17.0-18.0) | 19.1 (19.0-19.2) | " in "\n".join(within)
    assert next(row for row in within if row.startswith("| auto |")).endswith("| yes |")
    assert next(row for row in within if row.startswith("| fixed |")).endswith(" |  |  | yes |")
    # a first pass over the budget fails the policy, though its later passes are within it
    over = bench.render(_doc(auto_first_pass=21.0)).splitlines()
    assert next(row for row in over if row.startswith("| auto |")).endswith("| no |")
    assert "at commit `abc1234` on 2 cores" in over[2]
