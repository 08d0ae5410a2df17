"""``dsa-delta``: Intel DSA's Create/Apply Delta Record format, in software or on the device.

A delta record is a list of 10-byte entries, each a little-endian u16 offset counted in
8-byte words followed by the 8 new bytes of that word, in ascending offset order. The format
is exact, so the software paths write the same bytes as the device and as DML's software
reference (``sources/core/src/sw_dispatcher/ref/create_delta.c``), including at the maximum
record size: DML writes entries while ``size + 10 <= max``; a record that exactly fills the
maximum with no further difference completes as ``NOT_EQUAL`` (1); a further difference
gives ``OVERFLOW`` (2) and a partial record of the first ``max // 10`` entries. Identical
pages give ``EQUAL`` (0) and an empty record. ``tests/codecs/vectors`` holds records that
DML's reference wrote, checked byte for byte.

Two software implementations write the same bytes and raise the same errors: C kernels
(``_deltas.c``, one pass per page without the GIL) where they were built, and the numpy
versions here otherwise; :mod:`~migcodec.codecs.delta_kernels` says which runs.

In the codec an overflowing page, or one whose record would not be smaller than the page
(with its 2-byte length), goes raw; an identical page goes as ``UNCHANGED`` with no payload.

Hardware: DML builds only as a static library, so the device path needs a small shared shim
exporting (C ABI)::

    int migcodec_dsa_create_delta(const uint8_t *old, const uint8_t *new_, uint32_t n_pages,
                                  uint32_t page_size, uint32_t max_record_size,
                                  uint8_t *records,        /* n_pages * max_record_size */
                                  uint32_t *record_sizes, uint8_t *results);  /* 0 = ok */

found through ``MIGCODEC_DML_SHIM`` (a path) or the soname ``libmigcodec_dml_shim.so``, and a
DSA work queue (``/dev/dsa/wq*``). :meth:`DsaDeltaCodec.probe` says which is missing.
"""

from __future__ import annotations

import ctypes
import glob
import os
from typing import Any

import numpy as np

from migcodec.codecs import delta_kernels
from migcodec.codecs.base import Probe, is_integer
from migcodec.codecs.delta import (
    RECORD_ENTRY_BYTES,
    STATUS_DELTA,
    STATUS_RAW,
    STATUS_UNCHANGED,
    DeltaCodec,
    Deltas,
)
from migcodec.codecs.encoded import CodecPath
from migcodec.codecs.errors import DecodeError
from migcodec.codecs.page_arrays import check_pages
from migcodec.codecs.vendor.detect import open_library

ENTRY_BYTES = RECORD_ENTRY_BYTES
#: what DML's descriptor validation accepts as a Create Delta Record maximum: a multiple of
#: 10 bytes, at least 80 (eight entries) and within the descriptor's 32-bit field; anything
#: else completes with ``DML_STATUS_DELTA_RECORD_SIZE_ERROR`` (17) before the device runs
MIN_RECORD_SIZE = 80
MAX_RECORD_SIZE = (1 << 32) - 6  # the largest multiple of 10 below 2**32
#: DML's result byte for Create Delta Record, as its reference (create_delta.c) sets it
RESULT_EQUAL, RESULT_NOT_EQUAL, RESULT_OVERFLOW = 0, 1, 2
#: one entry per 10 bytes; offset then new word, packed (numpy structs are unaligned)
RECORD_DTYPE = np.dtype([("offset", "<u2"), ("data", "<u8")])
assert RECORD_DTYPE.itemsize == ENTRY_BYTES

#: the C kernels' name for this format (``record_frame``)
_FORMAT_DSA = 1

SHIM_ENV = "MIGCODEC_DML_SHIM"
SHIM_SONAME = "libmigcodec_dml_shim.so"
WQ_GLOB = "/dev/dsa/wq*"


def create_delta_records(
    old: np.ndarray, new: np.ndarray, max_record_size: int, partial: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DSA Create Delta Record for every page pair of a batch at once.

    ``old`` and ``new`` are ``(m, page_size)`` uint8 arrays (page size a multiple of 8).
    Returns ``(results, sizes, records)``: DML's result code and the record size in bytes
    per page, and all records concatenated as a uint8 array. With ``partial=False`` the
    records of overflowing pages are left out (their size is then 0), which is what a codec
    that sends those pages raw wants, for less work.
    """
    native = delta_kernels.native
    if native is None:
        return _numpy_create_delta_records(old, new, max_record_size, partial)
    if new.shape != old.shape:
        raise ValueError(f"pages {new.shape} and their old versions {old.shape} differ in shape")
    results, sizes, records = native.dsa_create(
        np.ascontiguousarray(old),
        np.ascontiguousarray(new),
        old.shape[1],
        max_record_size // ENTRY_BYTES,
        partial,
    )
    return (
        np.frombuffer(results, np.uint8),
        np.frombuffer(sizes, np.int64),
        np.frombuffer(records, np.uint8),
    )


def _numpy_create_delta_records(
    old: np.ndarray, new: np.ndarray, max_record_size: int, partial: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`create_delta_records` in numpy: one flat compare over the batch, then the
    changed words' positions give each page's entries."""
    m, page_size = old.shape
    n_words = page_size // 8
    words_new = new.reshape(-1).view("<u8")
    # one flat pass: changed word positions over the whole batch, rows ascending
    flat = np.flatnonzero(old.reshape(-1).view("<u8") != words_new)
    bounds = np.searchsorted(flat, np.arange(m + 1) * n_words)
    counts = np.diff(bounds)
    cap = max_record_size // ENTRY_BYTES
    overflow = counts > cap
    results = np.where(
        counts == 0, RESULT_EQUAL, np.where(overflow, RESULT_OVERFLOW, RESULT_NOT_EQUAL)
    ).astype(np.uint8)
    entries = counts
    if overflow.any():
        rows = np.repeat(np.arange(m), counts)
        if partial:  # DML stops at the first entry that does not fit
            keep = (np.arange(flat.size) - bounds[rows]) < cap
            entries = np.minimum(counts, cap)
        else:
            keep = ~overflow[rows]
            entries = np.where(overflow, 0, counts)
        flat = flat[keep]
    records = np.empty(flat.size, dtype=RECORD_DTYPE)
    records["offset"] = flat % n_words
    records["data"] = words_new[flat]
    return results, entries * ENTRY_BYTES, records.view(np.uint8)


def apply_delta_records(pages: np.ndarray, records: np.ndarray, sizes: np.ndarray) -> None:
    """DSA Apply Delta Record for every page at once, strictly.

    ``records`` is the concatenation of one record per page of ``pages`` with the given byte
    sizes. Raises :class:`DecodeError`, before writing anything, unless every size is a
    whole number of entries, the sizes add up to the records, and every page's offsets
    ascend strictly and lie inside the page (the largest offset is named when one does not).
    A page's record holds at most an entry per word of the page; a larger size is refused
    before the sizes are added (three that overflowed int64 added up to the records' 14
    bytes, and the kernel walked 2**60 entries). Records or sizes in the memory of
    ``pages`` are read from a copy: the kernel checks every offset, then reads the offsets
    again as it writes, and a write through one entry moved a later entry's offset 16 KB
    past the pages after it was checked.
    """
    check_pages(pages)
    m, page_size = pages.shape
    sizes = np.asarray(sizes)
    if sizes.shape != (m,) or sizes.dtype.kind not in "iu":
        raise _sizes_error()
    most = page_size // 8 * ENTRY_BYTES
    if m and (int(sizes.min()) < 0 or int(sizes.max()) > most):
        raise DecodeError(
            f"a delta record of {int(sizes.max())} bytes holds more entries than a "
            f"{page_size}-byte page has words ({most} bytes at most)"
        )
    if np.may_share_memory(records, pages):
        records = np.array(records)
    if np.may_share_memory(sizes, pages):
        sizes = np.array(sizes)
    native = delta_kernels.native
    if native is None or page_size % 8 or not (pages.flags.c_contiguous and pages.flags.writeable):
        _numpy_apply_delta_records(pages, records, sizes)
        return
    failed = native.dsa_apply(
        pages, np.ascontiguousarray(records), np.ascontiguousarray(sizes, dtype=np.int64), page_size
    )
    if failed is None:
        return
    code, value = failed
    if code == 1:
        raise _sizes_error()
    if code == 2:
        raise _fill_error(records.size, value)
    if code == 3:
        raise _outside_error(value, page_size)
    raise _order_error()


def _sizes_error() -> DecodeError:
    return DecodeError(f"delta record sizes must be multiples of {ENTRY_BYTES} bytes, one per page")


def _fill_error(size: int, total: int) -> DecodeError:
    return DecodeError(f"delta records fill {size} bytes where their sizes say {total}")


def _outside_error(offset: int, page_size: int) -> DecodeError:
    return DecodeError(
        f"delta record offset {offset} (8-byte words) lies outside a {page_size}-byte page"
    )


def _order_error() -> DecodeError:
    return DecodeError("delta record offsets do not ascend; the record is corrupt")


def _numpy_apply_delta_records(pages: np.ndarray, records: np.ndarray, sizes: np.ndarray) -> None:
    """:func:`apply_delta_records` in numpy, after its shape check."""
    m, page_size = pages.shape
    n_words = page_size // 8
    if (sizes < 0).any() or (sizes % ENTRY_BYTES).any():
        raise _sizes_error()
    total = int(sizes.sum())
    if total != records.size:
        raise _fill_error(records.size, total)
    entries = records.view(RECORD_DTYPE)
    counts = sizes // ENTRY_BYTES
    rows = np.repeat(np.arange(m), counts)
    offsets = entries["offset"].astype(np.int64)
    if offsets.size:
        if int(offsets.max()) >= n_words:
            raise _outside_error(int(offsets.max()), page_size)
        same_page = rows[1:] == rows[:-1]
        if (same_page & (offsets[1:] <= offsets[:-1])).any():
            raise _order_error()
    pages.view("<u8")[rows, offsets] = entries["data"]


def check_max_record_size(max_record_size: object) -> None:
    """Raise :class:`ValueError` unless DML would accept ``max_record_size`` for Create Delta
    Record: the codec must refuse at configuration what the device would refuse per job."""
    if (
        not is_integer(max_record_size)
        or not MIN_RECORD_SIZE <= max_record_size <= MAX_RECORD_SIZE
        or max_record_size % ENTRY_BYTES
    ):
        raise ValueError(
            f"max_record_size must be a multiple of {ENTRY_BYTES} bytes from {MIN_RECORD_SIZE} "
            f"to {MAX_RECORD_SIZE} (DML refuses other sizes with status 17, "
            f"DML_STATUS_DELTA_RECORD_SIZE_ERROR), got {max_record_size!r}"
        )


def _load_shim() -> tuple[ctypes.CDLL | None, str]:
    """The DML shim library, or ``None`` and why not."""
    path = os.environ.get(SHIM_ENV) or SHIM_SONAME
    try:
        lib = open_library(path)
    except OSError as exc:
        where = f"${SHIM_ENV}={path}" if os.environ.get(SHIM_ENV) else SHIM_SONAME
        return None, (
            f"no DML shim ({where}: {exc}); build a shared shim over DML's static library "
            f"exporting migcodec_dsa_create_delta and set {SHIM_ENV}"
        )
    try:
        fn = lib.migcodec_dsa_create_delta
    except AttributeError:
        return None, f"DML shim {path} does not export migcodec_dsa_create_delta"
    fn.restype = ctypes.c_int
    fn.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_uint32,
        ctypes.c_uint32,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    return lib, f"DML shim {path}"


def hardware_status() -> tuple[ctypes.CDLL | None, str]:
    """The shim when the device path can run, else ``None``; and the reason either way."""
    queues = glob.glob(WQ_GLOB)
    lib, why = _load_shim()
    if lib is None and not queues:
        return None, f"{why}; no DSA work queue ({WQ_GLOB})"
    if lib is None:
        return None, why
    if not queues:
        return (
            None,
            f"{why} loads, but no DSA work queue ({WQ_GLOB}): configure one with accel-config",
        )
    return lib, f"{why} on {len(queues)} work queue(s)"


class DsaDeltaCodec(DeltaCodec):
    """DSA delta records against what the destination holds.

    ``max_record_size`` is the Create Delta Record operation's maximum, checked as DML checks
    it (:func:`check_max_record_size`); pages whose record would exceed it go raw, like the
    device's overflow completion.
    """

    name = "dsa-delta"

    def __init__(self, max_record_size: int = 4090, **kwargs: Any) -> None:
        check_max_record_size(max_record_size)
        super().__init__(**kwargs)
        self.max_record_size = max_record_size
        self._shim, self._shim_reason = hardware_status()
        self.hardware_fallbacks = 0
        self._records: np.ndarray | None = None  # the device's output, reused per request

    def format_params(self) -> dict[str, Any]:
        return {"max_record_size": self.max_record_size}

    @classmethod
    def probe(cls) -> Probe:
        lib, why = hardware_status()
        if lib is not None:
            return Probe(True, CodecPath.HARDWARE, why)
        return Probe(
            True,
            CodecPath.SOFTWARE,
            f"DSA's record format in software, delta kernels: {delta_kernels.DELTA_KERNELS}; "
            f"hardware not used: {why}",
        )

    def _entries_cap(self, page_size: int) -> int:
        """The most entries a page's record may hold: the maximum record size, and a record
        (with its u16 length) smaller than the page, or the page goes raw."""
        return min(self.max_record_size, page_size - 3) // ENTRY_BYTES

    def estimate_sizes(self, changes, page_size):
        """A record's exact size: 10 bytes per changed word and its length, raw past the
        maximum (or when the record would not be smaller than the page)."""
        words = changes.words
        size = ENTRY_BYTES * words + 2
        size[words > self._entries_cap(page_size)] = page_size
        size[words == 0] = 0
        return size

    formula_describes = estimate_sizes

    def estimate_formula(self, page_size):
        """A record capped at this codec's entries (``DeltaCodec.estimate_formula``)."""
        return "capped-record", self._entries_cap(page_size)

    def make_deltas(self, old, new):
        """Records from the device where it runs (the request's path is then ``hardware``);
        a failed device call, like a batch of cache misses (all fall-back) or of zero pages,
        runs in software."""
        if self._shim is not None:
            done = self._create_on_device(old, new)
            if done is not None:
                return Deltas(*done, CodecPath.HARDWARE)
        page_size = old.shape[1]
        native = delta_kernels.native
        if native is not None:
            status, counts, records = native.dsa_deltas(
                np.ascontiguousarray(old),
                np.ascontiguousarray(new),
                page_size,
                self._entries_cap(page_size),
            )
            return np.frombuffer(status, np.uint8), np.frombuffer(counts, "<u2"), records
        results, sizes, records = _numpy_create_delta_records(
            old, new, self.max_record_size, partial=False
        )
        return self._delta_parts(results, sizes, records, page_size)

    def _kernel_records(self):
        """The C kernels make the frames, unless the device or the numpy fall-back does."""
        return delta_kernels.native is not None and self._shim is None

    def _record_frame(self, store, new, copy_raw, find_zero=False):
        """The C kernel's frame (``DeltaCodec._record_frame``); ``None`` where the device
        or the numpy fall-back makes the records."""
        native = delta_kernels.native
        if native is None or self._shim is not None:  # not _kernel_records(): once a batch
            return None
        page_size = new.shape[1]
        cap = min(self.max_record_size, page_size - 3) // ENTRY_BYTES  # _entries_cap, inline
        return native.record_frame(_FORMAT_DSA, store, new, page_size, cap, copy_raw, find_zero)

    @staticmethod
    def _delta_parts(
        results: np.ndarray, sizes: np.ndarray, records: np.ndarray, page_size: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Statuses, entry counts and records of the pages sent as deltas.

        Equal → unchanged; overflow, or a record (with its 2-byte length) not smaller than
        the page → raw, and its entries are dropped from ``records``.
        """
        is_delta = (results == RESULT_NOT_EQUAL) & (sizes + 2 < page_size)
        status = np.where(
            is_delta, STATUS_DELTA, np.where(results == RESULT_EQUAL, STATUS_UNCHANGED, STATUS_RAW)
        ).astype(np.uint8)
        counts = sizes // ENTRY_BYTES
        if not is_delta.all():
            keep = np.repeat(is_delta, counts)
            if not keep.all():
                records = records.reshape(-1, ENTRY_BYTES)[keep].reshape(-1)
            counts = counts[is_delta]
        return status, counts.astype("<u2"), records

    def _create_on_device(self, old: np.ndarray, new: np.ndarray):
        """Records from the device through the shim; ``None`` (software runs) on failure."""
        m, page_size = old.shape
        old = np.ascontiguousarray(old)
        new = np.ascontiguousarray(new)
        # the output buffer is reused: one instance per engine thread (CodecEngines clones)
        if self._records is None or self._records.shape[0] < m:
            self._records = np.empty((max(m, 64), self.max_record_size), np.uint8)
        out = self._records[:m]
        sizes = np.empty(m, dtype=np.uint32)
        results = np.empty(m, dtype=np.uint8)
        status = self._shim.migcodec_dsa_create_delta(
            old.ctypes.data,
            new.ctypes.data,
            m,
            page_size,
            self.max_record_size,
            out.ctypes.data,
            sizes.ctypes.data,
            results.ctypes.data,
        )
        if status != 0:
            self.hardware_fallbacks += 1
            return None
        sizes = sizes.astype(np.int64)
        sizes[results == RESULT_OVERFLOW] = 0
        used = np.arange(self.max_record_size) < sizes[:, None]
        return self._delta_parts(results, sizes, out[used], page_size)

    def apply_deltas(self, pages, deltas, lengths):
        apply_delta_records(pages, deltas, lengths * ENTRY_BYTES)

    def applies_whole(self, pages):
        return True  # apply_delta_records checks every record first, on either kernel
