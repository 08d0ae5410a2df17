"""``xbzrle``: QEMU's XBZRLE page encoding, byte for byte, over a whole batch.

An encoded page is ``zrun nzrun [zrun nzrun ...]``: the length of a run of unchanged bytes,
then the length of a run of changed bytes followed by those new bytes, lengths as ULEB128
(at most two bytes: QEMU's ``uleb128_encode_small`` takes 14-bit numbers). The first zero
run may be empty; a trailing zero run is not written. The encoded length is limited to the
page size, and QEMU's encoder (``migration/xbzrle.c``, ``xbzrle_encode_buffer``) gives up
early: before every run header it requires two free bytes (``d + 2 > dlen``), including
before the trailing zero run it then does not write. So a page that ends unchanged
overflows as soon as its encoding exceeds ``page_size - 2`` bytes, one that ends changed
only past ``page_size``. Overflowing pages go raw; identical pages are skipped (mode
``UNCHANGED``, no payload). ``tests/codecs/vectors`` holds QEMU's own output for checking.

Decoding is strict like QEMU's ``xbzrle_decode_buffer`` and ``ram_load``: an encoding is no
longer than its page, every length is bounds-checked, non-first zero runs and all change
runs must be non-empty, and nothing is written outside the page. Its memory is bounded: a
frame is parsed a run of pages at a time.

Two implementations write the same bytes and raise the same errors: C kernels
(``_deltas.c``, one pass per page without the GIL) where they were built, and the numpy
versions here (``_numpy_xbzrle_encode`` / ``_numpy_xbzrle_decode``) otherwise;
:mod:`~migcodec.codecs.delta_kernels` says which runs.
"""

from __future__ import annotations

import numpy as np

from migcodec.codecs import delta_kernels
from migcodec.codecs.base import Probe
from migcodec.codecs.delta import STATUS_DELTA, STATUS_RAW, STATUS_UNCHANGED, DeltaCodec
from migcodec.codecs.encoded import CodecPath
from migcodec.codecs.errors import DecodeError
from migcodec.codecs.page_arrays import check_pages

#: ``uleb128_encode_small`` asserts lengths <= 0x3fff; runs are shorter than the page
MAX_PAGE_SIZE = 0x4000
#: the C kernels' name for this format (``record_frame``)
_FORMAT_XBZRLE = 0


def _uleb_len(x: np.ndarray) -> np.ndarray:
    return 1 + (x >= 0x80)


#: the C kernels' status bytes are delta.py's STATUS_* values
assert (STATUS_UNCHANGED, STATUS_DELTA, STATUS_RAW) == (0, 1, 2)


def _check_page_size(page_size: int) -> None:
    if page_size > MAX_PAGE_SIZE:
        raise ValueError(f"XBZRLE encodes pages of at most {MAX_PAGE_SIZE} bytes, not {page_size}")


def xbzrle_encode(old: np.ndarray, new: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """QEMU's ``xbzrle_encode_buffer(old, new, page_size, dst, page_size)`` for every page.

    Returns ``(results, lengths, data)``: per page QEMU's return value (``-1`` overflow,
    ``0`` unchanged, else the encoded length) and the encoded lengths of the pages with a
    positive result, both int64, and those encodings concatenated as a uint8 array.
    """
    native = delta_kernels.native
    if native is None:
        return _numpy_xbzrle_encode(old, new)
    page_size = old.shape[1]
    _check_page_size(page_size)
    if new.shape != old.shape:
        raise ValueError(f"pages {new.shape} and their old versions {old.shape} differ in shape")
    results, _, lengths, data = native.xbzrle_encode(
        np.ascontiguousarray(old), np.ascontiguousarray(new), page_size
    )
    return (
        np.frombuffer(results, np.int32).astype(np.int64),
        np.frombuffer(lengths, np.uint16).astype(np.int64),
        np.frombuffer(data, np.uint8),
    )


def _numpy_xbzrle_encode(
    old: np.ndarray, new: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`xbzrle_encode` in numpy. Vectorised: the
    batch is compared as 64-bit words and only changed words are split into bytes, so the
    work follows the amount of change; runs are breaks in the differing byte positions;
    headers and literals are scattered with index arrays. The literals are exactly the new
    bytes at the differing positions, in order.
    """
    m, page_size = old.shape
    _check_page_size(page_size)
    n_words = page_size // 8
    # Differing bytes, found word by word: only changed words are split into bytes.
    old_words = old.reshape(-1).view(np.uint64)
    new_words = new.reshape(-1).view(np.uint64)
    words = np.flatnonzero(old_words != new_words)
    changed_new = new_words[words]
    differs = ((old_words[words] ^ changed_new).view(np.uint8) != 0).reshape(-1)
    # A change run starts at a differing byte whose predecessor in the page does not
    # differ, and ends at one whose successor does not. Neighbours across a word boundary
    # are only in ``differs`` when the neighbouring word changed too (and is in the page).
    joined = np.zeros(words.size + 1, dtype=bool)
    joined[1:-1] = (words[1:] == words[:-1] + 1) & (words[1:] % n_words != 0)
    before = np.empty_like(differs)
    before[1:] = differs[:-1]
    before[:1] = False
    before[::8] &= joined[:-1]
    after = np.empty_like(differs)
    after[:-1] = differs[1:]
    after[-1:] = False
    after[7::8] &= joined[1:]
    first_byte = np.flatnonzero(differs & ~before)
    last_byte = np.flatnonzero(differs & ~after)
    start_abs = words[first_byte >> 3] * 8 + (first_byte & 7)
    row = start_abs // page_size
    start = start_abs - row * page_size
    end = words[last_byte >> 3] * 8 + (last_byte & 7) + 1 - row * page_size
    first = np.ones(row.size, dtype=bool)
    first[1:] = row[1:] != row[:-1]
    prev_end = np.zeros_like(end)
    prev_end[1:] = end[:-1]
    prev_end[first] = 0
    zrun = start - prev_end
    nzrun = end - start
    zlen = _uleb_len(zrun)
    nlen = _uleb_len(nzrun)
    cost = zlen + nlen + nzrun
    pairs = np.bincount(row, minlength=m)
    total = np.bincount(row, weights=cost, minlength=m).astype(np.int64)
    last = np.ones(row.size, dtype=bool)
    last[:-1] = row[1:] != row[:-1]
    ends_unchanged = np.zeros(m, dtype=bool)
    ends_unchanged[row[last]] = end[last] < page_size
    # QEMU checks d + 2 <= dlen before each header, also before the unwritten trailing zrun
    overflow = total > page_size - 2 * ends_unchanged
    results = np.where(pairs == 0, 0, np.where(overflow, -1, total))
    ok = results > 0
    keep = ok[row]
    if not keep.all():
        zrun, nzrun, zlen, nlen, cost = (a[keep] for a in (zrun, nzrun, zlen, nlen, cost))
    out_size = int(cost.sum())
    out = np.empty(out_size, dtype=np.uint8)
    header = np.zeros(out_size, dtype=bool)
    zpos = np.cumsum(cost) - cost
    npos = zpos + zlen
    for at, value, size in ((zpos, zrun, zlen), (npos, nzrun, nlen)):
        two = size == 2
        out[at] = np.where(two, (value & 0x7F) | 0x80, value).astype(np.uint8)
        out[at[two] + 1] = (value[two] >> 7).astype(np.uint8)
        header[at] = True
        header[at[two] + 1] = True
    literals = changed_new.view(np.uint8)
    if ok.all():
        literals = literals[differs]
    else:
        literals = literals[differs & np.repeat(ok[words // n_words], 8)]
    out[~header] = literals
    return results, results[ok], out


#: The parse keeps a few dozen bytes of index arrays per encoded byte, so a frame is decoded
#: a run of whole pages at a time, each run holding about ``max(MIN_RUN_BYTES, frame /
#: MAX_RUNS)`` bytes of encodings: the extra memory stays within a few times the frame (and
#: a few MiB for small frames), and the chain walk, which steps once per pair of the busiest
#: page of a run, runs at most ``MAX_RUNS`` times as many steps as over the whole frame.
MIN_RUN_BYTES = 1 << 18
MAX_RUNS = 16


#: what each of the C kernel's decode codes means (``_deltas.c``), in QEMU's check order;
#: the numpy parse reports the same texts
_PAIR_PROBLEMS = {
    3: "zero run header is cut off",
    4: "zero run length is longer than 14 bits",
    5: "zero run of length 0 after the first",
    6: "zero run goes past the end of the page",
    7: "change run header is cut off",
    8: "change run length is longer than 14 bits",
    9: "change run of length 0",
    10: "change run goes past the end of the page or the data",
}
_LENGTH, _FILL = 1, 2


def _length_error(page: int, length: int, page_size: int) -> DecodeError:
    return DecodeError(
        f"XBZRLE page {page} of the batch has an encoding of {length} bytes; an "
        f"encoding has 1..{page_size} (the page size), as QEMU requires"
    )


def _fill_error(size: int, total: int) -> DecodeError:
    return DecodeError(f"XBZRLE encodings fill {size} bytes where their lengths say {total}")


def _pair_error(what: str, page: int) -> DecodeError:
    return DecodeError(f"XBZRLE {what} (page {page} of the batch); it is corrupt")


def xbzrle_decode(pages: np.ndarray, data: np.ndarray, lengths: np.ndarray) -> None:
    """Apply concatenated XBZRLE encodings (``lengths`` bytes each) to ``pages`` in place.

    The lengths are checked first, before anything is allocated: one per page, each
    1..page size (QEMU refuses longer encodings: ``ram_load`` "len overflow"), adding up to
    ``data``. A malformed encoding raises :class:`DecodeError` naming the first bad page
    and what is wrong with it, the same from both kernels. The C kernel checks every page
    before it writes one, so ``pages`` are then as they were (:func:`decodes_whole`); the
    numpy fall-back has written the runs of pages before the bad one's, and callers that
    must not see a partial batch decode into a copy there, as
    :class:`~migcodec.codecs.delta.DeltaCodec` does. Nothing is ever written outside
    ``pages``. Encodings or lengths in the memory of ``pages`` are read from a copy: the
    C kernel checks every page, then reads them again as it writes, and a page written
    before a later one's length was read gave that page bytes from past the encodings (or
    left it undecoded, without an error).
    """
    check_pages(pages)
    m, page_size = pages.shape
    lengths = np.asarray(lengths)
    if lengths.shape != (m,):
        raise DecodeError(f"{lengths.size} XBZRLE lengths for a batch of {m} pages")
    if np.may_share_memory(data, pages):
        data = np.array(data)
    if np.may_share_memory(lengths, pages):
        lengths = np.array(lengths)
    if not decodes_whole(pages):
        _numpy_xbzrle_decode(pages, data, lengths)
        return
    lengths = np.ascontiguousarray(lengths, dtype=np.int64)
    data = np.ascontiguousarray(data)
    failed = delta_kernels.native.xbzrle_decode(pages, data, lengths, page_size)
    if failed is None:
        return
    code, page, a, b = failed
    if code == _LENGTH:
        raise _length_error(a, b, page_size)
    if code == _FILL:
        raise _fill_error(a, b)
    raise _pair_error(_PAIR_PROBLEMS[code], page)


def decodes_whole(pages: np.ndarray) -> bool:
    """Whether :func:`xbzrle_decode` runs the C kernel on ``pages`` (built, a page size it
    takes, writable contiguous rows), which writes nothing unless every page decodes."""
    page_size = pages.shape[1]
    return (
        delta_kernels.native is not None
        and page_size <= MAX_PAGE_SIZE
        and not page_size % 8
        and pages.flags.c_contiguous
        and pages.flags.writeable
    )


def _numpy_xbzrle_decode(pages: np.ndarray, data: np.ndarray, lengths: np.ndarray) -> None:
    """:func:`xbzrle_decode` in numpy, after its shape check. Runs of whole pages are
    parsed and applied one run at a time (:func:`_decode_pages`), so the extra memory is
    bounded by the run, not the frame; a failing run writes nothing."""
    m, page_size = pages.shape
    lengths = lengths.astype(np.int64)
    bad = np.flatnonzero((lengths <= 0) | (lengths > page_size))
    if bad.size:
        i = int(bad[0])
        raise _length_error(i, int(lengths[i]), page_size)
    stops = np.cumsum(lengths)
    total = int(stops[-1]) if m else 0
    if total != data.size:
        raise _fill_error(data.size, total)
    run_bytes = max(MIN_RUN_BYTES, -(-data.size // MAX_RUNS))
    first = 0
    while first < m:
        begin = int(stops[first] - lengths[first])
        last = max(int(np.searchsorted(stops, begin + run_bytes, side="right")), first + 1)
        end = int(stops[last - 1])
        _decode_pages(pages[first:last], data[begin:end], lengths[first:last], first)
        first = last


def _decode_pages(pages: np.ndarray, data: np.ndarray, lengths: np.ndarray, base: int) -> None:
    """Apply one run of encodings (checked lengths that fill ``data``); ``base`` is the
    run's first page in the batch, for messages.

    Where each ``zrun nzrun`` pair starts depends on the one before, so the parse is a
    chain. A pair is parsed speculatively at *every* byte offset of ``data`` (vectorised),
    giving each offset its successor; then all pages' chains are walked together, one
    step per pair index (the loop runs as often as the busiest page has pairs, never per
    page or per byte, and each step touches one offset per page). The pairs on the chains
    are then checked as QEMU's ``xbzrle_decode_buffer`` checks them (the first failure is
    reported), and all literals are copied with one scatter: nothing of the run is
    written unless all of it is valid.
    """
    m, page_size = pages.shape
    size = data.size
    stops = np.cumsum(lengths)
    starts = stops - lengths
    # A ULEB128 length read at every offset (zero padding past the end; int32 is plenty:
    # offsets stay below a run's size). Built in place, a few bytes per byte at a time.
    padded = np.zeros(size + 3, dtype=np.uint8)
    padded[:size] = data
    high = padded >= 0x80
    two = high[:-1]
    value = padded[:-1].astype(np.int32)
    shifted = padded[1:].astype(np.int32)
    shifted <<= 7
    np.bitwise_and(value, 0x7F, out=value, where=two)
    np.bitwise_or(value, shifted, out=value, where=two)
    del shifted, padded
    too_long = two & high[1:]
    # The pair that would start at each offset: its change-run header and its successor.
    second = np.arange(1, size + 1, dtype=np.int32)
    second += two[:size]
    run = value[second]
    literal = second + 1
    literal += two[second]
    successor = literal + run
    # Walk every page's chain at once: one step per pair, a few operations on at most
    # one offset per page (the work per pair is all in the vectorised parse above).
    walked, walked_page = [], []
    offset, live, live_stops = starts, np.arange(m), stops
    while live.size:
        walked.append(offset)
        walked_page.append(live)
        offset = successor[offset]
        more = offset < live_stops
        if not more.all():  # pages of a run tend to end together: compact only then
            offset, live, live_stops = offset[more], live[more], live_stops[more]
    del successor
    node = np.concatenate(walked)
    order = np.argsort(node)  # pages' bytes are in page order: this sorts by page, then pair
    node = node[order]
    page = np.concatenate(walked_page)[order]
    del walked, walked_page, order
    stop = stops[page]
    first = node == starts[page]
    zrun = value[node]
    n = run[node]
    # bytes of the page covered when each change run starts (cumulative per page)
    covered = np.cumsum(zrun + n)
    page_base = np.zeros_like(covered)
    page_base[first] = (covered - zrun - n)[first]
    page_base = np.maximum.accumulate(page_base)
    d = covered - n - page_base
    problems = tuple(
        zip(
            (
                node + 2 > stop,
                too_long[node],
                ~first & (zrun == 0),
                d > page_size,
                second[node] + 2 > stop,
                too_long[second[node]],
                n == 0,
                (d + n > page_size) | (literal[node] + n > stop),
            ),
            _PAIR_PROBLEMS.values(),
            strict=True,
        )
    )
    bad = np.zeros(node.size, dtype=bool)
    for mask, _ in problems:
        bad |= mask
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        what = next(text for mask, text in problems if mask[i])
        raise _pair_error(what, base + int(page[i]))
    total = int(n.sum())
    offset = np.arange(total) - np.repeat(np.cumsum(n) - n, n)
    flat = pages.reshape(-1)
    flat[np.repeat(page * page_size + d, n) + offset] = data[np.repeat(literal[node], n) + offset]


class XbzrleCodec(DeltaCodec):
    """QEMU's XBZRLE against what the destination holds."""

    @classmethod
    def probe(cls):
        return Probe(
            True,
            CodecPath.SOFTWARE,
            f"QEMU's XBZRLE format in software, delta kernels: {delta_kernels.DELTA_KERNELS}",
        )

    name = "xbzrle"
    max_page_size = MAX_PAGE_SIZE

    def estimate_sizes(self, changes, page_size):
        """Per run of differing bytes: its bytes, a one-byte length, and the length of the
        zero run before it (one byte, two past 127); QEMU gives up (raw) near the page."""
        runs = changes.byte_runs
        gap = (page_size - changes.bytes) > 127 * np.maximum(runs, 1)
        size = changes.bytes + 2 * runs + gap * runs + 2
        size[size >= page_size - 8] = page_size
        size[changes.words == 0] = 0
        return size

    formula_describes = estimate_sizes

    def estimate_formula(self, page_size):
        """XBZRLE's runs (``DeltaCodec.estimate_formula``)."""
        return "xbzrle", 0

    def make_deltas(self, old, new):
        native = delta_kernels.native
        if native is not None:  # the C kernel says each page's status itself
            _check_page_size(old.shape[1])
            _, status, lengths, data = native.xbzrle_encode(
                np.ascontiguousarray(old), np.ascontiguousarray(new), old.shape[1]
            )
            return np.frombuffer(status, np.uint8), np.frombuffer(lengths, "<u2"), data
        results, lengths, data = _numpy_xbzrle_encode(old, new)
        status = np.where(
            results == 0, STATUS_UNCHANGED, np.where(results < 0, STATUS_RAW, STATUS_DELTA)
        ).astype(np.uint8)
        return status, lengths.astype("<u2"), data

    def _kernel_records(self):
        """The C kernels make the frames, unless the numpy fall-back runs."""
        return delta_kernels.native is not None

    def _record_frame(self, store, new, copy_raw, find_zero=False):
        """The C kernel's frame (``DeltaCodec._record_frame``); ``None`` on the numpy path."""
        native = delta_kernels.native
        if native is None:
            return None
        return native.record_frame(_FORMAT_XBZRLE, store, new, new.shape[1], 0, copy_raw, find_zero)

    def apply_deltas(self, pages, deltas, lengths):
        xbzrle_decode(pages, deltas, lengths)

    def applies_whole(self, pages):
        return decodes_whole(pages)
