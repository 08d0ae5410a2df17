"""Rewrite a trace's records with checksums that match: forged, not damaged.

A flipped byte only proves the checksums work; a reader must also refuse a record whose
checksums were recomputed over fields that lie (a page size of 0, metadata of the wrong
type). These helpers change one field and re-seal the record as the writer would.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from migcodec.datasets.trace.format import (
    CHUNK_PATTERN,
    HEADER_BYTES,
    HEADER_CHECKSUM,
    INDEX,
    INDEX_DTYPE,
    RECORD,
)
from migcodec.hashing import checksum

#: positions of the header fields RECORD packs
FIELDS = (
    "magic", "version", "flags", "window", "pages", "page_size", "meta_len", "len_idx",
    "len_pages", "len_prev", "body_checksum", "digest",
)  # fmt: skip


def index(path: Path) -> np.ndarray:
    return np.frombuffer((path / INDEX).read_bytes(), dtype=INDEX_DTYPE).copy()


def record(path: Path, window: int) -> tuple[list, bytes]:
    """The header fields and body of ``window``'s record."""
    entry = index(path)[window]
    data = (path / CHUNK_PATTERN.format(int(entry["chunk"]))).read_bytes()
    start, length = int(entry["offset"]), int(entry["length"])
    raw = data[start : start + length]
    return list(RECORD.unpack_from(raw, 0)), raw[HEADER_BYTES:]


def seal(fields: list, body: bytes) -> bytes:
    """A record from fields and body, both checksums recomputed."""
    fields = list(fields)
    fields[FIELDS.index("body_checksum")] = checksum([body])
    header = RECORD.pack(*fields)
    return header + HEADER_CHECKSUM.pack(checksum([header])) + body


def replace_record(path: Path, window: int, fields: list, body: bytes) -> None:
    """Put a sealed record in place of ``window``'s; it must keep the same length (the
    index and the records after it stay valid)."""
    entry = index(path)[window]
    chunk = path / CHUNK_PATTERN.format(int(entry["chunk"]))
    data = bytearray(chunk.read_bytes())
    new = seal(fields, body)
    start, length = int(entry["offset"]), int(entry["length"])
    assert len(new) == length, "a forged record must keep its length"
    data[start : start + length] = new
    chunk.write_bytes(bytes(data))


def forge_header(path: Path, window: int, **changes: int) -> None:
    """Change header fields of ``window``'s record, checksums recomputed."""
    fields, body = record(path, window)
    for name, value in changes.items():
        fields[FIELDS.index(name)] = value
    replace_record(path, window, fields, body)


def forge_meta(path: Path, window: int, meta: bytes) -> None:
    """Replace ``window``'s metadata JSON (padded with spaces to its length)."""
    fields, body = record(path, window)
    meta_len = fields[FIELDS.index("meta_len")]
    assert len(meta) <= meta_len, f"forged metadata longer than the {meta_len} bytes it replaces"
    replace_record(path, window, fields, meta.ljust(meta_len) + body[meta_len:])
