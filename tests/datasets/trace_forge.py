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
    MANIFEST,
    RECORD,
    record_seed,
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


def seed(path: Path) -> int:
    """The seed of the record header checksums of the trace at ``path``."""
    import json

    return record_seed(json.loads((path / MANIFEST).read_text()))


def seal(fields: list, body: bytes, seed: int = 0) -> bytes:
    """A record from fields and body, both checksums recomputed (the header's with the
    trace's ``seed``)."""
    fields = list(fields)
    fields[FIELDS.index("body_checksum")] = checksum([body])
    header = RECORD.pack(*fields)
    return header + HEADER_CHECKSUM.pack(checksum([header], seed)) + body


def replace_record(path: Path, window: int, fields: list, body: bytes) -> None:
    """Put a sealed record in place of ``window``'s; it must keep the same length (the
    index and the records after it stay valid)."""
    entry = index(path)[window]
    chunk = path / CHUNK_PATTERN.format(int(entry["chunk"]))
    data = bytearray(chunk.read_bytes())
    new = seal(fields, body, seed(path))
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


def forge_zero_window(path: Path, pages: int, page_size: int) -> Path:
    """A closed trace at ``path`` of one window of ``pages`` zero pages of ``page_size``
    bytes, every record, index and manifest field consistent and sealed: each zero page is
    stored as one mode byte, so a trace of kilobytes announces ``pages * page_size``. The
    window's content digest is the pages' up to 64 MiB of them, 0 past that (hashing
    gigabytes of zeros would cost the test seconds: such a window is refused before it
    is decoded, and its digest never read)."""
    import json

    from migcodec.codecs import get_codec
    from migcodec.datasets.trace.format import FORMAT, MANIFEST, RECORD_MAGIC, SECTION, VERSION
    from migcodec.datasets.trace.sections import BATCH_PAGES, encode_section
    from migcodec.hashing import seal as seal_manifest

    path.mkdir(parents=True)
    codec = {"name": "zstd", "level": 1}
    meta = b'{"phase":null,"duration_s":0.1,"meta":{}}'
    deltas = np.ones(pages, dtype="<i8")  # page numbers 1..pages, as differences
    numbers = b"".join(bytes(memoryview(p).cast("B")) for p in encode_section(
        get_codec(codec), deltas, page_size
    ))  # fmt: skip
    batches = -(-pages // BATCH_PAGES)
    zeros = SECTION.pack(pages * page_size, 0) + bytes(pages) + bytes(8 * batches)
    body = meta + numbers + zeros
    fields = [RECORD_MAGIC, VERSION, 0, 0, pages, page_size, len(meta), len(numbers)]
    digest = 0
    if pages * page_size <= 64 << 20:
        digest = checksum([np.cumsum(deltas), np.zeros((pages, page_size), dtype=np.uint8)])
    data = seal([*fields, len(zeros), 0, 0, digest], body, seed=1)
    (path / CHUNK_PATTERN.format(0)).write_bytes(data)
    entry = np.zeros(1, dtype=INDEX_DTYPE)
    entry["length"], entry["pages"] = len(data), pages
    (path / INDEX).write_bytes(entry.tobytes())
    manifest = {
        "format": FORMAT, "version": VERSION, "page_size": page_size,
        "memory_pages": pages + 1, "window_s": 0.1, "source": "forged", "command": "forged",
        "created": "2026-01-01T00:00:00", "codec": codec, "chunk_bytes": 1 << 28,
        "complete": True, "windows": 1, "end_reason": "closed", "trace_id": 1,
        "phases": [{"name": None, "first": 0, "windows": 1}],
        "totals": {"pages": pages, "raw_bytes": pages * page_size, "stored_bytes": len(data),
                   "previous_windows": 0},
    }  # fmt: skip
    (path / MANIFEST).write_text(json.dumps(seal_manifest(manifest)))
    return path
