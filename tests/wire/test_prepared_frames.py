"""Frames built ahead (by engines, in parallel) and written in order by the sender."""

import io

import numpy as np
import pytest

from migcodec.codecs import Batch, get_codec
from migcodec.datasets import generate_pages
from migcodec.wire import FrameReader, FrameWriter, memory_digest


def _stream(write) -> bytes:
    memory = generate_pages("mixed", 128, 3)
    codecs = [get_codec("raw"), get_codec("lz4")]
    out = io.BytesIO()
    writer = FrameWriter(out, 4096, 128, codecs)
    batches = [
        codecs[i % 2].encode(Batch(memory, runs))
        for i, runs in enumerate(([(0, 32)], [(40, 24), (32, 8)], [(64, 64)]))
    ]
    write(writer, batches)
    writer.end_iteration(0, 128)
    writer.end_stream(memory_digest(memory))
    return out.getvalue(), memory


def test_frames_prepared_ahead_are_the_bytes_write_batch_writes():
    def one_by_one(writer, batches):
        for i, encoded in enumerate(batches):
            writer.write_batch(encoded, i % 2)

    def ahead(writer, batches):
        prepared = [writer.prepare_batch(e, i % 2, i) for i, e in enumerate(batches)]
        for frame in prepared:
            writer.write_prepared(frame)

    data, memory = _stream(one_by_one)
    assert _stream(ahead)[0] == data
    dest = np.zeros_like(memory)
    assert FrameReader(io.BytesIO(data)).receive(dest).digest_verified
    np.testing.assert_array_equal(dest, memory)


def test_a_frame_prepared_for_another_position_is_refused():
    memory = np.ones((8, 4096), np.uint8)
    writer = FrameWriter(io.BytesIO(), 4096, 8, [get_codec("raw")])
    frame = writer.prepare_batch(get_codec("raw").encode(Batch(memory, [(0, 8)])), 0, 1)
    with pytest.raises(ValueError, match="frame prepared as number 1, written as 0"):
        writer.write_prepared(frame)
    with pytest.raises(KeyError, match="codec id 3 is not in this stream's codec table"):
        writer.prepare_batch(get_codec("raw").encode(Batch(memory, [(0, 8)])), 3, 0)


@pytest.mark.parametrize("runs", [[(120, 8)], [(0, 4), (63, 2)], [(60, 4), (100, 1)]])
def test_a_batch_beyond_the_stream_s_memory_is_refused_at_the_source(runs):
    """The source framed it without a word, and the destination refused the frame."""
    memory = np.ones((128, 4096), np.uint8)
    out = io.BytesIO()
    writer = FrameWriter(out, 4096, 64, [get_codec("lz4")])
    end = max(first + count for first, count in runs)
    with pytest.raises(ValueError) as info:
        writer.write_batch(get_codec("lz4").encode(Batch(memory, runs)))
    assert str(info.value) == (
        f"batch names pages up to {end - 1}, beyond the stream's memory of 64 pages; encode "
        "batches of the memory the stream was opened for"
    )
    assert writer.frames == 0
    writer.write_batch(get_codec("lz4").encode(Batch(memory, [(0, 64)])))
    assert writer.frames == 1


def test_page_modes_past_a_byte_are_refused_not_cast():
    """Modes given as int64 were cast to a byte: mode 256 went out as 0, a zero page, and
    the destination zeroed the page without an error."""
    from dataclasses import replace

    memory = generate_pages("text", 4, 0)
    raw = get_codec("raw")
    encoded = raw.encode(Batch(memory, [(0, 4)]))
    bad = replace(encoded, modes=np.array([256, 2, 2, 2], np.int64))
    writer = FrameWriter(io.BytesIO(), 4096, 4, [raw])
    with pytest.raises(ValueError) as info:
        writer.write_batch(bad)
    assert str(info.value) == "page modes must be whole numbers 0..15, got int64 from 2 to 256"
