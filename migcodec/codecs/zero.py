"""Zero-page detection over a whole batch in one call.

The framework probes every batch before encoding it, so the probe's fixed cost counts
against every codec: ``benchmarks/run.py`` measures framework against raw library calls.
The C extension (``_pagescan.c``) answers the common case (no zero page) in one call that
loads two words per page and allocates nothing; numpy needs four calls for the same probe.
Without a C compiler at install time the extension is absent and the numpy version runs;
:data:`ZERO_SCAN` says which.
"""

from __future__ import annotations

import numpy as np

from migcodec.codecs.page_arrays import check_pages
from migcodec.extensions import optional_extension

_pagescan, ZERO_SCAN = optional_extension("migcodec.codecs._pagescan")
_native_zero_pages = None if _pagescan is None else _pagescan.zero_pages


def _numpy_zero_page_rows(pages: np.ndarray) -> np.ndarray | None:
    """The first and last word of each page settle almost every non-zero page; only pages
    where both are zero are scanned in full. The first word alone is not enough: in slab
    memory (memcached's 1184-byte chunks) some page of almost every batch starts in a
    chunk's zero tail. More sampled words cost more than they save: on guest memory that is
    not in cache every sampled word of every page is a miss.
    """
    words = pages.view(np.uint64)
    probe = words[:, 0] | words[:, -1]
    if probe.all():
        return None
    rows = np.flatnonzero(probe == 0)
    zero = ~(words if rows.size == words.shape[0] else words[rows]).any(axis=1)
    if not zero.any():
        return None
    mask = np.zeros(pages.shape[0], dtype=bool)
    mask[rows[zero]] = True
    return mask


def zero_page_rows(pages: np.ndarray) -> np.ndarray | None:
    """Read-only boolean mask of the all-zero rows of ``pages``, or ``None`` when no page
    is zero (the hot path's common case, which then costs no allocation)."""
    check_pages(pages)
    if _native_zero_pages is not None:
        try:
            mask = _native_zero_pages(pages, pages.shape[1])
        except ValueError:  # not C-contiguous (a bad page size raises again below)
            mask = _native_zero_pages(np.ascontiguousarray(pages), pages.shape[1])
        return None if mask is None else np.frombuffer(mask, dtype=bool)
    if pages.shape[0] == 0:
        return None
    return _numpy_zero_page_rows(np.ascontiguousarray(pages))


def zero_page_mask(pages: np.ndarray) -> np.ndarray:
    """Boolean mask of the all-zero rows of a ``(n, page_size)`` uint8 array."""
    rows = zero_page_rows(pages)
    if rows is None:
        return np.zeros(pages.shape[0], dtype=bool)
    return rows.copy()
