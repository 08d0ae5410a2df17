"""TraceReader: windows of a trace, streamed in order or fetched by index."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from migcodec.codecs import CodecError, get_codec
from migcodec.codecs.base import is_integer
from migcodec.codecs.bounded import BUILDING, codec_watch
from migcodec.datasets.window import Window
from migcodec.files import parse_json
from migcodec.hashing import SEAL_KEY, unseal
from migcodec.ram import short_of
from migcodec.storage import LocalLocation, Location, NotARegularFile, location
from migcodec.units import format_size
from migcodec.wire.errors import one_line

from .format import (
    CHUNK_GLOB,
    CHUNK_PATTERN,
    FLAG_PREVIOUS,
    FORMAT,
    HEADER_BYTES,
    INDEX,
    INDEX_DTYPE,
    LEGACY_VERSION,
    MANIFEST,
    MANIFEST_LIMIT,
    READ_VERSIONS,
    RESTORE,
    SEALED_VERSION,
    TRACE_ID,
    VERSION,
    WRITTEN_BY,
    TraceCorrupt,
    TraceError,
    TraceIncomplete,
    TraceNotFound,
    TraceVersionError,
    chunk_number,
    record_seed,
)
from .record import body_length, check_body, decode_record, parse_header
from .schema import MANIFEST_SCHEMA, check
from .sections import STORED_INSTEAD


@dataclass(frozen=True)
class PhaseSpan:
    """A run of consecutive windows of one phase."""

    name: str | None
    first: int
    windows: int


@dataclass(frozen=True)
class TraceInfo:
    """A trace's manifest: what it holds and where it came from (no window is read)."""

    path: str
    version: int
    page_size: int
    memory_pages: int
    windows: int
    window_s: float | None
    source: str
    command: str
    created: str
    codec: dict[str, Any]
    complete: bool
    end_reason: str | None
    phases: tuple[PhaseSpan, ...]
    totals: dict[str, int]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """Stored size of page data against raw (including previous contents and index)."""
        stored = self.totals.get("stored_bytes", 0)
        return self.totals.get("raw_bytes", 0) / stored if stored else float("nan")


def _codec_name(config: object) -> str:
    """The name of the codec a manifest's ``codec`` field (a name, or a configuration with
    one) gives, as a call of it that never returns is named."""
    name = config.get("name") if isinstance(config, dict) else config
    return name if isinstance(name, str) else repr(config)


def _load_manifest(path: Location) -> dict[str, Any]:
    """The manifest, checked against :data:`~.schema.MANIFEST_SCHEMA` before any field is
    used: every failure is a :class:`TraceCorrupt` naming the file and the field."""
    file = path / MANIFEST
    if not file.exists():
        if not path.exists():  # nothing at all there, not a directory without a manifest
            raise TraceNotFound(
                f"{path} does not exist; give a trace directory written by {WRITTEN_BY}"
            )
        if path.is_file() and (path.parent / MANIFEST).exists():
            # a file of a trace (its manifest, a chunk) named for the trace: "its manifest
            # is missing" said nothing of what to give instead
            raise TraceNotFound(
                f"{path} is a file of the trace in {path.parent}; give the trace's directory, "
                f"{path.parent}"
            )
        if not path.is_dir():
            raise TraceNotFound(
                f"{path} is not a directory; give a trace directory written by {WRITTEN_BY}"
            )
        raise TraceNotFound(
            f"{path} is not a trace: {MANIFEST} is missing (make one with {WRITTEN_BY})"
        )
    try:
        manifest = parse_json(_read_whole(file, MANIFEST_LIMIT))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise TraceCorrupt(
            f"{file} is not valid JSON ({exc}); the trace's manifest is damaged: {RESTORE}"
        ) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise TraceCorrupt(f"{file} is not a {FORMAT} manifest")
    version = manifest.get("version")
    if version not in READ_VERSIONS:
        raise TraceVersionError(
            f"{path} is trace format version {version!r}; this migcodec reads versions "
            f"{LEGACY_VERSION}, {SEALED_VERSION} and {VERSION}: upgrade migcodec or re-create "
            "the trace"
        )
    problem = check(manifest, MANIFEST_SCHEMA)
    if problem is not None:
        raise TraceCorrupt(f"{file}: {problem}; the trace is damaged (re-create it)")
    if version == LEGACY_VERSION:  # written before manifests were sealed
        return {key: value for key, value in manifest.items() if key != SEAL_KEY}
    try:  # after the schema: a field of the wrong kind is named, whatever the checksum says
        manifest = unseal(manifest)
    except ValueError as exc:
        raise TraceCorrupt(
            f"{file}: {exc}; the trace is damaged, or its manifest was written by a migcodec "
            "that did not seal it (re-create the trace)"
        ) from None
    if version >= VERSION and TRACE_ID not in manifest:
        raise TraceCorrupt(
            f"{file}: field {TRACE_ID!r} is missing, which a version {version} trace's records "
            "are checked with; the trace is damaged (re-create it)"
        )
    return manifest


#: a window decoded into at most this many bytes is not checked against the RAM this
#: machine has free (reading what is free costs more than deciding so)
CHECKED_WINDOW_BYTES = 256 << 20


def _open(file: Location, what: str = "") -> tuple[BinaryIO, int]:
    """One of a trace's files, open, and its size: missing, or a directory, pipe or device
    in its place, is damage (:class:`TraceCorrupt`), and a file that cannot be read for
    another reason (permissions) a :class:`TraceError`. ``what`` starts the file's name in
    messages (``"chunk file "``)."""
    damaged = "the trace is damaged (re-create it)"
    try:
        return file.open_read()
    except FileNotFoundError:
        raise TraceCorrupt(f"{what}{file} is missing; {damaged}") from None
    except NotARegularFile as exc:
        raise TraceCorrupt(f"{what}{exc}; {damaged}") from None
    except IsADirectoryError:
        raise TraceCorrupt(f"{what}{file} is a directory, not a regular file; {damaged}") from None
    except OSError as exc:
        raise TraceError(f"cannot read {what}{file}: {exc.strerror or exc}") from None


def _read_whole(file: Location, limit: int | None) -> bytes:
    """The bytes of one of a trace's files (:func:`_open`), at most ``limit`` of them: a
    file past ``limit`` is damage (:class:`TraceCorrupt`). Without a limit (a file whose
    size nothing in the trace bounds), any size the machine's available memory holds."""
    f, size = _open(file)
    with f:
        if limit is None:
            free = short_of(size)
            if free is not None:
                raise TraceError(
                    f"{file} is {format_size(size)}, more than the {format_size(free)} of "
                    "memory available to read it; read the trace where more memory is free"
                )
            limit = size
        if size > limit:
            raise TraceCorrupt(
                f"{file} is {size} bytes, more than a trace's {file.name} can be "
                f"({limit}); the trace is damaged (re-create it)"
            )
        # what the file holds (and a byte, to see it grow): a limit from a damaged count
        # (windows: 2**63) would be a buffer of that size
        return f.read(size + 1)


def _check_totals(path: Location, manifest: dict[str, Any], index: np.ndarray) -> None:
    """A closed trace's manifest must count what its index lists: its pages and stored
    bytes, and phases that cover its windows in order (the writer keeps them as it appends,
    so a manifest that disagrees belongs to another trace or was forged)."""
    totals = manifest["totals"]
    counted = {
        "pages": int(index["pages"].sum(dtype=np.uint64)),
        "stored_bytes": int(index["length"].sum(dtype=np.uint64)),
    }
    for name, value in counted.items():
        if totals[name] != value:
            raise TraceCorrupt(
                f"{path / MANIFEST}: field 'totals.{name}' is {totals[name]} but "
                f"{path / INDEX} lists {value}; the trace is damaged (re-create it)"
            )
    first = 0
    for phase in manifest["phases"]:
        if phase["first"] != first or not phase["windows"]:
            break
        first += phase["windows"]
    if first != len(index):
        raise TraceCorrupt(
            f"{path / MANIFEST}: field 'phases' does not cover the {len(index)} windows in "
            "order; the trace is damaged (re-create it)"
        )


def _check_index(path: Location, index: np.ndarray, memory_pages: int) -> None:
    """Entries must tile their chunk files as the writer appends them (each chunk from
    offset 0, records back to back, chunk numbers counting up by one), each long enough
    for a record header and naming at most the memory's pages. A damaged index is named as
    such here, not later as a missing or truncated chunk file."""
    if not len(index):
        return
    chunk = index["chunk"].astype(np.int64)
    offset = index["offset"].astype(np.uint64)
    length = index["length"].astype(np.uint64)
    follows = np.empty(len(index), dtype=bool)
    follows[0] = chunk[0] == 0 and offset[0] == 0
    same = chunk[1:] == chunk[:-1]
    follows[1:] = np.where(
        same,
        offset[1:] == offset[:-1] + length[:-1],
        (chunk[1:] == chunk[:-1] + 1) & (offset[1:] == 0),
    )
    bad = (
        ~follows | (length < HEADER_BYTES) | (index["pages"] > memory_pages) | (index["flags"] != 0)
    )
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        e = index[i]
        raise TraceCorrupt(
            f"{path / INDEX} is damaged: its entry for window {i} (chunk {int(e['chunk'])}, "
            f"offset {int(e['offset'])}, length {int(e['length'])}, {int(e['pages'])} pages) "
            "does not follow the entries before it as the writer lays records out; "
            "re-create the trace",
            i,
        )


class TraceReader:
    """Reads a trace directory. Iterating streams windows chunk by chunk; ``reader[i]``
    fetches window ``i`` through the index (the evaluator's random access).

    The directory is a path or an fsspec URL (``s3://bucket/corpus/redis``,
    ``file:///data/redis``; see :mod:`migcodec.storage`), so that every host of a cluster
    reads one shared copy; a path needs no fsspec. ``path`` is the directory as given: a
    ``Path`` for a path, the URL string for a URL.

    Only one window is decoded at a time, so memory stays bounded by the largest window
    however long the trace. Every record is checked (header and body checksums, lengths,
    codec validation) before its pages are returned; damage raises :class:`TraceCorrupt`
    naming the window. A trace whose writer never closed (``complete: false``) is readable
    up to its last indexed window when ``allow_incomplete`` is set.
    """

    def __init__(
        self, path: str | os.PathLike | Location, *, allow_incomplete: bool = False
    ) -> None:
        self.location = location(path)
        self.path: Path | str = (
            self.location.path if isinstance(self.location, LocalLocation) else str(self.location)
        )
        self._manifest = _load_manifest(self.location)
        m = self._manifest
        try:
            # watched: a bounded unit reading the trace names a constructor that never
            # returns, and says what to do about the trace's codec
            self.codec = codec_watch().calling(
                _codec_name(m["codec"]), BUILDING, get_codec, m["codec"], instead=STORED_INSTEAD
            )
        except CodecError as exc:  # not installed or cannot run here: not damage
            raise TraceError(
                f"{self.path}: cannot decode this trace's codec: {one_line(str(exc))}"
            ) from exc
        except (ValueError, TypeError, RecursionError) as exc:
            raise TraceCorrupt(
                f"{self.location / MANIFEST}: field 'codec' is not a codec this migcodec can "
                f"build ({one_line(str(exc))}); the trace is damaged (re-create it)"
            ) from exc
        if self.codec.reads_destination:
            raise TraceCorrupt(
                f"{self.location / MANIFEST}: field 'codec' names {self.codec.name!r}, which "
                "encodes against a destination's pages; no trace is written with it"
            )
        self.page_size = m["page_size"]
        self._seed = record_seed(m)
        index = self.location / INDEX
        # a closed trace's index holds exactly its windows' entries; an open one's, as many
        # as the writer appended before it stopped (a window each, however few pages the
        # memory has: windows dirty the same pages again), read if memory holds them. The
        # writer makes it at open, empty until a window comes: missing, it is damage
        limit = m["windows"] * INDEX_DTYPE.itemsize if m.get("complete") else None
        raw = _read_whole(index, limit)
        if len(raw) % INDEX_DTYPE.itemsize:
            if m.get("complete"):
                raise TraceCorrupt(f"{self.location / INDEX} is truncated mid-entry")
            raw = raw[: len(raw) - len(raw) % INDEX_DTYPE.itemsize]
        self._index = np.frombuffer(raw, dtype=INDEX_DTYPE)
        _check_index(self.location, self._index, m["memory_pages"])
        if not m.get("complete"):
            if not allow_incomplete:
                raise TraceIncomplete(
                    f"{self.path} was not closed by its writer ({len(self._index)} windows "
                    "indexed): the trace is incomplete; write it again",
                    self.path,
                    len(self._index),
                )
        elif len(self._index) != m["windows"]:
            raise TraceCorrupt(
                f"{self.location / INDEX} lists {len(self._index)} windows but the manifest says "
                f"{m['windows']}; the trace is damaged"
            )
        else:
            _check_totals(self.location, m, self._index)
            self._check_chunk_files()
        self._files: dict[int, tuple[BinaryIO, int]] = {}

    def _check_chunk_files(self) -> None:
        """A closed trace's chunk files are the ones its index lists (the writer opens the
        next only for a record): another is a file of another trace, or of this one before
        it was written again, left among its files."""
        listed = int(self._index["chunk"].max()) + 1 if len(self._index) else 1
        for chunk in self.location.glob(CHUNK_GLOB):
            number = chunk_number(chunk.name)
            if number is not None and number >= listed:
                raise TraceCorrupt(
                    f"{chunk} is not listed by {self.location / INDEX}: another trace's "
                    "file is among this one's; the trace is damaged (re-create it)"
                )

    # -- metadata ---------------------------------------------------------------------------
    def info(self) -> TraceInfo:
        m = self._manifest
        return TraceInfo(  # every field was checked against the schema on opening
            path=str(self.path),
            version=m["version"],
            page_size=self.page_size,
            memory_pages=m["memory_pages"],
            windows=len(self._index),
            window_s=m.get("window_s"),
            source=m["source"],
            command=m["command"],
            created=m["created"],
            codec=dict(m["codec"]),
            complete=m["complete"],
            end_reason=m.get("end_reason"),
            phases=tuple(PhaseSpan(p["name"], p["first"], p["windows"]) for p in m["phases"]),
            totals=self._totals(),
            meta=dict(m.get("meta", {})),
        )

    def _totals(self) -> dict[str, Any]:
        """The manifest's totals, counted from the index for a trace its writer did not
        close: a writer killed mid way wrote them only at open, and ``trace info`` of a
        killed capture said 0 MiB stored for 107. Which windows hold previous contents
        only the records say: unknown there (``None``)."""
        m = self._manifest
        if m["complete"]:
            return dict(m["totals"])
        pages = int(self._index["pages"].sum(dtype=np.uint64))
        return {
            "pages": pages,
            "raw_bytes": pages * self.page_size,
            "stored_bytes": int(self._index["length"].sum(dtype=np.uint64)),
            "previous_windows": None,
        }

    def __len__(self) -> int:
        return len(self._index)

    def pages_per_window(self) -> np.ndarray:
        """Dirty pages of every window, from the index alone."""
        return self._index["pages"].astype(np.int64)

    # -- windows ------------------------------------------------------------------------------
    def __getitem__(self, i: int) -> Window:
        if not is_integer(i) and not isinstance(i, np.integer):
            raise TypeError(f"windows are numbered by integers, got {type(i).__name__} {i!r}")
        n = len(self._index)
        if not -n <= i < n:
            raise IndexError(f"window {i} out of range: the trace has {n} windows")
        return self._read(i % n)

    def __iter__(self) -> Iterator[Window]:
        return self.windows()

    def windows(self, start: int = 0, stop: int | None = None) -> Iterator[Window]:
        """Windows ``start`` to ``stop`` (exclusive) in order, one decoded at a time.

        ``start`` counts from 0: a negative one would fetch a record from the end under
        a number its header does not hold, and be reported as a damaged index."""
        if start < 0:
            raise IndexError(
                f"windows from {start}: a trace's windows are numbered from 0 "
                f"(this one has {len(self._index)})"
            )
        stop = len(self._index) if stop is None else min(stop, len(self._index))
        for i in range(start, stop):
            yield self._read(i)

    def close(self) -> None:
        for f, _ in self._files.values():
            f.close()
        self._files.clear()

    def __enter__(self) -> TraceReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------
    def _file(self, chunk: int) -> tuple[BinaryIO, int]:
        """The open chunk file and its size."""
        opened = self._files.get(chunk)
        if opened is None:
            opened = _open(self.location / CHUNK_PATTERN.format(chunk), "chunk file ")
            self.close()  # streaming: at most one chunk file open
            self._files[chunk] = opened
        return opened

    def _check_room(self, i: int, pages: int, previous: bool) -> None:
        """Refuse window ``i`` of ``pages`` pages (and as many previous contents) when
        decoding it needs more RAM than this machine has free. Pages of zeros or repeats
        are stored in a byte or so each, so a record of kilobytes can announce gigabytes:
        checked before anything is allocated, not left to numpy's traceback or the
        kernel's out-of-memory killer."""
        # each page's number too, decoded and summed (8 bytes each): on traces of small
        # pages, more than the pages themselves
        need = pages * (self.page_size * (2 if previous else 1) + 16)
        if need <= CHECKED_WINDOW_BYTES:
            return
        free = short_of(need)
        if free is not None:
            raise TraceError(
                f"window {i} holds {pages} pages of {format_size(self.page_size)}: decoding it "
                f"needs {format_size(need)} of RAM, but this machine has {format_size(free)} "
                "available; read the trace on a machine with more memory"
            )

    def _record(self, i: int) -> tuple[tuple, memoryview, str]:
        """Window ``i``'s record: its header's fields (checked against the index and the
        trace), its body (not yet checked) and where it lies, for messages."""
        entry = self._index[i]
        chunk, offset, length = int(entry["chunk"]), int(entry["offset"]), int(entry["length"])
        f, size = self._file(chunk)
        where = f"{CHUNK_PATTERN.format(chunk)} offset {offset}"
        if offset + length > size or length < HEADER_BYTES:
            raise TraceCorrupt(
                f"window {i}: {CHUNK_PATTERN.format(chunk)} is truncated: the record needs "
                f"{length} bytes at offset {offset}, the file has {size}; re-create or "
                f"re-capture the trace (windows before {i} are intact)",
                i,
            )
        last = i + 1 == len(self._index) or int(self._index[i + 1]["chunk"]) != chunk
        if last and offset + length != size and self._manifest["complete"]:
            raise TraceCorrupt(
                f"window {i}: {CHUNK_PATTERN.format(chunk)} has {size - offset - length} bytes "
                "after its last record, which its writer never writes; the chunk file is "
                "damaged (re-create or re-capture the trace)",
                i,
            )
        f.seek(offset)
        record = f.read(length)
        m = self._manifest
        fields = parse_header(record, where, i, self.page_size, m["memory_pages"], self._seed)
        if HEADER_BYTES + body_length(fields) != length or fields[4] != int(entry["pages"]):
            raise TraceCorrupt(f"window {i}: record at {where} does not match its index entry", i)
        return fields, memoryview(record)[HEADER_BYTES:], where

    def verify(self) -> None:
        """Check every record against its checksums, header and body, without decoding
        its pages (raises :class:`TraceCorrupt` as reading would): what a table measured
        from the trace and cached is trusted on, in a fraction of what decoding costs."""
        for i in range(len(self._index)):
            fields, body, where = self._record(i)
            check_body(fields, body, where)

    def _read(self, i: int) -> Window:
        fields, body, where = self._record(i)
        self._check_room(i, fields[4], bool(fields[2] & FLAG_PREVIOUS))
        window = decode_record(fields, body, self.codec, where)
        indices = window.page_indices
        memory_pages = self._manifest["memory_pages"]
        if indices.size and not (indices.min() >= 0 and indices.max() < memory_pages):
            raise TraceCorrupt(
                f"window {i}: record at {where} names pages {int(indices.min())} to "
                f"{int(indices.max())}; the trace's memory has {memory_pages}",
                i,
            )
        if window.dirty_pages is not None and window.dirty_pages > memory_pages:
            # a window dirties each page at most once; a forged count of 2**63 overflowed
            # the summaries that add them up, and one of 2**62 wrapped their sum to 0
            raise TraceCorrupt(
                f"window {i}: record at {where} says {window.dirty_pages} pages were "
                f"dirtied; the trace's memory has {memory_pages}: {RESTORE}",
                i,
            )
        return window


#: opening a trace: ``Trace(path).info()``, ``for w in Trace(path)``, ``Trace(path)[i]``
Trace = TraceReader


def open_trace(path: str | os.PathLike, *, allow_incomplete: bool = False) -> TraceReader:
    return TraceReader(path, allow_incomplete=allow_incomplete)
