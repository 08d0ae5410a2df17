"""What every benchmark here times the same way: a median over repeats, after a warm-up."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable


def median_rate(fn: Callable[[], object], nbytes: int, repeats: int) -> float:
    """Median bytes/s of ``fn`` over ``repeats`` runs (after one warm-up run): machines
    here are noisy, and the median ignores the runs another process interrupted."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return nbytes / statistics.median(times)


def rounds_parser(doc: str, pages: int, per: str, repeats: int) -> argparse.ArgumentParser:
    """The options of a benchmark of interleaved rounds (described by the first line of
    ``doc``): ``--pages`` (``pages`` per ``per`` by default), ``--repeats`` (timed rounds)
    and ``--json``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument(
        "--pages", type=int, default=pages, help=f"pages per {per} (default {pages})"
    )
    parser.add_argument(
        "--repeats", type=int, default=repeats, help=f"timed rounds (default {repeats})"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    return parser


def interleaved_seconds(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, list]:
    """Seconds per run of every ``fn``, over ``repeats`` rounds that run each once (after
    one warm-up round), the order rotating from round to round.

    Ratios between two of them are then taken round by round (:func:`median_ratio`): both
    runs of a round met the same machine, which on a machine shared with other work is what
    makes a ratio trustworthy when absolute rates drift."""
    names = list(fns)
    for name in names:
        fns[name]()
    seconds: dict[str, list] = {name: [] for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            t0 = time.perf_counter()
            fns[name]()
            seconds[name].append(time.perf_counter() - t0)
    return seconds


def median_ratio(slow: list, fast: list) -> float:
    """Median over rounds of ``slow / fast`` (seconds): how many times faster ``fast`` ran."""
    return statistics.median(s / f for s, f in zip(slow, fast, strict=True))
