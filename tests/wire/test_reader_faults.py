"""A valid stream, damaged: cut at every byte offset, and with single bits flipped.

Each damaged stream must fail with a specific :class:`WireError` subclass that names the
frame and byte offset, never another exception and never a reported completion, and the
destination must hold exactly what the frames *before* the damage wrote: every other page
keeps the sentinel it was filled with. The one exception is the damaged frame itself when
the reader receives it in place (one run, every page raw): the pages its run names then
hold exactly the bytes of it that arrived (:meth:`ValidStream.expected_failed`).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from migcodec.wire import (
    BadPreamble,
    ChecksumMismatch,
    FrameReader,
    IncompleteStream,
    StreamSummary,
    TruncatedStream,
    UnsupportedVersion,
    WireError,
)
from migcodec.wire import format as fmt
from tests.wire.crafting import CachedResolver
from tests.wire.valid_stream import MEMORY_PAGES, PAGE_SIZE, SENTINEL, build_valid_stream

STREAM = build_valid_stream()
RESOLVE = CachedResolver()
HEADER = fmt.FRAME_HEADER.size


def receive(data: bytes) -> tuple[np.ndarray, StreamSummary | WireError]:
    """Feed ``data`` to a reader over a sentinel-filled destination.

    Returns the destination and either the summary or the :class:`WireError` raised; any
    other exception propagates and fails the test.
    """
    dest = np.full((MEMORY_PAGES, PAGE_SIZE), SENTINEL, np.uint8)
    try:
        return dest, FrameReader(io.BytesIO(data), resolve=RESOLVE).receive(dest)
    except WireError as exc:
        return dest, exc


def owner(offset: int) -> int:
    """Index of the frame holding byte ``offset`` (-1 for the preamble)."""
    if offset < STREAM.preamble_len:
        return -1
    return next(i for i, span in enumerate(STREAM.frames) if offset < span.end)


def expected_truncation(cut: int) -> tuple[type[WireError], int]:
    """The exact error class, and the frame it names, for the stream cut at ``cut``.

    Inside the preamble or inside a frame the stream is truncated; exactly on a frame
    boundary it is well formed so far but incomplete (no end-of-stream frame).
    """
    if cut < STREAM.preamble_len:
        return TruncatedStream, -1
    applied = STREAM.frames_before(cut)
    if cut == STREAM.frames[applied].start:
        return IncompleteStream, applied
    return TruncatedStream, applied


def test_the_valid_stream_has_what_the_fault_tests_rely_on():
    """Guards the premise: without these, the fault tests below would test less."""
    assert STREAM.modes_seen == {0, 1, 2}  # zero, raw and encoded pages
    dest, result = receive(STREAM.data)
    assert isinstance(result, StreamSummary)
    assert result.digest_verified and result.iterations == 2 and result.pages == 30
    np.testing.assert_array_equal(dest, STREAM.source)
    np.testing.assert_array_equal(STREAM.expected_after(len(STREAM.frames)), STREAM.source)
    assert sorted({c["name"] for c in STREAM.codec_configs}) == ["lz4", "raw", "zlib-ng", "zstd"]
    assert any(s.end - s.start == HEADER + 12 * 1 + 2 for s in STREAM.frames)  # zero-page frame
    # frame 2 (one run of raw pages) is received in place: damage to its payload lands
    payload_bit = (STREAM.frames[2].end - 1) * 8
    damaged = STREAM.expected_failed(flipped(STREAM.data, payload_bit), 2)
    assert not np.array_equal(damaged, STREAM.expected_after(2))


def test_truncation_at_every_byte_offset():
    failures = []
    for cut in range(len(STREAM.data)):
        dest, result = receive(STREAM.data[:cut])
        cls, frame = expected_truncation(cut)
        if not (
            type(result) is cls
            and result.frame == frame
            and result.offset == cut
            and np.array_equal(dest, STREAM.expected_failed(STREAM.data[:cut], frame))
        ):
            failures.append((cut, cls.__name__, frame, repr(result)))
    assert failures == []


@pytest.mark.parametrize(
    ("cut", "message"),
    [
        (0, "preamble, byte offset 0: stream ended 28 bytes short of a 28-byte read"),
        (
            STREAM.preamble_len,
            f"frame 0, byte offset {STREAM.preamble_len}: stream ended before its "
            "end-of-stream frame; the migration is incomplete",
        ),
        (
            STREAM.frames[1].start + 5,
            f"frame 1, byte offset {STREAM.frames[1].start + 5}: "
            "stream ended 19 bytes short of a 24-byte read",
        ),
        (
            STREAM.frames[1].end - 1,
            f"frame 1, byte offset {STREAM.frames[1].end - 1}: stream ended 1 bytes short of "
            f"a {STREAM.frames[1].end - STREAM.frames[1].start - HEADER}-byte read",
        ),
        (
            STREAM.frames[-1].start,
            f"frame {len(STREAM.frames) - 1}, byte offset {STREAM.frames[-1].start}: stream "
            "ended before its end-of-stream frame; the migration is incomplete",
        ),
    ],
)
def test_truncation_messages_name_frame_and_offset(cut, message):
    _, result = receive(STREAM.data[:cut])
    assert str(result) == message


def flipped(data: bytes, bit: int) -> bytes:
    damaged = bytearray(data)
    damaged[bit // 8] ^= 1 << (bit % 8)
    return bytes(damaged)


def check_flip(bit: int) -> str | None:
    """None if flipping ``bit`` fails exactly as it must, else a description of the miss."""
    offset = bit // 8
    frame = owner(offset)
    damaged = flipped(STREAM.data, bit)
    dest, result = receive(damaged)
    if not isinstance(result, WireError) or type(result) is WireError:
        return f"bit {bit}: {result!r}"
    if result.frame != frame:
        return f"bit {bit} (in frame {frame}) reported at frame {result.frame}: {result}"
    start = STREAM.frames[frame].start if frame >= 0 else 0
    in_body = frame >= 0 and offset >= start + HEADER
    if in_body and (type(result) is not ChecksumMismatch or result.offset != start):
        return f"bit {bit} in the body of frame {frame}: {result!r}"
    if not np.array_equal(dest, STREAM.expected_failed(damaged, frame)):
        return f"bit {bit} (frame {frame}): destination differs from the frames before it"
    return None


def test_every_bit_of_every_header_flipped():
    """Preamble and frame headers: every field's every bit, each a specific failure."""
    offsets = list(range(STREAM.preamble_len))
    for span in STREAM.frames:
        offsets += range(span.start, span.start + HEADER)
    misses = [m for off in offsets for b in range(8) if (m := check_flip(off * 8 + b))]
    assert misses == []


@pytest.mark.parametrize(
    ("bit", "cls", "message"),
    [
        (0, BadPreamble, "preamble, byte offset 0: not a migcodec stream (magic b'LIGCODEC')"),
        (
            8 * 8 + 1,
            UnsupportedVersion,
            "preamble, byte offset 8: stream version 3; this reader speaks versions 1, 2 "
            "(upgrade migcodec on the older side)",
        ),
        (
            (STREAM.frames[2].start + 20) * 8,
            ChecksumMismatch,
            f"frame 2, byte offset {STREAM.frames[2].start}: checksum does not match: the "
            "frame is corrupt, or frames were lost, repeated or reordered",
        ),
    ],
)
def test_flip_messages(bit, cls, message):
    _, result = receive(flipped(STREAM.data, bit))
    assert type(result) is cls
    assert str(result) == message


@given(bit=st.integers(0, len(STREAM.data) * 8 - 1))
def test_any_single_bit_flip_is_a_specific_wire_error(bit):
    assert check_flip(bit) is None


def test_frames_swapped_fail_their_checksum():
    """Each frame's checksum is seeded with its index: reordering is caught like damage."""
    a, b = STREAM.frames[0], STREAM.frames[1]
    data = STREAM.data
    swapped = data[: a.start] + data[b.start : b.end] + data[a.start : a.end] + data[b.end :]
    dest, result = receive(swapped)
    assert type(result) is ChecksumMismatch and result.frame == 0
    assert (dest == SENTINEL).all()


@given(tail=st.binary(max_size=200))
def test_arbitrary_bytes_after_a_valid_preamble(tail):
    """Garbage where frames should be: a wire error, and not one byte of memory written."""
    dest, result = receive(STREAM.data[: STREAM.preamble_len] + tail)
    assert isinstance(result, WireError) and type(result) is not WireError
    assert result.frame == 0
    assert (dest == SENTINEL).all()
