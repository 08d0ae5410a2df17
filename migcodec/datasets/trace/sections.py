"""Byte arrays in and out of a trace's codec: pad to pages, encode as one batch, decode.

A section is any byte array; padding it to whole pages lets every codec of the registry
store it (page numbers and contents alike), and decoding goes through ``Codec.decode`` into
a fresh buffer, so the codec's own validation guards every byte it produces.
"""

from __future__ import annotations

import numpy as np

from migcodec.codecs import Batch, Codec, CodecError, Encoded

from .format import SECTION


def encode_section(codec: Codec, data: np.ndarray, page_size: int) -> list:
    """Header, modes and payload segments of ``data`` (any contiguous array), unjoined."""
    raw = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    n_pages = -(-raw.size // page_size)
    if n_pages == 0:
        return [SECTION.pack(0, 0)]
    if raw.size == n_pages * page_size:
        pages = raw.reshape(n_pages, page_size)
    else:
        pages = np.zeros((n_pages, page_size), dtype=np.uint8)
        pages.reshape(-1)[: raw.size] = raw
    encoded = codec.encode(Batch(pages, [(0, n_pages)], page_size, max_pages=n_pages))
    payload = [memoryview(s).cast("B") for s in encoded.segments]
    total = sum(p.nbytes for p in payload)
    return [SECTION.pack(raw.size, total), encoded.modes.astype(np.uint8).tobytes(), *payload]


def section_nbytes(parts: list) -> int:
    return sum(memoryview(p).nbytes for p in parts)


def decode_section(
    codec: Codec, body: memoryview, offset: int, page_size: int
) -> tuple[np.ndarray, int]:
    """Decode the section at ``offset`` of ``body``; return its bytes and the next offset.

    Raises ``ValueError`` with what is wrong; the reader adds the window and file.
    """
    if offset + SECTION.size > len(body):
        raise ValueError(f"section header at byte {offset} runs past the record end")
    raw_len, payload_len = SECTION.unpack_from(body, offset)
    offset += SECTION.size
    n_pages = -(-raw_len // page_size)
    end = offset + n_pages + payload_len
    if end > len(body):
        raise ValueError(
            f"section of {raw_len} bytes needs {n_pages + payload_len} stored bytes at byte "
            f"{offset}, but the record has only {len(body) - offset} left"
        )
    if n_pages == 0:
        return np.zeros(0, dtype=np.uint8), offset
    modes = np.frombuffer(body, dtype=np.uint8, count=n_pages, offset=offset)
    payload = body[offset + n_pages : end]
    out = np.empty((n_pages, page_size), dtype=np.uint8)
    runs = np.array([[0, n_pages]], dtype=np.int64)
    try:
        codec.decode(Encoded(codec.name, page_size, runs, modes, (payload,)), out)
    except CodecError as exc:
        raise ValueError(f"{codec.name} cannot decode the section: {exc}") from exc
    return out.reshape(-1)[:raw_len], end
