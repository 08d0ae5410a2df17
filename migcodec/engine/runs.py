"""Dirty page lists to multi-page batches, vectorised over the whole list."""

from __future__ import annotations

import numpy as np


def batch_runs(pages: np.ndarray, max_pages: int) -> list[np.ndarray]:
    """Split sorted unique ``pages`` into batches of at most ``max_pages`` pages, each a
    ``(k, 2)`` array of runs ``(first_page, n_pages)`` with adjacent pages merged.

    Batch ``b`` holds pages ``[b * max_pages, (b + 1) * max_pages)`` of the list, so every
    batch but the last is full; runs break at gaps and at batch boundaries.
    """
    n = pages.shape[0]
    if n == 0:
        return []
    position = np.arange(n)
    starts = np.ones(n, dtype=bool)
    starts[1:] = (np.diff(pages) != 1) | (position[1:] % max_pages == 0)
    run_first = np.flatnonzero(starts)
    run_len = np.diff(np.append(run_first, n))
    runs = np.stack([pages[run_first], run_len], axis=1).astype(np.int64)
    batch_of_run = run_first // max_pages
    bounds = np.searchsorted(batch_of_run, np.arange(1, batch_of_run[-1] + 1))
    return np.split(runs, bounds)
