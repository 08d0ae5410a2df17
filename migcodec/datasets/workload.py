"""Dirtying workloads: a guest memory of N pages written at a set rate, one window at a time.

A workload keeps the whole memory so that each :class:`Window` carries both the new contents
of the pages dirtied during the window and ``previous``, what the destination held for them
(the memory as it stood at the end of the previous window, when every dirty page was sent).
Delta codecs need ``previous``; compressors ignore it.

Everything per window is a handful of numpy calls over the whole window: picking the pages
(uniform, zipf hot set, sequential sweep), generating their contents, and for the ``words``
write style changing a few 8-byte words of each page. Same seed, same windows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from migcodec.datasets.pages import DEFAULT_PAGE_SIZE, GENERATORS, mixed_pages
from migcodec.datasets.window import Window

PATTERNS = ("uniform", "hotset", "sweep")
WRITE_STYLES = ("whole", "words")

#: contents: a generator name, or weights over generator names (a mix drawn per page)
Content = str | Mapping[str, float]


@dataclass(frozen=True)
class Phase:
    """One stretch of a workload with a fixed access pattern, write style and content.

    ``dirty_fraction`` scales the workload's dirty rate for this phase (a boot touches more
    memory per second than a steady-state cache). ``zipf_s`` is the zipf exponent of the
    ``hotset`` pattern (page rank r is written with weight r**-s); ``words_per_page`` is how
    many 8-byte words the ``words`` style changes in each dirtied page.
    """

    name: str
    windows: int
    pattern: str = "uniform"
    write: str = "whole"
    content: Content = "random"
    dirty_fraction: float = 1.0
    zipf_s: float = 1.1
    words_per_page: int = 4

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise ValueError(f"phase {self.name!r}: pattern {self.pattern!r} not in {PATTERNS}")
        if self.write not in WRITE_STYLES:
            raise ValueError(f"phase {self.name!r}: write {self.write!r} not in {WRITE_STYLES}")
        names = [self.content] if isinstance(self.content, str) else list(self.content)
        unknown = [n for n in names if n not in GENERATORS]
        if unknown:
            raise ValueError(
                f"phase {self.name!r}: unknown content {unknown}; choose from {sorted(GENERATORS)}"
            )
        if self.windows < 0 or self.dirty_fraction <= 0 or self.words_per_page < 1:
            raise ValueError(
                f"phase {self.name!r}: windows must be >= 0, dirty_fraction > 0, "
                "words_per_page >= 1"
            )


@dataclass(frozen=True)
class WorkloadSpec:
    """A dirtying workload: memory size, dirty rate, window length and its phases.

    The dirty rate is either ``pages_per_window`` or ``dirty_bytes_per_s`` (converted with
    ``window_s`` and ``page_size``); a page written twice in one window counts once, as in a
    dirty log. ``initial`` is the memory's content before the first window (what the first
    full pass of pre-copy sent).
    """

    name: str
    n_pages: int = 16384
    phases: tuple[Phase, ...] = ()
    pages_per_window: int | None = 1024
    dirty_bytes_per_s: float | None = None
    window_s: float = 0.1
    page_size: int = DEFAULT_PAGE_SIZE
    initial: Content = "zero"
    seed: int = 0
    description: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def n_windows(self) -> int:
        return sum(p.windows for p in self.phases)

    def dirty_pages(self, phase: Phase) -> int:
        """Distinct pages dirtied per window in ``phase``, capped at the memory size."""
        if self.dirty_bytes_per_s is not None:
            base = self.dirty_bytes_per_s * self.window_s / self.page_size
        elif self.pages_per_window is not None:
            base = float(self.pages_per_window)
        else:
            raise ValueError("set pages_per_window or dirty_bytes_per_s")
        return int(min(self.n_pages, max(1, round(base * phase.dirty_fraction))))

    def scaled(self, n_windows: int) -> WorkloadSpec:
        """The same workload stretched to ``n_windows``, keeping each phase's share.

        Shares are rounded by largest remainder; a phase whose share rounds to zero windows
        is dropped (a 4-window ``flip`` keeps its first phases only).
        """
        total = self.n_windows
        if n_windows < 1 or total == 0:
            raise ValueError(f"{self.name}: n_windows must be >= 1")
        exact = np.array([p.windows for p in self.phases], dtype=float) * n_windows / total
        counts = np.floor(exact).astype(int)
        short = n_windows - int(counts.sum())
        order = np.argsort(-(exact - counts), kind="stable")
        counts[order[:short]] += 1
        phases = tuple(
            replace(p, windows=int(c)) for p, c in zip(self.phases, counts, strict=True) if c
        )
        return replace(self, phases=phases)


def fill(rng: np.random.Generator, content: Content, n: int, page_size: int) -> np.ndarray:
    """``n`` pages of ``content``; a mapping of weights draws each page's generator."""
    if isinstance(content, str):
        return GENERATORS[content](rng, n, page_size)
    return mixed_pages(rng, content, n, page_size)


class Workload:
    """Iterates the windows of a :class:`WorkloadSpec`, deterministically for its seed.

    The memory lives in one ``(n_pages, page_size)`` array; each window gathers the old
    contents of its pages (``previous``), writes the new ones, and yields both. Windows own
    their arrays (copies), so a consumer may keep them.
    """

    def __init__(self, spec: WorkloadSpec) -> None:
        if not spec.phases:
            raise ValueError(f"workload {spec.name!r} has no phases")
        self.spec = spec
        self.rng = np.random.default_rng(spec.seed)
        self.memory = fill(self.rng, spec.initial, spec.n_pages, spec.page_size)
        # hot pages are scattered over memory, as a real heap's are: rank r lives at _rank[r]
        self._rank = self.rng.permutation(spec.n_pages)
        self._cursor = 0
        self._index = 0
        self._powers: dict[float, np.ndarray] = {}

    def __iter__(self) -> Iterator[Window]:
        for phase in self.spec.phases:
            for _ in range(phase.windows):
                yield self.step(phase)

    def __len__(self) -> int:
        return self.spec.n_windows

    def pick(self, phase: Phase, k: int) -> np.ndarray:
        """``k`` distinct pages to dirty, ascending."""
        n = self.spec.n_pages
        if phase.pattern == "sweep":
            pages = (self._cursor + np.arange(k, dtype=np.int64)) % n
            self._cursor = int((self._cursor + k) % n)
        elif phase.pattern == "hotset":
            # weighted sampling without replacement (Efraimidis-Spirakis): the k largest
            # log(u)/w, one O(n) pass; page rank r has weight (r+1)**-s
            keys = np.log(self.rng.random(n)) * self._rank_powers(phase.zipf_s)
            top = np.argpartition(-keys, k - 1)[:k] if k < n else np.arange(n)
            pages = self._rank[top].astype(np.int64)
        else:
            pages = self.rng.choice(n, size=k, replace=False).astype(np.int64)
        pages.sort()
        return pages

    def _rank_powers(self, s: float) -> np.ndarray:
        """``rank**s`` for every page rank, computed once per exponent, not per window."""
        powers = self._powers.get(s)
        if powers is None:
            powers = np.arange(1, self.spec.n_pages + 1, dtype=np.float64) ** s
            self._powers[s] = powers
        return powers

    def step(self, phase: Phase) -> Window:
        """Dirty one window of ``phase`` and return it."""
        spec = self.spec
        indices = self.pick(phase, spec.dirty_pages(phase))
        previous = self.memory[indices]
        if phase.write == "whole":
            pages = fill(self.rng, phase.content, indices.size, spec.page_size)
        else:
            pages = previous.copy()
            words = pages.view("<u8")
            w = phase.words_per_page
            rows = np.repeat(np.arange(indices.size), w)
            cols = self.rng.integers(0, words.shape[1], rows.size)
            # counter-style updates: each chosen word moves by a small, non-zero step
            words[rows, cols] += self.rng.integers(1, 256, rows.size, dtype=np.uint64)
        self.memory[indices] = pages
        window = Window(
            index=self._index,
            page_indices=indices,
            pages=pages,
            previous=previous,
            phase=phase.name,
            duration_s=spec.window_s,
            meta={"pattern": phase.pattern, "write": phase.write, "content": phase.content},
        )
        self._index += 1
        return window
