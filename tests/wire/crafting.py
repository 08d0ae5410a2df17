"""Hand-built preambles and frames in the real v1 byte layout, with valid checksums.

A fault test is only worth something if the bad field is the *only* thing wrong: a frame with
a garbage length and a garbage checksum proves nothing about the length check. These helpers
pack fields with the structs of :mod:`migcodec.wire.format` and checksum them exactly as the
writer does, so every check before the checksum and every check after it can be reached.
Any field can be overridden with a value that contradicts the rest of the frame.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from migcodec.codecs import Codec, get_codec
from migcodec.hashing import checksum
from migcodec.wire import format as fmt


def codec_entry(codec_id: int, name: str | bytes, config: Any) -> bytes:
    """One codec-table entry; ``config`` is a dict (JSON-encoded here) or raw bytes."""
    raw_name = name.encode() if isinstance(name, str) else name
    if not isinstance(config, bytes):  # as Preamble.encode writes it: sorted, compact
        config = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    blob = config
    return fmt.CODEC_ENTRY.pack(codec_id, len(raw_name), len(blob)) + raw_name + blob


def preamble_bytes(
    page_size: int,
    memory_pages: int,
    max_batch_pages: int,
    codecs: Mapping[int, Mapping[str, Any]] | Sequence[bytes],
    *,
    magic: bytes = fmt.MAGIC,
    version: int = fmt.VERSION,
    flags: int = 0,
    codec_count: int | None = None,
    bad_checksum: bool = False,
) -> bytes:
    """A preamble; ``codecs`` maps id -> config, or is a list of pre-built entries."""
    if isinstance(codecs, Mapping):
        entries = [codec_entry(i, c["name"], dict(c)) for i, c in sorted(codecs.items())]
    else:
        entries = list(codecs)
    count = len(entries) if codec_count is None else codec_count
    body = fmt.PREAMBLE_FIXED.pack(
        magic, version, flags, page_size, memory_pages, max_batch_pages, count
    ) + b"".join(entries)
    digest = checksum([body]) ^ (1 if bad_checksum else 0)
    return body + fmt.CHECKSUM.pack(digest)


def runs_bytes(runs: Iterable[tuple[int, int]]) -> bytes:
    """Runs as the wire packs them: ``u64 first_page | u32 n_pages`` each."""
    return b"".join(fmt.RUN.pack(first, count) for first, count in runs)


def frame_bytes(
    index: int,
    ftype: int,
    *,
    codec_id: int = 0,
    flags: int = 0,
    runs: Sequence[tuple[int, int]] = (),
    modes: Sequence[int] | bytes = b"",
    payload: bytes = b"",
    run_count: int | None = None,
    page_count: int | None = None,
    payload_len: int | None = None,
    body: bytes | None = None,
    checksum_seed: int | None = None,
) -> bytes:
    """One frame with a checksum that matches whatever the fields say.

    Counts default to what ``runs``, ``modes`` and ``payload`` hold; overriding one makes a
    frame whose header contradicts its body. ``body`` replaces runs + modes + payload
    entirely (e.g. to send none of a body the header announces). ``checksum_seed`` defaults
    to ``index``, as the writer seeds it.
    """
    mode_bytes = bytes(modes)
    if body is None:
        body = runs_bytes(runs) + mode_bytes + payload
    head = fmt.FRAME_HEADER.pack(
        fmt.FRAME_MAGIC,
        ftype,
        codec_id,
        flags,
        len(runs) if run_count is None else run_count,
        len(mode_bytes) if page_count is None else page_count,
        len(payload) if payload_len is None else payload_len,
        0,
    )[:16]
    seed = index if checksum_seed is None else checksum_seed
    return head + fmt.CHECKSUM.pack(checksum([head, body], seed=seed)) + body


def end_iteration(index: int, iteration: int, pages: int) -> bytes:
    return frame_bytes(
        index, fmt.FrameType.END_ITERATION, payload=fmt.END_ITERATION.pack(iteration, pages)
    )


def end_stream(index: int, pages: int, frames: int | None = None, digest: bytes | None = None):
    """End of stream; ``frames`` defaults to ``index`` (the count of frames before it)."""
    payload = fmt.END_STREAM.pack(pages, index if frames is None else frames)
    if digest is None:
        return frame_bytes(index, fmt.FrameType.END_STREAM, payload=payload)
    return frame_bytes(
        index, fmt.FrameType.END_STREAM, flags=fmt.FLAG_DIGEST, payload=payload + digest
    )


class CachedResolver:
    """Resolves each distinct codec config through the registry once.

    The registry costs about a millisecond per lookup (stevedore); tests that construct
    thousands of readers over the same preamble would spend their budget there.
    """

    def __init__(self) -> None:
        self._codecs: dict[str, Codec] = {}
        self.calls = 0

    def __call__(self, config: dict[str, Any]) -> Codec:
        self.calls += 1
        key = json.dumps(config, sort_keys=True)
        if key not in self._codecs:
            self._codecs[key] = get_codec(config)
        return self._codecs[key]


def named_pages(runs: Iterable[tuple[int, int]]) -> np.ndarray:
    """Page indices a list of runs names, in order."""
    return np.array([p for first, count in runs for p in range(first, first + count)], np.int64)
