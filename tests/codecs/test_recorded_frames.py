"""A delta codec that records a fully held batch in the mirror as it encodes it.

When the mirror lends a batch's slots (every page held, in consecutive slots), the C kernels
make the whole frame in one pass and copy each new page over its held version there
(``record_frame`` in ``_deltas.c``); the framework then does not copy the batch into the
mirror again. The frame must be the one the numpy path makes (which encodes, then copies),
byte for byte, and afterwards the mirror must hold exactly the pages sent, whatever became
of each page (unchanged, delta, raw, a record at its maximum), and nothing it was not sent
if the transform fails.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migcodec.codecs import Batch, DestinationMirror, get_codec
from migcodec.codecs import delta_kernels as dk
from migcodec.codecs.encoded import PageMode
from migcodec.codecs.errors import PageSizeUnsupported
from tests.codecs.kernel_paths import PATHS, kernels

#: for the tests that call the C kernels directly (the others run both paths, or neither)
needs_native = pytest.mark.skipif(dk.native is None, reason=f"delta kernels: {dk.DELTA_KERNELS}")

CODECS = ["dsa-delta", "xbzrle"]


@st.composite
def versions(draw):
    """(old, new) batches whose pages reach every branch of the two formats: equal pages,
    sparse and dense word changes, records at DSA's maximum and one entry past it, runs
    of bytes, whole rewrites, pages turned zero (from zeros too, or with only the last word
    left, which a zero probe of the first and last words must not take for zero); page
    sizes whose word count is not a multiple of four."""
    page_size = draw(st.sampled_from([64, 72, 4096, 4104]))
    m = draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    old = rng.integers(0, 256, (m, page_size), dtype=np.uint8)
    new = old.copy()
    words = new.view(np.uint64)
    cap = min(4090, page_size - 3) // 10  # dsa-delta's entry cap
    for row in range(m):
        kind = draw(
            st.sampled_from(
                ["equal", "sparse", "dense", "cap", "bytes", "rewrite", "zero", "zeros", "middle"]
            )
        )
        if kind == "sparse" or kind == "dense":
            hit = rng.random(words.shape[1]) < (0.05 if kind == "sparse" else 0.6)
            words[row, hit] = ~words[row, hit]
        elif kind == "cap":  # exactly cap changed words, or one more, anywhere in the page
            count = min(cap + draw(st.integers(-1, 1)), words.shape[1])
            at = rng.choice(words.shape[1], count, replace=False)
            words[row, at] = ~words[row, at]
        elif kind == "bytes":
            for _ in range(draw(st.integers(1, 20))):
                start = draw(st.integers(0, page_size - 1))
                length = draw(st.sampled_from([1, 3, 8, 9, 17, 33, 200]))
                new[row, start : start + length] ^= 0x5A
        elif kind == "rewrite":
            new[row] = rng.integers(0, 256, page_size, dtype=np.uint8)
        elif kind == "zero":  # the page turned zero
            new[row] = 0
        elif kind == "zeros":  # zero before and after
            old[row] = new[row] = 0
        elif kind == "middle":  # zero but for a word inside: not a zero page
            new[row] = 0
            new[row, page_size // 2] = 1
    return old, new


def _encode_held(name, old, new, path, staging=False):
    """Encode ``new`` against a mirror holding ``old``: the frame's modes and payload, and
    what the mirror holds for those pages afterwards."""
    m, page_size = old.shape
    codec = get_codec(name)
    mirror = DestinationMirror(page_size, 2 * m * page_size)
    indices = np.arange(m, dtype=np.int64)
    mirror.record(indices, old)
    out = np.empty_like(new) if staging else None
    with kernels(path):
        encoded = codec.encode(Batch(new, [(0, m)], page_size, max_pages=m), out, mirror)
    held = mirror.held(indices)
    assert not mirror._lent
    return encoded, held


@pytest.mark.parametrize("name", CODECS)
@settings(max_examples=60, deadline=None)
@given(pair=versions(), staging=st.booleans())
def test_recorded_frames_match_the_numpy_path_and_the_mirror_holds_what_was_sent(
    name, pair, staging
):
    old, new = pair
    if name == "xbzrle" and old.shape[1] > 4096:
        return
    ours, (hit, held) = _encode_held(name, old, new, "C", staging)
    theirs, (their_hit, their_held) = _encode_held(name, old, new, "numpy", staging)
    np.testing.assert_array_equal(ours.modes, theirs.modes)
    assert ours.payload == theirs.payload
    assert ours.stats.output_bytes == theirs.stats.output_bytes
    assert hit.all() and their_hit.all()
    nonzero = new.any(axis=1)
    np.testing.assert_array_equal(held[nonzero], new[nonzero])
    np.testing.assert_array_equal(their_held, held)
    # and the frame turns what the destination held into the new pages
    dest = old.copy()
    get_codec(name).decode(ours, dest)
    np.testing.assert_array_equal(dest, new)


@pytest.mark.parametrize("name", CODECS)
@pytest.mark.parametrize("path", PATHS)
def test_a_lent_batch_is_recorded_once_and_read_in_place(name, path):
    """The fully held batch: every mode of the format in one frame, the mirror updated."""
    rng = np.random.default_rng(7)
    old = rng.integers(0, 256, (4, 4096), dtype=np.uint8)
    new = old.copy()
    new.view(np.uint64)[1, ::50] ^= 1  # a delta
    new[2] = rng.integers(0, 256, 4096, dtype=np.uint8)  # raw
    new[3, :8] ^= 0xFF  # another delta; page 0 unchanged
    encoded, (_, held) = _encode_held(name, old, new, path)
    expected = [4, PageMode.ENCODED, PageMode.RAW, PageMode.ENCODED]
    np.testing.assert_array_equal(encoded.modes, expected)
    np.testing.assert_array_equal(held, new)


@needs_native
@pytest.mark.parametrize("name", CODECS)
def test_a_failing_transform_forgets_the_slots_it_may_have_written(name, monkeypatch):
    rng = np.random.default_rng(8)
    old = rng.integers(0, 256, (4, 4096), dtype=np.uint8)
    new = old.copy()
    new[:, :64] ^= 1
    codec = get_codec(name)
    mirror = DestinationMirror(4096, 8 * 4096)
    mirror.record(np.arange(4, dtype=np.int64), old)
    real = codec._record_frame

    def written_then_failed(store, pages, copy_raw, *find_zero):
        real(store, pages, copy_raw, *find_zero)
        raise RuntimeError("after the kernel wrote the slots")

    monkeypatch.setattr(codec, "_record_frame", written_then_failed)
    with pytest.raises(RuntimeError):
        codec.encode(Batch(new, [(0, 4)]), destination=mirror)
    assert len(mirror) == 0  # forgotten: the destination still holds old, the slots new
    assert not mirror._lent
    monkeypatch.undo()
    encoded = codec.encode(Batch(new, [(0, 4)]), destination=mirror)
    assert (encoded.modes != PageMode.ENCODED).all()  # no delta against what was not sent
    dest = old.copy()
    codec.decode(encoded, dest)
    np.testing.assert_array_equal(dest, new)


@pytest.mark.parametrize("name", CODECS)
def test_a_batch_with_a_zero_page_is_recorded_whole(name):
    """A zero page in the batch: the others are lent (consecutive slots) and recorded by
    the kernel, the zero page recorded as zeros by the framework."""
    rng = np.random.default_rng(9)
    old = rng.integers(0, 256, (4, 4096), dtype=np.uint8)
    new = old.copy()
    new[0, 100:140] ^= 3
    new[3] = 0  # the last page: the non-zero pages stay in consecutive slots
    encoded, (_, held) = _encode_held(name, old, new, "C")  # skips without the C kernels
    assert encoded.modes[3] == PageMode.ZERO
    np.testing.assert_array_equal(held, new)


@pytest.mark.parametrize("name", CODECS)
@pytest.mark.parametrize("staging", [False, True])
def test_zero_pages_found_by_the_kernel_make_the_frame_of_the_zero_scan(name, staging):
    """Zero pages in a batch held whole: the C kernel finds them in its pass (no scan
    first); the frame is the one the numpy path makes after the framework's zero scan,
    byte for byte, whatever the other pages became (a delta, raw, unchanged), and the
    mirror holds zeros for them."""
    rng = np.random.default_rng(10)
    old = rng.integers(0, 256, (6, 4096), dtype=np.uint8)
    new = old.copy()
    new[0] = 0
    new.view(np.uint64)[1, ::7] ^= 5  # a delta
    new[2] = rng.integers(0, 256, 4096, dtype=np.uint8)  # raw
    new[3, 4088:] = 1  # zero but for its last word: raw, not zero
    old[4] = new[4] = 0  # zero before and after: zero, not unchanged
    new[5] = 0
    ours, (_, held) = _encode_held(name, old, new, "C", staging)
    theirs, (_, their_held) = _encode_held(name, old, new, "numpy", staging)
    np.testing.assert_array_equal(ours.modes, theirs.modes)
    assert list(ours.modes[[0, 4, 5]]) == [PageMode.ZERO] * 3
    assert ours.payload == theirs.payload
    assert ours.stats.zero_pages == theirs.stats.zero_pages == 3
    assert ours.stats.output_bytes == theirs.stats.output_bytes
    np.testing.assert_array_equal(held, new)
    np.testing.assert_array_equal(their_held, new)


@pytest.mark.parametrize("name", CODECS)
@pytest.mark.parametrize("n_raw", [0, 1, 2])
def test_a_held_batch_of_zero_and_raw_pages_only(name, n_raw):
    """Every non-zero page raw, or every page zero: the payload is the raw pages alone."""
    rng = np.random.default_rng(11)
    old = rng.integers(0, 256, (3, 4096), dtype=np.uint8)
    new = np.zeros_like(old)
    new[:n_raw] = rng.integers(0, 256, (n_raw, 4096), dtype=np.uint8)
    ours, (_, held) = _encode_held(name, old, new, "C")
    theirs, _ = _encode_held(name, old, new, "numpy")
    np.testing.assert_array_equal(ours.modes, theirs.modes)
    assert ours.payload == theirs.payload == new[:n_raw].tobytes()
    assert ours.stats.zero_pages == 3 - n_raw
    np.testing.assert_array_equal(held, new)


def test_records_that_do_not_pay_beside_a_zero_page_send_the_other_pages_raw():
    """A record at DSA's maximum (4090 bytes, its length and the blob's head make a whole
    page) does not pay: that page goes raw, the zero page stays zero."""
    rng = np.random.default_rng(12)
    old = rng.integers(0, 256, (2, 4096), dtype=np.uint8)
    new = old.copy()
    new[0] = 0
    new.view(np.uint64)[1, :409] ^= 1
    ours, (_, held) = _encode_held("dsa-delta", old, new, "C")
    theirs, _ = _encode_held("dsa-delta", old, new, "numpy")
    assert list(ours.modes) == list(theirs.modes) == [PageMode.ZERO, PageMode.RAW]
    assert ours.payload == theirs.payload == new[1].tobytes()
    np.testing.assert_array_equal(held, new)


@needs_native
@pytest.mark.parametrize("fmt", [0, 1])
@pytest.mark.parametrize("copy_raw", [False, True])
def test_record_frame_finds_zero_pages_when_asked(fmt, copy_raw):
    rng = np.random.default_rng(13)
    old = rng.integers(0, 256, (4, 64), dtype=np.uint8)
    new = old.copy()
    new[0] = 0
    new[1, 8:16] ^= 1  # a delta
    new[2] = rng.integers(0, 256, 64, dtype=np.uint8)  # raw
    new[3] = 0
    store = old.copy()
    modes, segments, nbytes, n_zero = dk.native.record_frame(fmt, store, new, 64, 6, copy_raw, True)
    assert bytes(modes) == bytes([0, 2, 1, 0]) and n_zero == 2
    raw, head, data = segments  # raw pages first, then the blob
    assert raw == new[2].tobytes() and len(head) == 6 and nbytes == 64 + 6 + len(data)
    np.testing.assert_array_equal(store, new)  # zero pages recorded as zeros
    # without find_zero the same pages are deltas or raw, and none is zero
    modes, *_, n_zero = dk.native.record_frame(fmt, old.copy(), new, 64, 6, copy_raw)
    assert 0 not in bytes(modes) and n_zero == 0
    # every page zero: one mode for all of them, and no payload at all
    store = old.copy()
    modes, segments, nbytes, n_zero = dk.native.record_frame(
        fmt, store, np.zeros_like(new), 64, 6, copy_raw, True
    )
    assert (modes, segments, nbytes, n_zero) == (PageMode.ZERO, (), 0, 4)
    assert not store.any()


@needs_native
@pytest.mark.parametrize("copy_raw", [False, True])
def test_record_frame_lays_out_the_frame(copy_raw):
    """One mode for every page is an int; every page raw and not copied leaves the payload
    to the caller (None); deltas that do not pay send every non-zero page raw."""
    native = dk.native
    rng = np.random.default_rng(14)
    old = rng.integers(0, 256, (3, 64), dtype=np.uint8)
    new = old.copy()
    new[:, 8:16] ^= 1  # a delta in every page
    modes, segments, nbytes, n_zero = native.record_frame(1, old.copy(), new, 64, 6, copy_raw)
    _, data = segments  # the head, then the records
    assert modes == PageMode.ENCODED and len(data) == 3 * 10 and nbytes == 4 + 6 + 30
    new = rng.integers(0, 256, (3, 64), dtype=np.uint8)  # every page raw
    modes, segments, nbytes, _ = native.record_frame(1, old.copy(), new, 64, 6, copy_raw)
    assert modes == PageMode.RAW and nbytes == new.nbytes
    assert segments == ((new.tobytes(),) if copy_raw else None)
    # a record of 6 entries (60 bytes, 2 of length, 4 of head) does not pay on a 64-byte
    # page: it goes raw beside the page that overflowed, the zero page stays zero
    new = old.copy()
    new[0] = 0
    new.view(np.uint64)[1, :6] ^= 1
    new[2] = ~old[2]
    modes, segments, nbytes, n_zero = native.record_frame(1, old.copy(), new, 64, 6, copy_raw, 1)
    assert bytes(modes) == bytes([0, 1, 1]) and n_zero == 1
    assert segments == (new[1:].tobytes(),) and nbytes == 2 * 64


@needs_native
def test_record_frame_checks_its_buffers():
    native = dk.native
    base = np.zeros(136, np.uint8)
    with pytest.raises(ValueError, match="overlap"):
        native.record_frame(1, base[:128], base[8:], 64, 6, True)
    store = np.zeros((2, 64), np.uint8)
    new = np.ones((2, 64), np.uint8)
    with pytest.raises(ValueError, match="equal length"):
        native.record_frame(1, store, new[:1], 64, 6, True)
    with pytest.raises(ValueError, match="no delta format"):
        native.record_frame(2, store, new, 64, 6, True)
    with pytest.raises(ValueError, match=r"0\.\.65535"):
        native.record_frame(1, store, new, 64, 1 << 16, True)
    with pytest.raises(TypeError):
        native.record_frame(1, store.tobytes(), new, 64, 6, True)  # a store must be writable
    # the store may be the new pages themselves: nothing to copy, every page unchanged
    modes, segments, nbytes, n_zero = native.record_frame(1, new, new, 64, 6, True)
    assert (modes, segments, nbytes, n_zero) == (4, (bytes(4),), 4, 0)
    modes, segments, nbytes, n_zero = native.record_frame(1, store, new, 64, 6, True)
    assert (modes, segments, nbytes) == (PageMode.RAW, (new.tobytes(),), 128)
    np.testing.assert_array_equal(store, new)


def test_a_writable_lease_is_recorded_by_its_holder_and_forgotten_if_given_back():
    pages = np.arange(4 * 64, dtype=np.uint8).reshape(4, 64)
    mirror = DestinationMirror(64, 8 * 64)
    indices = np.arange(4, dtype=np.int64)
    assert mirror.lend_rows(indices) is None  # nothing held yet: nothing lent
    mirror.record(indices, pages)
    assert mirror.lend_rows(indices[[0, 2]]) is None  # not in consecutive slots
    rows, lent = mirror.lend_rows(indices)
    assert mirror.lend_rows(indices[1:3]) is None  # lent already
    rows[:] = pages + 1  # what the holder records
    mirror.sent(indices, pages + 1, None, True, lent)
    np.testing.assert_array_equal(mirror.held(indices)[1], pages + 1)
    assert not mirror._lent
    # sent() copies nothing for a writable lease: the rows are the record
    rows, lent = mirror.lend_rows(indices)
    rows[:] = pages + 2
    mirror.sent(indices, pages + 3, None, True, lent)
    np.testing.assert_array_equal(mirror.held(indices)[1], pages + 2)
    # given back, its slots are forgotten: they may hold pages never sent
    _, lent = mirror.lend_rows(indices)
    mirror.give_back(lent)
    assert len(mirror) == 0 and not mirror._lent
    mirror.record(indices, pages)
    # a zero page in a batch whose other pages were lent writable: recorded as usual
    rows, lent = mirror.lend_rows(indices[:3])
    rows[:] = pages[:3] + 5
    zero = np.array([False, False, False, True])
    sent = pages + 5
    sent[3] = 0
    mirror.sent(indices, sent, zero, True, lent)
    np.testing.assert_array_equal(mirror.held(indices)[1], sent)


def test_pages_sent_without_a_copy_are_forgotten_whenever_the_mirror_holds_any():
    """A batch sent without a copy forgets the versions held at its pages. A mirror that
    holds nothing skips that work (a first pass), so it must know when it holds pages
    again: after record, and after a lease ended past a clear() set its keys again."""
    pages = np.arange(4 * 64, dtype=np.uint8).reshape(4, 64)
    indices = np.arange(4, dtype=np.int64)
    mirror = DestinationMirror(64, 8 * 64)
    mirror.sent(indices, pages, None, False)  # nothing held: nothing to forget
    assert len(mirror) == 0
    mirror.record(indices, pages)
    zero = np.array([False, True, False, False])
    mirror.sent(indices[:2], pages[:2], zero[:2], False)  # forgotten, or zeros where zero
    assert mirror.held(indices)[0].tolist() == [False, True, True, True]
    np.testing.assert_array_equal(mirror.held(indices[1:2])[1], 0)
    mirror.record(indices, pages)
    rows, lent = mirror.lend_rows(indices)
    mirror.clear()  # a new stream while a batch was being encoded against the old one
    rows[:] = pages + 1
    mirror.sent(indices, pages + 1, None, True, lent)  # its pages reached the destination
    assert len(mirror) == 4
    mirror.sent(indices, pages + 2, None, False)  # and are then rewritten, not recorded
    assert len(mirror) == 0, "a version the destination no longer holds was kept"


@pytest.mark.parametrize("path", PATHS)
def test_the_mirror_lends_only_runs_of_slots_keyed_by_the_batch(path):
    """lend_rows finds the held run in one C call, or in numpy: the same answer either way,
    and a batch that runs past the last slot, or whose indices are not int64, is not lent."""
    mirror = DestinationMirror(64, 8 * 64)
    pages = np.ones((8, 64), dtype=np.uint8)
    mirror.record(np.arange(8, 16, dtype=np.int64), pages)  # slots 0..7 hold pages 8..15
    with kernels(path):
        rows, lent = mirror.lend_rows(np.arange(10, 13, dtype=np.int64))
        assert lent == slice(2, 5) and rows.shape == (3, 64)
        mirror.give_back(lent)  # pages 10..12 forgotten
        assert mirror.lend_rows(np.arange(9, 11, dtype=np.int64)) is None  # 10 not held
        assert mirror.lend_rows(np.arange(2, 5, dtype=np.int64)) is None  # other pages there
        assert mirror.lend_rows(np.arange(13, 16, dtype=np.int32)) is None  # not int64
        assert mirror.lend_rows(np.arange(15, 17, dtype=np.int64)) is None  # past the last slot
        _, lent = mirror.lend_rows(np.arange(13, 16, dtype=np.int64))
        assert lent == slice(5, 8)
        mirror.give_back(lent)  # slot 7, where -1 would map, is empty: its key is -1
        assert mirror.lend_rows(np.array([-1], dtype=np.int64)) is None
    assert len(mirror) == 2 and not mirror._lent


@pytest.mark.parametrize("emptied", ["clear", "forget", "other lease given back", "none"])
def test_a_lent_range_holds_its_pages_once_sent_whatever_was_emptied_meanwhile(emptied):
    """sent() writes a lent range's keys only when keys were emptied while it was lent;
    either way the mirror then holds exactly the pages the holder recorded there."""
    pages = np.arange(8 * 64, dtype=np.uint8).reshape(8, 64)
    mirror = DestinationMirror(64, 8 * 64)
    indices = np.arange(8, dtype=np.int64)
    mirror.record(indices, pages)
    rows, lent = mirror.lend_rows(indices[:4])
    _, other = mirror.lend_rows(indices[4:])
    rows[:] = pages[:4] + 1
    if emptied == "clear":
        mirror.clear()
    elif emptied == "forget":
        mirror.forget(indices[1:3])
    elif emptied == "other lease given back":
        mirror.give_back(other)
    mirror.sent(indices[:4], pages[:4] + 1, None, True, lent)
    hit, held = mirror.held(indices[:4])
    assert hit.all()
    np.testing.assert_array_equal(held, pages[:4] + 1)
    if emptied != "other lease given back":
        mirror.sent(indices[4:], pages[4:], None, True, other)
    assert not mirror._lent
    assert len(mirror) == (4 if emptied == "other lease given back" else 8)


@pytest.mark.parametrize("path", PATHS)
def test_a_held_batch_of_pages_larger_than_the_format_is_refused(path):
    """The page size is checked once per codec before its first lent batch, whichever
    kernel runs, and every batch of a size the format cannot describe is refused."""
    page_size = 2 * 0x4000  # past XBZRLE's 14-bit lengths
    pages = np.ones((2, page_size), dtype=np.uint8)
    mirror = DestinationMirror(page_size, 4 * page_size)
    codec = get_codec("xbzrle")
    with kernels(path):
        for _ in range(2):
            mirror.record(np.arange(2, dtype=np.int64), pages + 1)  # forgotten once refused
            with pytest.raises(PageSizeUnsupported):
                codec.encode(Batch(pages, [(0, 2)], page_size), destination=mirror)
            assert not mirror._lent
