"""Delta codecs (dsa-delta, xbzrle) over sequences of page versions.

Source and destination memories must be equal after every step, whatever happens to the
pages: mirror hits, misses, evictions, pages turning zero and back, raw and fall-back pages,
pages sent by other codecs.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from migcodec.codecs import (
    Batch,
    CodecEngines,
    DestinationMirror,
    Encoded,
    PageMode,
    get_codec,
    plugin_statuses,
)
from migcodec.codecs.delta import DELTA, FALLBACK, UNCHANGED

PAGE = 4096
DELTA_CODECS = ["dsa-delta", "xbzrle"]

# how a step changes a page: few words, 20 % of words, whole rewrite, zero, bytes, a run, or
# back to what it held two steps ago (a delta against a stale base shows only then: changes
# that accumulate decode right on any older base, a reverted word does not)
MUTATIONS = st.sampled_from(["words", "fifth", "rewrite", "zero", "bytes", "run", "same", "revert"])


def _mutate(page: np.ndarray, how: str, rng: np.random.Generator) -> None:
    words = page.view(np.uint64)
    if how == "words":
        words[rng.integers(0, words.size, 3)] = rng.integers(1, 2**63, 3, dtype=np.uint64)
    elif how == "fifth":
        idx = np.flatnonzero(rng.random(words.size) < 0.2)
        words[idx] = rng.integers(1, 2**63, idx.size, dtype=np.uint64)
    elif how == "rewrite":
        page[:] = rng.integers(0, 256, page.size, dtype=np.uint8)
    elif how == "zero":
        page[:] = 0
    elif how == "bytes":
        page[rng.integers(0, page.size, 7)] ^= np.uint8(0x5A)
    elif how == "run":
        start = int(rng.integers(0, page.size - 300))
        page[start : start + int(rng.integers(1, 300))] += np.uint8(1)


@st.composite
def histories(draw):
    n_pages = draw(st.integers(4, 40))
    cache_pages = draw(st.integers(1, 48))
    seed = draw(st.integers(0, 2**32 - 1))
    steps = draw(
        st.lists(
            st.lists(st.tuples(st.integers(0, n_pages - 1), MUTATIONS), max_size=12),
            min_size=1,
            max_size=6,
        )
    )
    return n_pages, cache_pages, seed, steps


def _send(codec, dest_codec, memory, dest, pages, rng, mirror) -> Encoded:
    """Send ``pages`` (any order, scattered runs) and decode them at the destination."""
    order = rng.permutation(np.asarray(sorted(pages), dtype=np.int64))
    runs = [(int(p), 1) for p in order]
    encoded = codec.encode(Batch(memory, runs), destination=mirror)
    dest_codec.decode(encoded, dest)
    return encoded


@pytest.mark.parametrize("name", DELTA_CODECS)
@given(case=histories())
def test_destination_equals_source_after_every_step(name, case):
    n_pages, cache_pages, seed, steps = case
    rng = np.random.default_rng(seed)
    memory = rng.integers(0, 256, (n_pages, PAGE), dtype=np.uint8)
    memory[rng.random(n_pages) < 0.2] = 0
    memory[rng.random(n_pages) < 0.2] //= 16  # compressible: the fall-back pays
    dest = np.zeros_like(memory)
    mirror = DestinationMirror(PAGE, cache_pages * PAGE)
    codec, dest_codec, other = get_codec(name), get_codec(name), get_codec("lz4")
    _send(codec, dest_codec, memory, dest, range(n_pages), rng, mirror)
    np.testing.assert_array_equal(dest, memory)
    older = memory.copy()  # memory two steps ago, for "revert"
    for number, step in enumerate(steps):
        before = memory.copy()
        dirty = set()
        for page, how in step:
            if how == "revert":
                memory[page] = older[page]
            else:
                _mutate(memory[page], how, rng)
            dirty.add(page)
        older = before
        dirty |= {int(p) for p in rng.integers(0, n_pages, 2)}  # clean pages sent again
        # every third step another codec of the stream sends them, recorded or forgotten
        sender = other if number % 3 == 2 else codec
        mirror.recording = bool(number % 2)
        _send(sender, dest_codec if sender is codec else other, memory, dest, dirty, rng, mirror)
        np.testing.assert_array_equal(dest, memory)


@pytest.mark.parametrize("name", DELTA_CODECS)
def test_page_modes_over_a_history(name):
    rng = np.random.default_rng(3)
    memory = (rng.integers(0, 256, (8, PAGE), dtype=np.uint8) // 32).astype(np.uint8)
    dest = np.zeros_like(memory)
    mirror = DestinationMirror(PAGE, 8 * PAGE)
    codec, dest_codec = get_codec(name), get_codec(name)
    first = _send(codec, dest_codec, memory, dest, range(8), rng, mirror)
    assert (first.modes == FALLBACK).all()  # nothing held yet: all through lz4
    _mutate(memory[2], "words", rng)
    memory[5] = rng.integers(0, 256, PAGE, dtype=np.uint8)
    second = codec.encode(Batch(memory, [(0, 8)]), destination=mirror)
    dest_codec.decode(second, dest)
    np.testing.assert_array_equal(dest, memory)
    expected = np.full(8, UNCHANGED)
    expected[2] = DELTA
    expected[5] = PageMode.RAW  # a whole rewrite does not pay as a delta
    np.testing.assert_array_equal(second.modes, expected)
    assert second.stats.output_bytes < 2 * PAGE


@pytest.mark.parametrize("name", DELTA_CODECS)
def test_page_turning_zero_then_nonzero_is_not_a_stale_delta(name):
    rng = np.random.default_rng(4)
    memory = rng.integers(0, 256, (2, PAGE), dtype=np.uint8)
    dest = np.zeros_like(memory)
    mirror = DestinationMirror(PAGE)
    codec, dest_codec = get_codec(name), get_codec(name)
    _send(codec, dest_codec, memory, dest, [0, 1], rng, mirror)
    memory[0] = 0
    assert _send(codec, dest_codec, memory, dest, [0], rng, mirror).modes[0] == PageMode.ZERO
    memory[0, 100:108] = 7  # a delta against zeros, not against the stale random page
    encoded = _send(codec, dest_codec, memory, dest, [0], rng, mirror)
    assert encoded.modes[0] == DELTA
    np.testing.assert_array_equal(dest, memory)


@pytest.mark.parametrize("name", DELTA_CODECS)
def test_eviction_sends_the_evicted_page_through_the_fall_back(name):
    rng = np.random.default_rng(5)
    memory = np.zeros((4, PAGE), np.uint8)
    memory[:, ::64] = rng.integers(1, 256, (4, PAGE // 64), dtype=np.uint8)
    dest = np.zeros_like(memory)
    mirror = DestinationMirror(PAGE, 2 * PAGE)
    codec, dest_codec = get_codec(name), get_codec(name)
    _send(codec, dest_codec, memory, dest, [0], rng, mirror)
    _send(codec, dest_codec, memory, dest, [2], rng, mirror)  # page 2 takes page 0's slot
    memory[0, 8:16] = 1
    encoded = _send(codec, dest_codec, memory, dest, [0], rng, mirror)
    assert encoded.modes[0] == FALLBACK
    np.testing.assert_array_equal(dest[[0, 2]], memory[[0, 2]])


@pytest.mark.parametrize("name", DELTA_CODECS)
def test_raw_pages_are_the_snapshot_not_later_guest_writes(name):
    rng = np.random.default_rng(6)
    memory = rng.integers(0, 256, (4, PAGE), dtype=np.uint8)
    dest = np.zeros_like(memory)
    mirror = DestinationMirror(PAGE)
    codec, dest_codec = get_codec(name), get_codec(name)
    encoded = codec.encode(Batch(memory, [(0, 4)]), destination=mirror)  # random: all raw
    assert (encoded.modes == PageMode.RAW).all()
    sent = memory.copy()
    memory[1, :64] ^= 0xFF  # the guest writes before the frame leaves
    dest_codec.decode(encoded, dest)
    np.testing.assert_array_equal(dest, sent)
    # the next delta is against `sent`
    assert _send(codec, dest_codec, memory, dest, [1], rng, mirror).modes[0] == DELTA
    np.testing.assert_array_equal(dest, memory)


@pytest.mark.parametrize("name", DELTA_CODECS)
def test_without_a_mirror_no_delta_is_made_against_an_unknown_base(name):
    """One codec instance encoding unrelated buffers that share page numbers (as the
    sections of a trace record do) must never delta one against the other: each decodes into
    a fresh buffer that holds nothing of the other."""
    rng = np.random.default_rng(7)
    first = np.zeros((4, PAGE), np.uint8)
    first[:, : PAGE // 2] = rng.integers(0, 256, (4, PAGE // 2), dtype=np.uint8)
    second = first.copy()
    second[:, 8:16] += 1  # a few words apart: a delta would pay if a base were assumed
    codec = get_codec(name)
    for memory in (first, second, second):
        encoded = codec.encode(Batch(memory, [(0, 4)]))
        assert (encoded.modes == FALLBACK).all()
        fresh = np.full_like(memory, 0xA5)
        get_codec(name).decode(encoded, fresh)
        np.testing.assert_array_equal(fresh, memory)


@pytest.mark.parametrize("name", DELTA_CODECS)
def test_pages_sent_by_another_codec_are_recorded_or_forgotten(name):
    rng = np.random.default_rng(8)
    memory = rng.integers(0, 256, (2, PAGE), dtype=np.uint8)
    dest = np.zeros_like(memory)
    mirror = DestinationMirror(PAGE)
    codec, dest_codec, lz4 = get_codec(name), get_codec(name), get_codec("lz4")
    _send(codec, dest_codec, memory, dest, [0, 1], rng, mirror)
    memory[:, :8] += 1
    mirror.recording = True
    lz4.decode(lz4.encode(Batch(memory, [(0, 1)]), destination=mirror), dest)
    mirror.recording = False
    lz4.decode(lz4.encode(Batch(memory, [(1, 1)]), destination=mirror), dest)
    assert len(mirror) == 1
    memory[:, 16:24] += 1
    encoded = codec.encode(Batch(memory, [(0, 2)]), destination=mirror)
    dest_codec.decode(encoded, dest)
    assert encoded.modes[0] == DELTA  # recorded: a delta against what lz4 sent
    assert encoded.modes[1] == PageMode.RAW  # forgotten: a miss (random data: lz4 -> raw)
    np.testing.assert_array_equal(dest, memory)


def test_a_first_pass_not_teaching_the_mirror_leaves_it_and_the_batch_alone():
    """A stream's first pass sends every page once through other codecs without teaching
    the mirror: nothing is held, so nothing is forgotten, and the page numbers of a batch of
    one run, which only the mirror would read, are never computed (every batch of the
    pass)."""
    memory = np.random.default_rng(9).integers(0, 256, (64, PAGE), dtype=np.uint8)
    mirror = DestinationMirror(PAGE, 64 * PAGE, recording=False)
    lz4 = get_codec("lz4")
    batch = Batch(memory, [(0, 64)])
    dest = np.zeros_like(memory)
    lz4.decode(lz4.encode(batch, destination=mirror), dest)
    assert not mirror.holds_pages and len(mirror) == 0
    assert batch._indices is None  # page_indices never asked for
    np.testing.assert_array_equal(dest, memory)
    # once the mirror holds a page, a batch not recorded must make it forget that page
    mirror.recording = True
    lz4.encode(Batch(memory, [(0, 1)]), destination=mirror)
    mirror.recording = False
    assert mirror.holds_pages and len(mirror) == 1
    lz4.encode(Batch(memory, [(0, 2)]), destination=mirror)
    assert len(mirror) == 0


@pytest.mark.parametrize("name", DELTA_CODECS)
def test_config_round_trips_and_names_the_fall_back(name):
    codec = get_codec(name, fallback={"name": "zstd", "level": 1})
    config = codec.get_config()
    assert config["fallback"] == {"name": "zstd", "level": 1}
    assert get_codec(config) == codec


def test_bad_parameters_say_what_to_do():
    with pytest.raises(ValueError, match="multiple of 10"):
        get_codec("dsa-delta", max_record_size=95)
    with pytest.raises(ValueError, match="delta codec"):
        get_codec("xbzrle", fallback="dsa-delta")
    with pytest.raises(ValueError, match="holds no"):
        DestinationMirror(PAGE, 100)


def test_a_mirror_budget_of_a_numpy_integer_holds_its_pages():
    """It was refused as holding no page."""
    assert DestinationMirror(PAGE, np.int64(4 * PAGE)).n_slots == 4


@pytest.mark.parametrize(
    ("indices", "pages", "problem"),
    [
        (
            np.array([0.5, 1.5]),
            np.ones((2, PAGE), np.uint8),
            "a mirror's page numbers are 2 whole numbers, one per page, got a float64 array "
            "of shape (2,)",
        ),
        (
            np.array([0]),
            np.ones((2, PAGE), np.uint8),
            "a mirror's page numbers are 2 whole numbers, one per page, got a int64 array "
            "of shape (1,)",
        ),
        (
            np.array([0, 1]),
            np.full((2, PAGE), 300),
            f"a mirror's pages are a (pages, page_size) uint8 array, got a int64 array of "
            f"shape (2, {PAGE})",
        ),
        (
            np.array([0]),
            np.ones(PAGE, np.uint8),
            f"a mirror's pages are a (pages, page_size) uint8 array, got a uint8 array of "
            f"shape ({PAGE},)",
        ),
    ],
)
def test_a_mirror_holding_pages_refuses_what_it_would_hold_cast(indices, pages, problem):
    """Page numbers 0.5 and 1.5 held pages 0 and 1, and contents of 300 held 44: the
    mirror is what every delta is made against."""
    with pytest.raises(ValueError) as info:
        DestinationMirror.holding(indices, pages)
    assert str(info.value) == problem


def test_small_max_record_size_sends_busy_pages_raw():
    memory = np.ones((1, PAGE), np.uint8)
    mirror = DestinationMirror(PAGE)
    codec = get_codec("dsa-delta", max_record_size=80)
    codec.encode(Batch(memory, [(0, 1)]), destination=mirror)
    memory[0, :72] = 9  # nine words: one entry more than the maximum
    assert codec.encode(Batch(memory, [(0, 1)]), destination=mirror).modes[0] == PageMode.RAW
    memory[0, 40] = 3  # one word against the held (raw-sent) version
    assert codec.encode(Batch(memory, [(0, 1)]), destination=mirror).modes[0] == DELTA


def test_codecs_listing_says_why_there_is_no_hardware():
    statuses = {s.name: s for s in plugin_statuses()}
    dsa = statuses["dsa-delta"]
    assert dsa.available and dsa.kind == "delta"
    assert dsa.path == "software"
    assert "MIGCODEC_DML_SHIM" in dsa.reason and "/dev/dsa/wq" in dsa.reason
    assert statuses["xbzrle"].available


def test_shim_env_names_the_library_it_tried(monkeypatch):
    monkeypatch.setenv("MIGCODEC_DML_SHIM", "/nonexistent/libshim.so")
    reason = get_codec("dsa-delta").probe().reason
    assert "/nonexistent/libshim.so" in reason


@pytest.mark.parametrize(
    ("variable", "codec"),
    [
        ("MIGCODEC_DML_SHIM", "dsa-delta"),
        ("MIGCODEC_QPL_LIBRARY", "iaa"),
        ("MIGCODEC_QATZIP_LIBRARY", "qat"),
    ],
)
def test_a_library_variable_naming_a_named_pipe_is_refused_not_waited_on(
    tmp_path, monkeypatch, variable, codec
):
    """The loader's open of a named pipe waits for a writer: `migcodec codecs` hung with
    one of these pointed at one. Probed in a thread, so that a wait fails this test."""
    import os
    import threading

    from migcodec.codecs.vendor import detect

    fifo = tmp_path / "lib.so"
    os.mkfifo(fifo)
    monkeypatch.setenv(variable, str(fifo))
    monkeypatch.setattr(detect, "_cache", {})
    reasons = []
    prober = threading.Thread(target=lambda: reasons.append(get_codec(codec).probe().reason))
    prober.daemon = True
    prober.start()
    prober.join(30)
    assert not prober.is_alive(), f"probing {codec} waited on the named pipe"
    assert f"{fifo} is a named pipe (FIFO), not a shared library" in reasons[0]


@pytest.mark.parametrize("name", DELTA_CODECS)
def test_two_engines_share_one_mirror(name):
    rng = np.random.default_rng(9)
    memory = rng.integers(0, 256, (256, PAGE), dtype=np.uint8) // 8
    dest = np.zeros_like(memory)
    mirror = DestinationMirror(PAGE, 256 * PAGE)
    codec, dest_codec = get_codec(name), get_codec(name)
    modes = []
    engines = CodecEngines(codec, engines=2, depth=4, destination=mirror)  # 8 requests
    try:
        for _round in range(4):
            for first in range(0, 256, 32):  # disjoint batches: one in flight per page
                engines.submit(Batch(memory, [(first, 16), (first + 16, 16)]), timeout=30)
            for request in engines.completions(timeout=30):
                with request:
                    dest_codec.decode(request.result(), dest)
                    modes.append(request.result().modes.copy())
            np.testing.assert_array_equal(dest, memory)
            for page in rng.integers(0, 256, 40):
                _mutate(memory[page], "words", rng)
    finally:
        engines.close()
    assert len(mirror) == 256
    assert (np.concatenate(modes) == DELTA).any()


def test_bench_treats_each_repeat_as_a_new_stream():
    from migcodec.bench import bench_codec

    memory = np.random.default_rng(10).integers(0, 4, (128, PAGE), dtype=np.uint8)
    result = bench_codec(get_codec("dsa-delta"), memory, repeats=2)
    assert result.verified and result.ratio > 1


@pytest.mark.parametrize("size", [10, 20, 70, 95, 85, 0, -80, 4294967300, True, 80.0, "80"])
def test_dsa_refuses_record_sizes_dml_refuses(size):
    # DML's descriptor check: a multiple of 10 and at least 80, else status 17
    message = (
        "max_record_size must be a multiple of 10 bytes from 80 to 4294967290 (DML refuses "
        f"other sizes with status 17, DML_STATUS_DELTA_RECORD_SIZE_ERROR), got {size!r}"
    )
    with pytest.raises(ValueError) as info:
        get_codec("dsa-delta", max_record_size=size)
    assert str(info.value) == message


@pytest.mark.parametrize("size", [80, 90, 4090, 4294967290])
def test_dsa_accepts_record_sizes_dml_accepts(size):
    assert get_codec("dsa-delta", max_record_size=size).max_record_size == size


@pytest.mark.parametrize("name", ["xbzrle", "dsa-delta"])
@pytest.mark.parametrize("fallback", [1, 2.5, ["lz4"], None])
def test_a_fallback_that_names_no_codec_is_refused_by_name(name, fallback):
    """A number reached the registry's dict() and failed as "'int' object is not a
    mapping", naming neither the codec nor the parameter."""
    with pytest.raises(ValueError) as info:
        get_codec({"name": name, "fallback": fallback})
    assert str(info.value) == (
        f"codec {name!r}: fallback must name a codec (e.g. lz4) or be a codec config, "
        f"got {fallback!r}"
    )
