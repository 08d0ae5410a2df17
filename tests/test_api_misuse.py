"""Misuse of the Python API is a named TypeError or ValueError saying what was wrong, not
an AttributeError, IndexError or struct.error from deep inside the library."""

from __future__ import annotations

import io

import numpy as np
import pytest

from migcodec.codecs import Batch, get_codec
from migcodec.datasets import TraceReader, TraceWriter, Window, generate_pages
from migcodec.wire import FrameWriter


def _writer() -> FrameWriter:
    return FrameWriter(io.BytesIO(), 4096, 8, [get_codec("raw")])


def _negative_run(runs: list[list[int]]) -> None:
    encoded = get_codec("raw").encode(Batch(np.ones((8, 4096), np.uint8), [(0, 1)]))
    encoded.runs = np.array(runs)
    _writer().write_batch(encoded)


def _trace_window(tmp_path, indices) -> None:
    with TraceWriter(tmp_path / "t", memory_pages=8) as writer:
        writer.write(Window(0, indices, generate_pages("text", 2)))


@pytest.mark.parametrize(
    ("call", "kind", "message"),
    [
        (
            lambda tmp: FrameWriter(io.BytesIO(), 4096, 8, ["lz4"]),
            TypeError,
            "a stream's codecs are Codec instances (get_codec('lz4') builds one), got str 'lz4'",
        ),
        (
            lambda tmp: FrameWriter(io.BytesIO(), 4096.0, 8, [get_codec("lz4")]),
            TypeError,
            "page_size must be an integer, got float 4096.0",
        ),
        (
            lambda tmp: _negative_run([[-1, 1]]),
            ValueError,
            "run 0 (first page -1, 1 pages) lies outside guest memory of 8 pages",
        ),
        (
            lambda tmp: _negative_run([[0, 1], [3, 0]]),
            ValueError,
            "run 1 is empty (0 pages); runs need >= 1 page",
        ),
        (lambda tmp: _writer().abort(None), TypeError, "an abort's reason is a str, got NoneType"),
        (
            lambda tmp: _trace_window(tmp, [1, 3]),
            TypeError,
            "window 0's page indices must be a 1-D numpy array, got list",
        ),
        (
            lambda tmp: _trace_window(tmp, np.array(1)),
            TypeError,
            "window 0's page indices must be a 1-D numpy array, got ndarray of shape ()",
        ),
    ],
)
def test_misuse_is_named(tmp_path, call, kind, message):
    with pytest.raises(kind) as info:
        call(tmp_path)
    assert str(info.value) == message


def test_a_window_is_fetched_by_an_integer(tmp_path):
    with TraceWriter(tmp_path / "t", memory_pages=8) as writer:
        writer.write(Window(0, np.array([1]), generate_pages("text", 1)))
    reader = TraceReader(tmp_path / "t")
    with pytest.raises(TypeError, match=r"^windows are numbered by integers, got float 1\.5$"):
        reader[1.5]
    assert reader[np.int64(0)].index == 0
