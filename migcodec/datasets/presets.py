"""Named workloads: the classic steady guests and phased runs whose best codec changes.

``phases`` is the reference run for adaptive selection: a boot-like zero fill (zero-page
detection wins), memcached-style writes to a hot set (fast compressors win), sparse counter
updates of a few words per page (delta encoding wins), then random data (raw wins). The
other phased presets stress drift in different ways: ``database`` alternates between bulk
loads and sparse updates, ``numeric`` sweeps memory with sequence-like arrays then random
results, ``flip`` switches every few windows so a selector that commits too long loses.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import replace

from migcodec.datasets.workload import Phase, WorkloadSpec

BOOT_CONTENT = {"zero": 0.85, "text": 0.1, "ones": 0.05}

_PRESETS: dict[str, WorkloadSpec] = {
    "phases": WorkloadSpec(
        name="phases",
        description="boot zero fill -> memcached writes -> sparse counters -> random data",
        phases=(
            Phase("boot", 8, pattern="sweep", content=BOOT_CONTENT, dirty_fraction=2.0),
            Phase("memcached", 8, pattern="hotset", content="memcached"),
            Phase("counters", 8, pattern="hotset", write="words", words_per_page=4),
            Phase("random", 8, pattern="uniform", content="random"),
        ),
    ),
    "database": WorkloadSpec(
        name="database",
        initial="text",
        description="bulk load of text pages, then sparse row updates, then an index rebuild",
        phases=(
            Phase("load", 6, pattern="sweep", content="text", dirty_fraction=1.5),
            Phase("updates", 10, pattern="hotset", write="words", words_per_page=8),
            Phase("rebuild", 6, pattern="sweep", content="seq"),
            Phase("updates-2", 10, pattern="hotset", write="words", words_per_page=2),
        ),
    ),
    "numeric": WorkloadSpec(
        name="numeric",
        description="array initialisation, in-place solver updates, random results",
        phases=(
            Phase("init", 8, pattern="sweep", content="seq", dirty_fraction=2.0),
            Phase("solve", 12, pattern="uniform", write="words", words_per_page=32),
            Phase("results", 8, pattern="uniform", content="random"),
        ),
    ),
    "flip": WorkloadSpec(
        name="flip",
        initial="memcached",
        description="memcached writes and sparse counters alternating every 3 windows",
        phases=tuple(
            Phase(name, 3, **kw)
            for _ in range(5)
            for name, kw in (
                ("memcached", {"pattern": "hotset", "content": "memcached"}),
                ("counters", {"pattern": "hotset", "write": "words"}),
            )
        ),
    ),
}

# one single-phase preset per page generator: the classic steady guests and the rest
for _content in ("ones", "seq", "memcached", "zero", "text", "random", "mixed"):
    _PRESETS[_content] = WorkloadSpec(
        name=_content,
        initial=_content,
        description=f"steady whole-page rewrites of {_content} pages to a zipf hot set",
        phases=(Phase(_content, 32, pattern="hotset", content=_content),),
    )


def workload_names() -> list[str]:
    return sorted(_PRESETS)


def _check_whole(option: str, value: object, least: int) -> None:
    """Refuse ``value`` (``None``: not given) unless it is a whole number of at least
    ``least``."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        raise ValueError(f"{option} must be a whole number of at least {least}, got {value!r}")


def get_workload(
    name: str,
    *,
    n_pages: int | None = None,
    n_windows: int | None = None,
    seed: int | None = None,
    pages_per_window: int | None = None,
    dirty_bytes_per_s: float | None = None,
    window_s: float | None = None,
) -> WorkloadSpec:
    """The preset ``name``, resized; phases keep their share when ``n_windows`` is given.

    Without an explicit rate, a window dirties 1/16 of memory (the default 16384-page
    memory dirties 1024 pages, 4 MiB, per window).
    """
    if name not in _PRESETS:
        raise ValueError(f"unknown workload {name!r}; choose one of {', '.join(workload_names())}")
    # each refused here in its own words: 0 pages was a ZeroDivisionError, a NaN rate
    # "cannot convert float NaN to integer", and a window of -1 s was taken
    for option, value in (("n_pages", n_pages), ("n_windows", n_windows)):
        _check_whole(option, value, 1)
    _check_whole("seed", seed, 0)
    _check_whole("pages_per_window", pages_per_window, 1)
    for option, value in (("dirty_bytes_per_s", dirty_bytes_per_s), ("window_s", window_s)):
        if value is not None and not (
            isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 < value < math.inf
        ):
            raise ValueError(f"{option} must be a positive finite number, got {value!r}")
    spec = _PRESETS[name]
    if n_windows is not None:
        spec = spec.scaled(n_windows)
    changes: dict = {}
    if n_pages is not None:
        changes["n_pages"] = n_pages
    if seed is not None:
        changes["seed"] = seed
    if window_s is not None:
        changes["window_s"] = window_s
    if dirty_bytes_per_s is not None:
        changes["dirty_bytes_per_s"] = dirty_bytes_per_s
        changes["pages_per_window"] = None
    elif pages_per_window is not None:
        changes["pages_per_window"] = pages_per_window
    elif n_pages is not None:
        changes["pages_per_window"] = max(1, n_pages // 16)
    return replace(spec, **changes)
