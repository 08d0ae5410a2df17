"""The dirty-rate search, against a fake migration with a known threshold."""

from functools import partial

import numpy as np
import pytest

from migcodec.engine.report import MigrationReport
from migcodec.engine.sweep import (
    RateSearch,
    StaircaseSearch,
    compare_largest_rates,
    head_to_head,
    largest_converging_rate,
)


def _fake(threshold, flaky_at=None):
    calls = []

    def migrate_at(rate):
        calls.append(rate)
        ok = rate <= threshold
        if flaky_at is not None and rate == flaky_at and len(calls) % 3 == 0:
            ok = not ok  # one run in three at this rate goes the other way
        report = MigrationReport(codec="fake", converged=ok, verified=ok, dirty_rate=rate)
        return report

    return migrate_at, calls


def test_doubling_then_bisection_finds_the_threshold_within_the_last_step():
    migrate_at, calls = _fake(threshold=100e6)
    best, runs = largest_converging_rate(migrate_at, start=16e6, refine_steps=4)
    assert calls[:4] == [16e6, 32e6, 64e6, 128e6]
    assert 96e6 <= best <= 100e6
    assert len(runs) == len(calls) == 8


def test_a_majority_of_repeats_decides_each_rate():
    migrate_at, calls = _fake(threshold=100e6, flaky_at=64e6)
    best, runs = largest_converging_rate(migrate_at, start=16e6, refine_steps=2, repeats=3)
    assert len(runs) == len(calls) == 3 * 6
    assert 64e6 <= best <= 100e6


def test_nothing_migratable_returns_zero():
    migrate_at, _ = _fake(threshold=1e6)
    best, runs = largest_converging_rate(migrate_at, start=16e6, refine_steps=2)
    assert best == 0.0
    assert [r.dirty_rate for r in runs] == [16e6, 8e6, 4e6]


def test_interleaved_searches_take_turns_and_find_each_threshold():
    order = []

    def fake(name, threshold):
        def migrate_at(rate):
            order.append(name)
            ok = rate <= threshold
            return MigrationReport(codec=name, converged=ok, verified=ok, dirty_rate=rate)

        return migrate_at

    results = compare_largest_rates(
        {"fast": fake("fast", 300e6), "slow": fake("slow", 50e6)},
        partial(RateSearch, start=16e6, refine_steps=3),
    )
    assert 262e6 <= results["fast"].good <= 300e6
    assert 44e6 <= results["slow"].good <= 50e6
    # turns alternate while both searches run; the longer one finishes alone
    slow_runs = len(results["slow"].runs)
    assert order[: 2 * slow_runs] == ["fast", "slow"] * slow_runs
    assert set(order[2 * slow_runs :]) == {"fast"}


def test_a_search_refuses_bad_settings_and_records_after_its_end():
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        RateSearch(repeats=0)
    with pytest.raises(ValueError, match="need 0 < start <= limit"):
        RateSearch(start=0)
    search = RateSearch(start=16e6, limit=16e6, refine_steps=0)
    search.record(MigrationReport(codec="x", converged=True, verified=True))
    assert search.next_rate() is None and search.good == 16e6
    with pytest.raises(RuntimeError, match="the search is over"):
        search.record(MigrationReport(codec="x"))


def _drive(search, converges) -> list[float]:
    rates = []
    while (rate := search.next_rate()) is not None:
        rates.append(rate)
        ok = converges(rate)
        search.record(MigrationReport(codec="x", converged=ok, verified=ok, dirty_rate=rate))
    return rates


def test_the_staircase_doubles_then_turns_around_a_sharp_threshold():
    step = 2**0.125
    search = StaircaseSearch(start=64e6, limit=2048e6, step=step, reversals=6)
    rates = _drive(search, lambda rate: rate <= 300e6)
    assert rates[:4] == [64e6, 128e6, 256e6, 512e6]
    # down by one step per failure from 512 MB/s, then alternating around 300 MB/s
    below = 512e6 / step**7
    above = below * step
    assert below <= 300e6 < above
    assert rates[4:11] == pytest.approx([512e6 / step**k for k in range(1, 8)])
    assert rates[11:] == pytest.approx([above, below, above, below, above])
    assert search.reversals == pytest.approx([below, above, below, above, below, above])
    assert search.good == pytest.approx(np.sqrt(below * above))
    # the last four reversals are +-half a step around the mean: standard error h / sqrt(3)
    assert not search.censored
    assert search.spread == pytest.approx(step ** (0.5 / np.sqrt(3)))


def test_the_staircase_estimates_the_50_percent_rate_of_a_noisy_threshold():
    """Migrations converge with a logistic chance around 400 MB/s (10 % wide); the estimate
    lands within its own two standard errors most of the time, and close to 400 always."""
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(40):
        search = StaircaseSearch(start=64e6, reversals=12, max_trials=80)
        _drive(search, lambda r: rng.random() < 1 / (1 + np.exp((np.log(r / 400e6)) / 0.05)))
        assert 340e6 < search.good < 470e6
        hits += abs(np.log(search.good / 400e6)) <= 2 * np.log(search.spread)
    assert hits >= 28


def test_the_staircase_reports_a_censored_rate_and_a_hopeless_codec():
    top = StaircaseSearch(start=64e6, limit=1024e6)
    assert _drive(top, lambda rate: True) == [64e6, 128e6, 256e6, 512e6, 1024e6]
    assert top.censored and top.good == 1024e6 and top.spread == 1.0
    none = StaircaseSearch(start=64e6, reversals=3, max_trials=6)
    assert len(_drive(none, lambda rate: False)) == 6
    assert none.good == 0.0 and not none.censored
    with pytest.raises(ValueError, match="need step > 1 and reversals >= 3"):
        StaircaseSearch(step=1.0)


def _threshold_codec(name, threshold, order):
    def migrate_at(rate):
        order.append((name, rate))
        ok = rate <= threshold
        return MigrationReport(codec=name, converged=ok, verified=ok, dirty_rate=rate)

    return migrate_at


def test_head_to_head_stays_where_codecs_split_and_counts_who_converged_alone():
    order = []
    a, b = _threshold_codec("a", 500e6, order), _threshold_codec("b", 300e6, order)
    seen = head_to_head({"a": a, "b": b}, 400e6, trials=3)
    assert seen.rates == [400e6] * 3
    assert seen.converged == {"a": 3, "b": 0} and seen.only == {"a": 3, "b": 0}
    assert [name for name, _ in order] == ["a", "b", "b", "a", "a", "b"]


def test_head_to_head_moves_the_shared_rate_until_the_codecs_are_near_their_threshold():
    order = []
    same = {n: _threshold_codec(n, 500e6, order) for n in ("a", "b")}
    seen = head_to_head(same, 1000e6, trials=12, step=2 ** (1 / 4))
    assert seen.rates[:5] == pytest.approx([1000e6 / 2 ** (k / 4) for k in range(5)])
    assert seen.only == {"a": 0, "b": 0}  # equal codecs never split
    assert all(420e6 < r < 600e6 for r in seen.rates[4:])  # up and down around 500 MB/s
    assert seen.converged["a"] == seen.converged["b"] == 4
    with pytest.raises(ValueError, match="need trials >= 1 and step > 1, got 0"):
        head_to_head(same, 1.0, trials=0)
