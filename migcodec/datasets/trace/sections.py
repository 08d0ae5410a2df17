"""Byte arrays in and out of a trace's codec: pad to pages, encode in batches, decode.

A section is any byte array; padding it to whole pages lets every codec of the registry
store it (page numbers and contents alike). It is encoded as batches of
:data:`BATCH_PAGES` pages: large enough for good ratios, small enough to bound temporary
memory (and the codec framework is exercised at the sizes it is built for). Decoding goes
through ``Codec.decode`` into a fresh buffer, so the codec's own validation guards every
byte. Layout: ``SECTION`` header (unpadded length, payload length), one mode byte per page,
one u64 payload length per batch, the payloads.
"""

from __future__ import annotations

from concurrent.futures import Executor

import numpy as np

from migcodec.codecs import Batch, Codec, CodecError, Encoded
from migcodec.codecs.bounded import codec_watch

from .format import SECTION

BATCH_PAGES = 1024  # part of format version 1
#: what to do about a trace whose codec's decode never returns
STORED_INSTEAD = "record the trace again with another --codec"


def encode_section(
    codec: Codec, data: np.ndarray, page_size: int, pool: Executor | None = None
) -> list:
    """Header, modes, batch table and payload segments of ``data``, unjoined.

    With ``pool``, batches are encoded on its threads (zstd, lz4 and zlib-ng release the
    GIL), in order; a section of one batch is encoded here, as the pool would gain nothing
    from it and the hand-off to a thread and back cost more than a small batch's encode (a
    window of one page took half a millisecond, most of it in three hand-offs). Each
    batch's encode is watched as a codec call of this thread
    (:class:`~migcodec.codecs.bounded.Watch`).
    """
    raw = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    n_pages = -(-raw.size // page_size)
    if n_pages == 0:
        return [SECTION.pack(0, 0)]
    if raw.size == n_pages * page_size:
        pages = raw.reshape(n_pages, page_size)
    else:
        pages = np.zeros((n_pages, page_size), dtype=np.uint8)
        pages.reshape(-1)[: raw.size] = raw
    batches = [
        Batch(pages, [(lo, min(BATCH_PAGES, n_pages - lo))], page_size, max_pages=BATCH_PAGES)
        for lo in range(0, n_pages, BATCH_PAGES)  # per batch of 1024 pages, not per page
    ]
    # each batch watched (a bounded unit writing the trace names an encode that never
    # returns); on the pool, the wait for each batch in turn: no wait outlasts its batch
    watch = codec_watch()
    if pool is not None and len(batches) > 1:
        pending = pool.map(codec.encode, batches)
        results = [watch.calling(codec, "encode", next, pending) for _ in batches]
    else:
        results = [watch.calling(codec, "encode", codec.encode, b) for b in batches]
    modes, lengths, payload = [], [], []
    for encoded in results:
        segments = [memoryview(s).cast("B") for s in encoded.segments]
        modes.append(np.asarray(encoded.modes, dtype=np.uint8))
        lengths.append(sum(s.nbytes for s in segments))
        payload += segments
    table = np.asarray(lengths, dtype="<u8")
    header = SECTION.pack(raw.size, int(table.sum()))
    return [header, np.concatenate(modes).tobytes(), table.tobytes(), *payload]


def decode_section(
    codec: Codec, body: memoryview, offset: int, page_size: int, expected: int
) -> tuple[np.ndarray, int]:
    """Decode the section at ``offset`` of ``body``; return its bytes and the next offset.

    ``expected`` is the length the record header implies, so a damaged length can never
    make the reader allocate more than the window it announced. Raises ``ValueError``
    saying what is wrong; the reader adds the window and file.
    """
    if offset + SECTION.size > len(body):
        raise ValueError(f"section header at byte {offset} runs past the record end")
    raw_len, payload_len = SECTION.unpack_from(body, offset)
    if raw_len != expected:
        raise ValueError(f"section holds {raw_len} bytes where the header implies {expected}")
    offset += SECTION.size
    n_pages = -(-raw_len // page_size)
    n_batches = -(-n_pages // BATCH_PAGES)
    end = offset + n_pages + 8 * n_batches + payload_len
    if end > len(body):
        raise ValueError(
            f"section of {raw_len} bytes needs {end - offset} stored bytes at byte "
            f"{offset}, but the record has only {len(body) - offset} left"
        )
    if n_pages == 0:
        return np.zeros(0, dtype=np.uint8), offset
    modes = np.frombuffer(body, dtype=np.uint8, count=n_pages, offset=offset)
    table = np.frombuffer(body, dtype="<u8", count=n_batches, offset=offset + n_pages)
    if int(table.sum()) != payload_len:
        raise ValueError("section batch table does not add up to its payload length")
    out = np.empty((n_pages, page_size), dtype=np.uint8)
    start = offset + n_pages + 8 * n_batches
    runs = np.array([[0, 0]], dtype=np.int64)
    for b, length in enumerate(table.tolist()):  # per batch of 1024 pages
        lo = b * BATCH_PAGES
        hi = min(n_pages, lo + BATCH_PAGES)
        runs[0, 1] = hi - lo
        encoded = Encoded(
            codec.name, page_size, runs.copy(), modes[lo:hi], (body[start : start + length],)
        )
        try:  # watched: a bounded unit reading the trace names a decode that never returns
            codec_watch().calling(
                codec, "decode", codec.decode, encoded, out[lo:hi], instead=STORED_INSTEAD
            )
        except CodecError as exc:
            raise ValueError(f"{codec.name} cannot decode batch {b} of a section: {exc}") from exc
        start += length
    return out.reshape(-1)[:raw_len], end
