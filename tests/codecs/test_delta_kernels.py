"""The C delta kernels and the numpy ones write the same bytes and raise the same errors.

Encoders are compared on page pairs built to reach every branch (runs of every length
around the one- and two-byte ULEB128 limits, QEMU's overflow a few bytes either side of
the page size, DSA records at and around their maximum); decoders on arbitrary bytes and
on valid encodings damaged at random, where the first failure must be named alike.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from migcodec.codecs import Batch, DestinationMirror, get_codec
from migcodec.codecs import delta_kernels as dk
from migcodec.codecs.plugins.dsa_delta import apply_delta_records, create_delta_records
from migcodec.codecs.plugins.xbzrle import xbzrle_decode, xbzrle_encode
from tests.codecs.kernel_paths import PATHS, kernels, outcome

pytestmark = pytest.mark.skipif(dk.native is None, reason=f"delta kernels: {dk.DELTA_KERNELS}")

PAGE_SIZES = st.sampled_from([8, 16, 64, 512, 4096, 16384])


@st.composite
def page_pairs(draw, max_pages: int = 5):
    """(old, new) pages: new is old with runs rewritten (lengths from 1 byte to the page),
    with gaps of every size, or rewritten whole, or equal."""
    page_size = draw(PAGE_SIZES)
    m = draw(st.integers(1, max_pages))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    old = rng.integers(0, 256, (m, page_size), dtype=np.uint8)
    new = old.copy()
    for row in range(m):
        kind = draw(st.sampled_from(["runs", "runs", "alternate", "rewrite", "equal"]))
        if kind == "rewrite":
            new[row] = rng.integers(0, 256, page_size, dtype=np.uint8)
        elif kind == "alternate":  # equal/changed in a fixed rhythm: overflow near the end
            changed, gap = draw(st.integers(1, 9)), draw(st.integers(1, 3))
            for at in range(draw(st.integers(0, gap)), page_size, changed + gap):
                new[row, at : at + changed] ^= 0xFF
        elif kind == "runs":
            for _ in range(draw(st.integers(1, 12))):
                length = draw(st.sampled_from([1, 2, 7, 8, 9, 127, 128, 129, 300, page_size]))
                start = draw(st.integers(0, page_size - 1))
                new[row, start : start + length] ^= np.uint8(draw(st.integers(1, 255)))
    return old, new


def _same(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


@given(pair=page_pairs())
def test_xbzrle_encodings_are_identical(pair):
    old, new = pair
    ours = xbzrle_encode(old, new)
    with dk.numpy_kernels():
        theirs = xbzrle_encode(old, new)
    _same(ours, theirs)


@given(pair=page_pairs(), entries=st.integers(0, 600), extra=st.integers(0, 9))
def test_dsa_records_are_identical(pair, entries, extra):
    old, new = pair
    if old.shape[1] > 4096:
        return  # DSA pages: offsets in 8-byte words fit its u16 entry field
    for partial in (True, False):
        ours = create_delta_records(old, new, 10 * entries + extra, partial)
        with dk.numpy_kernels():
            theirs = create_delta_records(old, new, 10 * entries + extra, partial)
        _same(ours, theirs)


@pytest.mark.parametrize("name", ["xbzrle", "dsa-delta"])
@given(pair=page_pairs(max_pages=8))
def test_codec_deltas_are_identical(name, pair):
    """What the codecs send (status, lengths, deltas) from both kernels."""
    old, new = pair
    codec = get_codec(name)
    if old.shape[1] < 16:
        return  # below any page a codec is given
    ours = codec.make_deltas(old, new)
    with dk.numpy_kernels():
        theirs = codec.make_deltas(old, new)
    assert [bytes(memoryview(x)) for x in ours] == [bytes(memoryview(y)) for y in theirs]
    assert ours[0].dtype == theirs[0].dtype == np.uint8
    assert ours[1].dtype == theirs[1].dtype == np.dtype("<u2")


def _decode_outcome(fn, pages, data, lengths):
    result = outcome(fn, pages, data, lengths)
    return result if result[0] != "ok" else ("ok", pages.tobytes())


def _both_decode(decode, old, data, lengths) -> None:
    ours = _decode_outcome(decode, old.copy(), data, lengths)
    with dk.numpy_kernels():
        theirs = _decode_outcome(decode, old.copy(), data, lengths)
    assert ours == theirs


@given(
    page_size=st.sampled_from([8, 64, 4096]),
    chunks=st.lists(st.binary(min_size=0, max_size=48), min_size=1, max_size=4),
    skew=st.integers(-2, 2),
)
def test_xbzrle_decode_errors_of_arbitrary_bytes_are_identical(page_size, chunks, skew):
    old = np.zeros((len(chunks), page_size), np.uint8)
    data = np.frombuffer(b"".join(chunks), np.uint8)
    lengths = np.array([len(c) for c in chunks])
    lengths[0] += skew  # lengths that do not add up, or are out of range
    _both_decode(xbzrle_decode, old, data, lengths)


@given(pair=page_pairs(), flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255))))
def test_xbzrle_decode_of_damaged_encodings_is_identical(pair, flips):
    old, new = pair
    results, lengths, data = xbzrle_encode(old, new)
    ok = results > 0
    if not ok.any():
        return
    data = data.copy()
    for pos, xor in flips:
        data[pos % data.size] ^= xor
    _both_decode(xbzrle_decode, old[ok], data, lengths)


@given(
    entries=st.lists(st.tuples(st.integers(0, 600), st.integers(0, 2**64 - 1)), max_size=20),
    cuts=st.lists(st.integers(0, 25), min_size=1, max_size=4),
    page_size=st.sampled_from([64, 512, 4096]),
)
def test_dsa_apply_errors_are_identical(entries, cuts, page_size):
    records = np.frombuffer(
        b"".join(o.to_bytes(2, "little") + w.to_bytes(8, "little") for o, w in entries), np.uint8
    )
    # sizes: mostly whole entries, sometimes not, and not always adding up
    sizes = np.array(cuts, np.int64) * 10
    sizes[-1] += records.size - int(sizes.sum()) if cuts[0] % 3 else cuts[-1] % 7
    old = np.full((len(cuts), page_size), 0x5A, np.uint8)
    _both_decode(apply_delta_records, old, records, sizes)


@given(pair=page_pairs(), flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255))))
def test_dsa_apply_of_damaged_records_is_identical(pair, flips):
    old, new = pair
    if old.shape[1] > 4096:
        return
    _, sizes, records = create_delta_records(old, new, 1 << 30)
    if not records.size:
        return
    records = records.copy()
    for pos, xor in flips:
        records[pos % records.size] ^= xor
    _both_decode(apply_delta_records, old, records, sizes)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", ["xbzrle", "dsa-delta"])
def test_a_stream_of_deltas_round_trips_on_both_paths(path, name):
    """Encode on one path, decode on the other and on the same: byte-exact pages."""
    rng = np.random.default_rng(5)
    memory = rng.integers(0, 256, (32, 4096), dtype=np.uint8)
    dest = memory.copy()
    mirror = DestinationMirror.holding(np.arange(32), memory)
    for step in range(3):
        words = memory.view(np.uint64)
        hit = rng.random(words.shape) < (0.02, 0.2, 0.6)[step]
        words[hit] = ~words[hit]
        with kernels(path):
            encoded = get_codec(name).encode(Batch(memory, [(0, 32)]), destination=mirror)
        other = "numpy" if path == "C" else "C"
        with kernels(other):
            get_codec(name).decode(encoded, dest)
        np.testing.assert_array_equal(dest, memory)


def test_delta_kernels_are_reported_by_the_probes():
    for name in ("xbzrle", "dsa-delta"):
        assert f"delta kernels: {dk.DELTA_KERNELS}" in type(get_codec(name)).probe().reason
