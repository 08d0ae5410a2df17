"""The dirty-rate search, against a fake migration with a known threshold."""

from migcodec.engine.report import MigrationReport
from migcodec.engine.sweep import largest_converging_rate


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
