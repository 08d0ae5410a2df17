"""The dirty log: which guest pages changed since the migration last collected them."""

from __future__ import annotations

import threading

import numpy as np


class DirtyLog:
    """A page bitmap written by the guest and drained by the migration thread.

    ``collect`` swaps in a clean bitmap under the lock, so a write that lands after the
    swap is seen in the next iteration: pre-copy never loses a dirty page.
    """

    def __init__(self, n_pages: int) -> None:
        self.n_pages = n_pages
        self._bits = np.zeros(n_pages, dtype=bool)
        self._spare = np.zeros(n_pages, dtype=bool)
        self._lock = threading.Lock()

    def mark(self, pages: np.ndarray) -> None:
        with self._lock:
            self._bits[pages] = True

    def mark_all(self) -> None:
        with self._lock:
            self._bits[:] = True

    def count(self) -> int:
        with self._lock:
            return int(np.count_nonzero(self._bits))

    def collect(self) -> np.ndarray:
        """Sorted indices of dirty pages; the log is clean afterwards."""
        with self._lock:
            bits, self._bits = self._bits, self._spare
            self._spare = bits
        dirty = np.flatnonzero(bits)
        bits[:] = False
        return dirty
