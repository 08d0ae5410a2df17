"""Dirty page lists to multi-page batches, vectorised over the whole list."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class BatchRuns(Sequence):
    """The batches :func:`batch_runs` made, each a view of one runs array, cut when asked
    for: a pass over a large memory has tens of thousands of batches, and splitting them
    all up front (a few microseconds each) delays the first frame by as many milliseconds
    while the encoders and the link wait."""

    def __init__(self, runs: np.ndarray, bounds: np.ndarray) -> None:
        self._runs = runs
        self._bounds = bounds.tolist()  # batch b is runs[bounds[b]:bounds[b + 1]]

    def __len__(self) -> int:
        return len(self._bounds) - 1

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[b] for b in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of {len(self)}")
        return self._runs[self._bounds[index] : self._bounds[index + 1]]


def batch_runs(pages: np.ndarray, max_pages: int) -> BatchRuns:
    """Split sorted unique ``pages`` into batches of at most ``max_pages`` pages, each a
    ``(k, 2)`` array of runs ``(first_page, n_pages)`` with adjacent pages merged.

    Batch ``b`` holds pages ``[b * max_pages, (b + 1) * max_pages)`` of the list, so every
    batch but the last is full; runs break at gaps and at batch boundaries.
    """
    n = pages.shape[0]
    if n == 0:
        return BatchRuns(np.zeros((0, 2), np.int64), np.zeros(1, np.int64))
    position = np.arange(n)
    starts = np.ones(n, dtype=bool)
    starts[1:] = (np.diff(pages) != 1) | (position[1:] % max_pages == 0)
    run_first = np.flatnonzero(starts)
    run_len = np.diff(np.append(run_first, n))
    runs = np.stack([pages[run_first], run_len], axis=1).astype(np.int64)
    batch_of_run = run_first // max_pages
    n_batches = int(batch_of_run[-1]) + 1
    bounds = np.searchsorted(batch_of_run, np.arange(n_batches + 1))
    return BatchRuns(runs, bounds)
