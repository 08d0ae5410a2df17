"""A trace's files as a reader finds them: something other than a regular file in a
file's place, bytes the writer never wrote, and windows larger than this machine holds."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migcodec.cli import main
from migcodec.datasets import (
    TraceCorrupt,
    TraceReader,
    TraceWriter,
    Window,
    Workload,
    get_workload,
)
from migcodec.datasets.trace import TraceError
from migcodec.hashing import seal
from tests.datasets import trace_forge

FILES = ("manifest.json", "windows.idx", "chunk-000000.mct")


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    path = tmp_path / "t"
    spec = get_workload("phases", n_pages=256, n_windows=4, seed=5)
    with TraceWriter(path, memory_pages=256, source="test") as writer:
        writer.write_all(Workload(spec))
    return path


def _replace(file: Path, kind: str) -> str:
    """``file`` replaced by a ``kind`` of file; what a message calls it."""
    file.unlink()
    if kind == "directory":
        file.mkdir()
        return "a directory"
    if kind == "fifo":
        os.mkfifo(file)
        return r"a named pipe \(FIFO\)"
    file.symlink_to("/dev/zero")
    return "a character device"


@pytest.mark.parametrize("kind", ["directory", "fifo", "device"])
@pytest.mark.parametrize("name", FILES)
def test_a_trace_file_that_is_not_a_regular_file_is_named_and_never_read(trace, name, kind):
    """A pipe's open waits for a writer and ``/dev/zero`` never ends: each is refused by
    what it is, before it is read, as damage to the trace."""
    what = _replace(trace / name, kind)
    with pytest.raises(TraceCorrupt, match=f"{name} is {what}, not a regular file; the trace"):
        list(TraceReader(trace))


def test_bytes_after_a_chunk_s_last_record_are_damage(trace):
    chunk = trace / "chunk-000000.mct"
    with chunk.open("ab") as f:
        f.write(b"left over")
    reader = TraceReader(trace)
    for i in range(len(reader) - 1):
        reader[i]  # the records before the last are read as written
    with pytest.raises(TraceCorrupt, match="has 9 bytes after its last record"):
        reader[len(reader) - 1]


def test_a_chunk_file_its_index_does_not_list_is_damage(trace):
    (trace / "chunk-000001.mct").write_bytes((trace / "chunk-000000.mct").read_bytes())
    with pytest.raises(TraceCorrupt, match=r"chunk-000001.mct is not listed by .*windows.idx"):
        TraceReader(trace)


def test_a_window_larger_than_this_machine_s_free_memory_is_refused_before_decoding(
    tmp_path, monkeypatch, capsys
):
    """A sealed, consistent trace of 25 KB whose one window is 20 000 zero pages of 2 MiB:
    40 GiB decoded, which numpy would try to allocate. Refused against the RAM this
    machine has free (here said to be 8 GiB), at ``trace info`` as in the library."""
    path = trace_forge.forge_zero_window(tmp_path / "bomb", 20_000, 2 << 20)
    assert sum(f.stat().st_size for f in path.iterdir()) < 64 << 10
    monkeypatch.setattr("migcodec.ram.available_memory", lambda: 8 << 30)
    message = (
        "window 0 holds 20000 pages of 2 MiB: decoding it needs 39.1 GiB of RAM, but this "
        "machine has 8 GiB available; read the trace on a machine with more memory"
    )
    with pytest.raises(TraceError) as err:
        TraceReader(path)[0]
    assert str(err.value) == message
    assert main(["trace", "info", str(path)]) == 2
    assert capsys.readouterr().err == f"migcodec trace info: {message}\n"


def test_a_window_s_page_numbers_count_in_the_memory_it_needs(tmp_path, monkeypatch):
    """Decoded and summed, a page's number takes 16 bytes beside its 512: a window of a
    million such pages needs 528 MB, not the 512 MB it was checked for."""
    with TraceWriter(tmp_path / "t", memory_pages=4, page_size=512) as writer:
        writer.write(Window(0, np.arange(4), np.ones((4, 512), np.uint8)))
    reader = TraceReader(tmp_path / "t")
    monkeypatch.setattr("migcodec.ram.available_memory", lambda: 520_000_000)
    with pytest.raises(TraceError, match=r"^window 0 holds 1000000 pages of 512 B: decoding"):
        reader._check_room(0, 1_000_000, previous=False)
    reader._check_room(0, 980_000, previous=False)


def test_the_same_forge_at_a_size_this_machine_holds_reads_as_zero_pages(tmp_path):
    """The forged trace above is refused for its size alone: made of 64 pages, it reads."""
    window = TraceReader(trace_forge.forge_zero_window(tmp_path / "small", 64, 4096))[0]
    assert window.n_pages == 64 and not window.pages.any()
    assert window.page_indices.tolist() == list(range(1, 65))


@given(
    codec=st.sampled_from(["zstd", "raw"]),
    files=st.sampled_from([("chunk-000000.mct",), ("chunk-000000.mct", "windows.idx")]),
)
@settings(max_examples=8, deadline=None)
def test_a_chunk_file_of_another_trace_of_the_same_layout_is_refused(codec, files):
    """Two traces of one workload, memory and codec, seeds apart, can have records of the
    same lengths (random pages do not compress), so their indexes agree and only the
    records tell them apart: a chunk file copied from one into the other is an error
    naming the window, not the other trace's pages read back as this one's."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / "a", Path(tmp) / "b"]
        for seed, path in enumerate(paths):
            spec = get_workload("random", n_pages=64, n_windows=3, pages_per_window=4, seed=seed)
            with TraceWriter(path, memory_pages=64, codec={"name": codec}) as writer:
                writer.write_all(Workload(spec))
        a, b = paths
        assert (a / "windows.idx").read_bytes() == (b / "windows.idx").read_bytes()
        for name in files:
            shutil.copyfile(b / name, a / name)
        with TraceReader(a) as reader:
            with pytest.raises(
                TraceCorrupt,
                match=r"^window 0: .* fails its checksum; the "
                "chunk file is damaged or belongs to another trace",
            ) as err:
                reader[0]
            assert err.value.window == 0
            with pytest.raises(TraceCorrupt, match="belongs to another trace"):
                reader.verify()


def test_a_manifest_of_this_version_without_its_trace_id_is_refused(trace):
    """The records of a version-5 trace are checked with the id its manifest holds: a
    manifest that lost it (sealed again by hand) cannot check them."""
    manifest = json.loads((trace / "manifest.json").read_text())
    del manifest["trace_id"], manifest["checksum"]
    (trace / "manifest.json").write_text(json.dumps(seal(manifest)))
    with pytest.raises(TraceCorrupt, match="field 'trace_id' is missing, which a version 5 "):
        TraceReader(trace)


@given(order=st.lists(st.integers(0, 3), min_size=4, max_size=4), split=st.booleans())
@settings(max_examples=25, deadline=None)
def test_records_moved_or_copied_between_windows_are_refused(order, split):
    """Records of one length (random pages stored raw, alike metadata) can be moved,
    swapped or copied between windows, or chunk files between numbers, without any length
    changing: each window whose record is another's is an error naming it; one whose
    record stayed reads as written."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t"
        spec = get_workload("random", n_pages=64, n_windows=4, pages_per_window=4, seed=1)
        chunk_bytes = 1 if split else 1 << 20  # one record per chunk file, or all in one
        with TraceWriter(path, memory_pages=64, codec="raw", chunk_bytes=chunk_bytes) as writer:
            writer.write_all(Workload(spec))
        written = list(TraceReader(path))
        entries = trace_forge.index(path)
        assert len(set(entries["length"].tolist())) == 1
        records = []
        for e in entries:
            data = (path / f"chunk-{int(e['chunk']):06d}.mct").read_bytes()
            records.append(data[int(e["offset"]) : int(e["offset"] + e["length"])])
        if split:
            for i, source in enumerate(order):
                (path / f"chunk-{i:06d}.mct").write_bytes(records[source])
        else:
            (path / "chunk-000000.mct").write_bytes(b"".join(records[s] for s in order))
        with TraceReader(path) as reader:
            for i, source in enumerate(order):
                if source == i:
                    again = reader[i]
                    assert again.pages.tobytes() == written[i].pages.tobytes()
                    continue
                with pytest.raises(
                    TraceCorrupt,
                    match=f"^window {i}: record at .* holds window "
                    f"{source}; the chunk file .* or the index is damaged",
                ):
                    reader[i]
