"""One window as a checksummed record, and back."""

from __future__ import annotations

import json
import math
from concurrent.futures import Executor

import numpy as np

from migcodec.codecs import Codec
from migcodec.codecs.encoded import nbytes_of
from migcodec.datasets.window import Window
from migcodec.files import parse_json
from migcodec.hashing import checksum
from migcodec.wire.errors import one_line

from .format import (
    FLAG_PREVIOUS,
    HEADER_CHECKSUM,
    READ_VERSIONS,
    RECORD,
    RECORD_MAGIC,
    RESTORE,
    VERSION,
    TraceCorrupt,
)
from .schema import RECORD_META_SCHEMA, check
from .sections import decode_section, encode_section


def _previous_as_stored(pages: np.ndarray, previous: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per page, ``previous`` or ``previous ^ pages``, whichever has fewer non-zero words.

    Returns the selector (1 = XOR) and the array to store; both vectorised over the window.
    """
    new = pages.view("<u8")
    old = previous.view("<u8")
    stored = new ^ old  # becomes the stored array in place: one window-sized temporary
    use_xor = np.count_nonzero(stored, axis=1) < np.count_nonzero(old, axis=1)
    direct = ~use_xor
    stored[direct] = old[direct]
    return use_xor.astype(np.uint8), stored


def content_digest(indices: np.ndarray, pages: np.ndarray, previous: np.ndarray | None) -> int:
    """xxh3-64 of a window as its user sees it: page numbers (little-endian i64), contents
    and, when present, previous contents. Written beside the record and checked after it is
    decoded, so a window that decodes to other bytes than were written is an error."""
    parts = [np.ascontiguousarray(indices, dtype="<i8"), np.ascontiguousarray(pages)]
    if previous is not None:
        parts.append(np.ascontiguousarray(previous))
    return checksum(parts)


def encode_record(
    window: Window, codec: Codec, page_size: int, pool: Executor | None = None, seed: int = 0
) -> list:
    """The record's parts (header first), ready for ``file.write`` one after the other.

    ``seed`` seeds the header's checksum: the trace's :func:`~.format.record_seed`, which
    ties the record to the trace it is written in."""
    _check_kinds(window)
    indices = np.ascontiguousarray(window.page_indices, dtype=np.int64)
    pages = np.ascontiguousarray(window.pages, dtype=np.uint8)
    n = indices.shape[0]
    if pages.shape != (n, page_size):
        raise ValueError(
            f"window {window.index}: pages have shape {pages.shape}, expected ({n}, {page_size})"
        )
    if n > 1 and not bool((np.diff(indices) > 0).all()):
        raise ValueError(f"window {window.index}: page indices must be strictly ascending")
    if n and indices[0] < 0:  # the reader refuses a page number below 0 as damage
        raise ValueError(f"window {window.index}: page index {int(indices[0])} is negative")
    meta = {"phase": window.phase, "duration_s": window.duration_s, "meta": window.meta}
    if window.dirty_pages is not None:
        if not isinstance(window.dirty_pages, int) or window.dirty_pages < n:
            raise ValueError(
                f"window {window.index}: dirty_pages {window.dirty_pages!r} must be an integer "
                f"of at least the {n} pages it stores"
            )
        meta["dirty_pages"] = window.dirty_pages
    meta_bytes = _meta_json(window.index, meta)
    deltas = np.diff(indices, prepend=np.int64(0))  # small numbers, compress well
    parts_idx = encode_section(codec, deltas, page_size)
    parts_pages = encode_section(codec, pages, page_size, pool)
    flags = 0
    parts_prev: list = []
    previous = None
    if window.previous is not None:
        previous = np.ascontiguousarray(window.previous, dtype=np.uint8)
        if previous.shape != pages.shape:
            raise ValueError(f"window {window.index}: previous has shape {previous.shape}")
        selector, stored = _previous_as_stored(pages, previous)
        parts_prev = [selector.tobytes(), *encode_section(codec, stored, page_size, pool)]
        flags |= FLAG_PREVIOUS
    body = [meta_bytes, *parts_idx, *parts_pages, *parts_prev]
    header = RECORD.pack(
        RECORD_MAGIC,
        VERSION,
        flags,
        window.index,
        n,
        page_size,
        len(meta_bytes),
        nbytes_of(parts_idx),
        nbytes_of(parts_pages),
        nbytes_of(parts_prev),
        checksum(body),
        content_digest(indices, pages, previous),
    )
    return [header, HEADER_CHECKSUM.pack(checksum([header], seed)), *body]


def _check_kinds(window: Window) -> None:
    """Refuse page numbers that are not integers and contents that are not bytes: the
    record casts them to int64 and uint8, which would store 1.5 as page 1 and a word of 256
    as a byte of 0, and the window would read back different without an error."""
    arrays = {"page indices": window.page_indices, "pages": window.pages}
    if window.previous is not None:
        arrays["previous"] = window.previous
    for what, array in arrays.items():
        dtype = np.asarray(array).dtype
        numbers = what == "page indices"
        if not (dtype.kind in "iu" if numbers else dtype == np.uint8):
            wanted = "integers" if numbers else "bytes (uint8)"
            raise ValueError(f"window {window.index}: {what} are {dtype}, not {wanted}")


def _meta_json(index: int, meta: dict) -> bytes:
    """A record's metadata as JSON, refused (``ValueError`` naming the field) unless the
    reader will take it (:data:`~.schema.RECORD_META_SCHEMA`) and read back the same values:
    JSON turns an integer key into a string and a tuple into a list, and a reader refuses a
    phase that is not a string or a negative duration as damage, so each would otherwise be
    found only when the trace is read."""
    problem = check(meta, RECORD_META_SCHEMA, "metadata")
    if problem is not None:
        raise ValueError(f"window {index}: {problem}")
    try:
        text = json.dumps(meta, separators=(",", ":"), allow_nan=False)
    except (ValueError, TypeError) as exc:  # NaN or infinity, an object JSON has no form of
        raise ValueError(f"window {index}: metadata cannot be stored as JSON: {exc}") from None
    if json.loads(text) != meta:
        raise ValueError(
            f"window {index}: metadata {meta['meta']!r} would read back as "
            f"{json.loads(text)['meta']!r}; use string keys and lists, as JSON has"
        )
    return text.encode()


def parse_header(
    raw: bytes, where: str, window: int, page_size: int, memory_pages: int, seed: int = 0
) -> tuple:
    """Validated header fields; ``where`` names the file and offset for messages, ``seed``
    is the trace's :func:`~.format.record_seed` (a record of another trace fails).

    The page size must be the trace's and the page count within its memory: both size the
    buffers the record decodes into, so they are checked before anything is allocated."""
    fields = RECORD.unpack_from(raw, 0)
    (stored,) = HEADER_CHECKSUM.unpack_from(raw, RECORD.size)
    if fields[0] != RECORD_MAGIC:
        raise TraceCorrupt(
            f"window {window}: no record at {where} (magic {fields[0]!r}); the chunk file "
            "or the index is damaged",
            window,
        )
    if checksum([raw[: RECORD.size]], seed) != stored:
        raise TraceCorrupt(
            f"window {window}: record header at {where} fails its checksum; the chunk file is "
            f"damaged or belongs to another trace: {RESTORE}",
            window,
        )
    if fields[1] not in READ_VERSIONS:  # records are alike in every version read
        raise TraceCorrupt(
            f"window {window}: record version {fields[1]}, expected one of {READ_VERSIONS}", window
        )
    if fields[5] != page_size:
        raise TraceCorrupt(
            f"window {window}: record at {where} has {fields[5]}-byte pages; the trace's "
            f"pages are {page_size} bytes",
            window,
        )
    if fields[4] > memory_pages:
        raise TraceCorrupt(
            f"window {window}: record at {where} holds {fields[4]} pages; the trace's memory "
            f"has {memory_pages}",
            window,
        )
    if fields[2] & ~FLAG_PREVIOUS:
        raise TraceCorrupt(
            f"window {window}: record at {where} has unknown flags {fields[2]:#x}", window
        )
    if fields[3] != window:
        raise TraceCorrupt(
            f"window {window}: record at {where} holds window {fields[3]}; the chunk file (a "
            f"record moved or copied) or the index is damaged: {RESTORE}",
            window,
        )
    return fields


def body_length(fields: tuple) -> int:
    meta_len, len_idx, len_pages, len_prev = fields[6:10]
    return meta_len + len_idx + len_pages + len_prev  # len_prev includes the XOR selector


def check_body(fields: tuple, body: memoryview, where: str) -> None:
    """Refuse a record body, whose header passed :func:`parse_header`, that fails its
    checksum (:class:`TraceCorrupt` naming the window and ``where``)."""
    if checksum([body]) != fields[10]:
        raise TraceCorrupt(
            f"window {fields[3]}: record body fails its checksum; the chunk file is damaged "
            f"(record at {where}): {RESTORE}",
            fields[3],
        )


def decode_record(fields: tuple, body: memoryview, codec: Codec, where: str) -> Window:
    """The window of a record whose header passed :func:`parse_header`."""
    _, _, flags, index, n, page_size, meta_len, len_idx, len_pages, _, _, digest = fields

    def corrupt(what: str) -> TraceCorrupt:
        return TraceCorrupt(f"window {index}: {what} (record at {where})", index)

    check_body(fields, body, where)
    try:
        meta = parse_json(bytes(body[:meta_len]))
        problem = check(meta, RECORD_META_SCHEMA, "metadata")
        if problem is not None:
            raise ValueError(f"record {problem}")
        deltas, end = decode_section(codec, body, meta_len, page_size, 8 * n)
        if end != meta_len + len_idx:
            raise ValueError("page-number section does not end where the header says")
        indices = np.cumsum(deltas.view("<i8"))
        pages, end = decode_section(codec, body, end, page_size, n * page_size)
        if end != meta_len + len_idx + len_pages:
            raise ValueError("page section does not end where the header says")
        pages = pages.reshape(-1, page_size)
        previous = None
        if flags & FLAG_PREVIOUS:
            use_xor = np.frombuffer(body, np.uint8, n, end).astype(bool)
            stored, end = decode_section(codec, body, end + n, page_size, n * page_size)
            previous = stored.reshape(-1, page_size)
            if previous.shape[0] == n:
                words = previous.view("<u8")
                words[use_xor] ^= pages.view("<u8")[use_xor]
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise corrupt(one_line(str(exc))) from exc
    sizes = {indices.shape[0], pages.shape[0], n if previous is None else previous.shape[0]}
    if sizes != {n} or end != len(body):
        raise corrupt(f"sections do not hold exactly {n} pages")
    if content_digest(indices, pages, previous) != digest:
        raise corrupt(
            "decoded pages differ from the pages written (content digest mismatch): the "
            f"record was altered or the trace's codec {codec.name!r} does not round-trip; "
            "re-create the trace (its default codec, zstd, round-trips)"
        )
    duration = meta.get("duration_s")  # the metadata passed RECORD_META_SCHEMA
    dirty_pages = meta.get("dirty_pages")
    if dirty_pages is not None and dirty_pages < n:
        raise corrupt(f"dirty_pages {dirty_pages!r} is not an integer of at least {n}")
    return Window(
        index=index,
        page_indices=indices,
        pages=pages,
        previous=previous,
        phase=meta.get("phase"),
        duration_s=None if duration is None or math.isnan(duration) else float(duration),
        meta=meta.get("meta") or {},
        dirty_pages=dirty_pages,
    )
