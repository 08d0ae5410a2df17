"""Fuzz targets: bytes in, and either the component's own typed error or a correct result.

Each target takes an arbitrary byte string and spends it on structured choices
(:class:`Choices`), so hypothesis (``test_fuzz.py``, a fixed budget in the default suite)
and atheris (``atheris_main.py``, long campaigns) drive the same code. A target fails by
raising ``AssertionError`` (an invariant broke) or any exception other than the typed ones
it allows:

- ``mutated_stream``: a valid migration stream with one structured change (a header field,
  a body byte, bytes cut or added, frames swapped or repeated, a preamble field) and every
  checksum recomputed, so the change reaches the checks behind the checksums. Only
  ``WireError``; a stream accepted whole must have delivered exactly the source memory.
- ``truncated_stream``: the valid stream cut at any offset: exactly ``TruncatedStream``
  inside a frame or the preamble, ``IncompleteStream`` on a frame boundary.
- ``codec_blob``: a malformed payload (random, or a valid one damaged) for any registered,
  available codec's decoder. Only ``CodecError``; nothing written outside the batch's pages
  (guard pages on both sides), and nothing at all when the decode fails.
- ``forged_trace``: a small trace whose record is forged (header fields, metadata, body
  bytes) and re-sealed with matching checksums. Only ``TraceError``; a window read back
  without error is the window written.
"""

from __future__ import annotations

import io
import shutil
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np

from migcodec.codecs import CodecError, Encoded, get_codec, plugin_statuses
from migcodec.codecs.batch import Batch
from migcodec.datasets import TraceError, TraceReader, TraceWriter, Window, generate_pages
from migcodec.hashing import checksum
from migcodec.wire import (
    FrameReader,
    IncompleteStream,
    StreamSummary,
    TruncatedStream,
    WireError,
)
from migcodec.wire import format as fmt
from tests.datasets import trace_forge
from tests.wire.crafting import CachedResolver
from tests.wire.valid_stream import MEMORY_PAGES, PAGE_SIZE, SENTINEL, build_valid_stream


class Choices:
    """Structured choices read from a byte string; past its end every choice is 0."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def int(self, n: int) -> int:
        """An integer in ``0..n-1`` (``n`` > 0)."""
        raw = self.data[self.pos : self.pos + 4]
        self.pos += 4
        return int.from_bytes(raw.ljust(4, b"\0"), "little") % n

    def value(self, bits: int) -> int:
        """An integer of up to ``bits`` bits, biased towards the edges (0, 1, max, max-1)."""
        kind = self.int(4)
        top = (1 << bits) - 1
        if kind == 0:
            return self.int(2)
        if kind == 1:
            return top - self.int(2)
        return int.from_bytes(self.bytes((bits + 7) // 8).ljust(8, b"\0"), "little") & top

    def bytes(self, n: int) -> bytes:
        raw = self.data[self.pos : self.pos + n]
        self.pos += n
        return raw.ljust(n, b"\0")

    def rest(self, limit: int) -> bytes:
        raw = self.data[self.pos : self.pos + limit]
        self.pos += len(raw)
        return raw


# -- the migration stream ------------------------------------------------------------------
STREAM = build_valid_stream()
RESOLVE = CachedResolver()
HEADER = fmt.FRAME_HEADER.size


def _frames() -> list[bytes]:
    return [STREAM.data[s.start : s.end] for s in STREAM.frames]


def _reseal(frame: bytes, index: int) -> bytes:
    """``frame`` with its checksum recomputed for position ``index``."""
    head = frame[:16]
    return head + fmt.CHECKSUM.pack(checksum([head, frame[HEADER:]], seed=index)) + frame[HEADER:]


def _reseal_preamble(preamble: bytes) -> bytes:
    body = preamble[: -fmt.CHECKSUM.size]
    return body + fmt.CHECKSUM.pack(checksum([body]))


def _receive(data: bytes) -> tuple[np.ndarray, StreamSummary | WireError]:
    dest = np.full((MEMORY_PAGES, PAGE_SIZE), SENTINEL, np.uint8)
    try:
        return dest, FrameReader(io.BytesIO(data), resolve=RESOLVE).receive(dest)
    except WireError as exc:
        return dest, exc


_HEADER_FIELDS = [  # (byte offset in the header, width in bits)
    (2, 8),  # type
    (3, 8),  # codec id
    (4, 16),  # flags
    (6, 16),  # run count
    (8, 32),  # page count
    (12, 32),  # payload length
]
_PREAMBLE_FIELDS = [(8, 16), (10, 16), (12, 32), (16, 64), (24, 16), (26, 16)]


def mutated_stream(data: bytes) -> None:
    choose = Choices(data)
    preamble = STREAM.data[: STREAM.preamble_len]
    frames = _frames()
    kind = choose.int(6)
    k = choose.int(len(frames))
    frame = bytearray(frames[k])
    if kind == 0:  # one header field set to an edge or random value
        at, bits = _HEADER_FIELDS[choose.int(len(_HEADER_FIELDS))]
        frame[at : at + bits // 8] = choose.value(bits).to_bytes(bits // 8, "little")
    elif kind == 1:  # body bytes overwritten
        if len(frame) > HEADER:
            for _ in range(1 + choose.int(4)):
                frame[HEADER + choose.int(len(frame) - HEADER)] = choose.int(256)
    elif kind == 2:  # body cut short or grown, lengths left as they were
        cut = HEADER + choose.int(len(frame) - HEADER + 1)
        frame = frame[:cut] + bytearray(choose.rest(choose.int(64)))
    elif kind == 3:  # frames swapped, or one repeated
        j = choose.int(len(frames))
        if choose.int(2):
            frames[k], frames[j] = frames[j], frames[k]
        else:
            frames.insert(j, frames[k])
        frame = bytearray(frames[k])
    elif kind == 4:  # a preamble field, checksum recomputed
        at, bits = _PREAMBLE_FIELDS[choose.int(len(_PREAMBLE_FIELDS))]
        raw = bytearray(preamble)
        raw[at : at + bits // 8] = choose.value(bits).to_bytes(bits // 8, "little")
        preamble = _reseal_preamble(bytes(raw))
    else:  # a preamble byte (the codec table), checksum recomputed
        raw = bytearray(preamble)
        raw[28 + choose.int(len(raw) - 28 - fmt.CHECKSUM.size)] = choose.int(256)
        preamble = _reseal_preamble(bytes(raw))
    frames[k] = bytes(frame)
    stream = preamble + b"".join(_reseal(f, i) for i, f in enumerate(frames))
    dest, result = _receive(stream)
    if isinstance(result, StreamSummary):  # accepted whole: then it was the source, exactly
        assert result.digest_verified
        np.testing.assert_array_equal(dest, STREAM.source)


def truncated_stream(data: bytes) -> None:
    cut = Choices(data).int(len(STREAM.data))
    _, result = _receive(STREAM.data[:cut])
    if cut < STREAM.preamble_len:
        expected = TruncatedStream
    else:
        applied = STREAM.frames_before(cut)
        expected = IncompleteStream if cut == STREAM.frames[applied].start else TruncatedStream
    assert type(result) is expected, (cut, result)


# -- codec decoders --------------------------------------------------------------------------
@cache
def available_codecs() -> tuple[str, ...]:
    return tuple(s.name for s in plugin_statuses() if s.available)


def codec_blob(data: bytes) -> None:
    choose = Choices(data)
    codecs = available_codecs()
    codec = get_codec(codecs[choose.int(len(codecs))])
    page_size = (512, 4096)[choose.int(2)]
    n = 1 + choose.int(8)
    memory = np.full((n + 2, page_size), SENTINEL, np.uint8)  # guard rows 0 and n + 1
    source = generate_pages(
        ("mixed", "text", "zero")[choose.int(3)], n, choose.int(1000), page_size
    )
    runs = np.array([[1, n]], np.int64)
    if choose.int(2):  # a valid encoding of these pages, damaged
        pages = np.vstack([memory[:1], source, memory[:1]])
        encoded = codec.encode(Batch(pages, runs, page_size))
        payload = bytearray(encoded.payload)
        modes = np.asarray(encoded.modes, np.uint8).copy()
        for _ in range(1 + choose.int(3)):
            what = choose.int(4)
            if what == 0 and payload:
                payload[choose.int(len(payload))] ^= 1 + choose.int(255)
            elif what == 1:
                payload = payload[: choose.int(len(payload) + 1)]
            elif what == 2:
                payload += choose.rest(1 + choose.int(16))
            else:
                modes[choose.int(n)] = choose.int(6)
    else:  # arbitrary bytes and modes
        modes = np.frombuffer(choose.bytes(n), np.uint8) % 6
        payload = bytearray(choose.rest(4 * page_size))
    before = memory.copy()
    encoded = Encoded(codec.name, page_size, runs, modes, (bytes(payload),) if payload else ())
    try:
        codec.decode(encoded, memory)
    except CodecError:
        np.testing.assert_array_equal(memory, before)  # refused: nothing written
        return
    assert (memory[0] == SENTINEL).all() and (memory[-1] == SENTINEL).all()


# -- traces ------------------------------------------------------------------------------------
TRACE_PAGE = 512


@cache
def _trace_windows() -> tuple[Window, ...]:
    out = []
    for i, kind in enumerate(("text", "mixed", "zero")):
        n = 3 + i
        pages = generate_pages(kind, n, i, TRACE_PAGE)
        previous = generate_pages("mixed", n, i + 7, TRACE_PAGE) if i == 1 else None
        indices = np.arange(n, dtype=np.int64) * 3 + i
        out.append(Window(i, indices, pages, previous, phase=kind, duration_s=0.5))
    return tuple(out)


_TEMPLATES: list[tempfile.TemporaryDirectory] = []  # removed when the process ends


@cache
def _trace_template() -> Path:
    _TEMPLATES.append(tempfile.TemporaryDirectory(prefix="migcodec-fuzz-trace-"))
    path = Path(_TEMPLATES[-1].name) / "t"
    with TraceWriter(
        path, memory_pages=64, page_size=TRACE_PAGE, source="fuzz", workers=1
    ) as writer:
        writer.write_all(_trace_windows())
    return path


def forged_trace(data: bytes) -> None:
    choose = Choices(data)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t"
        shutil.copytree(_trace_template(), path)
        window = choose.int(3)
        fields, body = trace_forge.record(path, window)
        kind = choose.int(3)
        if kind == 0:  # one header field
            name = trace_forge.FIELDS[2 + choose.int(8)]  # flags .. len_prev
            at = trace_forge.FIELDS.index(name)
            fields[at] = choose.value(16 if name in ("version", "flags") else 32)
        elif kind == 1:  # the metadata, same length, JSON or not
            meta_len = fields[trace_forge.FIELDS.index("meta_len")]
            body = choose.bytes(meta_len) + body[meta_len:]
        else:  # body bytes
            raw = bytearray(body)
            for _ in range(1 + choose.int(4)):
                raw[choose.int(len(raw))] = choose.int(256)
            body = bytes(raw)
        trace_forge.replace_record(path, window, fields, body)
        try:
            with TraceReader(path) as reader:
                got = list(reader)
        except TraceError:
            return
        for want, have in zip(_trace_windows(), got, strict=True):
            np.testing.assert_array_equal(want.page_indices, have.page_indices)
            np.testing.assert_array_equal(want.pages, have.pages)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "mutated_stream": mutated_stream,
    "truncated_stream": truncated_stream,
    "codec_blob": codec_blob,
    "forged_trace": forged_trace,
}
