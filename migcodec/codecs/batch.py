"""A batch: runs of pages over guest memory, the unit of one codec request.

Runs are ``(first_page, n_pages)`` pairs and need not be adjacent, so one request can
gather pages from all over guest memory (a scatter-gather multi-page request).
Validation is vectorised; page indices are expanded once and cached.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable

import numpy as np

from migcodec.codecs.errors import InvalidBatch
from migcodec.codecs.page_views import DEFAULT_PAGE_SIZE, int_or_zero, page_view

DEFAULT_MAX_PAGES = 64
_INT64 = np.dtype(np.int64)
_INT64_MAX = int(np.iinfo(np.int64).max)


def as_runs(runs: Iterable[tuple[int, int]] | np.ndarray) -> np.ndarray:
    """Normalise runs to a ``(k, 2)`` int64 array, or raise :class:`InvalidBatch`.

    Page numbers and counts must be integers that int64 holds: a float or a numeric string
    is refused, never truncated (``(0.9, 1.9)`` would silently name page 0 alone), and a
    value past int64 is refused, never wrapped. An int64 array, what every caller in the
    library passes, is taken as it is.
    """
    try:
        values = runs if isinstance(runs, np.ndarray) else list(runs)
        arr = np.asarray(values)
    except (TypeError, ValueError) as exc:  # not iterable, or ragged pairs
        raise InvalidBatch(f"runs must be (first_page, n_pages) pairs of integers: {exc}") from None
    if arr.dtype is not _INT64:  # dtypes of native byte order are singletons
        if arr.size == 0:
            return np.zeros((0, 2), dtype=np.int64)
        arr = _as_int64(arr, values)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise InvalidBatch(f"runs must be (first_page, n_pages) pairs, got shape {arr.shape}")
    return arr


def _as_int64(arr: np.ndarray, values: object) -> np.ndarray:
    """Runs of another dtype as int64: other integer dtypes whose values fit are converted;
    anything else is refused, naming the first of ``values`` (what the caller passed) that
    is not an integer int64 holds. numpy infers float64 for Python integers past int64, so
    the dtype cannot tell a page number of 2**63 from 0.5: the values are read one by one,
    only on the way to the error."""
    kind = arr.dtype.kind
    if kind == "i" or (kind == "u" and int(arr.max()) <= _INT64_MAX):
        return arr.astype(np.int64)
    for value in np.asarray(values, dtype=object).ravel().tolist():
        try:
            number = operator.index(value)
        except TypeError:
            raise InvalidBatch(
                f"runs must be (first_page, n_pages) pairs of integers, got {value!r} "
                f"({type(value).__name__}); pass whole page numbers and counts as ints"
            ) from None
        if not -_INT64_MAX - 1 <= number <= _INT64_MAX:
            raise InvalidBatch(
                f"run value {number} does not fit in int64 (page numbers and counts stay "
                "below 2**63); no guest memory has that many pages"
            )
    raise InvalidBatch(f"runs must be (first_page, n_pages) pairs of integers, got {arr.dtype}")


def checked_max_pages(max_pages: object) -> int:
    """``max_pages`` as an ``int`` of at least 1, or :class:`InvalidBatch`: a bound below 1
    admits no batch, so every request would fail later with a message about its size."""
    bound = int_or_zero(max_pages)
    if bound < 1:
        raise InvalidBatch(
            f"max_pages {max_pages!r} must be a positive integer: the most pages one batch "
            "may name (e.g. 64)"
        )
    return bound


def check_runs(runs: np.ndarray, n_memory_pages: int, max_pages: int) -> int:
    """Raise :class:`InvalidBatch` unless ``runs`` is a valid request; return its page count.

    A valid request names at least one page, no run is empty or negative, every page lies
    inside memory, runs do not overlap, and the total is at most ``max_pages``.
    """
    if runs.shape[0] == 0:
        raise InvalidBatch("a batch needs at least one run of pages")
    first, count = runs[:, 0], runs[:, 1]
    if (count <= 0).any():
        bad = int(np.flatnonzero(count <= 0)[0])
        raise InvalidBatch(f"run {bad} is empty ({int(count[bad])} pages); runs need >= 1 page")
    # ``first > n - count``, not ``first + count > n``: the sum can overflow int64
    outside = (first < 0) | (first > n_memory_pages - count)
    if outside.any():
        bad = int(np.flatnonzero(outside)[0])
        raise InvalidBatch(
            f"run {bad} (first page {int(first[bad])}, {int(count[bad])} pages) lies outside "
            f"guest memory of {n_memory_pages} pages"
        )
    total = int(count.sum())
    if total > max_pages:
        raise InvalidBatch(
            f"batch names {total} pages, more than the maximum of {max_pages}; split it"
        )
    if runs.shape[0] > 1:
        order = np.argsort(first, kind="stable")
        f, c = first[order], count[order]
        overlap = f[1:] < f[:-1] + c[:-1]
        if overlap.any():
            i = int(np.flatnonzero(overlap)[0])
            raise InvalidBatch(
                f"runs starting at pages {int(f[i])} and {int(f[i + 1])} overlap; "
                "each page may appear once per batch"
            )
    return total


def check_run(first: int, count: int, n_memory_pages: int, max_pages: int) -> int:
    """:func:`check_runs` for a request of one run, on Python integers: the checks and
    messages are the same, without the array operations (every single-run batch and
    frame pays for them)."""
    if count <= 0:
        raise InvalidBatch(f"run 0 is empty ({count} pages); runs need >= 1 page")
    if first < 0 or first > n_memory_pages - count:
        raise InvalidBatch(
            f"run 0 (first page {first}, {count} pages) lies outside "
            f"guest memory of {n_memory_pages} pages"
        )
    if count > max_pages:
        raise InvalidBatch(
            f"batch names {count} pages, more than the maximum of {max_pages}; split it"
        )
    return count


def expand_runs(runs: np.ndarray) -> np.ndarray:
    """Page indices named by ``runs``, in run order, without a Python loop."""
    counts = runs[:, 1]
    total = int(counts.sum())
    starts = np.repeat(runs[:, 0] - np.cumsum(counts) + counts, counts)
    return starts + np.arange(total, dtype=np.int64)


def run_pages_at(runs: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The page indices at ``positions`` (ascending, each below the runs' total) of
    :func:`expand_runs`'s result, without expanding every run: a sample of a window costs
    its own size (and a search over the runs), not the window's."""
    counts = runs[:, 1]
    ends = np.cumsum(counts)
    run = np.searchsorted(ends, positions, side="right")
    return runs[run, 0] + (positions - (ends[run] - counts[run]))


class Batch:
    """Runs of pages over guest memory, validated against it.

    The batch holds a view of memory, never a copy; the pages may change until the codec
    reads them, exactly as guest RAM does during pre-copy.
    """

    def __init__(
        self,
        memory: object,
        runs: Iterable[tuple[int, int]] | np.ndarray,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> None:
        self.page_size = page_size
        if type(max_pages) is not int or max_pages < 1:
            max_pages = checked_max_pages(max_pages)  # a numpy integer, or the error
        self.max_pages = max_pages
        self.memory = page_view(memory, page_size)
        self.runs = as_runs(runs)
        self._span = None
        self._indices: np.ndarray | None = None
        #: one run of pages (read in place as a view of memory): an attribute, which the
        #: framework reads per batch, where a method call costs more than the answer
        self.single_run = self.runs.shape[0] == 1
        if self.single_run:
            first, count = self.runs[0].tolist()
            self.n_pages = check_run(first, count, self.memory.shape[0], max_pages)
            self._span = (first, first + count)
        else:
            self.n_pages = check_runs(self.runs, self.memory.shape[0], max_pages)

    @property
    def page_indices(self) -> np.ndarray:
        """Index of every page of the batch in guest memory, in run order (computed once;
        a plain attribute, not ``functools.cached_property``, whose lock cost several times
        the computation on a single run)."""
        indices = self._indices
        if indices is None:
            if self._span is not None:  # one run: a range (expand_runs costs several calls)
                indices = np.arange(*self._span, dtype=np.int64)
            else:
                indices = expand_runs(self.runs)
            self._indices = indices
        return indices

    @property
    def nbytes(self) -> int:
        return self.n_pages * self.page_size

    def is_single_run(self) -> bool:
        return self.single_run

    def pages(self, out: np.ndarray | None = None) -> np.ndarray:
        """The batch's pages as a ``(n_pages, page_size)`` array.

        Without ``out``, a single run is a zero-copy view of memory and scattered runs are
        gathered with one vectorised copy. With ``out`` (a pooled staging buffer) the pages
        are always copied there: a snapshot that a guest still writing cannot change. A
        compressor must never read memory that changes under it: an LZ match found against
        a page's new bytes but emitted as a reference to its old, already-sent bytes
        corrupts a page that itself never changed and so is never resent.
        """
        if out is None:
            if self._span is not None:
                return self.memory[self._span[0] : self._span[1]]
            return self.memory[self.page_indices]
        self._check_staging(out)
        dest = out[: self.n_pages]
        if self._span is not None:
            np.copyto(dest, self.memory[self._span[0] : self._span[1]])
        else:
            # check_runs validated the indices; mode="raise" would gather into a temporary
            np.take(self.memory, self.page_indices, axis=0, out=dest, mode="clip")
        return dest

    def _check_staging(self, out: object) -> None:
        """Refuse a staging buffer that cannot hold this batch's pages as they are: one of
        another dtype took them cast (a codec then encoded the cast values, and the frame
        decoded to other pages at the destination, the source none the wiser), and one of
        another shape failed in numpy's words."""
        if (
            isinstance(out, np.ndarray)
            and out.dtype == np.uint8
            and out.ndim == 2
            and out.shape[0] >= self.n_pages
            and out.shape[1] == self.page_size
            and out.flags.writeable
            and out.flags.c_contiguous
        ):
            return
        got = (
            f"a {'read-only ' if not out.flags.writeable else ''}{out.dtype} array of shape "
            f"{out.shape}{'' if out.flags.c_contiguous else ', not contiguous'}"
            if isinstance(out, np.ndarray)
            else type(out).__name__
        )
        raise InvalidBatch(
            f"a staging buffer for {self.n_pages} pages of {self.page_size} bytes must be a "
            f"writable, contiguous uint8 array of shape (at least {self.n_pages}, "
            f"{self.page_size}), got {got}; take one from the request pool, or make one with "
            f"np.empty((max_pages, {self.page_size}), np.uint8)"
        )

    def __repr__(self) -> str:
        return f"Batch(runs={self.runs.tolist()}, n_pages={self.n_pages})"
