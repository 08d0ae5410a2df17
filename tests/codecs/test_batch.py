import numpy as np
import pytest

from migcodec.codecs import Batch, InvalidBatch, page_view
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


def test_memory_must_be_whole_pages():
    with pytest.raises(InvalidBatch, match="not a whole number of 4096-byte pages"):
        page_view(bytearray(5000))


def test_page_view_of_bytearray_shares_memory():
    buf = bytearray(8192)
    view = page_view(buf)
    view[1, 0] = 7
    assert buf[4096] == 7
