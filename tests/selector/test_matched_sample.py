"""A window stored as a sample is scored on its stored pages; its features read as many of
them as make their error against those pages the error an engine's sample has against the
whole window."""

from __future__ import annotations

import numpy as np
import pytest

from migcodec.datasets import Window, generate_pages
from migcodec.selector import parse_arms
from migcodec.selector.evaluation import build_table
from migcodec.selector.evaluation.table import matched_sample_size
from migcodec.selector.features import FeatureExtractor, sample_rows


@pytest.mark.parametrize(
    ("engine", "window", "stored", "matched"),
    [
        (78, 20_000, 64, 35),  # 1 / (1/78 - 1/20000 + 1/64) = 35.2
        (32, 10**9, 64, 21),  # a sample of an endless window: 1 / (1/32 + 1/64)
        (32, 100, 100, 32),  # every page stored: the engine's own sample
        (32, 20, 20, 20),  # a window smaller than a sample: all of it
        (512, 10**6, 64, 57),  # a large sample of a large window, few pages stored
        (1, 10**6, 64, 1),
    ],
)
def test_the_matched_sample_errs_as_the_engine_s_sample_would(engine, window, stored, matched):
    assert matched_sample_size(engine, window, stored) == matched


def _sampled_window() -> Window:
    """64 stored pages of a 20,000-page window; page ``i`` differs from what the
    destination holds in ``i`` words, so any two samples of it estimate differently."""
    pages = generate_pages("text", 64, 0)
    previous = pages.copy()
    words = previous.view(np.uint64)
    for i in range(64):
        words[i, :i] ^= np.uint64(0xFF)
    return Window(0, np.arange(64), pages, previous=previous, dirty_pages=20_000)


def test_a_stored_sample_s_features_read_a_matched_sample_and_cost_the_engine_s():
    arms = parse_arms("raw;lz4;dsa-delta")
    window = _sampled_window()
    table = build_table([window], arms, repeats=1)
    extractor = FeatureExtractor([a.codec for a in arms])
    engine = extractor.sample_size(20_000)
    assert table.sample[0] == min(engine, 64)  # the costs: of what an engine reads
    rows = sample_rows(64, matched_sample_size(engine, 20_000, 64))
    matched = extractor.extract(
        window.pages[rows], window.previous[rows], probe=False, sampled=True, window_pages=20_000
    )
    every = extractor.extract(window.pages, window.previous, probe=False, window_pages=20_000)
    assert matched.delta_bytes[2] != every.delta_bytes[2]  # the two samples tell apart
    assert table.delta_bytes[0, 2] == matched.delta_bytes[2]


def test_a_window_stored_whole_reads_the_engine_s_sample():
    arms = parse_arms("raw;lz4;dsa-delta")
    window = _sampled_window()
    window.dirty_pages = None  # all 64 pages stored: a sample of 32 of them, as an engine
    table = build_table([window], arms, repeats=1)
    extractor = FeatureExtractor([a.codec for a in arms])
    every = extractor.extract(window.pages, window.previous, probe=False)
    assert table.sample[0] == every.sample
    assert table.delta_bytes[0, 2] == every.delta_bytes[2]
