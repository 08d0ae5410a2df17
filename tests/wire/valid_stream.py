"""A small but complete migration stream, written by the real FrameWriter, and what a
destination must hold after each of its frames.

Small pages (512 bytes, the format's minimum) keep the stream to a few kilobytes, so fault
tests can afford to cut it at every byte offset. It still has everything a reader must get
right: four codecs in the preamble (one with a non-default config), zero, raw and encoded
pages, scattered runs in non-ascending order, a frame of zero pages only (empty payload), a
second pre-copy iteration that re-sends dirtied pages, end-of-iteration frames, and an
end-of-stream frame with a memory digest.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from migcodec.codecs import Batch, get_codec
from migcodec.wire import FrameWriter, memory_digest
from migcodec.wire import format as fmt

PAGE_SIZE = 512
MEMORY_PAGES = 24
MAX_BATCH_PAGES = 16
SENTINEL = 0xA5  # destination fill; no source page is made of it


@dataclass(frozen=True)
class FrameSpan:
    """Where a frame lies in the stream, and for a data frame the pages it writes."""

    start: int
    end: int
    type: fmt.FrameType
    pages: np.ndarray  # page indices written (empty for control frames)
    contents: np.ndarray  # their source contents when the frame was encoded


@dataclass(frozen=True)
class ValidStream:
    data: bytes
    preamble_len: int
    frames: list[FrameSpan]
    source: np.ndarray  # final source memory (what the digest covers)
    modes_seen: frozenset[int]
    codec_configs: list[dict]

    def expected_after(self, n_frames: int) -> np.ndarray:
        """Destination contents once the first ``n_frames`` frames are fully applied."""
        dest = np.full((MEMORY_PAGES, PAGE_SIZE), SENTINEL, np.uint8)
        for span in self.frames[:n_frames]:
            if span.pages.size:
                dest[span.pages] = span.contents
        return dest

    def expected_failed(self, data: bytes, frame: int) -> np.ndarray:
        """Destination contents after the frames before ``frame`` applied and frame
        ``frame`` failed, as it arrived in ``data`` (this stream damaged or cut).

        A failing frame writes nothing unless the reader receives it in place (a data frame
        of one run, in memory, every page ``RAW``: see ``migcodec.wire.reader``); then the
        pages its run names hold the payload bytes that arrived, whatever they are."""
        dest = self.expected_after(max(frame, 0))
        if frame < 0:
            return dest
        start = self.frames[frame].start
        head = data[start : start + fmt.FRAME_HEADER.size]
        if len(head) < fmt.FRAME_HEADER.size:
            return dest
        magic, ftype, codec_id, flags, runs, pages, payload_len, _ = fmt.FRAME_HEADER.unpack(head)
        valid_header = (
            magic == fmt.FRAME_MAGIC
            and ftype == fmt.FrameType.DATA
            and codec_id < len(self.codec_configs)
            and flags == 0
            and runs == 1
            and 0 < pages <= MAX_BATCH_PAGES
        )
        body = start + fmt.FRAME_HEADER.size
        payload = body + fmt.RUN.size + pages
        if not valid_header or len(data) < payload:
            return dest
        first, count = fmt.RUN.unpack_from(data, body)
        in_place = (
            count == pages
            and first + count <= MEMORY_PAGES
            and payload_len == pages * PAGE_SIZE
            and set(data[body + fmt.RUN.size : payload]) == {1}
        )
        if in_place:
            arrived = data[payload : payload + payload_len]
            flat = dest[first : first + count].reshape(-1)
            flat[: len(arrived)] = np.frombuffer(arrived, np.uint8)
        return dest

    def frames_before(self, offset: int) -> int:
        """How many frames end at or before ``offset``: those a reader has applied."""
        return sum(1 for span in self.frames if span.end <= offset)


def _source_memory() -> np.ndarray:
    rng = np.random.default_rng(7)
    memory = np.zeros((MEMORY_PAGES, PAGE_SIZE), np.uint8)
    for page in (1, 2, 12, 13, 8, 7, 14, 15, 16, 17, 18, 19):
        memory[page] = np.resize(np.arange(page, page + 9, dtype=np.uint8), PAGE_SIZE)
    for page in (4, 5, 6, 9, 10, 11, 20, 22, 23):
        memory[page] = rng.integers(0, 256, PAGE_SIZE, dtype=np.uint8)
    # pages 0, 3 and 21 stay zero
    assert not (memory == SENTINEL).all(axis=1).any()
    return memory


def build_valid_stream() -> ValidStream:
    """Write the stream with the real writer, recording frame boundaries as it goes."""
    memory = _source_memory()
    codecs = [
        get_codec("raw"),
        get_codec("lz4"),
        get_codec("zlib-ng"),
        get_codec({"name": "zstd", "level": -3}),
    ]
    raw, lz4, zlib, zstd = codecs
    out = io.BytesIO()
    writer = FrameWriter(out, PAGE_SIZE, MEMORY_PAGES, codecs, max_batch_pages=MAX_BATCH_PAGES)
    preamble_len = out.tell()
    frames: list[FrameSpan] = []
    modes: set[int] = set()
    empty = np.zeros(0, np.int64)

    def data(codec, runs) -> None:
        batch = Batch(memory, runs, PAGE_SIZE, MAX_BATCH_PAGES)
        encoded = codec.encode(batch)
        modes.update(int(m) for m in encoded.modes)
        start = out.tell()
        writer.write_batch(encoded)
        pages = batch.page_indices.copy()
        frames.append(FrameSpan(start, out.tell(), fmt.FrameType.DATA, pages, memory[pages]))

    def control(ftype, write) -> None:
        start = out.tell()
        write()
        frames.append(FrameSpan(start, out.tell(), ftype, empty, memory[empty]))

    # iteration 0: every page once, in scattered runs
    data(zstd, [(0, 4), (12, 2), (8, 1)])  # zero + encoded
    data(raw, [(20, 4), (4, 3)])  # raw + zero
    data(lz4, [(9, 3)])  # random pages: raw fall-back
    data(zlib, [(14, 6), (7, 1)])  # encoded
    control(fmt.FrameType.END_ITERATION, lambda: writer.end_iteration(0, MEMORY_PAGES))
    # iteration 1: the guest dirtied a few pages
    memory[1] = 3
    memory[10] = np.resize(np.arange(40, dtype=np.uint8), PAGE_SIZE)
    memory[22] = 0
    memory[5, 100] = 1
    data(zstd, [(22, 1), (1, 1), (10, 1), (5, 1)])
    memory[16:18] = 0
    data(lz4, [(16, 2)])  # zero pages only: empty payload
    control(fmt.FrameType.END_ITERATION, lambda: writer.end_iteration(1, 6))
    control(fmt.FrameType.END_STREAM, lambda: writer.end_stream(memory_digest(memory)))
    return ValidStream(
        out.getvalue(),
        preamble_len,
        frames,
        memory.copy(),
        frozenset(modes),
        [c.get_config() for c in codecs],
    )
