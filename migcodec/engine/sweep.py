"""The largest dirty rate that still migrates: a search, not a fixed list of rates."""

from __future__ import annotations

from collections.abc import Callable

from migcodec.engine.report import MigrationReport


def largest_converging_rate(
    migrate_at: Callable[[float], MigrationReport],
    start: float = 16e6,
    limit: float = 4e9,
    refine_steps: int = 4,
) -> tuple[float, list[MigrationReport]]:
    """Double the dirty rate from ``start`` until a migration fails, then bisect.

    Returns the largest rate seen to succeed (0.0 if even ``start`` fails) and every run,
    so the caller can show the whole curve.
    """
    runs: list[MigrationReport] = []
    good, bad = 0.0, None
    rate = start
    while rate <= limit:
        report = migrate_at(rate)
        runs.append(report)
        if not report.succeeded:
            bad = rate
            break
        good = rate
        rate *= 2
    if bad is None:
        return good, runs
    for _ in range(refine_steps):
        mid = (good + bad) / 2 if good else bad / 2
        report = migrate_at(mid)
        runs.append(report)
        if report.succeeded:
            good = mid
        else:
            bad = mid
    return good, runs
