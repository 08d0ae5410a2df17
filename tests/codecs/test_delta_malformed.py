"""Malformed delta frames raise DecodeError and never write outside the pages they name."""

import contextlib
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from migcodec.codecs import Batch, DecodeError, DestinationMirror, Encoded, get_codec
from migcodec.codecs.plugins.dsa_delta import apply_delta_records
from migcodec.codecs.plugins.xbzrle import xbzrle_decode, xbzrle_encode
from tests.codecs.kernel_paths import PATHS, kernels

PAGE = 4096


@pytest.fixture(autouse=True, params=PATHS)
def kernel_path(request):
    """Every test here runs on the C delta kernels and on the numpy ones."""
    with kernels(request.param):
        yield request.param


def _guarded(m: int) -> tuple[np.ndarray, np.ndarray]:
    """``m`` pages between two guard pages; returns (all rows, the m inner rows)."""
    rows = np.full((m + 2, PAGE), 0xA5, np.uint8)
    return rows, rows[1:-1]


@given(chunks=st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=3))
def test_xbzrle_decode_of_arbitrary_bytes_stays_inside_the_pages(chunks):
    rows, inner = _guarded(len(chunks))
    data = np.frombuffer(b"".join(chunks), np.uint8)
    with contextlib.suppress(DecodeError):
        xbzrle_decode(inner, data, np.array([len(c) for c in chunks]))
    assert (rows[0] == 0xA5).all() and (rows[-1] == 0xA5).all()


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"\x05", "cut off"),  # one byte: QEMU needs two for a header
        (b"\x00\x00", "cut off"),  # no room for the change run's header
        (b"\x00\x00\x00", "length 0"),  # empty change run
        (b"\x80\x80\x01", "14 bits"),  # a third ULEB128 byte
        (b"\x00\xff\x7f", "past the end"),  # change run of 16383 bytes
        (b"\x00\x04ab", "past the end"),  # change run longer than the data
        (b"\x00\x01a\x00\x01b", "length 0"),  # a later zero run of 0
        (b"\xff\x3f\x01a", "past the end"),  # zero run beyond the page
    ],
)
def test_xbzrle_rejects_what_qemu_rejects(data, what):
    # the numpy kernel may have written part of the page (the codec decodes into a copy
    # there); never past its end
    rows, inner = _guarded(1)
    with pytest.raises(DecodeError, match=what):
        xbzrle_decode(inner, np.frombuffer(data, np.uint8), np.array([len(data)]))
    assert (rows[0] == 0xA5).all() and (rows[-1] == 0xA5).all()


def test_xbzrle_decode_writes_no_page_of_a_batch_with_a_bad_one():
    """The C kernel checks every page before it writes one; the numpy kernel checks a run
    of pages at a time (here the batch is one run)."""
    pages = np.zeros((3, PAGE), np.uint8)
    good = b"\x00\x04abcd"  # change the first 4 bytes
    data = np.frombuffer(good + good + b"\x05", np.uint8)  # the last page is cut off
    with pytest.raises(DecodeError, match="page 2"):
        xbzrle_decode(pages, data, np.array([6, 6, 1]))
    assert not pages.any()


def _all_deltas(name: str) -> tuple[Encoded, np.ndarray]:
    """A frame of one run whose every page is a delta, and the destination before it."""
    rng = np.random.default_rng(5)
    before = rng.integers(0, 256, (8, PAGE), dtype=np.uint8)
    codec = get_codec(name)
    mirror = DestinationMirror.holding(np.arange(8), before)
    after = before.copy()
    after[:, ::64] ^= 1  # a few bytes of every page
    encoded = codec.encode(Batch(after, [(0, 8)]), destination=mirror)
    assert set(encoded.modes.tolist()) == {2}  # DELTA
    return encoded, before.copy()


@pytest.mark.parametrize("name", ["dsa-delta", "xbzrle"])
def test_a_run_of_deltas_with_a_bad_last_page_leaves_memory_untouched(name):
    """Such a frame is decoded in destination memory itself where the kernel checks every
    delta before its first write, into a copy elsewhere: either way, a last page that does
    not decode leaves every page as it was, and a good frame decodes exactly."""
    encoded, dest = _all_deltas(name)
    before = dest.copy()
    payload = bytearray(encoded.payload)
    n = len(encoded.modes)
    lengths = np.frombuffer(bytes(payload[4 : 4 + 2 * n]), "<u2").copy()
    if name == "xbzrle":  # the last page's encoding replaced by a cut-off header
        tail = sum(int(x) for x in lengths[:-1])
        lengths[-1] = 1
        payload = payload[: 4 + 2 * n] + payload[4 + 2 * n :][:tail] + b"\x05"
        payload[4 : 4 + 2 * n] = lengths.tobytes()
    else:  # the last record's offset moved past the page
        payload[-10:-8] = (PAGE // 8).to_bytes(2, "little")
    with pytest.raises(DecodeError):
        get_codec(name).decode(_with_payload(encoded, bytes(payload)), dest)
    np.testing.assert_array_equal(dest, before)
    get_codec(name).decode(encoded, dest)
    expected = before.copy()
    expected[:, ::64] ^= 1
    np.testing.assert_array_equal(dest, expected)


def _records(*entries: tuple[int, int]) -> np.ndarray:
    out = b"".join(o.to_bytes(2, "little") + w.to_bytes(8, "little") for o, w in entries)
    return np.frombuffer(out, np.uint8)


@pytest.mark.parametrize(
    ("records", "sizes", "what"),
    [
        (_records((512, 1)), [10], "outside"),
        (_records((5, 1), (3, 1)), [20], "ascend"),
        (_records((5, 1), (5, 2)), [20], "ascend"),
        (_records((5, 1)), [9], "multiples"),
        (_records((5, 1)), [20], "sizes say"),
    ],
)
def test_dsa_apply_rejects_corrupt_records(records, sizes, what):
    page = np.zeros((1, PAGE), np.uint8)
    with pytest.raises(DecodeError, match=what):
        apply_delta_records(page, records, np.array(sizes, np.int64))
    assert not page.any()


def _delta_frame(name: str) -> tuple[Encoded, np.ndarray]:
    """A frame with delta, fall-back and unchanged pages, and the destination before it."""
    rng = np.random.default_rng(11)
    memory = (rng.integers(0, 256, (6, PAGE), dtype=np.uint8) // 64).astype(np.uint8)
    codec, mirror = get_codec(name), DestinationMirror(PAGE, 4 * PAGE)
    dest = np.zeros_like(memory)
    codec.decode(codec.encode(Batch(memory, [(0, 4)]), destination=mirror), dest)
    memory[1, 80:96] += 1
    memory[2, 8] += 1
    encoded = codec.encode(Batch(memory, [(0, 6)]), destination=mirror)
    assert {2, 3, 4} <= set(encoded.modes.tolist())
    return encoded, dest


def _with_payload(encoded: Encoded, payload: bytes, modes=None) -> Encoded:
    return Encoded(
        encoded.codec,
        encoded.page_size,
        encoded.runs,
        encoded.modes if modes is None else modes,
        (payload,),
    )


@pytest.mark.parametrize("name", ["dsa-delta", "xbzrle"])
@pytest.mark.parametrize(
    "corrupt",
    ["truncate-header", "truncate-tail", "extra-tail", "fallback-length", "mode-5", "lengths"],
)
def test_corrupt_frames_leave_memory_untouched(name, corrupt):
    encoded, dest = _delta_frame(name)
    before = dest.copy()
    payload = encoded.payload
    modes = None
    if corrupt == "truncate-header":
        payload = payload[:3]
    elif corrupt == "truncate-tail":
        payload = payload[:-1]
    elif corrupt == "extra-tail":
        payload = payload + b"\x00"
    elif corrupt == "fallback-length":
        payload = (len(payload) + 1).to_bytes(4, "little") + payload[4:]
    elif corrupt == "mode-5":
        modes = encoded.modes.copy()
        modes[1] = 5
    elif corrupt == "lengths":
        raw = bytearray(payload)
        raw[4:6] = (0xFFFF).to_bytes(2, "little")
        payload = bytes(raw)
    with pytest.raises(DecodeError):
        get_codec(name).decode(_with_payload(encoded, payload, modes), dest)
    np.testing.assert_array_equal(dest, before)


@pytest.mark.parametrize("name", ["dsa-delta", "xbzrle"])
@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=4))
def test_random_corruption_raises_or_writes_only_named_pages(name, flips):
    encoded, dest = _delta_frame(name)
    raw = bytearray(encoded.payload)
    for pos, xor in flips:
        raw[pos % len(raw)] ^= xor
    guarded = np.vstack([dest, np.full((2, PAGE), 0xA5, np.uint8)])
    with contextlib.suppress(DecodeError):
        get_codec(name).decode(_with_payload(encoded, bytes(raw)), guarded)
    assert (guarded[6:] == 0xA5).all()


# -- bounded memory ------------------------------------------------------------------------
def _peak_bytes(run) -> int:
    """Peak bytes allocated (numpy reports its buffers to tracemalloc) while ``run`` runs."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        with contextlib.suppress(DecodeError):
            run()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("fill", ["zeros", "random", "valid"])
def test_xbzrle_decode_memory_is_a_small_multiple_of_the_frame(fill):
    # 512 pages of 16 KiB, every delta 16381 bytes: an 8 MiB frame. Zeros chain two-byte
    # pairs (the most pairs a parse can meet), random bytes fail at once, and valid deltas
    # change every other byte. The decode may use a few times the frame and its pages,
    # never the dozens of times a whole-frame parse would take.
    pages, page_size, length = 512, 16384, 16381
    if fill == "zeros":
        data = np.zeros(pages * length, np.uint8)
    elif fill == "random":
        data = np.random.default_rng(0).integers(0, 256, pages * length, dtype=np.uint8)
    else:
        pair = np.tile(np.array([1, 1, 7], np.uint8), length // 3)
        length = pair.size
        data = np.tile(pair, pages)
    memory = np.zeros((pages, page_size), np.uint8)
    peak = _peak_bytes(lambda: xbzrle_decode(memory, data, np.full(pages, length)))
    assert peak <= 4 * (data.nbytes + memory.nbytes)
    if fill == "valid":
        changed = np.zeros(page_size, bool)
        changed[1 : 2 * (length // 3) : 2] = True  # one changed byte after each zero run
        assert (memory[:, changed] == 7).all() and not memory[:, ~changed].any()


def test_xbzrle_codec_memory_is_bounded_too():
    # the same through the codec and the wire's blob layout: u32 fall-back length, u16
    # lengths, deltas; the codec's copy of the named pages is part of "the pages it names"
    pages, page_size, length = 256, 16384, 16381
    blob = b"".join(
        (
            np.zeros(1, "<u4").tobytes(),
            np.full(pages, length, "<u2").tobytes(),
            bytes(pages * length),
        )
    )
    modes = np.full(pages, 2, np.uint8)
    encoded = Encoded("xbzrle", page_size, np.array([[0, pages]]), modes, (blob,))
    memory = np.zeros((pages, page_size), np.uint8)
    peak = _peak_bytes(lambda: get_codec("xbzrle").decode(encoded, memory))
    assert peak <= 4 * (len(blob) + memory.nbytes)
    assert not memory.any()  # refused: nothing written


@pytest.mark.parametrize(
    ("lengths", "message"),
    [
        ([3, 4097], "XBZRLE page 1 of the batch has an encoding of 4097 bytes; an encoding has "
                    "1..4096 (the page size), as QEMU requires"),
        ([3, 0], "XBZRLE page 1 of the batch has an encoding of 0 bytes; an encoding has "
                 "1..4096 (the page size), as QEMU requires"),
        ([3], "1 XBZRLE lengths for a batch of 2 pages"),
        ([3, 4], "XBZRLE encodings fill 4100 bytes where their lengths say 7"),
    ],
)  # fmt: skip
def test_xbzrle_lengths_are_checked_before_the_parse(lengths, message):
    rows, inner = _guarded(2)
    with pytest.raises(DecodeError) as info:
        xbzrle_decode(inner, np.zeros(4100, np.uint8), np.array(lengths))
    assert str(info.value) == message
    assert (rows == 0xA5).all()


def test_xbzrle_runs_of_pages_decode_like_one(monkeypatch):
    # runs split a frame between pages: their results, and the page an error names,
    # are those of one parse over the whole frame
    rng = np.random.default_rng(4)
    old = rng.integers(0, 256, (40, PAGE), dtype=np.uint8)
    new = old.copy()
    new[:, rng.integers(0, PAGE, 300)] ^= 0x5A
    results, lengths, data = xbzrle_encode(old, new)
    assert (results > 0).all()
    monkeypatch.setattr("migcodec.codecs.plugins.xbzrle.MIN_RUN_BYTES", 1000)
    pages = old.copy()
    xbzrle_decode(pages, data, lengths)
    np.testing.assert_array_equal(pages, new)
    bad = data.copy()
    bad[int(np.cumsum(lengths)[30])] = 0x80  # page 31's first zero run: 14 bits too long
    bad[int(np.cumsum(lengths)[30]) + 1] = 0x80
    with pytest.raises(DecodeError) as info:
        xbzrle_decode(old.copy(), bad, lengths)
    assert str(info.value) == (
        "XBZRLE zero run length is longer than 14 bits (page 31 of the batch); it is corrupt"
    )


def test_dsa_records_in_the_memory_they_apply_to_write_only_their_pages():
    """A frame decoded in place (its payload a view of the destination): the C kernel
    checked every offset, then read them again as it wrote, and an entry whose data landed
    on a later entry's offset sent that entry's 8 bytes 16 KB past the pages."""
    big = np.zeros(1 << 20, np.uint8)
    memory = big[: 3 * PAGE].reshape(3, PAGE)  # the rest of big is a guard
    page = memory[1]
    page[4:8] = [0, 0, 2, 0]  # entries: none for page 0, two for page 1
    page[8:18] = [2, 0, 0, 0, 0xD0, 0x07, 0, 0, 0, 0]  # word 2; its data lands on e1's offset
    page[18:28] = [3, 0] + [0xEE] * 8  # word 3
    encoded = Encoded(
        "dsa-delta",
        PAGE,
        np.array([[0, 2]], np.int64),
        np.array([2, 2], np.uint8),
        (memoryview(page)[:28],),
    )
    get_codec("dsa-delta").decode(encoded, memory)
    assert not big[3 * PAGE :].any()
    assert (memory[1, 24:32] == 0xEE).all()  # word 3, as the records said before the write


def test_dsa_record_sizes_past_a_page_are_refused_before_they_are_added():
    """Three sizes that overflowed int64 added up to the records' 14 bytes, and the C
    kernel walked 2**60 entries (a segfault)."""
    pages = np.zeros((3, PAGE), np.uint8)
    sizes = np.array([9223372036854775800, 9223372036854775800, 30])
    with pytest.raises(DecodeError) as info:
        apply_delta_records(pages, np.zeros(14, np.uint8), sizes)
    assert str(info.value) == (
        "a delta record of 9223372036854775800 bytes holds more entries than a 4096-byte "
        "page has words (5120 bytes at most)"
    )


def test_xbzrle_encodings_in_the_memory_they_decode_into_decode_as_a_copy_would():
    """Encodings in the pages' memory: the C kernel checked every page, then decoded from
    bytes it had meanwhile overwritten, and left page 1 undecoded without an error (with
    the lengths there, gave it bytes from past the encodings)."""
    pages = np.zeros((2, 64), np.uint8)
    # page 0's encoding writes 0x7F 0x00 over bytes 4-5, inside page 1's encoding
    pages[0, :10] = [4, 2, 0x7F, 0x00, 0, 4, 1, 2, 3, 4]
    expected = pages.copy()
    xbzrle_decode(expected, pages[0, :10].copy(), np.array([4, 6]))
    assert expected[1, :4].tolist() == [1, 2, 3, 4]
    xbzrle_decode(pages, pages[0, :10], np.array([4, 6]))  # the encodings are page 0
    np.testing.assert_array_equal(pages, expected)
