"""The largest dirty rate that still migrates: a search, not a fixed list of rates.

Near the threshold one run is a coin flip on a noisy machine, so each rate is tried
``repeats`` times and counts as migratable when most of them converged. Comparing codecs
on a shared machine needs more than that: a machine that slows down for a minute would
fail every rate one codec happens to try then. :func:`compare_largest_rates` runs the
codecs' searches in lockstep, one trial of each in turn, so drift hits them alike.

Bisection answers with one number whose error nobody sees: one unlucky trial near the end
moves it a whole step, and two codecs of equal merit end a step apart. For comparisons,
:class:`StaircaseSearch` estimates the rate at which a migration converges half the time,
from the reversals of an up-down staircase, and says how sure it is.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from migcodec.engine.report import MigrationReport

#: the staircases' step, up or down: 2^(1/8), about 9 %
STEP = 2 ** (1 / 8)


def _check_range(start: float, limit: float) -> None:
    if start <= 0 or limit < start:
        raise ValueError(f"need 0 < start <= limit, got start={start}, limit={limit}")


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
        _check_range(start, limit)
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


class StaircaseSearch:
    """The dirty rate at which half the migrations converge: an up-down staircase.

    The 1-up/1-down staircase of psychophysics (Dixon and Mood, 1948; Levitt, 1971): double
    the rate from ``start`` until a migration fails, then step down by ``step`` after each
    failure and up after each success. The rates it turns at (reversals) straddle the 50 %
    point; the estimate is the geometric mean of all reversals but the first two (the walk
    from the doubling phase's failure), and :attr:`spread` the standard error of that mean as
    a factor (1.05: +-5 %). It stops after ``reversals`` reversals or ``max_trials`` trials.
    A codec that converges at ``limit`` has :attr:`censored` set: its rate is at least that.
    """

    def __init__(
        self,
        start: float = 64e6,
        limit: float = 2048e6,
        step: float = STEP,
        reversals: int = 6,
        max_trials: int = 40,
    ) -> None:
        _check_range(start, limit)
        if step <= 1 or reversals < 3:
            raise ValueError(f"need step > 1 and reversals >= 3, got {step}, {reversals}")
        self.limit, self.step = limit, step
        self.reversals_wanted, self.max_trials = reversals, max_trials
        self.runs: list[MigrationReport] = []
        self.reversals: list[float] = []
        self.censored = False
        self._rate: float | None = start
        self._last: bool | None = None  # the last trial's outcome once doubling has ended

    def next_rate(self) -> float | None:
        return self._rate

    def record(self, report: MigrationReport) -> None:
        if self._rate is None:
            raise RuntimeError("the search is over; nothing more to record")
        rate, ok = self._rate, report.succeeded
        self.runs.append(report)
        if self._last is None and ok:  # still doubling
            if rate >= self.limit:
                self.censored, self._rate = True, None
            else:
                self._rate = min(2 * rate, self.limit)
            return
        if self._last is not None and ok != self._last:
            self.reversals.append(rate)
        self._last = ok
        done = len(self.reversals) >= self.reversals_wanted or len(self.runs) >= self.max_trials
        self._rate = None if done else min(rate * self.step if ok else rate / self.step, self.limit)

    @property
    def _log_reversals(self) -> list[float]:
        """Logs of the reversals the estimate uses: all but the first two."""
        used = self.reversals[2:] if len(self.reversals) > 2 else self.reversals
        return [math.log(r) for r in used]

    @property
    def good(self) -> float:
        """The 50 % rate (the limit when censored; 0.0 before any reversal)."""
        if self.censored:
            return self.limit
        logs = self._log_reversals
        return math.exp(statistics.fmean(logs)) if logs else 0.0

    @property
    def spread(self) -> float:
        """Standard error of :attr:`good` as a factor (1.0 when censored or unknown)."""
        logs = self._log_reversals
        if self.censored or len(logs) < 2:
            return 1.0
        return math.exp(statistics.stdev(logs) / math.sqrt(len(logs)))


class Search(Protocol):
    """What :func:`compare_largest_rates` drives: :class:`RateSearch`, :class:`StaircaseSearch`."""

    runs: list[MigrationReport]

    def next_rate(self) -> float | None: ...

    def record(self, report: MigrationReport) -> None: ...

    @property
    def good(self) -> float: ...


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
    make_search: Callable[[], Search] = RateSearch,
) -> dict[str, Search]:
    """One search per codec (``make_search()``, e.g. a ``functools.partial`` of
    :class:`StaircaseSearch`), their trials interleaved (one trial of each unfinished search
    in turn), so the machine's drift does not favour the codec that happened to be measured
    in a quiet minute. Returns the finished searches (``good``, ``runs``)."""
    searches = {name: make_search() for name in migrate_at}
    while True:
        pending = [(n, s) for n, s in searches.items() if s.next_rate() is not None]
        if not pending:
            return searches
        for name, search in pending:
            search.record(migrate_at[name](search.next_rate()))


@dataclass
class HeadToHead:
    """What :func:`head_to_head` saw: every trial's rate, how many trials each codec
    converged in, and ``only``: trials in which it converged and another did not (the
    trials that tell codecs apart; a sign test on them says whether one is better)."""

    rates: list[float] = field(default_factory=list)
    converged: dict[str, int] = field(default_factory=dict)
    only: dict[str, int] = field(default_factory=dict)


def head_to_head(
    migrate_at: Mapping[str, Callable[[float], MigrationReport]],
    rate: float,
    trials: int,
    step: float = STEP,
) -> HeadToHead:
    """Codecs migrating side by side at a shared rate that follows their joint outcome.

    The second stage of a fair comparison: picking the best codec by its staircase estimate
    and comparing another against that estimate favours the winner (a maximum over noisy
    estimates is biased upwards), so fresh trials decide. Every trial runs each codec once
    at the same rate, in alternating order; the rate goes up a ``step`` when all converged
    and down when none did, and stays where they split, so trials gather where the codecs
    differ instead of where both always fail or both always succeed.
    """
    if trials < 1 or step <= 1:
        raise ValueError(f"need trials >= 1 and step > 1, got {trials}, {step}")
    names = list(migrate_at)
    seen = HeadToHead(converged=dict.fromkeys(names, 0), only=dict.fromkeys(names, 0))
    for trial in range(trials):
        seen.rates.append(rate)
        ok = {
            name: migrate_at[name](rate).succeeded
            for name in (names if trial % 2 == 0 else names[::-1])
        }
        for name, converged in ok.items():
            seen.converged[name] += converged
            seen.only[name] += converged and not all(ok.values())
        if all(ok.values()):
            rate *= step
        elif not any(ok.values()):
            rate /= step
    return seen
