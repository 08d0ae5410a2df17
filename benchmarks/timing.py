"""What every benchmark here times the same way: a median over repeats, after a warm-up."""

from __future__ import annotations

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
