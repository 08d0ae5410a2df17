import io

import numpy as np
import pytest

from migcodec.codecs import Batch, get_codec
from migcodec.datasets import generate_pages
from migcodec.wire import FrameReader, FrameWriter, memory_digest


def test_stream_round_trip_with_every_codec_and_digest():
    memory = generate_pages("mixed", 256, 2)
    codecs = [get_codec(n) for n in ("raw", "lz4", "zlib-ng", "zstd")]
    out = io.BytesIO()
    writer = FrameWriter(out, 4096, 256, codecs)
    for i, first in enumerate(range(0, 256, 32)):
        codec = codecs[i % 4]
        writer.write_batch(codec.encode(Batch(memory, [(first, 32)])))
    writer.end_iteration(0, 256)
    writer.end_stream(memory_digest(memory))
    dest = np.zeros_like(memory)
    summary = FrameReader(io.BytesIO(out.getvalue())).receive(dest)
    np.testing.assert_array_equal(dest, memory)
    assert summary.pages == 256
    assert summary.digest_verified
    assert summary.iterations == 1
    assert sum(summary.pages_by_codec.values()) == 256


def test_abort_carries_the_reason_and_wrong_memory_size_is_named():
    from migcodec.wire import MemoryMismatch, StreamAborted

    out = io.BytesIO()
    FrameWriter(out, 4096, 8, [get_codec("lz4")]).abort("guest crashed")
    with pytest.raises(StreamAborted) as info:
        FrameReader(io.BytesIO(out.getvalue())).receive(np.zeros((8, 4096), np.uint8))
    assert info.value.reason == "guest crashed"
    assert str(info.value) == "frame 0, byte offset 74: peer aborted: 'guest crashed'"
    with pytest.raises(MemoryMismatch, match="destination memory has 4 pages; the stream is for 8"):
        FrameReader(io.BytesIO(out.getvalue())).receive(np.zeros((4, 4096), np.uint8))


def test_applying_a_frame_to_memory_of_another_size_is_refused_untouched():
    from migcodec.codecs import Batch
    from migcodec.wire import MemoryMismatch

    memory = np.arange(8 * 4096, dtype=np.uint64).view(np.uint8)[: 8 * 4096].reshape(8, 4096)
    out = io.BytesIO()
    writer = FrameWriter(out, 4096, 8, [get_codec("lz4")])
    writer.write_batch(get_codec("lz4").encode(Batch(memory, [(0, 8)])), 0)
    reader = FrameReader(io.BytesIO(out.getvalue()))
    frame = reader.read_frame()
    small = np.zeros((4, 4096), np.uint8)
    with pytest.raises(MemoryMismatch, match="destination memory has 4 pages; the stream is for 8"):
        reader.apply(frame, small)
    assert not small.any()
    right = np.zeros((8, 4096), np.uint8)
    reader.apply(frame, right)
    np.testing.assert_array_equal(right, memory)


@pytest.mark.parametrize(
    ("memory", "why"),
    [
        (bytearray(8 * 4096 + 100),
         "guest memory of 32868 bytes is not a whole number of 4096-byte pages"),
        (np.zeros((8, 4096), np.uint16), "destination memory has 16 pages; the stream is for 8"),
        (object(), "guest memory must be a contiguous buffer"),
        (bytes(8 * 4096),
         "destination memory is read-only; give a writable buffer (a numpy array, a "
         "bytearray, or an mmap opened for writing)"),
    ],
)  # fmt: skip
def test_memory_the_page_size_does_not_divide_is_a_wire_error(memory, why):
    from migcodec.wire import MemoryMismatch, WireError

    out = io.BytesIO()
    writer = FrameWriter(out, 4096, 8, [get_codec("raw")])
    writer.end_stream()
    with pytest.raises(MemoryMismatch) as info:
        FrameReader(io.BytesIO(out.getvalue())).receive(memory)
    assert isinstance(info.value, WireError)
    assert why in str(info.value)
    if "whole number" in why:
        assert str(info.value) == (
            "destination memory cannot hold this stream's 4096-byte pages: guest memory of "
            "32868 bytes is not a whole number of 4096-byte pages; give it 8 pages of 4096 "
            "bytes (32768 bytes)"
        )


def test_a_raw_run_received_in_place_and_every_other_frame_decoded_give_the_same_memory():
    """``receive`` lands a one-run, all-raw frame straight in memory; frames with a zero
    page, several runs or another encoding go through the frame buffer and the decoder.
    Either way the pages are the source's, and the frames ``read_frame`` returns (which
    have no memory to land in) are decoded by ``apply``."""
    memory = generate_pages("mixed", 64, 5)
    memory[40] = 0
    raw, lz4 = get_codec("raw"), get_codec("lz4")
    out = io.BytesIO()
    writer = FrameWriter(out, 4096, 64, [raw, lz4])
    for codec, runs in [
        (raw, [(0, 16)]),  # in place
        (raw, [(16, 8), (30, 2)]),  # several runs
        (raw, [(36, 8)]),  # a zero page among them
        (lz4, [(24, 6)]),
        (raw, [(32, 4), (44, 20)]),
    ]:
        writer.write_batch(codec.encode(Batch(memory, runs)), codec is lz4)
    writer.end_stream(memory_digest(memory))
    data = out.getvalue()
    dest = np.zeros_like(memory)
    summary = FrameReader(io.BytesIO(data)).receive(dest)
    assert summary.digest_verified and summary.pages == 64
    np.testing.assert_array_equal(dest, memory)
    reader, applied = FrameReader(io.BytesIO(data)), np.zeros_like(memory)
    for _ in range(5):
        frame = reader.read_frame()
        assert not frame.in_place
        reader.apply(frame, applied)  # before the next read reuses the frame buffer
    np.testing.assert_array_equal(applied, memory)
