"""The largest dirty rate that still migrates: a search, not a fixed list of rates.

Near the threshold one run is a coin flip on a noisy machine, so each rate is tried
``repeats`` times and counts as migratable when most of them converged. Comparing codecs
on a shared machine needs more than that: a machine that slows down for a minute would
fail every rate one codec happens to try then. :func:`compare_largest_rates` runs the
codecs' searches in lockstep, one trial of each in turn, so drift hits them alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from migcodec.engine.report import MigrationReport


class RateSearch:
    """Double the rate from ``start`` until it fails, then bisect ``refine_steps`` times.

    Driven from outside: :meth:`next_rate` says which rate to try (``None`` when the search
    is over) and :meth:`record` takes each trial's report.
    """

    def __init__(
        self,
        start: float = 16e6,
        limit: float = 4e9,
        refine_steps: int = 4,
        repeats: int = 1,
    ) -> None:
        if start <= 0 or limit < start:
            raise ValueError(f"need 0 < start <= limit, got start={start}, limit={limit}")
        if repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {repeats}")
        self.limit, self.refine_steps, self.repeats = limit, refine_steps, repeats
        self.good = 0.0  # largest rate found migratable
        self.bad: float | None = None  # smallest rate found not migratable
        self.runs: list[MigrationReport] = []
        self._rate: float | None = start
        self._trials: list[bool] = []
        self._refined = 0

    def next_rate(self) -> float | None:
        return self._rate

    def record(self, report: MigrationReport) -> None:
        if self._rate is None:
            raise RuntimeError("the search is over; nothing more to record")
        self.runs.append(report)
        self._trials.append(report.succeeded)
        if len(self._trials) < self.repeats:
            return
        rate, migratable = self._rate, 2 * sum(self._trials) > self.repeats
        self._trials = []
        if migratable:
            self.good = rate
        else:
            self.bad = rate
        if self.bad is None:  # still doubling
            self._rate = rate * 2 if rate * 2 <= self.limit else None
        elif self._refined < self.refine_steps:
            self._refined += 1
            self._rate = (self.good + self.bad) / 2 if self.good else self.bad / 2
        else:
            self._rate = None


def largest_converging_rate(
    migrate_at: Callable[[float], MigrationReport],
    start: float = 16e6,
    limit: float = 4e9,
    refine_steps: int = 4,
    repeats: int = 1,
) -> tuple[float, list[MigrationReport]]:
    """The largest migratable rate (0.0 if even ``start`` fails) and every run, so the
    caller can show the whole curve. See :class:`RateSearch`."""
    search = RateSearch(start, limit, refine_steps, repeats)
    while (rate := search.next_rate()) is not None:
        search.record(migrate_at(rate))
    return search.good, search.runs


def compare_largest_rates(
    migrate_at: Mapping[str, Callable[[float], MigrationReport]],
    start: float = 16e6,
    limit: float = 4e9,
    refine_steps: int = 4,
    repeats: int = 1,
) -> dict[str, tuple[float, list[MigrationReport]]]:
    """:func:`largest_converging_rate` for several codecs, their trials interleaved (one
    trial of each unfinished search in turn), so the machine's drift does not favour the
    codec that happened to be measured in a quiet minute."""
    searches = {name: RateSearch(start, limit, refine_steps, repeats) for name in migrate_at}
    while True:
        pending = [(n, s) for n, s in searches.items() if s.next_rate() is not None]
        if not pending:
            return {name: (s.good, s.runs) for name, s in searches.items()}
        for name, search in pending:
            search.record(migrate_at[name](search.next_rate()))
