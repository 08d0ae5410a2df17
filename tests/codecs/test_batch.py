import numpy as np
import pytest

from migcodec.codecs import Batch, InvalidBatch, get_codec, page_view
from migcodec.codecs.batch import check_runs

MEM = np.zeros((100, 4096), np.uint8)


def test_page_indices_follow_run_order():
    assert Batch(MEM, [(10, 2), (3, 3), (50, 1)]).page_indices.tolist() == [10, 11, 3, 4, 5, 50]


def test_single_run_pages_are_a_view_not_a_copy():
    batch = Batch(MEM, [(5, 4)])
    assert np.shares_memory(batch.pages(), MEM)


@pytest.mark.parametrize(
    ("runs", "message"),
    [
        ([], "a batch needs at least one run of pages"),
        ([(0, 0)], "run 0 is empty (0 pages); runs need >= 1 page"),
        ([(98, 3)], "run 0 (first page 98, 3 pages) lies outside guest memory of 100 pages"),
        ([(-1, 2)], "run 0 (first page -1, 2 pages) lies outside guest memory of 100 pages"),
        ([(0, 65)], "batch names 65 pages, more than the maximum of 64; split it"),
        (
            [(10, 5), (12, 1)],
            "runs starting at pages 10 and 12 overlap; each page may appear once per batch",
        ),
    ],
)
def test_invalid_runs_are_refused_with_a_clear_message(runs, message):
    with pytest.raises(InvalidBatch) as info:
        Batch(MEM, runs)
    assert str(info.value) == message


def test_run_whose_end_overflows_int64_is_outside_memory():
    # first + count wraps to a negative int64: the bound must not be computed as a sum
    runs = np.array([[2**63 - 5, 10]], dtype=np.int64)
    with pytest.raises(InvalidBatch, match="lies outside guest memory of 100 pages"):
        check_runs(runs, 100, 64)


def test_scattered_pages_gathered_into_staging_buffer():
    mem = np.arange(20 * 64, dtype=np.uint32).view(np.uint8).reshape(20, 256)
    out = np.zeros((8, 256), np.uint8)
    got = Batch(mem, [(7, 2), (1, 3)], page_size=256).pages(out=out)
    assert np.shares_memory(got, out)
    np.testing.assert_array_equal(got, mem[[7, 8, 1, 2, 3]])


def _read_only(shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    out.flags.writeable = False
    return out


@pytest.mark.parametrize(
    ("staging", "got"),
    [
        (np.zeros((8, 256), np.uint16), "a uint16 array of shape (8, 256)"),
        (np.zeros((4, 256), np.uint8), "a uint8 array of shape (4, 256)"),
        (np.zeros((8, 128), np.uint8), "a uint8 array of shape (8, 128)"),
        (np.zeros(8 * 256, np.uint8), "a uint8 array of shape (2048,)"),
        (np.zeros((8, 512), np.uint8)[:, ::2], "a uint8 array of shape (8, 256), not contiguous"),
        (_read_only((8, 256)), "a read-only uint8 array of shape (8, 256)"),
        (bytearray(8 * 256), "bytearray"),
    ],
)
def test_a_staging_buffer_that_cannot_hold_the_pages_as_they_are_is_refused(staging, got):
    """One of another dtype took the pages cast, and every codec encoded the cast values
    into a frame that decoded to other pages at the destination; others failed in numpy's
    words."""
    mem = np.ones((20, 256), np.uint8)
    for codec in ("raw", "lz4", "xbzrle"):
        with pytest.raises(InvalidBatch) as info:
            get_codec(codec).encode(Batch(mem, [(7, 2), (1, 3)], page_size=256), staging)
        assert str(info.value) == (
            "a staging buffer for 5 pages of 256 bytes must be a writable, contiguous uint8 "
            f"array of shape (at least 5, 256), got {got}; take one from the request pool, "
            "or make one with np.empty((max_pages, 256), np.uint8)"
        )


def test_memory_must_be_whole_pages():
    with pytest.raises(InvalidBatch, match="not a whole number of 4096-byte pages"):
        page_view(bytearray(5000))


def test_page_view_of_bytearray_shares_memory():
    buf = bytearray(8192)
    view = page_view(buf)
    view[1, 0] = 7
    assert buf[4096] == 7


_NOT_INTS = "pass whole page numbers and counts as ints"


@pytest.mark.parametrize(
    ("runs", "message"),
    [
        # truncated, these would name page 0 alone, or pages 2 and 3 of (2.5, 3.99)
        ([(0.9, 1.9)], f"got 0.9 (float); {_NOT_INTS}"),
        (np.array([[2.5, 3.99]]), f"got 2.5 (float); {_NOT_INTS}"),
        (np.array([[2.0, 3.0]]), f"got 2.0 (float); {_NOT_INTS}"),
        ([("3", "2")], f"got '3' (str); {_NOT_INTS}"),
        ([(None, 2)], f"got None (NoneType); {_NOT_INTS}"),
        ([(0, 1), (2,)], "the requested array has an inhomogeneous shape"),
        (5, "'int' object is not iterable"),
    ],
)
def test_runs_that_are_not_integers_are_refused_not_truncated(runs, message):
    with pytest.raises(InvalidBatch) as info:
        Batch(MEM, runs)
    text = str(info.value)
    assert text.startswith("runs must be (first_page, n_pages) pairs of integers")
    assert message.lower() in text.lower()


@pytest.mark.parametrize(
    ("runs", "value"),
    [
        ([(2**63, 1)], 2**63),  # numpy infers float64 for it
        ([(0, 1), (1, -(2**63) - 1)], -(2**63) - 1),
        (np.array([[2**64 - 1, 2]], dtype=np.uint64), 2**64 - 1),  # wraps to -1 as int64
    ],
)
def test_run_values_past_int64_are_refused_not_wrapped(runs, value):
    with pytest.raises(InvalidBatch) as info:
        Batch(MEM, runs)
    assert str(info.value) == (
        f"run value {value} does not fit in int64 (page numbers and counts stay below "
        "2**63); no guest memory has that many pages"
    )


@pytest.mark.parametrize("dtype", [np.int32, np.uint16, np.uint64])
def test_runs_of_any_integer_dtype_are_taken(dtype):
    batch = Batch(MEM, np.array([[3, 2], [10, 1]], dtype=dtype))
    assert batch.runs.dtype == np.int64
    assert batch.page_indices.tolist() == [3, 4, 10]


_PAGE_SIZE = "must be a positive multiple of 8 bytes, given as an integer (e.g. 4096)"


@pytest.mark.parametrize(
    ("memory", "page_size", "shown"),
    [
        (MEM, 4096.0, "4096.0"),  # equals the rows' length: it was accepted
        (bytearray(8192), 4096.0, "4096.0"),
        (MEM, "4096", "'4096'"),
        (MEM, None, "None"),
        (MEM, 4100, "4100"),
        (MEM, -8, "-8"),
    ],
)
def test_page_size_must_be_a_positive_integer_multiple_of_8(memory, page_size, shown):
    with pytest.raises(InvalidBatch) as info:
        Batch(memory, [(0, 1)], page_size=page_size)
    assert str(info.value) == f"page size {shown} {_PAGE_SIZE}"


def test_page_size_of_a_numpy_integer_is_taken():
    assert Batch(MEM, [(0, 2)], page_size=np.int64(4096)).nbytes == 8192


@pytest.mark.parametrize(
    ("max_pages", "shown"), [(None, "None"), (0, "0"), (-1, "-1"), (64.0, "64.0")]
)
def test_max_pages_must_be_a_positive_integer(max_pages, shown):
    with pytest.raises(InvalidBatch) as info:
        Batch(MEM, [(0, 1)], max_pages=max_pages)
    assert str(info.value) == (
        f"max_pages {shown} must be a positive integer: the most pages one batch may name (e.g. 64)"
    )


def test_strided_memory_is_refused_as_not_contiguous():
    with pytest.raises(InvalidBatch) as info:
        Batch(memoryview(MEM)[::2], [(0, 1)])
    assert str(info.value) == (
        "guest memory must be a contiguous buffer (numpy uint8 array, mmap, bytearray): "
        "memoryview: underlying buffer is not C-contiguous"
    )
