"""``benchmarks/selector.py`` times ``auto``'s decision and update on windows of a later
pass and of a first pass: the two must be the windows they are said to be, the delta
arms' and the compressors', or the budget is checked on only one of the update's paths."""

from __future__ import annotations

from collections import Counter

import pytest

from migcodec.selector import Outcome, Selector, Throughput, parse_arms, parse_policy
from tests.benchmark_module import benchmark_module


@pytest.mark.parametrize(("first_pass", "kind"), [(False, "delta"), (True, "compress")])
def test_the_timed_windows_are_played_by_the_arms_they_stand_for(first_pass, kind):
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


def test_the_latency_of_each_kind_of_window_is_timed():
    bench = benchmark_module("selector")
    arms = parse_arms(None)
    later = bench.decision_latency("auto", arms, 60)
    first = bench.decision_latency("auto", arms, 60, first_pass=True)
    assert all(t > 0 for t in later) and first[0] > 0 and first[3] > 0
