"""Every registered codec round-trips arbitrary runs of arbitrary pages, byte for byte."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from migcodec.codecs import Batch, PageMode, available_codecs, get_codec
from tests.roundtrip import assert_round_trips_only_the_named_pages

PAGE = 4096
MEMORY_PAGES = 96


def _page(kind: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == 0:
        return np.zeros(PAGE, np.uint8)
    if kind == 1:
        return np.full(PAGE, seed % 256, np.uint8)
    if kind == 2:
        page = np.zeros(PAGE, np.uint8)
        page[rng.integers(0, PAGE, 5)] = rng.integers(1, 256, 5)
        return page
    return rng.integers(0, 256, PAGE, dtype=np.uint8)


@st.composite
def memories_and_runs(draw):
    kinds = draw(st.lists(st.integers(0, 3), min_size=MEMORY_PAGES, max_size=MEMORY_PAGES))
    memory = np.stack([_page(k, i) for i, k in enumerate(kinds)])
    starts = sorted(draw(st.sets(st.integers(0, MEMORY_PAGES - 1), min_size=1, max_size=8)))
    runs, total = [], 0
    for i, start in enumerate(starts):
        limit = (starts[i + 1] if i + 1 < len(starts) else MEMORY_PAGES) - start
        count = draw(st.integers(1, min(limit, 64 - total))) if total < 64 else 0
        if count:
            runs.append((start, count))
            total += count
    order = draw(st.permutations(runs))
    return memory, order


CODECS = [name for name in available_codecs() if name in ("raw", "lz4", "zlib-ng", "zstd")]


@pytest.mark.parametrize("name", CODECS)
@given(case=memories_and_runs())
def test_round_trip_writes_exactly_the_named_pages(name, case):
    memory, runs = case
    encoded = assert_round_trips_only_the_named_pages(get_codec(name), memory, runs)
    batch = Batch(memory, runs)
    named = batch.page_indices
    zero = ~memory[named].any(axis=1)
    np.testing.assert_array_equal(encoded.modes == PageMode.ZERO, zero)
    assert encoded.stats.input_bytes == batch.nbytes
    assert encoded.stats.output_bytes <= batch.nbytes + batch.n_pages + 12 * len(runs)


@pytest.mark.parametrize("name", ["lz4", "zlib-ng", "zstd"])
def test_incompressible_pages_fall_back_to_raw(name):
    memory = np.random.default_rng(1).integers(0, 256, (8, PAGE), dtype=np.uint8)
    encoded = get_codec(name).encode(Batch(memory, [(0, 8)]))
    assert (encoded.modes == PageMode.RAW).all()
    assert encoded.payload == memory.tobytes()


@pytest.mark.parametrize("name", ["lz4", "zlib-ng", "zstd"])
def test_compressible_batch_is_one_blob(name):
    memory = np.ones((16, PAGE), np.uint8)
    encoded = get_codec(name).encode(Batch(memory, [(0, 16)]))
    assert (encoded.modes == PageMode.ENCODED).all()
    assert len(encoded.segments) == 1
    assert encoded.stats.ratio > 50


def test_memory_types_bytearray_and_mmap():
    import mmap

    source = bytearray(np.arange(8 * PAGE, dtype=np.uint8) % 7)
    dest = mmap.mmap(-1, 8 * PAGE)
    codec = get_codec("zstd")
    codec.decode(codec.encode(Batch(source, [(2, 3), (6, 2)])), dest)
    assert dest[2 * PAGE : 5 * PAGE] == source[2 * PAGE : 5 * PAGE]
    assert dest[6 * PAGE :] == source[6 * PAGE :]
    assert dest[: 2 * PAGE] == bytes(2 * PAGE)


@pytest.mark.parametrize("name", ["raw", "lz4"])
def test_batches_larger_than_the_shared_mode_table_round_trip(name):
    memory = np.arange(5000 * 512, dtype=np.uint64).view(np.uint8).reshape(5000, PAGE)
    codec = get_codec(name)
    encoded = codec.encode(Batch(memory, [(0, 5000)], max_pages=5000))
    dest = np.zeros_like(memory)
    codec.decode(encoded, dest)
    np.testing.assert_array_equal(dest, memory)
