"""Trace round trips, random access, and clear errors for damaged traces."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migcodec.datasets import (
    TraceCorrupt,
    TraceReader,
    TraceWriter,
    Window,
    Workload,
    generate_pages,
    get_workload,
)
from migcodec.datasets.trace import (
    TraceExists,
    TraceIncomplete,
    TraceNotFound,
    TraceVersionError,
    TraceWriteInterrupted,
)
from migcodec.hashing import seal
from migcodec.interrupts import Terminated
from tests.damage import flipped_bits
from tests.datasets import trace_forge

PS = 512  # small pages keep hypothesis fast; the format takes any multiple of 8


def _assert_same(a: Window, b: Window) -> None:
    assert a.index == b.index and a.phase == b.phase and a.meta == b.meta
    assert a.duration_s == b.duration_s
    np.testing.assert_array_equal(a.page_indices, b.page_indices)
    assert b.page_indices.dtype == np.int64
    np.testing.assert_array_equal(a.pages, b.pages)
    if a.previous is None:
        assert b.previous is None
    else:
        np.testing.assert_array_equal(a.previous, b.previous)


@st.composite
def windows(draw: st.DrawFn) -> list[Window]:
    out = []
    for index in range(draw(st.integers(0, 4))):
        n = draw(st.integers(0, 6))
        pages_idx = sorted(draw(st.sets(st.integers(0, 999), min_size=n, max_size=n)))
        kind = draw(st.sampled_from(["zero", "random", "text", "ones", "mixed"]))
        seed = draw(st.integers(0, 2**16))
        pages = generate_pages(kind, n, seed, PS)
        previous = None
        if draw(st.booleans()):  # previous: unrelated, or the pages with a few words changed
            if draw(st.booleans()):
                previous = generate_pages("mixed", n, seed + 1, PS)
            else:
                previous = pages.copy()
                if n:
                    previous.view("<u8")[:, draw(st.integers(0, PS // 8 - 1))] ^= 1
        out.append(
            Window(
                index=index,
                page_indices=np.array(pages_idx, dtype=np.int64),
                pages=pages,
                previous=previous,
                phase=draw(st.sampled_from([None, "boot", "ünïcode"])),
                duration_s=draw(st.sampled_from([None, 0.1, 1e-9])),
                meta=draw(st.dictionaries(st.sampled_from("abc"), st.integers(-5, 5))),
            )
        )
    return out


@given(windows(), st.sampled_from(["zstd", "lz4", "raw"]), st.sampled_from([1, 300, 1 << 20]))
def test_windows_round_trip_through_a_trace(ws: list[Window], codec: str, chunk: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        with TraceWriter(
            d, memory_pages=1000, page_size=PS, codec=codec, chunk_bytes=chunk
        ) as writer:
            writer.write_all(ws)
        reader = TraceReader(d)
        assert len(reader) == len(ws)
        back = list(reader)
        assert len(back) == len(ws)
        for a, b in zip(ws, back, strict=True):
            _assert_same(a, b)
        for i in reversed(range(len(ws))):  # random access, in any order
            _assert_same(ws[i], reader[i])
        reader.close()


@pytest.fixture
def trace(tmp_path: Path) -> tuple[Path, list[Window]]:
    spec = get_workload("phases", n_pages=512, n_windows=8, seed=3)
    path = tmp_path / "t"
    ws = list(Workload(spec))
    with TraceWriter(path, memory_pages=512, source="test", chunk_bytes=1 << 20) as writer:
        writer.write_all(ws)
    return path, ws


def test_info_describes_the_trace_without_reading_windows(trace) -> None:
    path, ws = trace
    info = TraceReader(path).info()
    assert info.windows == 8 and info.memory_pages == 512 and info.page_size == 4096
    assert info.complete and info.source == "test" and info.codec["name"] == "zstd"
    assert [p.name for p in info.phases] == ["boot", "memcached", "counters", "random"]
    assert sum(p.windows for p in info.phases) == 8
    assert info.totals["pages"] == sum(w.n_pages for w in ws)
    assert info.ratio > 1


def test_a_truncated_chunk_names_the_first_missing_window(trace) -> None:
    path, ws = trace
    chunk = path / "chunk-000000.mct"
    data = chunk.read_bytes()
    chunk.write_bytes(data[: len(data) - 100])
    reader = TraceReader(path)
    for i in range(len(ws) - 1):
        _assert_same(ws[i], reader[i])  # earlier windows are intact
    with pytest.raises(TraceCorrupt, match=f"window {len(ws) - 1}: .*truncated") as err:
        list(reader)
    assert err.value.window == len(ws) - 1


@pytest.mark.parametrize("where", ["header", "body"])
def test_a_flipped_byte_is_caught_by_the_checksum(trace, where: str) -> None:
    path, _ = trace
    reader = TraceReader(path)
    entry = reader._index[5]
    offset = int(entry["offset"]) + (10 if where == "header" else int(entry["length"]) // 2)
    chunk = path / "chunk-000000.mct"
    data = bytearray(chunk.read_bytes())
    data[offset] ^= 0x40
    chunk.write_bytes(bytes(data))
    reader = TraceReader(path)
    reader[4]
    with pytest.raises(TraceCorrupt) as err:
        reader[5]
    at = f"chunk-000000.mct offset {int(entry['offset'])}"
    damaged = {
        "header": f"record header at {at} fails its checksum; the chunk file is damaged or "
        "belongs to another trace",
        "body": f"record body fails its checksum; the chunk file is damaged (record at {at})",
    }
    assert str(err.value) == (
        f"window 5: {damaged[where]}: restore the trace from a copy, or re-create or re-capture it"
    )


def test_a_damaged_index_or_manifest_is_reported(trace) -> None:
    path, _ = trace
    index = path / "windows.idx"
    index.write_bytes(index.read_bytes()[:-7])
    with pytest.raises(TraceCorrupt, match="truncated"):
        TraceReader(path)
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(TraceCorrupt) as err:
        TraceReader(path)
    assert str(err.value) == (
        f"{path / 'manifest.json'} is not valid JSON (Expecting property name enclosed in "
        "double quotes: line 1 column 2 (char 1)); the trace's manifest is damaged: restore "
        "the trace from a copy, or re-create or re-capture it"
    )


def test_other_versions_and_missing_traces_are_refused(trace, tmp_path: Path) -> None:
    path, _ = trace
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["version"] = 99
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(TraceVersionError, match="version 99"):
        TraceReader(path)
    with pytest.raises(TraceNotFound, match="nothing does not exist; give a trace directory"):
        TraceReader(tmp_path / "nothing")
    with pytest.raises(TraceNotFound, match=r"not a trace: manifest\.json is missing"):
        TraceReader(tmp_path)


def test_an_unclosed_trace_is_readable_only_on_request(tmp_path: Path) -> None:
    spec = get_workload("flip", n_pages=256, n_windows=4)
    ws = list(Workload(spec))
    writer = TraceWriter(tmp_path / "t", memory_pages=256)
    for w in ws[:3]:
        writer.write(w)  # no close(): the writer "crashed"
    with pytest.raises(TraceCorrupt, match="not closed"):
        TraceReader(tmp_path / "t")
    reader = TraceReader(tmp_path / "t", allow_incomplete=True)
    assert len(reader) == 3
    _assert_same(ws[2], reader[2])
    # counted from the index: the manifest, written at open, said 0 pages and 0 bytes
    pages = sum(w.n_pages for w in ws[:3])
    assert reader.info().totals == {
        "pages": pages,
        "raw_bytes": pages * 4096,
        "stored_bytes": writer.stored_bytes,
        "previous_windows": None,
    }


def test_a_file_named_for_a_trace_says_to_give_the_directory(trace, tmp_path) -> None:
    """A trace's manifest, or any file, named for the trace was "not a trace: manifest.json
    is missing", which said nothing of what to give instead."""
    path, _ = trace
    with pytest.raises(TraceNotFound) as info:
        TraceReader(path / "manifest.json")
    assert str(info.value) == (
        f"{path / 'manifest.json'} is a file of the trace in {path}; give the trace's "
        f"directory, {path}"
    )
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(TraceNotFound) as info:
        TraceReader(tmp_path / "notes.txt")
    assert str(info.value) == (
        f"{tmp_path / 'notes.txt'} is not a directory; give a trace directory written by "
        "`migcodec trace capture` or `migcodec trace synth`"
    )


@pytest.mark.parametrize("close", [True, False])
def test_a_trace_without_its_index_is_named_damaged_for_that(tmp_path, close) -> None:
    """It read as an index of 0 windows against the manifest's count."""
    writer = TraceWriter(tmp_path / "t", memory_pages=4, page_size=PS)
    writer.write(Window(0, np.arange(2), generate_pages("text", 2, 0, PS)))
    if close:
        writer.close()
    (tmp_path / "t" / "windows.idx").unlink()
    with pytest.raises(TraceCorrupt) as err:
        TraceReader(tmp_path / "t", allow_incomplete=True)
    index = tmp_path / "t" / "windows.idx"
    assert str(err.value) == f"{index} is missing; the trace is damaged (re-create it)"


def test_an_unclosed_trace_with_more_windows_than_pages_reads_every_window(tmp_path) -> None:
    """Windows dirty the same pages again: an unclosed trace's index was read only up to
    one entry per page of memory (and one), and 10 windows over 4 pages read as damage."""
    windows = [Window(i, np.arange(2), generate_pages("text", 2, i, PS)) for i in range(10)]
    writer = TraceWriter(tmp_path / "t", memory_pages=4, page_size=PS)
    for w in windows:
        writer.write(w)  # no close(): the writer "crashed"
    reader = TraceReader(tmp_path / "t", allow_incomplete=True)
    assert len(reader) == 10
    for written, read in zip(windows, reader, strict=True):
        _assert_same(written, read)


def test_an_unclosed_trace_whose_memory_grew_reads_the_windows_past_its_first_size(
    tmp_path,
) -> None:
    """A capture grows the memory as the process maps more; a writer killed after a window
    past the size the manifest had at open left every window reading as damage ("does not
    follow the entries before it"): the manifest is written again as the memory grows."""
    writer = TraceWriter(tmp_path / "t", memory_pages=16, page_size=PS)
    windows = []
    for i in range(3):
        writer.set_memory_pages(256)
        windows.append(Window(i, np.arange(100 + i, 120 + i), generate_pages("text", 20, i, PS)))
        writer.write(windows[-1])  # no close(): the writer was killed
    reader = TraceReader(tmp_path / "t", allow_incomplete=True)
    assert reader.info().memory_pages == 256
    for written, read in zip(windows, reader, strict=True):
        _assert_same(written, read)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (RuntimeError("the source failed"), "error: RuntimeError: the source failed"),
        (KeyboardInterrupt(), "interrupted (Ctrl-C)"),
        (Terminated(), "terminated (SIGTERM)"),
    ],
)
def test_a_write_left_by_an_exception_is_an_unclosed_trace_that_says_why(
    tmp_path: Path, error: BaseException, reason: str
) -> None:
    """An interrupt or a failed source mid-way leaves part of what was asked for: it was
    sealed as complete, and read as the whole trace without a word."""
    spec = get_workload("flip", n_pages=256, n_windows=4)
    ws = list(Workload(spec))
    with pytest.raises(type(error)), TraceWriter(tmp_path / "t", memory_pages=256) as writer:
        writer.write(ws[0])
        writer.write(ws[1])
        raise error
    with pytest.raises(TraceCorrupt) as caught:
        TraceReader(tmp_path / "t")
    assert str(caught.value) == (
        f"{tmp_path / 't'} was not closed by its writer (2 windows indexed): the trace is "
        "incomplete; write it again"
    )
    reader = TraceReader(tmp_path / "t", allow_incomplete=True)
    assert len(reader) == 2
    _assert_same(ws[1], reader[1])
    info = reader.info()
    assert not info.complete
    assert info.end_reason == reason


def test_a_second_interrupt_while_the_trace_closes_still_records_why_it_ended(
    tmp_path: Path, monkeypatch
) -> None:
    """``timeout`` sends its SIGTERM to the command and again to its process group: the
    second interrupted the encoders' shutdown, and the manifest stayed the one written at
    open, with no window counted and no reason."""
    spec = get_workload("flip", n_pages=256, n_windows=2)
    writer = TraceWriter(tmp_path / "t", memory_pages=256, workers=2)
    shutdown = writer._pool.shutdown

    def interrupted_shutdown(*args, **kwargs) -> None:
        signal.raise_signal(signal.SIGINT)
        shutdown(*args, **kwargs)

    monkeypatch.setattr(writer._pool, "shutdown", interrupted_shutdown)
    with pytest.raises(KeyboardInterrupt) as raised, writer:
        writer.write_all(Workload(spec))
        raise Terminated()
    assert type(raised.value) is KeyboardInterrupt  # the second, delivered after the close
    info = TraceReader(tmp_path / "t", allow_incomplete=True).info()
    assert (info.complete, info.windows, info.end_reason) == (False, 2, "terminated (SIGTERM)")


def test_writer_refuses_out_of_order_windows_and_existing_traces(trace) -> None:
    path, ws = trace
    with pytest.raises(TraceExists):
        TraceWriter(path, memory_pages=512)
    with TraceWriter(path, memory_pages=512, overwrite=True) as writer:
        with pytest.raises(ValueError, match="expected window 0"):
            writer.write(ws[1])
        writer.write(ws[0])
    assert len(TraceReader(path)) == 1


def test_a_manifest_larger_than_a_reader_opens_is_refused_by_the_writer(tmp_path: Path) -> None:
    """The reader refuses a manifest past MANIFEST_LIMIT as damage: a QEMU stream that
    announced 70,000 RAM blocks was imported into a trace no reader would open. The
    writer refuses such metadata before it creates anything, and at close."""
    limit = 16 << 20
    with pytest.raises(ValueError) as caught:
        TraceWriter(tmp_path / "t", memory_pages=16, meta={"blocks": ["x" * 1000] * 17_000})
    text = str(caught.value)
    assert text.startswith(f"cannot write trace {tmp_path / 't'}: its manifest.json would be ")
    assert text.endswith(
        f" bytes, more than a trace's manifest can be ({limit}); keep its metadata smaller"
    )
    assert not (tmp_path / "t").exists()
    writer = TraceWriter(tmp_path / "u", memory_pages=16)
    writer.write(Window(0, np.array([0]), np.full((1, 4096), 7, np.uint8)))
    writer.meta["blocks"] = ["x" * 1000] * 17_000  # grown since open
    with pytest.raises(ValueError, match=r"more than a trace's manifest can be \(16777216\)"):
        writer.close()
    with pytest.raises(TraceIncomplete, match="was not closed by its writer"):
        TraceReader(tmp_path / "u")  # the manifest written at open stays: readable, incomplete
    assert len(TraceReader(tmp_path / "u", allow_incomplete=True)) == 1


def test_windows_numbered_with_numpy_integers_make_a_trace_that_closes(tmp_path: Path) -> None:
    """Numbered with ``np.arange``, every window was written and the manifest refused at
    close (its phase's first window an int64): the whole trace was left unclosed."""
    pages = np.full((2, 4096), 7, np.uint8)
    with TraceWriter(tmp_path / "t", memory_pages=16) as writer:
        for i in np.arange(3):
            writer.write(Window(i, np.array([0, 1]), pages, phase="p" if i < 2 else "q"))
    reader = TraceReader(tmp_path / "t")
    assert [w.index for w in reader] == [0, 1, 2]
    assert [(p.name, p.first, p.windows) for p in reader.info().phases] == [
        ("p", 0, 2),
        ("q", 2, 1),
    ]


@pytest.mark.parametrize("index", [0.0, True, "0", None])
def test_a_window_index_that_is_no_whole_number_is_named(tmp_path: Path, index) -> None:
    with TraceWriter(tmp_path / "t", memory_pages=16) as writer:
        with pytest.raises(TypeError) as info:
            writer.write(Window(index, np.array([0]), np.zeros((1, 4096), np.uint8)))
        writer.write(Window(0, np.array([0]), np.zeros((1, 4096), np.uint8)))
    assert str(info.value) == (
        f"a window's index must be a whole number (0, 1, 2, ...), got {index!r} "
        f"({type(index).__name__}); number windows with ints"
    )
    assert len(TraceReader(tmp_path / "t")) == 1


def test_chunks_rotate_and_stream(tmp_path: Path) -> None:
    spec = get_workload("random", n_pages=256, n_windows=6)
    ws = list(Workload(spec))
    with TraceWriter(tmp_path, memory_pages=256, chunk_bytes=64 << 10) as writer:
        writer.write_all(ws)
    assert len(list(tmp_path.glob("chunk-*.mct"))) > 1
    reader = TraceReader(tmp_path)
    tail = list(reader.windows(2))
    assert [w.index for w in tail] == [2, 3, 4, 5]
    for w in tail:
        _assert_same(ws[w.index], w)
    assert [w.index for w in reader.windows(2, 4)] == [2, 3]


def test_a_window_larger_than_any_codec_batch_round_trips(tmp_path: Path) -> None:
    n = 5000  # more pages than one codec request takes, none of them zero
    pages = generate_pages("ones", n, 1, PS)
    window = Window(0, np.arange(n, dtype=np.int64) * 2, pages, previous=pages[::-1].copy())
    with TraceWriter(tmp_path, memory_pages=2 * n, page_size=PS) as writer:
        writer.write(window)
    _assert_same(window, TraceReader(tmp_path)[0])


@pytest.fixture(scope="module")
def small_trace(tmp_path_factory) -> tuple[bytes, Path, list[Window]]:
    path = tmp_path_factory.mktemp("small")
    ws = list(Workload(get_workload("flip", n_pages=64, n_windows=4, pages_per_window=6)))
    with TraceWriter(path, memory_pages=64) as writer:
        writer.write_all(ws)
    return (path / "chunk-000000.mct").read_bytes(), path, ws


@given(st.data())
def test_any_damage_to_a_chunk_is_an_error_naming_its_window(small_trace, data) -> None:
    original, path, ws = small_trace
    reader = TraceReader(path)
    bounds = [(int(e["offset"]), int(e["offset"] + e["length"])) for e in reader._index]
    damaged = bytearray(original)
    if data.draw(st.booleans(), label="truncate"):
        cut = data.draw(st.integers(0, len(original) - 1), label="cut")
        damaged = damaged[:cut]
        hit = next(i for i, (lo, hi) in enumerate(bounds) if hi > cut)
    else:
        pos = data.draw(st.integers(0, len(original) - 1), label="pos")
        damaged[pos] ^= 1 << data.draw(st.integers(0, 7), label="bit")
        hit = next(i for i, (lo, hi) in enumerate(bounds) if lo <= pos < hi)
    with tempfile.TemporaryDirectory() as d:
        copy = Path(d)
        for name in ("manifest.json", "windows.idx"):
            (copy / name).write_bytes((path / name).read_bytes())
        (copy / "chunk-000000.mct").write_bytes(bytes(damaged))
        reader = TraceReader(copy)
        for i in range(hit):
            _assert_same(ws[i], reader[i])
        with pytest.raises(TraceCorrupt) as err:
            reader[hit]
        assert err.value.window == hit and f"window {hit}" in str(err.value)
        reader.close()


def _forge_page_byte(path: Path, offset_in_pages: int) -> None:
    """Change one stored page byte of window 0 and recompute both record checksums, as a
    codec that decodes to other bytes would (the checksums cover what is stored, not what it
    decodes to)."""
    from migcodec.datasets.trace.format import HEADER_CHECKSUM, RECORD, SECTION
    from migcodec.hashing import checksum

    chunk = path / "chunk-000000.mct"
    raw = bytearray(chunk.read_bytes())
    fields = list(RECORD.unpack_from(raw, 0))
    meta_len, len_idx = fields[6], fields[7]
    body = RECORD.size + HEADER_CHECKSUM.size
    section = body + meta_len + len_idx
    n_pages = -(-SECTION.unpack_from(raw, section)[0] // fields[5])
    payload = section + SECTION.size + n_pages + 8  # one batch: one u64 length
    raw[payload + offset_in_pages] ^= 0x01
    fields[10] = checksum([bytes(raw[body : body + sum(fields[6:10])])])
    RECORD.pack_into(raw, 0, *fields)
    seed = trace_forge.seed(path)
    HEADER_CHECKSUM.pack_into(raw, RECORD.size, checksum([bytes(raw[: RECORD.size])], seed))
    chunk.write_bytes(bytes(raw))


def test_pages_that_decode_to_other_bytes_than_written_are_an_error(tmp_path: Path) -> None:
    pages = generate_pages("random", 3, 0, PS)  # stored raw: a flipped payload byte decodes
    with TraceWriter(tmp_path, memory_pages=8, page_size=PS, codec="raw") as writer:
        writer.write(Window(0, np.array([1, 2, 5]), pages))
    _forge_page_byte(tmp_path, PS + 7)
    with pytest.raises(
        TraceCorrupt,
        match=r"window 0: decoded pages differ from the pages written \(content digest",
    ):
        TraceReader(tmp_path)[0]


def test_trace_info_refuses_a_trace_whose_pages_decode_differently(tmp_path: Path, capsys):
    from migcodec.cli import main

    pages = generate_pages("random", 3, 0, PS)
    with TraceWriter(tmp_path, memory_pages=8, page_size=PS, codec="raw") as writer:
        writer.write(Window(0, np.array([1, 2, 5]), pages))
    _forge_page_byte(tmp_path, 3)
    assert main(["trace", "info", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "content digest mismatch" in err and err.count("\n") == 1


def test_delta_codecs_are_refused_as_trace_codecs(tmp_path: Path) -> None:
    from migcodec.datasets.trace import UnsuitableCodec

    for name in ("xbzrle", "dsa-delta"):
        with pytest.raises(UnsuitableCodec, match=f"codec '{name}' encodes pages against"):
            TraceWriter(tmp_path / name, memory_pages=8, codec=name)
        assert not (tmp_path / name).exists()  # refused before anything is written


def test_a_sampled_window_keeps_its_true_size(tmp_path: Path) -> None:
    pages = generate_pages("text", 4, 0, PS)
    with TraceWriter(tmp_path, memory_pages=64, page_size=PS) as writer:
        writer.write(Window(0, np.array([3, 9, 20, 41]), pages, dirty_pages=40))
        writer.write(Window(1, np.array([3]), pages[:1]))
    sampled, whole = TraceReader(tmp_path)
    assert sampled.dirty_pages == 40 and sampled.scale == 10.0
    assert whole.dirty_pages is None and whole.scale == 1.0
    with (
        pytest.raises(ValueError, match="dirty_pages 2 must be an integer of at least the 4"),
        TraceWriter(tmp_path / "bad", memory_pages=64, page_size=PS) as writer,
    ):
        writer.write(Window(0, np.array([3, 9, 20, 41]), pages, dirty_pages=2))


# -- forged and damaged traces: every failure a TraceCorrupt naming the field or window --
def _rewrite_manifest(path: Path, change, sealed: bool = True) -> Path:
    """The manifest with ``change`` applied; ``sealed``: as a forger would write it, with
    the checksum of the new content (xxh3 is no signature), else with the old checksum,
    as damage leaves it."""
    manifest = json.loads((path / "manifest.json").read_text())
    change(manifest)
    if sealed:
        manifest = seal({k: v for k, v in manifest.items() if k != "checksum"})
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path / "manifest.json"


def _set(*keys, value=None, delete=False):
    def change(doc):
        for key in keys[:-1]:
            doc = doc[key]
        if delete:
            del doc[keys[-1]]
        else:
            doc[keys[-1]] = value

    return change


_MANIFEST_DAMAGE = [
    (_set("page_size", delete=True), "field 'page_size' is missing"),
    (_set("page_size", value="4096"), "field 'page_size' is a string, not an integer"),
    (_set("page_size", value=0), "field 'page_size' is 0, not a multiple of 8 from 8 to 2097152"),
    (_set("page_size", value=2**32 - 1),
     "field 'page_size' is 4294967295, not a multiple of 8 from 8 to 2097152"),
    (_set("page_size", value=True), "field 'page_size' is true or false, not an integer"),
    (_set("memory_pages", value=-1),
     "field 'memory_pages' is -1, not an integer from 0 to 1099511627776"),
    (_set("windows", value=None), "field 'windows' is null, not an integer"),
    (_set("window_s", value="fast"), "field 'window_s' is a string, not a number or null"),
    # past a float's range: the check raised OverflowError, a traceback in trace info
    (_set("window_s", value=10**400),
     "field 'window_s' is an integer of 401 digits, not a finite number of seconds, at least 0"),
    (_set("memory_pages", value=10**20),
     "field 'memory_pages' is 1e+20, not an integer from 0 to 1099511627776"),
    (_set("source", value=5), "field 'source' is an integer, not a string"),
    (_set("complete", value="yes"), "field 'complete' is a string, not true or false"),
    (_set("codec", value="zstd"), "field 'codec' is a string, not an object"),
    (_set("codec", "name", delete=True), "field 'codec.name' is missing"),
    (_set("phases", value={}), "field 'phases' is an object, not a list"),
    (_set("phases", value=[{"name": "a", "first": 0, "windows": 1}, {"name": "b"}]),
     "field 'phases[1].first' is missing"),
    (_set("phases", value=[["boot", 0, 8]]), "phases[0] is a list, not an object"),
    (_set("totals", delete=True), "field 'totals' is missing"),
    (_set("totals", "stored_bytes", value=-5),
     "field 'totals.stored_bytes' is -5, not an integer from 0 to 9223372036854775808"),
    (_set("meta", value=[]), "field 'meta' is a list, not an object"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "problem"), _MANIFEST_DAMAGE)
def test_a_manifest_field_of_the_wrong_type_or_range_is_named(trace, change, problem) -> None:
    path, _ = trace
    manifest = _rewrite_manifest(path, change)
    with pytest.raises(TraceCorrupt) as err:
        TraceReader(path)
    assert str(err.value) == f"{manifest}: {problem}; the trace is damaged (re-create it)"


def test_a_manifest_that_gives_a_key_twice_is_refused(trace) -> None:
    """Its checksum covers what ``json.loads`` kept (the last of the two): a key added above
    the real one was read without a word, as half of what the file says."""
    path, _ = trace
    manifest = path / "manifest.json"
    manifest.write_text(manifest.read_text().replace("{", '{"memory_pages": 512, ', 1))
    with pytest.raises(TraceCorrupt) as err:
        TraceReader(path)
    assert str(err.value).startswith(
        f"{manifest} is not valid JSON (its JSON gives the key 'memory_pages' more than once)"
    )


def test_a_manifest_changed_since_it_was_written_is_refused(trace) -> None:
    """Damage leaves the old checksum: any changed value or key is refused, where the
    schema alone accepts a value of the right kind (a page count, a window's length)."""
    path, _ = trace
    for change in (
        _set("memory_pages", value=511),
        _set("window_s", value=1.0),
        _set("totals", "stored_bytes", value=1),
        _set("meta", value={"x": 1}),
        _set("source", value="elsewhere"),
    ):
        manifest = _rewrite_manifest(path, change, sealed=False)
        with pytest.raises(TraceCorrupt) as err:
            TraceReader(path)
        assert str(err.value).startswith(
            f"{manifest}: its content does not match its checksum ("
        ) and str(err.value).endswith("did not seal it (re-create the trace)")
        _rewrite_manifest(path, lambda m: None)  # sealed again, as written


def test_a_manifest_without_its_checksum_is_refused(trace) -> None:
    path, _ = trace
    manifest = _rewrite_manifest(path, _set("checksum", delete=True), sealed=False)
    with pytest.raises(TraceCorrupt, match="it has no 'checksum' of its content"):
        TraceReader(path)
    assert manifest.exists()


def test_every_flipped_bit_of_a_manifest_is_an_error_or_changes_nothing(trace) -> None:
    path, _ = trace
    file = path / "manifest.json"
    original = file.read_bytes()
    info = TraceReader(path).info()
    refused = 0
    for offset, damaged in flipped_bits(original, 2):  # every other byte
        file.write_bytes(damaged)
        try:
            again = TraceReader(path).info()
        except (TraceCorrupt, TraceVersionError):
            refused += 1
            continue
        assert again == info, f"bit {offset % 8} of byte {offset} read back a changed manifest"
    assert refused > len(original) // 2 // 2


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (_set("totals", "pages", value=7), "field 'totals.pages' is 7 but .* lists 320"),
        (_set("totals", "stored_bytes", value=3), "field 'totals.stored_bytes' is 3 but"),
        (_set("phases", value=[]), "field 'phases' does not cover the 8 windows in order"),
    ],
)
def test_a_forged_manifest_must_count_what_its_index_lists(trace, change, problem) -> None:
    path, _ = trace
    _rewrite_manifest(path, change)
    with pytest.raises(TraceCorrupt, match=problem):
        TraceReader(path)


def test_a_forged_manifest_smaller_than_the_pages_its_windows_name_is_refused(tmp_path) -> None:
    pages = generate_pages("text", 2, 0, PS)
    with TraceWriter(tmp_path, memory_pages=16, page_size=PS) as writer:
        writer.write(Window(0, np.array([2, 3]), pages))
    _rewrite_manifest(tmp_path, _set("memory_pages", value=3))
    with pytest.raises(
        TraceCorrupt, match=r"window 0: .* names pages 2 to 3; the trace's memory has 3"
    ):
        TraceReader(tmp_path)[0]


@pytest.mark.parametrize(
    ("codec", "why"),
    [
        ({"name": "zstd", "level": 99}, "zstd level must be a non-zero integer"),
        ({"name": "zstd", "speed": 3}, "bad config for codec 'zstd'"),
    ],
)
def test_a_manifest_codec_with_a_bad_parameter_is_named(trace, codec, why) -> None:
    path, _ = trace
    manifest = _rewrite_manifest(path, _set("codec", value=codec))
    with pytest.raises(TraceCorrupt) as err:
        TraceReader(path)
    message = str(err.value)
    assert message.startswith(f"{manifest}: field 'codec' is not a codec this migcodec can ")
    assert why in message and message.endswith("; the trace is damaged (re-create it)")


@pytest.mark.parametrize(
    ("page_size", "problem"),
    [(0, "has 0-byte"), (2**32 - 1, "has 4294967295-byte"), (512, "has 512-byte")],
)
def test_a_forged_record_page_size_is_refused_before_decoding(trace, page_size, problem) -> None:
    path, _ = trace
    trace_forge.forge_header(path, 3, page_size=page_size)
    reader = TraceReader(path)
    reader[2]
    with pytest.raises(TraceCorrupt) as err:
        reader[3]
    assert err.value.window == 3
    assert str(err.value) == (
        f"window 3: record at chunk-000000.mct offset {int(reader._index[3]['offset'])} "
        f"{problem} pages; the trace's pages are 4096 bytes"
    )


def test_a_forged_record_page_count_beyond_memory_is_refused(trace) -> None:
    path, _ = trace
    trace_forge.forge_header(path, 1, pages=2**40)
    with pytest.raises(TraceCorrupt, match=r"^window 1: record at .* holds 1099511627776 pages"):
        TraceReader(path)[1]


@pytest.mark.parametrize(
    ("meta", "problem"),
    [
        (b"[]", "record metadata is a list, not an object"),
        (b'{"phase":5}', "record field 'metadata.phase' is an integer, not a string or null"),
        (b'{"duration_s":"1s"}', "field 'metadata.duration_s' is a string, not a number"),
        (b'{"phase":"a","phase":"b"}', "its JSON gives the key 'phase' more than once"),
        (b'{"meta":[1]}', "record field 'metadata.meta' is a list, not an object or null"),
        (b'{"dirty_pages":1.5}', "record field 'metadata.dirty_pages' is a number"),
        # more pages dirtied than memory has: 2**63 overflowed trace info's sum, and 2**62
        # wrapped it to 0
        (b'{"dirty_pages":9223372036854775808}', "says 9223372036854775808 pages were dirtied"),
        (b'{"dirty_pages":513}', "says 513 pages were dirtied; the trace's memory has 512"),
        (b"[" * 40 + b"]" * 40, "record metadata is a list, not an object"),
    ],
)
def test_forged_record_metadata_of_the_wrong_type_is_named(trace, meta, problem) -> None:
    path, _ = trace
    trace_forge.forge_meta(path, 2, meta)
    with pytest.raises(TraceCorrupt) as err:
        TraceReader(path)[2]
    assert err.value.window == 2
    assert problem in str(err.value) and str(err.value).startswith("window 2: ")


def test_a_record_duration_past_a_float_s_range_is_named(tmp_path, monkeypatch) -> None:
    """An integer of 401 digits, stored with valid checksums: the schema's float check
    raised ``OverflowError``, which the reader did not turn into damage (a traceback in
    ``trace info`` and ``evaluate``)."""
    from migcodec.datasets.trace import record

    forged = b'{"phase":null,"duration_s":1' + b"0" * 400 + b',"meta":{}}'
    monkeypatch.setattr(record, "_meta_json", lambda index, meta: forged)
    with TraceWriter(tmp_path / "t", memory_pages=8, page_size=PS) as writer:
        writer.write(Window(0, np.array([1, 3]), generate_pages("text", 2, 0, PS)))
    with pytest.raises(TraceCorrupt) as err:
        TraceReader(tmp_path / "t")[0]
    assert str(err.value).startswith(
        "window 0: record field 'metadata.duration_s' is an integer of 401 digits, not a "
        "number of seconds, at least 0 (record at chunk-000000.mct offset 0"
    )


def test_a_window_said_to_dirty_more_pages_than_memory_has_is_refused(tmp_path: Path) -> None:
    with TraceWriter(tmp_path / "t", memory_pages=16) as writer:
        with pytest.raises(ValueError) as info:
            writer.write(Window(0, np.array([0]), np.ones((1, 4096), np.uint8), dirty_pages=17))
        writer.write(Window(0, np.array([0]), np.ones((1, 4096), np.uint8), dirty_pages=16))
    assert str(info.value) == (
        "window 0: dirty_pages 17 is more than the trace's 16 pages, and a window dirties "
        "each page at most once; call set_memory_pages"
    )
    assert TraceReader(tmp_path / "t")[0].dirty_pages == 16


def test_a_damaged_index_is_named_as_the_index(trace) -> None:
    path, _ = trace
    entries = trace_forge.index(path)
    entries[4]["chunk"] = 1281844724
    (path / "windows.idx").write_bytes(entries.tobytes())
    with pytest.raises(TraceCorrupt) as err:
        TraceReader(path)
    assert err.value.window == 4
    assert str(err.value) == (
        f"{path / 'windows.idx'} is damaged: its entry for window 4 (chunk 1281844724, offset "
        f"{int(entries[4]['offset'])}, length {int(entries[4]['length'])}, "
        f"{int(entries[4]['pages'])} pages) does not follow the entries before it as the "
        "writer lays records out; re-create the trace"
    )


def test_trace_info_shows_the_files_text_quoted(trace, capsys) -> None:
    from migcodec.cli import main

    path, _ = trace
    _rewrite_manifest(path, _set("source", value="x\nsource   ok\x1b[2J"))
    assert main(["trace", "info", str(path), "--codecs", "lz4", "--sample", "4"]) == 0
    out = capsys.readouterr().out
    assert "  source   'x\\nsource   ok\\x1b[2J'\n" in out
    assert "\x1b" not in out


def test_trace_info_shows_a_records_phase_name_escaped(tmp_path, capsys) -> None:
    """A record's phase is the file's text too: it reached the terminal raw (clearing the
    screen, setting the window's title), where the manifest's text is escaped."""
    from migcodec.cli import main

    phase = "\x1b[2J\x1b]0;owned\x07x"
    with TraceWriter(tmp_path / "t", memory_pages=16) as writer:
        writer.write(Window(0, np.array([0]), np.ones((1, 4096), np.uint8), phase=phase))
    assert main(["trace", "info", str(tmp_path / "t"), "--codecs", "lz4"]) == 0
    out = capsys.readouterr().out
    assert "\n  \\x1b[2J\\x1b]0;owned\\x07x       1 " in out, out
    assert "\x1b" not in out and "\x07" not in out


def test_a_trace_written_before_manifests_were_sealed_still_reads(tmp_path, monkeypatch):
    """Version 2 (records as now, a manifest without a checksum): read as it is, its
    totals and phases still checked against its index."""
    from migcodec.datasets.trace import record as record_module
    from migcodec.datasets.trace import writer as writer_module

    monkeypatch.setattr(writer_module, "VERSION", 2)
    monkeypatch.setattr(record_module, "VERSION", 2)
    pages = generate_pages("text", 2, 0, PS)
    with TraceWriter(tmp_path, memory_pages=16, page_size=PS) as writer:
        writer.write(Window(0, np.array([2, 3]), pages))
    monkeypatch.undo()
    _rewrite_manifest(tmp_path, _set("checksum", delete=True), sealed=False)
    reader = TraceReader(tmp_path)
    assert reader.info().version == 2 and "checksum" not in reader.info().meta
    np.testing.assert_array_equal(reader[0].pages, pages)
    _rewrite_manifest(tmp_path, _set("totals", "pages", value=3), sealed=False)
    with pytest.raises(TraceCorrupt, match=r"field 'totals.pages' is 3 but .* lists 2"):
        TraceReader(tmp_path)
    # no seal guards its count: a count of 2**63 windows bounded the index's read, and
    # asked for a buffer of that many entries (OverflowError; MemoryError at 10**9)
    _rewrite_manifest(tmp_path, _set("windows", value=2**63), sealed=False)
    with pytest.raises(TraceCorrupt, match=f"lists 1 windows but the manifest says {2**63};"):
        TraceReader(tmp_path)


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner)
        | st.dictionaries(st.text(max_size=3) | st.integers(-3, 3), inner, max_size=3)
    ),
    max_leaves=6,
)


@given(
    phase=st.none() | st.text(max_size=4) | st.integers(),
    duration=st.none() | st.floats() | st.integers(-2, 2) | st.booleans() | st.text(max_size=2),
    meta=st.dictionaries(st.text(max_size=3) | st.integers(-3, 3), _JSON_VALUES, max_size=3),
)
@settings(max_examples=60, deadline=None)
def test_a_window_the_writer_takes_reads_back_the_same(phase, duration, meta) -> None:
    """What a writer stores, a reader returns: metadata JSON would change (an integer key
    made a string, a tuple a list) or that a reader refuses as damage (a phase that is no
    string, a negative duration) is refused when the window is written, naming it."""
    pages = generate_pages("text", 2, 0, PS)
    window = Window(0, np.array([1, 3]), pages, phase=phase, duration_s=duration, meta=meta)
    with tempfile.TemporaryDirectory() as d:
        try:
            with TraceWriter(Path(d) / "t", memory_pages=8, page_size=PS) as writer:
                writer.write(window)
        except ValueError as exc:
            assert str(exc).startswith("window 0: ")
            return
        again = TraceReader(Path(d) / "t")[0]
    assert (again.phase, again.meta, again.duration_s) == (phase, meta, duration)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"page_indices": np.array([-1, 3])}, "page index -1 is negative"),
        ({"page_indices": np.array([1.5, 3.0])}, "page indices are float64, not integers"),
        ({"pages": np.ones((2, PS), np.int16)}, "pages are int16, not bytes \\(uint8\\)"),
        ({"previous": np.ones((2, PS), bool)}, "previous are bool, not bytes \\(uint8\\)"),
        ({"meta": {1: "a"}}, "metadata {1: 'a'} would read back as {'1': 'a'}"),
        ({"phase": 5}, "field 'metadata.phase' is an integer, not a string or null"),
        ({"duration_s": -1.0}, "field 'metadata.duration_s' is -1.0, not a number of seconds"),
        ({"meta": {"x": float("nan")}}, "metadata cannot be stored as JSON: Out of range float"),
    ],
)
def test_a_window_that_would_read_back_different_or_as_damage_is_refused(tmp_path, change, problem):
    fields = {"page_indices": np.array([1, 3]), "pages": generate_pages("text", 2, 0, PS)}
    window = Window(0, **{**fields, **change})
    with TraceWriter(tmp_path / "t", memory_pages=8, page_size=PS) as writer:
        with pytest.raises(ValueError, match=f"^window 0: {problem}"):
            writer.write(window)
        writer.write(Window(0, **fields))  # nothing of the refused window was written
    assert len(TraceReader(tmp_path / "t")) == 1


@pytest.mark.parametrize(
    ("option", "problem"),
    [
        (
            {"window_s": -1.0},
            "field 'window_s' is -1.0, not a finite number of seconds, at least 0",
        ),
        ({"source": 5}, "field 'source' is an integer, not a string"),
        ({"meta": {1: 2}}, "the manifest\\['meta'\\] has the key 1; JSON keeps only string keys"),
        ({"meta": {"a": (1,)}}, "the manifest\\['meta'\\]\\['a'\\] is tuple \\(1,\\)"),
        ({"meta": {"a": float("inf")}}, "it cannot be stored as JSON"),
    ],
)
def test_a_trace_its_reader_would_refuse_or_read_different_is_never_created(
    tmp_path, option, problem
):
    """The manifest is checked as its reader will check it before the directory is made:
    the trace is refused, not written and then found damaged or changed when read."""
    with pytest.raises(ValueError, match=f"^cannot write trace {tmp_path / 't'}: {problem}"):
        TraceWriter(tmp_path / "t", memory_pages=8, page_size=PS, **option)
    assert not (tmp_path / "t").exists()


def test_windows_from_a_negative_start_are_refused_not_reported_as_damage(trace) -> None:
    path, _ = trace
    refused = pytest.raises(IndexError, match=r"^windows from -1: a trace's windows are numbered")
    with TraceReader(path) as reader, refused:
        next(reader.windows(-1))


_KILLED_WRITER = """
import os, signal, sys
import numpy as np
from migcodec.datasets import TraceWriter, Window, generate_pages
w = TraceWriter(sys.argv[1], memory_pages=8, page_size=512, staged=True)
w.write(Window(0, np.array([0]), generate_pages("text", 1, 0, 512)))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_what_a_killed_writer_staged_is_removed_by_the_next_not_what_a_live_one_holds(
    tmp_path,
) -> None:
    """A writer killed outright cannot remove what it staged; the next one to stage beside
    the same path does, but never what a writer still alive holds, nor a link of the name."""
    from migcodec.staging import remove_leftovers

    path = tmp_path / "t"
    left = []
    for _ in range(2):  # the second removes what the first left, and leaves its own
        killed = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(path)], timeout=60)
        assert killed.returncode == -signal.SIGKILL
        names = [f.name for f in tmp_path.iterdir() if f.name.startswith(".t.writing-")]
        assert len(names) == 1 and (tmp_path / names[0] / "windows.idx").exists()
        left += names
    assert left[0] != left[1]
    (tmp_path / ".t.writing-0123abcd").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere").mkdir()
    live = TraceWriter(tmp_path / "u", memory_pages=8, page_size=PS, staged=True)
    held = live._dir.name
    with TraceWriter(path, memory_pages=8, page_size=PS, overwrite=True, staged=True) as w:
        w.write(_window(0))
    assert remove_leftovers(tmp_path / "u", "writing") == []  # its writer lives
    assert sorted(f.name for f in tmp_path.iterdir()) == sorted(
        [".t.writing-0123abcd", "elsewhere", "t", "u", held]
    )
    assert len(TraceReader(path)) == 1
    live.write(_window(0))
    live.close()
    assert len(TraceReader(tmp_path / "u")) == 1
    assert sorted(f.name for f in tmp_path.iterdir()) == [
        ".t.writing-0123abcd",
        "elsewhere",
        "t",
        "u",
    ]


def test_replacing_a_trace_never_takes_files_of_the_users_own_with_it(tmp_path) -> None:
    """A trace replaced goes with what was derived from it (a cached table), but a
    directory holding other files too is refused, before anything is written: the
    staged writer replaced the whole directory, and the user's notes went with it."""
    path = tmp_path / "t"
    with TraceWriter(path, memory_pages=8, page_size=PS) as w:
        w.write(_window(0))
    (path / "selector-table-0123.npz").write_bytes(b"a cached table")
    with TraceWriter(path, memory_pages=8, page_size=PS, overwrite=True, staged=True) as w:
        w.write(_window(0))
    assert sorted(f.name for f in path.iterdir()) == [
        "chunk-000000.mct",
        "manifest.json",
        "windows.idx",
    ]
    (path / "notes.txt").write_text("mine")
    for staged in (True, False):
        with pytest.raises(
            TraceExists,
            match=r"holds a trace and other files \(e\.g\. "
            r"'notes\.txt'\), which replacing the trace would delete",
        ):
            TraceWriter(path, memory_pages=8, page_size=PS, overwrite=True, staged=staged)
    assert (path / "notes.txt").read_text() == "mine" and len(TraceReader(path)) == 1


@pytest.mark.parametrize("force", [False, True])
def test_a_trace_is_not_put_where_something_else_came_while_it_was_written(tmp_path, force) -> None:
    """What is at the path is checked again before the trace takes it: files put there
    meanwhile, or (without overwrite) another writer's trace, stay as they are."""
    path = tmp_path / "t"
    if force:
        with TraceWriter(path, memory_pages=8, page_size=PS) as w:
            w.write(_window(0))
    writer = TraceWriter(path, memory_pages=8, page_size=PS, overwrite=force, staged=True)
    writer.write(_window(0))
    writer.write(_window(1))
    (path / "notes.txt").write_text("mine")
    with pytest.raises(
        TraceWriteInterrupted,
        match=(
            rf"cannot put the trace written in place at {path}: .*other files .*'notes\.txt'.*; "
            rf"{path} is as it was, and the trace written was removed: write it again"
        ),
    ):
        writer.close()
    assert (path / "notes.txt").read_text() == "mine"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["t"]
    (path / "notes.txt").unlink()
    if not force:  # another writer's trace, made meanwhile
        slow = TraceWriter(path, memory_pages=8, page_size=PS, staged=True)
        slow.write(_window(0))
        with TraceWriter(path, memory_pages=8, page_size=PS, staged=True) as fast:
            fast.write(_window(0))
            fast.write(_window(1))
        with pytest.raises(TraceWriteInterrupted, match="already holds a trace"):
            slow.close()
        assert len(TraceReader(path)) == 2


_KILLED_AFTER_THE_SWAP = """
import os, shutil, signal, sys
import numpy as np
from migcodec.datasets import TraceWriter, Window, generate_pages
from migcodec.datasets.trace import writer
writer.shutil.rmtree = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
w = TraceWriter(sys.argv[1], memory_pages=8, page_size=512, overwrite=True, staged=True)
w.write(Window(0, np.array([7]), generate_pages("text", 1, 0, 512)))
w.close()
"""


def test_a_writer_killed_once_its_trace_took_the_old_ones_place_leaves_it_to_the_sweep(
    tmp_path,
) -> None:
    """The staged trace and the one it replaces are swapped in one step: killed then,
    the writer leaves the new trace in place and the old under the hidden name, unheld,
    which the next writer beside it removes (moved aside in two renames, a writer killed
    between them left the path without a trace and the old one hidden for good)."""
    path = tmp_path / "t"
    with TraceWriter(path, memory_pages=8, page_size=PS) as w:
        w.write(_window(0))
    killed = subprocess.run([sys.executable, "-c", _KILLED_AFTER_THE_SWAP, str(path)], timeout=60)
    assert killed.returncode == -signal.SIGKILL
    assert [w.page_indices.tolist() for w in TraceReader(path)] == [[7]]
    left = [f for f in tmp_path.iterdir() if f.name.startswith(".t.writing-")]
    assert len(left) == 1 and [w.page_indices.tolist() for w in TraceReader(left[0])] == [[0]]
    with TraceWriter(tmp_path / "t", memory_pages=8, page_size=PS, overwrite=True, staged=True):
        pass
    assert sorted(f.name for f in tmp_path.iterdir()) == ["t"]


def test_metadata_set_after_opening_is_checked_when_the_trace_is_closed(tmp_path) -> None:
    writer = TraceWriter(tmp_path / "t", memory_pages=8, page_size=PS)
    writer.write(Window(0, np.array([1]), generate_pages("text", 1, 0, PS)))
    writer.meta["blocks"] = ("pc.ram", 4096)
    with pytest.raises(ValueError, match=r"the manifest\['meta'\]\['blocks'\] is tuple"):
        writer.close()
    writer.meta["blocks"] = ["pc.ram", 4096]
    writer.end_reason = 5
    with pytest.raises(ValueError, match="field 'end_reason' is an integer, not a string"):
        writer.close()
    writer.end_reason = "closed"
    writer.close()
    assert TraceReader(tmp_path / "t").info().meta == {"blocks": ["pc.ram", 4096]}


def _window(i: int) -> Window:
    return Window(i, np.array([i]), generate_pages("text", 1, i, PS))


def test_a_staged_trace_replaces_the_one_there_only_when_it_closes_whole(tmp_path) -> None:
    """Staged, a trace is written beside its path and renamed there when it closes: one
    that ends any other way (an error in the block, a refused write) leaves no trace in
    part, and the trace it was to replace as it was. Unstaged (a capture, which cannot be
    made again), the windows written stay, unclosed."""
    path = tmp_path / "t"
    with TraceWriter(path, memory_pages=8, page_size=PS) as writer:
        writer.write(_window(0))
    before = {f.name: f.read_bytes() for f in path.iterdir()}
    staged = TraceWriter(path, memory_pages=8, page_size=PS, overwrite=True, staged=True)
    with pytest.raises(RuntimeError, match="source failed"), staged as w:
        w.write(_window(0))
        w.write(_window(1))
        raise RuntimeError("source failed")
    assert {f.name: f.read_bytes() for f in path.iterdir()} == before
    with pytest.raises(RuntimeError), TraceWriter(tmp_path / "new", memory_pages=8, staged=True):
        raise RuntimeError("source failed")
    assert sorted(f.name for f in tmp_path.iterdir()) == ["t"]  # nothing staged is left
    with TraceWriter(path, memory_pages=8, page_size=PS, overwrite=True, staged=True) as w:
        for i in range(3):
            w.write(_window(i))
        assert len(TraceReader(path)) == 1  # the old trace, until the new one closes
    assert len(TraceReader(path)) == 3 and TraceReader(path).info().complete
    assert sorted(f.name for f in tmp_path.iterdir()) == ["t"]
    with (
        pytest.raises(RuntimeError),
        TraceWriter(path, memory_pages=8, page_size=PS, overwrite=True) as w,
    ):
        w.write(_window(0))
        raise RuntimeError("source failed")
    assert len(TraceReader(path, allow_incomplete=True)) == 1
    assert not TraceReader(path, allow_incomplete=True).info().complete
