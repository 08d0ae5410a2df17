"""Zero-page detection: the C scan and the numpy fall-back agree with a plain full scan."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migcodec.codecs import zero
from migcodec.codecs.zero import _numpy_zero_page_rows, zero_page_mask, zero_page_rows

needs_native = pytest.mark.skipif(
    zero._native_zero_pages is None, reason="C extension not built (no compiler at install)"
)


@st.composite
def page_blocks(draw):
    """Pages that are zero, or zero except one byte anywhere (the probe's blind spot:
    first and last word zero), or non-zero at an edge."""
    page_size = draw(st.sampled_from([8, 64, 256, 264, 4096]))
    kinds = draw(st.lists(st.sampled_from(["zero", "one-byte", "edge"]), max_size=70))
    pages = np.zeros((len(kinds), page_size), dtype=np.uint8)
    for row, kind in enumerate(kinds):
        if kind == "one-byte":
            pages[row, draw(st.integers(0, page_size - 1))] = draw(st.integers(1, 255))
        elif kind == "edge":
            pages[row, draw(st.sampled_from([0, page_size - 1]))] = 1
    return pages


@settings(max_examples=300, deadline=None)
@given(page_blocks())
def test_every_implementation_matches_a_full_scan(pages):
    expected = ~pages.any(axis=1)
    assert np.array_equal(zero_page_mask(pages), expected)
    numpy_rows = _numpy_zero_page_rows(pages) if pages.shape[0] else None
    native_rows = zero_page_rows(pages)
    for rows in (numpy_rows, native_rows):
        if expected.any():
            assert np.array_equal(rows, expected)
        else:
            assert rows is None


@needs_native
def test_native_scan_reads_strided_views_and_rejects_bad_page_sizes():
    pages = np.ones((8, 4096), dtype=np.uint8)
    pages[2] = 0
    assert np.flatnonzero(zero_page_rows(pages[::2])).tolist() == [1]  # a copy is scanned
    with pytest.raises(ValueError, match="page size that is a positive multiple of 8"):
        zero._native_zero_pages(pages, 4092)
    assert zero.ZERO_SCAN == "C extension"


def test_mask_belongs_to_the_caller():
    pages = np.zeros((3, 64), dtype=np.uint8)
    mask = zero_page_mask(pages)
    mask[0] = False
    assert zero_page_mask(pages).all()
