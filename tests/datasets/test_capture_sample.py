"""Bounded capture: windows larger than ``max_pages`` keep a uniform sample and their true
dirty count, through capture, the trace format and ``trace info``."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from migcodec.cli import main
from migcodec.datasets import TraceReader, TraceWriter
from migcodec.datasets.capture import MappingFilter, ProcessCapture
from migcodec.datasets.capture.sample import sample_mask, sample_rng, sample_window
from migcodec.datasets.window import Window
from tests.datasets.test_capture import PAGES, Child, _schedule, needs_proc

PS = 4096


def _window(index: int, n: int, seed: int = 0) -> Window:
    """``n`` dirty pages spread over a larger memory; each page's bytes name it, so a
    row that travels with the wrong page number is caught."""
    rng = np.random.default_rng(seed)
    numbers = np.sort(rng.choice(50 * n, size=n, replace=False)).astype(np.int64)
    pages = np.zeros((n, PS), dtype=np.uint8)
    pages.view("<i8")[:, 0] = numbers
    previous = np.zeros_like(pages)
    previous.view("<i8")[:, 1] = numbers + 7
    return Window(index=index, page_indices=numbers, pages=pages, previous=previous)


def test_a_large_window_keeps_exactly_k_sorted_pages_of_its_own() -> None:
    full = _window(3, 1000)
    sampled = sample_window(full, 100, seed=5)
    assert sampled.n_pages == 100
    assert np.all(np.diff(sampled.page_indices) > 0)
    assert set(sampled.page_indices.tolist()) <= set(full.page_indices.tolist())
    np.testing.assert_array_equal(sampled.pages.view("<i8")[:, 0], sampled.page_indices)
    np.testing.assert_array_equal(sampled.previous.view("<i8")[:, 1], sampled.page_indices + 7)
    assert sampled.dirty_pages == 1000
    assert sampled.scale == pytest.approx(10.0)
    # reproducible per seed and window index, different otherwise
    again = sample_window(full, 100, seed=5)
    np.testing.assert_array_equal(again.page_indices, sampled.page_indices)
    other = sample_window(full, 100, seed=6)
    assert not np.array_equal(other.page_indices, sampled.page_indices)
    # sampling a sample keeps the true count
    assert sample_window(sampled, 10, seed=1).dirty_pages == 1000


def test_a_window_within_the_bound_is_stored_whole() -> None:
    full = _window(0, 64)
    assert sample_window(full, 64) is full
    assert full.dirty_pages is None and full.scale == 1.0
    assert sample_mask(64, 64, sample_rng(0, 0)) is None
    with pytest.raises(ValueError, match="at least 1"):
        sample_mask(10, 0, sample_rng(0, 0))


def test_the_sample_is_uniform_over_the_dirty_pages() -> None:
    """Each page is kept with probability k/n: over many windows every page's count is
    near its expectation (a biased draw, e.g. always the first k, fails by far)."""
    n, k, trials = 200, 20, 2000
    counts = np.zeros(n, dtype=np.int64)
    for i in range(trials):
        counts += sample_mask(n, k, sample_rng(0, i))
    expected = trials * k / n  # 200, binomial sd ~13.4
    assert np.abs(counts - expected).max() < 6 * np.sqrt(expected * (1 - k / n))


def test_sampled_windows_round_trip_through_a_trace(tmp_path: Path) -> None:
    windows = [sample_window(_window(i, n, seed=i), 50, seed=2) for i, n in enumerate((10, 500))]
    with TraceWriter(tmp_path / "t", memory_pages=50 * 500) as writer:
        writer.write_all(windows)
    back = list(TraceReader(tmp_path / "t"))
    assert [w.dirty_pages for w in back] == [None, 500]
    assert [w.n_pages for w in back] == [10, 50]
    for wrote, read in zip(windows, back, strict=True):
        np.testing.assert_array_equal(read.page_indices, wrote.page_indices)
        np.testing.assert_array_equal(read.pages, wrote.pages)
        np.testing.assert_array_equal(read.previous, wrote.previous)
    assert back[1].scale == pytest.approx(10.0)


def test_info_shows_the_true_dirty_count_beside_the_stored_pages(tmp_path: Path, capsys) -> None:
    with TraceWriter(tmp_path / "t", memory_pages=50 * 400) as writer:
        writer.write_all(
            [sample_window(_window(i, n, seed=i), 40, seed=0) for i, n in enumerate((8, 400))]
        )
    assert main(["trace", "info", str(tmp_path / "t"), "--codecs", "zstd"]) == 0
    text = capsys.readouterr().out
    assert "pages per window min 8, mean 24, max 40" in text
    assert "dirty pages per window (true count; 1 windows store a uniform sample)" in text
    assert "min 8, median 204, mean 204, max 400; 408 dirty, 48 stored" in text


def test_info_of_an_unsampled_trace_has_no_true_count_line(tmp_path: Path, capsys) -> None:
    with TraceWriter(tmp_path / "t", memory_pages=50 * 30) as writer:
        writer.write(_window(0, 30))
    assert main(["trace", "info", str(tmp_path / "t"), "--codecs", "zstd"]) == 0
    assert "true count" not in capsys.readouterr().out


def test_info_shows_how_long_the_windows_really_lasted(tmp_path: Path, capsys) -> None:
    """A capture that takes longer than its interval stretches its windows: the recorded
    lengths are shown beside the interval, in text and JSON; none are shown when no
    window recorded one."""
    lengths = (0.25, 0.1, 0.4)
    windows = [replace(_window(i, 8, seed=i), duration_s=s) for i, s in enumerate(lengths)]
    with TraceWriter(tmp_path / "t", memory_pages=50 * 8, window_s=0.1) as writer:
        writer.write_all(windows)
    assert main(["trace", "info", str(tmp_path / "t"), "--codecs", "zstd"]) == 0
    text = capsys.readouterr().out
    assert "3 windows of 0.1 s" in text
    assert "window lengths (measured): min 0.100 s, median 0.250 s, max 0.400 s" in text
    assert main(["trace", "info", str(tmp_path / "t"), "--codecs", "zstd", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["window_seconds"] == list(lengths)
    with TraceWriter(tmp_path / "u", memory_pages=50 * 8) as writer:
        writer.write(_window(0, 8))
    assert main(["trace", "info", str(tmp_path / "u"), "--codecs", "zstd"]) == 0
    assert "window lengths" not in capsys.readouterr().out


@needs_proc
def test_a_bounded_capture_stores_the_sample_of_the_whole_window() -> None:
    """Two captures of one child, bounded and not: each bounded window is exactly the
    sample that :func:`sample_window` draws from the whole window, with the true count."""
    child = Child()
    try:
        select = MappingFilter(address_range=child.range)
        whole = ProcessCapture(child.proc.pid, select=select)
        bounded = ProcessCapture(child.proc.pid, select=select, max_pages=4, seed=9)
        whole.start()
        bounded.start()
        model = np.zeros((PAGES, child.page_size), dtype=np.uint8)
        rng = np.random.default_rng(3)
        for _ in range(4):
            assert child.send(_schedule(rng, model)) == "ok"
            full = whole.next_window()
            part = bounded.next_window()
            assert full.n_pages > 4 and full.dirty_pages is None
            assert part.n_pages == 4 and part.dirty_pages == full.n_pages
            expect = sample_window(full, 4, seed=9)
            np.testing.assert_array_equal(part.page_indices, expect.page_indices)
            np.testing.assert_array_equal(part.pages, expect.pages)
            np.testing.assert_array_equal(part.previous, expect.previous)
        whole.close()
        bounded.close()
    finally:
        child.close()


def test_a_bound_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ProcessCapture(1, max_pages=0)


@needs_proc
def test_capture_command_records_its_bound(tmp_path: Path, capsys) -> None:
    child = Child("--churn-ms", "300")
    try:
        lo, hi = child.range
        argv = ["trace", "capture", "--pid", str(child.proc.pid), "--windows", "3"]
        argv += ["--interval", "20", "--address-range", f"{lo:x}-{hi:x}", "--max-pages", "1"]
        code = main([*argv, "--seed", "4", "--out", str(tmp_path / "c"), "--quiet"])
    finally:
        child.close()
    assert code == 0, capsys.readouterr().err
    info = TraceReader(tmp_path / "c").info()
    assert info.meta["max_pages"] == 1 and info.meta["sample_seed"] == 4
    assert "--max-pages 1" in info.command
    for window in TraceReader(tmp_path / "c"):  # the child rewrites one page: never sampled
        assert window.n_pages <= 1 and window.dirty_pages is None


def test_capture_command_refuses_a_bound_below_one(capsys) -> None:
    with pytest.raises(SystemExit):
        argv = ["trace", "capture", "--pid", "1", "--windows", "1", "--interval", "10"]
        main([*argv, "--max-pages", "0", "--out", "x"])
    assert "argument --max-pages: '0' is not a whole number >= 1" in capsys.readouterr().err
