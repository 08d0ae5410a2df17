"""Zero-page detection over a whole batch in one vectorised pass."""

from __future__ import annotations

import numpy as np


def zero_page_rows(pages: np.ndarray) -> np.ndarray | None:
    """Like :func:`zero_page_mask`, but ``None`` when no page is zero.

    This is the hot path's common case, settled by the first and last word of each page;
    only pages where both are zero are scanned in full. The first word alone is not
    enough: in slab memory (memcached's 1184-byte chunks) some page of almost every batch
    starts in a chunk's zero tail. More sampled words per page cost more than they save:
    on guest memory that is not in cache every sampled word of every page is a miss.
    """
    n = pages.shape[0]
    if n == 0:
        return None
    words = (
        pages.view(np.uint64)
        if pages.flags.c_contiguous
        else (np.ascontiguousarray(pages).view(np.uint64))
    )
    probe = words[:, 0] | words[:, -1]
    if probe.all():
        return None
    rows = np.flatnonzero(probe == 0)
    zero = ~words[rows].any(axis=1)
    if not zero.any():
        return None
    mask = np.zeros(n, dtype=bool)
    mask[rows[zero]] = True
    return mask


def zero_page_mask(pages: np.ndarray) -> np.ndarray:
    """Boolean mask of the all-zero rows of a ``(n, page_size)`` uint8 array.

    Most guest pages that are not zero have a non-zero first or last word, so those two
    words rule out almost every such page for the price of two strided loads; only the
    remaining candidates are OR-reduced in full as 64-bit words (tens of GB/s here;
    ``benchmarks/run.py`` measures both cases).
    """
    if pages.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    if pages.flags.c_contiguous:
        words = pages.view(np.uint64)
    else:
        words = np.ascontiguousarray(pages).view(np.uint64)
    candidates = (words[:, 0] | words[:, -1]) == 0
    if not candidates.any():
        return candidates
    if candidates.all():
        return np.bitwise_or.reduce(words, axis=1) == 0
    rows = np.flatnonzero(candidates)
    candidates[rows] = np.bitwise_or.reduce(words[rows], axis=1) == 0
    return candidates
