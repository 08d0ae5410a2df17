"""Malformed delta frames raise DecodeError and never write outside the pages they name."""

import contextlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from migcodec.codecs import Batch, DecodeError, DestinationMirror, Encoded, get_codec
from migcodec.codecs.plugins.dsa_delta import apply_delta_records
from migcodec.codecs.plugins.xbzrle import xbzrle_decode

PAGE = 4096


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
    # the page may be partly written (the codec decodes into a copy); never past its end
    rows, inner = _guarded(1)
    with pytest.raises(DecodeError, match=what):
        xbzrle_decode(inner, np.frombuffer(data, np.uint8), np.array([len(data)]))
    assert (rows[0] == 0xA5).all() and (rows[-1] == 0xA5).all()


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
