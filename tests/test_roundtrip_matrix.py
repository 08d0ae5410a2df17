"""Every store or stream that carries pages gives them back byte for byte, or refuses at once.

The matrix: every registered codec, through the trace writer and reader, the wire writer and
reader, and the migration engine's send and receive over a socket; page sizes from 512 bytes
to 64 KiB; windows with and without ``previous`` (what the destination held); page contents
drawn from zero, sparse, half-zero, text-like and random shapes. A cell may refuse with a typed
error before any page is stored or sent, never hand back different pages.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migcodec.codecs import (
    Batch,
    DestinationMirror,
    PageSizeUnsupported,
    get_codec,
    plugin_statuses,
)
from migcodec.datasets import Window
from migcodec.datasets.trace import TraceReader, TraceWriter, UnsuitableCodec
from migcodec.engine import FixedChooser, MigrationConfig, run_loopback
from migcodec.wire import FrameReader, FrameWriter, memory_digest

CODECS = sorted(s.name for s in plugin_statuses() if s.available)
PAGE_SIZES = [512, 1024, 4096, 16384, 65536]
SHAPES = ["zero", "sparse", "half-zero", "text", "random"]
_TEXT = np.frombuffer(b"the quick brown fox jumps over the lazy dog; 0123456789\n", np.uint8)


def _page(shape: str, page_size: int, rng: np.random.Generator) -> np.ndarray:
    page = np.zeros(page_size, np.uint8)
    if shape == "sparse":
        where = rng.integers(0, page_size, max(1, page_size // 256))
        page[where] = rng.integers(1, 256, where.size, dtype=np.uint8)
    elif shape == "half-zero":
        page[: page_size // 2] = rng.integers(0, 256, page_size // 2, dtype=np.uint8)
    elif shape == "text":
        page[:] = _TEXT[rng.integers(0, _TEXT.size, page_size)]
    elif shape == "random":
        page[:] = rng.integers(0, 256, page_size, dtype=np.uint8)
    return page


@st.composite
def windows(draw) -> Window:
    page_size = draw(st.sampled_from(PAGE_SIZES))
    n = draw(st.integers(1, 6 if page_size <= 4096 else 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shapes = draw(st.lists(st.sampled_from(SHAPES), min_size=n, max_size=n))
    pages = np.stack([_page(s, page_size, rng) for s in shapes])
    previous = None
    if draw(st.booleans()):
        previous = pages.copy()
        changes = draw(st.integers(0, 50))
        for row in range(n):  # a few bytes changed per page, or a whole other page
            if draw(st.booleans()):
                at = rng.integers(0, page_size, changes)
                previous[row, at] = rng.integers(0, 256, at.size, dtype=np.uint8)
            else:
                previous[row] = _page(draw(st.sampled_from(SHAPES)), page_size, rng)
    indices = np.sort(rng.choice(4 * n, n, replace=False)).astype(np.int64)
    return Window(0, indices, pages, previous)


MATRIX = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.mark.parametrize("name", CODECS)
@MATRIX
@given(window=windows())
def test_trace_round_trip_or_refusal(name, window, tmp_path_factory):
    path = tmp_path_factory.mktemp("trace")
    memory_pages = int(window.page_indices[-1]) + 1
    try:
        writer = TraceWriter(
            path, memory_pages=memory_pages, page_size=window.page_size, codec=name, workers=1
        )
    except UnsuitableCodec as exc:
        assert get_codec(name).reads_destination and name in str(exc)
        return
    except PageSizeUnsupported as exc:
        assert _refuses(name, window.page_size) and name in str(exc)
        return
    with writer:
        writer.write(window)
    (back,) = list(TraceReader(path))
    np.testing.assert_array_equal(back.page_indices, window.page_indices)
    np.testing.assert_array_equal(back.pages, window.pages)
    if window.previous is None:
        assert back.previous is None
    else:
        np.testing.assert_array_equal(back.previous, window.previous)


def _refuses(name: str, page_size: int) -> bool:
    """Whether the codec's format cannot describe pages of this size (refused up front)."""
    limit = get_codec(name).max_page_size
    return limit is not None and page_size > limit


def _memories(window: Window) -> tuple[np.ndarray, np.ndarray | None]:
    """The source's memory holding the window's pages at their page numbers, and the memory
    the destination held before (``previous`` there), when the window says."""
    n_pages = int(window.page_indices[-1]) + 1
    memory = np.zeros((n_pages, window.page_size), np.uint8)
    memory[window.page_indices] = window.pages
    if window.previous is None:
        return memory, None
    before = np.zeros_like(memory)
    before[window.page_indices] = window.previous
    return memory, before


@pytest.mark.parametrize("name", CODECS)
@MATRIX
@given(window=windows())
def test_wire_round_trip(name, window):
    """``previous`` is sent first, then the window's pages against it, with the stream's one
    mirror: a delta codec makes deltas where the destination holds the base."""
    memory, before = _memories(window)
    codec, mirror = get_codec(name), DestinationMirror(window.page_size)
    runs = [(int(p), 1) for p in window.page_indices]
    out = io.BytesIO()
    if _refuses(name, window.page_size):
        with pytest.raises(PageSizeUnsupported, match=name):
            FrameWriter(out, window.page_size, memory.shape[0], [codec])
        assert not out.getvalue()  # refused before the preamble
        return
    writer = FrameWriter(out, window.page_size, memory.shape[0], [codec])
    if before is not None:
        writer.write_batch(codec.encode(Batch(before, runs, window.page_size), destination=mirror))
    writer.write_batch(codec.encode(Batch(memory, runs, window.page_size), destination=mirror))
    writer.end_stream(memory_digest(memory))
    dest = np.zeros_like(memory)
    summary = FrameReader(io.BytesIO(out.getvalue())).receive(dest)
    assert summary.digest_verified
    np.testing.assert_array_equal(dest, memory)


@pytest.mark.parametrize("name", CODECS)
@settings(max_examples=4, deadline=None)
@given(window=windows())
def test_engine_round_trip_over_a_socket(name, window):
    """The engine migrates the window's memory and succeeds only on the destination's
    confirmation that its memory digest equals the source's."""
    memory, _ = _memories(window)
    config = MigrationConfig(page_size=window.page_size, workers=2, link_rate=None)
    if _refuses(name, window.page_size):
        with pytest.raises(PageSizeUnsupported, match=name):
            run_loopback(memory, FixedChooser(get_codec(name)), config, fill=False)
        return
    report = run_loopback(memory, FixedChooser(get_codec(name)), config, fill=False)
    assert report.succeeded and report.verified, report.error
