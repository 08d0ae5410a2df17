"""Page-change counts: the C scan and the numpy one agree with a plain definition."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from migcodec.codecs import changes


def _by_definition(new: np.ndarray, old: np.ndarray):
    a, b = new.view(np.uint64), old.view(np.uint64)
    changed = a != b
    words = changed.sum(axis=1)
    runs = (changed[:, 1:] & ~changed[:, :-1]).sum(axis=1) + changed[:, 0]
    bytes_differ = new != old
    differing = bytes_differ.sum(axis=1)
    byte_runs = (bytes_differ[:, 1:] & ~bytes_differ[:, :-1]).sum(axis=1) + bytes_differ[:, 0]
    return words, differing, runs, byte_runs


@given(
    st.integers(0, 6),
    st.sampled_from([8, 64, 72, 136, 512, 4096]),
    st.integers(0, 2**32 - 1),
    st.floats(0, 1),
    st.integers(0, 3),
)
def test_counts_match_the_definition_in_c_and_numpy(n, page_size, seed, share, spans):
    """Scattered bytes and whole spans (runs that cross the C scan's 64-byte blocks and,
    for page sizes that are not a multiple of 64, its word-at-a-time tail)."""
    rng = np.random.default_rng(seed)
    old = rng.integers(0, 256, (n, page_size), dtype=np.uint8)
    new = old.copy()
    hit = rng.random((n, page_size)) < share / 8
    for row in range(n):
        for _ in range(spans):
            start = int(rng.integers(0, page_size))
            hit[row, start : start + int(rng.integers(1, 80))] = True
    new[hit] ^= rng.integers(1, 256, int(hit.sum()), dtype=np.uint8)
    expected = _by_definition(new, old)
    for got in (changes.page_changes(new, old), changes._numpy_page_changes(new, old)):
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_array_equal(g, e)
    rows = rng.integers(0, n, 5) if n else np.zeros(0, np.int64)
    for g, e in zip(changes.page_changes(new, old, rows), expected, strict=True):
        np.testing.assert_array_equal(g, e[rows])


def test_the_c_scan_is_built_and_refuses_mismatched_buffers():
    assert changes.CHANGE_SCAN == "C extension"
    with pytest.raises(ValueError, match="differ in shape"):
        changes.page_changes(np.zeros((2, 64), np.uint8), np.zeros((1, 64), np.uint8))
    with pytest.raises(ValueError, match="positive multiple of 8"):
        changes._native_page_changes(b"\0" * 12, b"\0" * 12, 12)
    pages = np.zeros((2, 64), np.uint8)
    with pytest.raises(IndexError, match="row 2 is not a page of 2"):
        changes.page_changes(pages, pages, np.array([0, 2]))
    with pytest.raises(IndexError, match="row -1 is not a page of 2"):
        changes.page_changes(pages, pages, np.array([-1]))
    with pytest.raises(ValueError, match="rows as int64"):
        changes._native_page_changes(pages, pages, 64, b"\0" * 12)


@pytest.mark.parametrize(
    ("pages", "problem"),
    [
        # the C kernels read rows as bytes: three uint16 pages of 512 were six of 512 bytes
        (np.zeros((3, 512), np.uint16), "an array of uint16, shape (3, 512)"),
        (np.zeros(4096, np.uint8), "an array of uint8, shape (4096,)"),
        (bytes(4096), "bytes"),
    ],
)
def test_pages_that_are_not_rows_of_bytes_are_refused_by_every_scan(pages, problem):
    from migcodec.codecs.zero import zero_page_mask
    from migcodec.selector.features import FeatureExtractor

    message = f"pages must be a (pages, page_size) uint8 numpy array, got {problem}"
    for scan in (
        zero_page_mask,
        lambda p: changes.page_changes(p, p),
        lambda p: FeatureExtractor([]).extract(p),
    ):
        with pytest.raises(TypeError) as info:
            scan(pages)
        assert str(info.value) == message


def test_rows_of_a_scan_are_integers():
    """Rows 0.9 and 1.7 read pages 0 and 1."""
    pages = np.zeros((3, 64), np.uint8)
    with pytest.raises(TypeError, match=r"^rows must be integer page numbers, got float64$"):
        changes.page_changes(pages, pages, rows=np.array([0.9, 1.7]))
