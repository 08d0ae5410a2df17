"""Traces named by fsspec URLs read exactly as by paths, and URLs that cannot be opened
say what to install."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from migcodec.datasets.trace import TraceCorrupt, TraceNotFound, TraceReader
from migcodec.selector.evaluation.windows import trace_identity
from migcodec.storage import FsspecLocation, LocalLocation, StorageError, location

ROOT = Path(__file__).resolve().parents[2]
TRACE = ROOT / "corpus" / "traces" / "numpy"


@pytest.fixture
def memory_trace():
    """The numpy corpus trace copied into fsspec's in-process memory filesystem."""
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    corpus = f"/corpus-{id(fs)}"
    fs.put(str(TRACE), f"{corpus}/numpy", recursive=True)
    yield f"memory://{corpus}/numpy"
    fs.rm(corpus, recursive=True)


def _windows(reader: TraceReader, start: int, stop: int) -> list:
    return list(reader.windows(start, stop))


def test_a_trace_reads_alike_from_a_path_a_file_url_and_memory(memory_trace):
    by_path = TraceReader(TRACE)
    by_file = TraceReader(TRACE.as_uri())
    by_memory = TraceReader(memory_trace)
    assert by_path.path == TRACE and by_file.path == TRACE.as_uri()
    assert by_memory.path == memory_trace and by_memory.info().path == memory_trace
    assert len(by_path) == len(by_file) == len(by_memory) == 28
    for reader in (by_file, by_memory):
        assert reader.info() == replace(by_path.info(), path=str(reader.path))
        np.testing.assert_array_equal(reader.pages_per_window(), by_path.pages_per_window())
        for a, b in zip(_windows(by_path, 5, 12), _windows(reader, 5, 12), strict=True):
            assert a.index == b.index and a.phase == b.phase
            np.testing.assert_array_equal(a.page_indices, b.page_indices)
            np.testing.assert_array_equal(a.pages, b.pages)
            np.testing.assert_array_equal(a.previous, b.previous)
        last = reader[-1]
        np.testing.assert_array_equal(last.pages, by_path[27].pages)


def test_a_local_trace_has_one_cache_key_as_a_path_or_a_file_url(memory_trace):
    assert trace_identity(TRACE) == trace_identity(TRACE.as_uri())
    assert trace_identity(TRACE) == trace_identity(str(TRACE))
    # another copy of the same files is another trace: its key names where it lives
    assert trace_identity(memory_trace) != trace_identity(TRACE)
    assert trace_identity(memory_trace) == trace_identity(memory_trace)


def test_a_damaged_or_missing_trace_behind_a_url_is_named_as_at_a_path(memory_trace):
    import fsspec

    fs = fsspec.filesystem("memory")
    root = memory_trace.removeprefix("memory://")
    with pytest.raises(TraceNotFound, match=r"memory://nowhere does not exist; give a trace"):
        TraceReader("memory://nowhere")
    fs.rm(f"{root}/chunk-000000.mct")
    reader = TraceReader(memory_trace)
    with pytest.raises(TraceCorrupt, match=rf"chunk file {memory_trace}/chunk-000000.mct is"):
        reader[0]
    fs.pipe_file(f"{root}/chunk-000000.mct", b"short")
    with pytest.raises(TraceCorrupt, match=r"window 0: chunk-000000\.mct is truncated"):
        TraceReader(memory_trace)[0]


def test_urls_that_cannot_be_opened_say_what_to_install(monkeypatch):
    pytest.importorskip("fsspec")
    with pytest.raises(StorageError, match="Protocol not known: nope"):
        TraceReader("nope://bucket/trace")
    monkeypatch.setitem(sys.modules, "fsspec.core", None)  # as without fsspec installed
    with pytest.raises(StorageError, match=r"needs fsspec: pip install fsspec"):
        TraceReader("s3://bucket/trace")
    # a path never needs fsspec
    assert len(TraceReader(TRACE)) == 28


def test_a_url_whose_filesystem_cannot_be_made_is_one_line_naming_why(tmp_path):
    """A chained archive URL opens its archive to make the filesystem: a file that is no
    archive (or is missing) failed with the archive module's own exception, a traceback."""
    pytest.importorskip("fsspec")
    (tmp_path / "plain").write_bytes(b"not a zip")
    url = f"zip://trace::{tmp_path / 'plain'}"
    with pytest.raises(StorageError) as info:
        location(url)
    assert str(info.value) == (
        f"{url}: cannot open it (BadZipFile: File is not a zip file); check the URL, and "
        "that what it names exists and is reachable from here"
    )


def test_locations_join_list_and_write_whole_files(tmp_path, memory_trace):
    local = location(tmp_path)
    assert isinstance(local, LocalLocation) and local.local_path == tmp_path
    (local / "a" / "t.bin").write_bytes(b"one")
    (local / "a" / "t.bin").write_bytes(b"two")
    assert (tmp_path / "a" / "t.bin").read_bytes() == b"two"
    assert [p.name for p in (local / "a").glob("*")] == ["t.bin"]  # no temporary left
    remote = location(memory_trace)
    assert isinstance(remote, FsspecLocation) and remote.local_path is None
    found = remote.parent.glob("*/manifest.json")
    assert str(remote / "manifest.json") in [str(p) for p in found]
    assert [name for name, _, _ in remote.files()] == [
        "chunk-000000.mct",
        "manifest.json",
        "windows.idx",
    ]
    (remote / "x.bin").write_bytes(b"abc")
    assert (remote / "x.bin").read_bytes() == b"abc" and (remote / "x.bin").is_file()
    f, size = (remote / "x.bin").open_read()
    with f:
        assert size == 3 and f.read() == b"abc"
    file_url = location(tmp_path.as_uri())
    assert isinstance(file_url, FsspecLocation) and file_url.local_path == tmp_path


def test_a_file_written_through_a_symbolic_link_keeps_the_link(tmp_path):
    """``evaluate --table LINK`` replaced the link by a file of its own, and the file it
    pointed to (in a shared cache, say) kept the old table."""
    (tmp_path / "cache").mkdir()
    real = tmp_path / "cache" / "t.npz"
    real.write_bytes(b"old")
    link = tmp_path / "t.npz"
    link.symlink_to(real)
    LocalLocation(link).write_bytes(b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["t.npz"]
    dangling = tmp_path / "later.npz"
    dangling.symlink_to(tmp_path / "cache" / "later.npz")
    LocalLocation(dangling).write_bytes(b"made")
    assert dangling.is_symlink() and dangling.read_bytes() == b"made"


def test_two_writers_of_one_file_each_leave_it_whole(tmp_path, monkeypatch):
    """Every writer of a file wrote it beside under one name: a second run's write (two
    evaluations caching one table) truncated the file the first was renaming, and the
    second's rename then failed with no such file."""
    import os

    target = LocalLocation(tmp_path / "t.npz")
    rename = os.replace
    written = []

    def another_writer_between(src, dst):
        if not written:  # while the first write is renamed, a second one runs whole
            written.append(None)
            target.write_bytes(b"second")
        rename(src, dst)

    monkeypatch.setattr(os, "replace", another_writer_between)
    target.write_bytes(b"first, and longer")
    assert target.read_bytes() == b"first, and longer"
    assert [p.name for p in tmp_path.iterdir()] == ["t.npz"]  # no temporary left


@pytest.mark.parametrize("name", ["windows.idx", "chunk-000000.mct"])
def test_a_directory_in_a_trace_file_s_place_at_a_url_is_named_as_one(memory_trace, name):
    """The memory filesystem's own error for it names the path alone, as if missing."""
    import fsspec

    fs = fsspec.filesystem("memory")
    path = memory_trace.removeprefix("memory://") + f"/{name}"
    fs.rm(path)
    fs.pipe_file(f"{path}/inside", b"x")
    with pytest.raises(TraceCorrupt, match=f"{memory_trace}/{name} is a directory, not a regular"):
        list(TraceReader(memory_trace))
