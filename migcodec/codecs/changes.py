"""How pages changed against the versions a destination holds, per page, in one pass.

A delta codec's payload follows from how a page changed: the 8-byte words and bytes that
differ, and how they cluster into runs (of words for DSA's records, of bytes for XBZRLE's).
A selector reads these on a sample of every window
to predict each delta arm without encoding (``DeltaCodec.estimate_sizes``), so their cost is
charged to every window: the C extension (``_pagescan.c``) counts them in one pass at memory
speed, where numpy needs a dozen calls and temporaries. Without a C compiler at install time
the numpy version runs; :data:`CHANGE_SCAN` says which.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from migcodec.codecs.page_arrays import check_pages, check_rows
from migcodec.extensions import optional_extension

_pagescan, CHANGE_SCAN = optional_extension("migcodec.codecs._pagescan")
_native_page_changes = None if _pagescan is None else _pagescan.page_changes


class PageChanges(NamedTuple):
    """Per page (integer arrays): 8-byte words that differ, bytes that differ, runs of
    consecutive differing words, runs of consecutive differing bytes."""

    words: np.ndarray
    bytes: np.ndarray
    word_runs: np.ndarray
    byte_runs: np.ndarray


def _numpy_page_changes(new: np.ndarray, old: np.ndarray) -> PageChanges:
    """One compare, then work in proportion to the change: the positions of the changed
    words give their counts and runs per page, and only those words are split into bytes."""
    m = new.shape[0]
    a = new.view(np.uint64)
    b = old.view(np.uint64)
    n_words = a.shape[1]
    where = np.flatnonzero(a != b)
    rows = where // n_words
    words = np.bincount(rows, minlength=m)
    # a run starts at a changed word whose predecessor in the same page did not change
    starts = np.ones(where.size, dtype=bool)
    starts[1:] = (where[1:] != where[:-1] + 1) | (where[1:] % n_words == 0)
    runs = np.bincount(rows[starts], minlength=m)
    xor = (a.reshape(-1)[where] ^ b.reshape(-1)[where]).view(np.uint8).reshape(-1, 8)
    diff = xor != 0
    differing = np.bincount(rows, diff.sum(axis=1), minlength=m)
    # byte runs: a differing byte whose predecessor (in this word, or the last byte of the
    # previous word when that word changed too and is adjacent) does not differ
    before = np.zeros_like(diff)
    before[:, 1:] = diff[:, :-1]
    adjacent = np.zeros(where.size, dtype=bool)
    adjacent[1:] = ~starts[1:]
    before[adjacent, 0] = diff[np.flatnonzero(adjacent) - 1, 7]
    byte_runs = np.bincount(rows, (diff & ~before).sum(axis=1), minlength=m)
    return PageChanges(*(x.astype(np.int64) for x in (words, differing, runs, byte_runs)))


def page_changes(new: np.ndarray, old: np.ndarray, rows: np.ndarray | None = None) -> PageChanges:
    """How each page of ``new`` changed against ``old`` (both ``(m, page_size)`` uint8); with
    ``rows`` (page indices), how those pages did, read in place: a sample of a large window
    costs no gather."""
    check_pages(new)
    check_pages(old, "old pages")
    if new.shape != old.shape:
        raise ValueError(f"pages {new.shape} and their old versions {old.shape} differ in shape")
    if rows is not None:
        rows = np.asarray(rows)
        check_rows(rows)
        rows = np.ascontiguousarray(rows, dtype=np.int64)
    if _native_page_changes is None or not new.size:
        if rows is not None:
            new, old = new[rows], old[rows]
        return _numpy_page_changes(np.ascontiguousarray(new), np.ascontiguousarray(old))
    extra = () if rows is None else (rows,)
    try:
        raw = _native_page_changes(new, old, new.shape[1], *extra)
    except ValueError:  # not C-contiguous (a bad page size raises again below)
        raw = _native_page_changes(
            np.ascontiguousarray(new), np.ascontiguousarray(old), new.shape[1], *extra
        )
    counts = np.frombuffer(raw, dtype=np.int32).reshape(-1, 4).T  # four strided int32 views
    return PageChanges(counts[0], counts[1], counts[2], counts[3])
