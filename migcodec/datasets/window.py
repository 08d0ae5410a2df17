"""A window: the pages dirtied during one span of a migration, with their contents.

The common currency of workloads, traces, policy evaluation and the engine. ``previous``
is what the destination held for those pages before this window (delta codecs encode
against it); it is ``None`` when unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Window:
    index: int
    page_indices: np.ndarray  # int64, ascending guest page numbers
    pages: np.ndarray  # (n, page_size) uint8, contents at the end of the window
    previous: np.ndarray | None = None  # (n, page_size) uint8, what the destination holds
    phase: str | None = None
    duration_s: float | None = None
    meta: dict = field(default_factory=dict)
    #: how many pages were really dirtied when ``pages`` holds a uniform sample of them
    #: (a capture that bounds its size); ``None`` when every dirtied page is here
    dirty_pages: int | None = None

    @property
    def n_pages(self) -> int:
        return int(self.page_indices.shape[0])

    @property
    def page_size(self) -> int:
        return int(self.pages.shape[1])

    @property
    def nbytes(self) -> int:
        return int(self.pages.nbytes)

    @property
    def scale(self) -> float:
        """Dirtied pages per stored page: what the stored sample's costs are multiplied by
        to score the window at its true size (1.0 when every page is stored)."""
        if self.dirty_pages is None or self.n_pages == 0:
            return 1.0
        return self.dirty_pages / self.n_pages
