"""The largest dirty rate that still migrates: a search, not a fixed list of rates."""

from __future__ import annotations

from collections.abc import Callable

from migcodec.engine.report import MigrationReport


def largest_converging_rate(
    migrate_at: Callable[[float], MigrationReport],
    start: float = 16e6,
    limit: float = 4e9,
    refine_steps: int = 4,
    repeats: int = 1,
) -> tuple[float, list[MigrationReport]]:
    """Double the dirty rate from ``start`` until migrations fail, then bisect.

    Near the threshold one run is a coin flip on a noisy machine, so each rate is tried
    ``repeats`` times and counts as migratable when most of them converged. Returns the
    largest such rate (0.0 if even ``start`` fails) and every run, so the caller can show
    the whole curve.
    """
    runs: list[MigrationReport] = []

    def migratable(rate: float) -> bool:
        trials = [migrate_at(rate) for _ in range(repeats)]
        runs.extend(trials)
        return 2 * sum(r.succeeded for r in trials) > repeats

    good, bad = 0.0, None
    rate = start
    while rate <= limit:
        if not migratable(rate):
            bad = rate
            break
        good = rate
        rate *= 2
    if bad is None:
        return good, runs
    for _ in range(refine_steps):
        mid = (good + bad) / 2 if good else bad / 2
        if migratable(mid):
            good = mid
        else:
            bad = mid
    return good, runs
