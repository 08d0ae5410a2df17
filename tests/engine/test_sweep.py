"""The dirty-rate search, against a fake migration with a known threshold."""

import pytest

from migcodec.engine.report import MigrationReport
from migcodec.engine.sweep import RateSearch, compare_largest_rates, largest_converging_rate


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
        {"fast": fake("fast", 300e6), "slow": fake("slow", 50e6)}, start=16e6, refine_steps=3
    )
    assert 262e6 <= results["fast"][0] <= 300e6
    assert 44e6 <= results["slow"][0] <= 50e6
    # turns alternate while both searches run; the longer one finishes alone
    slow_runs = len(results["slow"][1])
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
