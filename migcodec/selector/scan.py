"""The cheap features' one pass over a window's sample.

A policy reads features on every window, and on small windows of real memory their cost
was mostly numpy's fixed cost per call on arrays of a few dozen pages: a gather of the
sample, a zero scan, a byte histogram, the change counts, a dozen calls per delta arm's
estimate. The C extension (``_pagescan.c``, ``sample_scan``) reads the sampled rows in place
and returns all of it from one call, with each built-in delta formula's estimate already
summed (``formulas``: see :data:`ESTIMATE_KINDS`). Without a C compiler at install time the
numpy version runs the same steps one call each; :data:`SAMPLE_SCAN` says which.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from migcodec.codecs.changes import PageChanges, page_changes
from migcodec.codecs.page_arrays import check_rows
from migcodec.codecs.zero import zero_page_rows
from migcodec.extensions import optional_extension

_pagescan, SAMPLE_SCAN = optional_extension("migcodec.codecs._pagescan")
native_estimate_sums = None if _pagescan is None else _pagescan.estimate_sums
_native_sample_scan = None if _pagescan is None else _pagescan.sample_scan

#: the per-page estimate formulas the C scan sums (``estimate_one`` in ``_pagescan.c``):
#: a delta record (10 bytes per changed word and a u16 length, raw from a page), the same
#: with a cap on its entries (raw past it: the parameter), and XBZRLE's byte runs
ESTIMATE_KINDS = {"record": 0, "capped-record": 1, "xbzrle": 2}


#: the rows' dtype the C scan reads (numpy's built-in dtypes are singletons: an ``is`` test
#: is a fraction of a comparison's cost, and another int64 is converted, never misread)
_INT64 = np.dtype(np.int64)

#: ``c * log2(c)`` for every count a histogram of one strided page can hold
_C_LOG_C = np.zeros(1 << 16)
_C_LOG_C[1:] = np.arange(1, 1 << 16) * np.log2(np.arange(1, 1 << 16))


def histogram_entropy(counts: np.ndarray, total: int) -> float:
    """Entropy in bits per byte of a byte histogram (int counts of ``total`` bytes): what
    :func:`~migcodec.selector.features.byte_entropy` and the numpy scan compute, and the C
    scan too, up to rounding (it sums the same logs in another order)."""
    if total >= _C_LOG_C.size:  # larger than one page: compute the logs
        nz = counts[counts > 0]
        return float(np.log2(total) - (nz * np.log2(nz)).sum() / total)
    # add.reduce of take: what .sum() of the fancy index computes, with fewer calls
    return max(float(_log2(total) - np.add.reduce(_C_LOG_C.take(counts)) / total), 0.0)


@functools.lru_cache(maxsize=256)
def _log2(total: int) -> np.float64:
    """``np.log2(total)``, once per total (a sample's histogram has a few sizes)."""
    return np.log2(total)


class SampleScan(NamedTuple):
    """What one pass over a sample found (the C scan's tuple as it is: what it holds as
    bytes is read through the methods, only by what needs it).

    ``zero``: a flag per sampled row, ``None`` when no sampled page is zero; ``nonzero``:
    the non-zero sampled pages; ``counts``: the changes of the kept pages, the non-zero
    sampled pages the destination holds (``None`` without old versions),
    :func:`page_changes` layout bytes (C) or :class:`PageChanges` (numpy);
    ``kept``: how many, ``words`` their changed words, ``runs`` their runs of changed bytes
    (what a delta encoder's work follows: see :mod:`migcodec.selector.costmodel`),
    ``words_sq`` the sum of each kept page's changed words squared and ``words_runs`` of
    its changed words times its runs (how the two vary together from page to page);
    ``sums``: per formula asked for, its estimate summed over the kept pages (``None``
    from the numpy version, which leaves estimates to the codecs); ``entropy``: in bits
    per byte, of the histogram of every ``stride``-th byte of the first and last non-zero
    sampled pages read back to back (0 when every sampled page is zero;
    :func:`histogram_entropy`, up to rounding).
    """

    zero: bytes | np.ndarray | None
    nonzero: int
    counts: bytes | PageChanges | None
    kept: int
    words: int
    runs: int
    words_sq: int
    words_runs: int
    sums: tuple[int, ...] | None
    entropy: float

    def zero_rows(self) -> np.ndarray | None:
        """Boolean mask of the zero sampled rows, ``None`` when none is zero."""
        if isinstance(self.zero, bytes):
            return np.frombuffer(self.zero, dtype=bool)
        return self.zero

    def changes(self) -> PageChanges | None:
        """The kept pages' changes (``None`` without old versions), in sample order."""
        if self.counts is None or isinstance(self.counts, PageChanges):
            return self.counts
        raw = np.frombuffer(self.counts, dtype=np.int32).reshape(-1, 4).T
        return PageChanges(raw[0], raw[1], raw[2], raw[3])


def _numpy_entropy(sample: np.ndarray, zero: np.ndarray | None, stride: int) -> float:
    """The entropy of the strided histogram of the first and last non-zero rows (one when
    they are one; 0 when every row is zero)."""
    nz_idx = None if zero is None else np.flatnonzero(~zero)
    m = sample.shape[0] if nz_idx is None else nz_idx.size
    if not m:
        return 0.0
    ends = (0, m - 1) if nz_idx is None else (int(nz_idx[0]), int(nz_idx[-1]))
    pair = sample[ends[0] : ends[0] + 1] if ends[0] == ends[1] else sample[list(ends)]
    data = pair.reshape(-1)[::stride]
    return histogram_entropy(np.bincount(data, minlength=256), data.size)


def _numpy_sample_scan(
    pages: np.ndarray,
    previous: np.ndarray | None,
    rows: np.ndarray | None,
    held: np.ndarray | None,
    stride: int,
) -> SampleScan:
    """The same pass, a numpy call per step (the sample is gathered once)."""
    sample = pages if rows is None else pages[rows]
    zero = zero_page_rows(sample)
    nonzero = sample.shape[0] - (0 if zero is None else int(zero.sum()))
    entropy = _numpy_entropy(sample, zero, stride)
    if previous is None or not nonzero:
        return SampleScan(zero, nonzero, None, 0, 0, 0, 0, 0, None, entropy)
    keep = None if zero is None else ~zero
    if held is not None:
        known = held if rows is None else held[rows]
        keep = known if keep is None else keep & known
    if keep is not None:
        rows = np.flatnonzero(keep) if rows is None else rows[keep]
    changes = page_changes(pages, previous, rows)
    kept, words = changes.words.size, int(changes.words.sum())
    runs = int(changes.byte_runs.sum())
    counted = changes.words.astype(np.int64)
    words_sq = int(np.dot(counted, counted))
    words_runs = int(np.dot(counted, changes.byte_runs.astype(np.int64)))
    return SampleScan(
        zero, nonzero, changes, kept, words, runs, words_sq, words_runs, None, entropy
    )


#: how many fields the C scan returns (SampleScan's)
_SCAN_FIELDS = len(SampleScan._fields)


def scan_sample(
    pages: np.ndarray,
    previous: np.ndarray | None,
    rows: np.ndarray | None = None,
    held: np.ndarray | None = None,
    stride: int = 7,
    formulas: Sequence[tuple[int, int]] = (),
) -> SampleScan:
    """Scan the sampled ``rows`` of ``pages`` (every row when ``None``) in place.

    ``previous`` is what the destination holds for ``pages`` (same shape) or ``None``;
    ``held`` (bool per page of ``pages``) which of them it holds. ``formulas`` are
    ``(ESTIMATE_KINDS value, parameter)`` pairs whose sums the C scan returns. Checks
    cost a fraction of the call, so only what C cannot check is checked before it."""
    if previous is not None and previous.shape != pages.shape:
        raise ValueError(
            f"pages {pages.shape} and their old versions {previous.shape} differ in shape"
        )
    if rows is not None and (rows.dtype is not _INT64 or not rows.flags.c_contiguous):
        rows = np.asarray(rows)
        check_rows(rows)
        rows = np.ascontiguousarray(rows, dtype=np.int64)
    if _native_sample_scan is None or not pages.size:
        held = None if held is None else np.asarray(held, dtype=bool)
        return _numpy_sample_scan(pages, previous, rows, held, stride)
    try:
        raw = _native_sample_scan(pages, previous, pages.shape[1], rows, held, stride, formulas)
    except (ValueError, TypeError):  # not C-contiguous, held not bool (bad sizes raise again)
        raw = _native_sample_scan(
            np.ascontiguousarray(pages),
            None if previous is None else np.ascontiguousarray(previous),
            pages.shape[1],
            rows,
            None if held is None else np.ascontiguousarray(held, dtype=bool),
            stride,
            formulas,
        )
    if len(raw) != _SCAN_FIELDS:  # an extension built from older sources
        raise RuntimeError(
            f"migcodec's page scan extension returned {len(raw)} fields, not "
            f"{_SCAN_FIELDS}: it was built from other sources; rebuild it (pip install -e . "
            "or python setup.py build_ext --inplace)"
        )
    return tuple.__new__(SampleScan, raw)
