"""The one form of pages every page kernel reads: a two-dimensional array of bytes.

The C kernels take a buffer and the page size (its rows' length) and read the rows as
bytes: given another array, a ``uint16`` one of 512 elements a row was scanned as pages of
512 bytes (twice as many as it holds), and the zero-page mask of three such pages had six
entries where numpy's had three. They are refused, by name, before any kernel runs.
"""

from __future__ import annotations

import numpy as np

_UINT8 = np.dtype(np.uint8)


def check_pages(pages: object, what: str = "pages") -> None:
    """Raise :class:`TypeError` unless ``pages`` is a ``(pages, page_size)`` ``uint8``
    numpy array (``what`` names it in the message). Once a batch on the hot path: the
    dtype is compared by identity first (numpy keeps one), a tenth of a microsecond."""
    if type(pages) is np.ndarray and pages.ndim == 2:
        dtype = pages.dtype
        if dtype is _UINT8 or dtype == _UINT8:
            return
    if isinstance(pages, np.ndarray):
        got = f"an array of {pages.dtype}, shape {pages.shape}"
    else:
        got = type(pages).__name__
    raise TypeError(f"{what} must be a (pages, page_size) uint8 numpy array, got {got}")


def check_rows(rows: np.ndarray, what: str = "rows") -> None:
    """Raise :class:`TypeError` unless ``rows`` holds integers: a float was cast to the
    page below it (rows 0.9 and 1.7 read pages 0 and 1)."""
    if rows.dtype.kind not in "iu":
        raise TypeError(f"{what} must be integer page numbers, got {rows.dtype}")
