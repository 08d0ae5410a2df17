"""Decode checks an ``Encoded``'s fields before its first write: a field of the wrong type or
range is named in a codec error, and destination memory is left as it was."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from migcodec.codecs import Batch, DecodeError, InvalidBatch, get_codec

PAGE = 4096


@pytest.fixture(name="frame")
def _frame():
    """Eight pages encoded by lz4 (page 5 all zero, the others encoded) and a destination."""
    memory = np.random.default_rng(0).integers(0, 4, (16, PAGE), dtype=np.uint8)
    memory[5] = 0
    codec = get_codec("lz4")
    destination = np.full((16, PAGE), 0xAB, np.uint8)
    return codec, codec.encode(Batch(memory, [(0, 8)])), memory, destination


def test_runs_given_as_a_list_decode_as_the_array_would(frame):
    codec, encoded, memory, destination = frame
    codec.decode(dataclasses.replace(encoded, runs=[[0, 8]]), destination)
    np.testing.assert_array_equal(destination[:8], memory[:8])


def _refused(frame, error, **fields) -> str:
    codec, encoded, _, destination = frame
    with pytest.raises(error) as info:
        codec.decode(dataclasses.replace(encoded, **fields), destination)
    assert (destination == 0xAB).all()  # nothing written
    return str(info.value)


def test_runs_of_floats_are_refused(frame):
    message = _refused(frame, InvalidBatch, runs=np.array([[0.0, 8.0]]))
    assert message == (
        "runs must be (first_page, n_pages) pairs of integers, got 0.0 (float); pass whole "
        "page numbers and counts as ints"
    )


@pytest.mark.parametrize(
    ("modes", "shown"),
    [
        # as uint8, 256 + 2 would be 2 (encoded) and -1 would read as 255
        (np.full(8, 258, np.int64), "258"),
        (np.array([2, 2, 2, 2, 2, -1, 2, 2]), "-1"),
        (np.full(8, 16, np.uint8), "16"),
    ],
)
def test_page_modes_outside_the_defined_range_are_named_as_given(frame, modes, shown):
    message = _refused(frame, DecodeError, modes=modes)
    assert message == f"page mode {shown} is not defined; page modes are 0 to 15"


def test_page_modes_of_floats_are_refused(frame):
    message = _refused(frame, DecodeError, modes=np.full(8, 2.0))
    assert message == "page modes must be integers 0 to 15, got float64 values"


def test_page_modes_must_be_one_per_page(frame):
    _, encoded, _, _ = frame
    message = _refused(frame, DecodeError, modes=encoded.modes.reshape(1, -1))
    assert message == "page modes must be a 1-D array, one per page, got shape (1, 8)"


@pytest.mark.parametrize(
    ("segments", "cause"),
    [
        (None, "object of type 'NoneType' has no len()"),
        (("abc",), "memoryview: a bytes-like object is required, not 'str'"),
        ((b"abc", "def"), "memoryview: a bytes-like object is required, not 'str'"),
    ],
)
def test_segments_that_are_not_buffers_are_refused(frame, segments, cause):
    message = _refused(frame, DecodeError, segments=segments)
    assert message == (
        "encoded segments must be a tuple of buffers (bytes, bytearray, memoryview, numpy "
        f"arrays): {cause}"
    )


@pytest.mark.parametrize("kind", ["read-only array", "bytes"])
def test_a_read_only_destination_is_refused_before_any_write(frame, kind):
    codec, encoded, _, _ = frame
    if kind == "bytes":
        destination = bytes(16 * PAGE)
    else:
        destination = np.zeros((16, PAGE), np.uint8)
        destination.flags.writeable = False
    with pytest.raises(InvalidBatch) as info:
        codec.decode(encoded, destination)
    assert str(info.value) == (
        "destination memory is read-only; decode into writable memory (a numpy array, "
        "bytearray, or mmap opened for writing)"
    )
