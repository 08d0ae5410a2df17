"""On-disk layout of a trace, version 2, and the errors of reading one.

A trace is a directory::

    manifest.json      versioned metadata (page size, memory size, window length, source,
                       creation command, codec, phases, totals); rewritten on close
    windows.idx        one 32-byte entry per window: chunk number, offset, length, pages
    chunk-000000.mct   window records, appended; a new chunk starts past ``chunk_bytes``

A window record is a fixed header followed by a body of sections. Each section is a byte
array (page numbers as deltas, page contents, previous contents) padded to whole pages and
encoded with the trace's codec through the public codec API, so a trace is compressed by
the same code that migrates pages. The header and the body each carry an xxh3-64 checksum,
so a damaged record is reported as such, with its window, before anything is decoded. The
header also carries an xxh3-64 digest of the window as written (page numbers, contents,
previous contents), checked after decoding: a codec that does not round-trip a window can
never hand back different pages without an error, whatever the cause.

A window may hold a uniform sample of the pages dirtied in it (a capture that bounds its
size): its ``dirty_pages`` is then the true count, kept in the record's metadata, so the
window can be scored at its real size.

``previous`` is stored per page either as is or XORed with the new contents, whichever has
fewer non-zero words: a sparse update then costs a few bytes, a first write over zero costs
nothing.
"""

from __future__ import annotations

import struct

import numpy as np

FORMAT = "migcodec-trace"
#: the version written. 4: the manifest is sealed (``migcodec.hashing.seal``), records are
#: as in 2. Not 3: in a manifest's text "3" is one flipped bit from "2", the version read
#: without a seal; "4" is two. 5: the manifest holds a ``trace_id`` that seeds every record
#: header's checksum (:func:`record_seed`), so a chunk file of another trace fails here.
VERSION = 5
#: manifests read: 2, written before manifests were sealed, is read without a seal (its
#: totals and phases are still checked against its index); 4, sealed, with records whose
#: checksums any trace of the same layout shares
LEGACY_VERSION = 2
SEALED_VERSION = 4
READ_VERSIONS = (LEGACY_VERSION, SEALED_VERSION, VERSION)
#: the manifest field of a version-5 trace that seeds its record headers' checksums
TRACE_ID = "trace_id"


def record_seed(manifest: dict) -> int:
    """The seed of a trace's record header checksums: its manifest's ``trace_id`` (random,
    drawn when the trace is created) from version 5, 0 before. Two traces of one workload,
    page count and codec can have records of the same lengths, and an index only lists
    lengths: without a seed of the trace's own, a chunk file copied from one to the other
    would read back as the other's windows without an error."""
    return manifest[TRACE_ID] if manifest["version"] >= VERSION else 0


MANIFEST = "manifest.json"
INDEX = "windows.idx"
CHUNK_PATTERN = "chunk-{:06d}.mct"
#: the largest manifest read: a closed trace's lists a few fields per phase
MANIFEST_LIMIT = 16 << 20
#: the commands that write a trace, for messages that ask for one
WRITTEN_BY = "`migcodec trace capture` or `migcodec trace synth`"
#: what to do about a trace damaged on disk: its checksums find the damage, not undo it
RESTORE = "restore the trace from a copy, or re-create or re-capture it"


#: a chunk file's name around its number, and the glob of every chunk file's name
_CHUNK_HEAD, _CHUNK_TAIL = CHUNK_PATTERN.split("{:06d}")
CHUNK_GLOB = f"{_CHUNK_HEAD}*{_CHUNK_TAIL}"


def chunk_number(name: str) -> int | None:
    """The number of the chunk file named ``name``, or ``None`` for another name."""
    number = name[len(_CHUNK_HEAD) : len(name) - len(_CHUNK_TAIL)]
    if name.startswith(_CHUNK_HEAD) and name.endswith(_CHUNK_TAIL) and len(number) >= 6:
        return int(number) if number.isdigit() else None
    return None


def is_trace_file(name: str) -> bool:
    """Whether ``name``, a file name in a trace directory, is one of the trace's own files
    (its manifest, index or a chunk): what keys its cached tables, and what no table may
    be written over."""
    return name in (MANIFEST, INDEX) or chunk_number(name) is not None


#: the start of the name of an evaluation table cached in a trace's directory (``migcodec
#: evaluate``): derived from the trace, and replaced with it
TABLE_CACHE_PREFIX = "selector-table-"


def belongs_to_trace(name: str) -> bool:
    """Whether ``name``, in a trace directory, is the trace's or derived from it (its own
    files, a manifest being rewritten, tables cached there): what replacing the trace may
    remove. Anything else there is someone's own."""
    return is_trace_file(name) or name == MANIFEST + ".tmp" or name.startswith(TABLE_CACHE_PREFIX)


RECORD_MAGIC = b"MCTW"

#: magic, version, flags, window index, page count, page size, meta length,
#: 3 section lengths (indices, pages, previous), body checksum, content digest
RECORD = struct.Struct("<4sHHQQIIQQQQQ")
HEADER_CHECKSUM = struct.Struct("<Q")
HEADER_BYTES = RECORD.size + HEADER_CHECKSUM.size
#: one section: unpadded length, payload length (the modes follow, one byte per page)
SECTION = struct.Struct("<QQ")

FLAG_PREVIOUS = 1

INDEX_DTYPE = np.dtype(
    [("chunk", "<u4"), ("flags", "<u4"), ("offset", "<u8"), ("length", "<u8"), ("pages", "<u8")]
)


class TraceError(Exception):
    """Base class of trace failures; messages say which file or window and what to do."""


class TraceNotFound(TraceError, FileNotFoundError):
    """The directory is not a trace (no manifest)."""


class TraceVersionError(TraceError):
    """The trace was written by a format version this migcodec cannot read."""


class TraceCorrupt(TraceError):
    """A record, the index or the manifest is truncated or damaged."""

    def __init__(self, message: str, window: int | None = None) -> None:
        super().__init__(message)
        self.window = window


class TraceIncomplete(TraceCorrupt):
    """The trace was not closed by its writer; ``TraceReader(path, allow_incomplete=True)``
    reads its ``windows`` indexed windows. The message names no option: each caller says
    what its user can do."""

    def __init__(self, message: str, path: object, windows: int) -> None:
        super().__init__(message)
        self.path = path
        self.windows = windows


class UnsuitableCodec(TraceError, ValueError):
    """The codec cannot store a trace: it encodes pages against what a destination holds,
    and a trace has no destination."""


class TraceWriteFailed(TraceError):
    """The operating system refused a write of the trace (a full disk, no permission, an
    I/O error); the partial trace is left as it was, unclosed."""


class TraceTooLarge(TraceError):
    """The windows written show that the trace asked for will not fit where it is
    written: refused early, with the partial trace left unclosed."""


class TraceWriteInterrupted(TraceWriteFailed):
    """A write failed once the trace was created and windows were being written: work
    that ran and failed (the command line need not change), not a path to choose again."""


class TraceExists(TraceError, FileExistsError):
    """The output path cannot take a new trace: it already holds a trace (``replaceable``:
    overwriting replaces it), or it is a file, or a directory holding other things."""

    def __init__(self, message: str, path: object = None, replaceable: bool = False) -> None:
        super().__init__(message)
        self.path = path
        self.replaceable = replaceable
