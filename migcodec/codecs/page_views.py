"""Guest memory seen as pages, without copying it."""

from __future__ import annotations

import operator

import numpy as np

from migcodec.codecs.errors import InvalidBatch

DEFAULT_PAGE_SIZE = 4096


def int_or_zero(value: object) -> int:
    """``value`` as an ``int`` when it is an integer of any type (numpy's too), else 0, which
    fails a caller's check for a positive size or count with the caller's message. A float
    or a string is never converted: 4096.0 compared equal to an array's row length and
    passed, then failed wherever it was used as a size."""
    try:
        return operator.index(value)
    except TypeError:
        return 0


def checked_page_size(page_size: object) -> int:
    """``page_size`` as an ``int``, or :class:`InvalidBatch` (see :func:`int_or_zero`)."""
    size = int_or_zero(page_size)
    if size <= 0 or size % 8:
        raise InvalidBatch(
            f"page size {page_size!r} must be a positive multiple of 8 bytes, given as an "
            "integer (e.g. 4096)"
        )
    return size


def page_view(memory: object, page_size: int = DEFAULT_PAGE_SIZE) -> np.ndarray:
    """Return a ``(n_pages, page_size)`` uint8 view of ``memory`` sharing its storage.

    Any object exporting the buffer protocol works (numpy array, ``mmap``, ``bytearray``).
    The view is writable when the buffer is, so decoders write straight into guest memory.
    A 2-D array that already has the right shape is returned as is, so repeated calls on the
    hot path cost nothing.
    """
    if type(page_size) is not int or page_size <= 0 or page_size % 8:
        page_size = checked_page_size(page_size)  # a numpy integer, or the error
    if (
        isinstance(memory, np.ndarray)
        and memory.ndim == 2
        and memory.dtype == np.uint8
        and memory.shape[1] == page_size
        and memory.flags.c_contiguous
    ):
        return memory
    try:
        flat = np.frombuffer(memory, dtype=np.uint8)
    except (TypeError, ValueError, BufferError) as exc:  # BufferError: a strided view
        raise InvalidBatch(
            f"guest memory must be a contiguous buffer (numpy uint8 array, mmap, bytearray): {exc}"
        ) from exc
    if flat.size % page_size:
        raise InvalidBatch(
            f"guest memory of {flat.size} bytes is not a whole number of {page_size}-byte pages"
        )
    return flat.reshape(-1, page_size)


#: 0, 1, 2, ... as int64 bytes: consecutive rows, less their first, are a prefix of it
_IOTA = np.arange(4096, dtype=np.int64)
_IOTA_BYTES = _IOTA.tobytes()


def rows_as_slice(rows: np.ndarray) -> slice | np.ndarray:
    """A slice for consecutive rows (one memcpy instead of a gather or scatter), else the
    rows themselves; index an array with the result either way. It runs for every batch
    (the mirror's lookups, the decoder's writes): int64 rows are checked with one
    subtraction and a byte comparison."""
    n = rows.shape[0]
    first = rows.item(0)
    if n == 1:
        return slice(first, first + 1)
    if rows.item(n - 1) - first != n - 1:
        return rows
    if rows.dtype == np.int64 and n <= _IOTA.size:
        consecutive = (rows - first).tobytes() == _IOTA_BYTES[: 8 * n]
    else:
        consecutive = bool((rows[1:] - rows[:-1] == 1).all())
    return slice(first, first + n) if consecutive else rows
