"""Hostile frames with *valid* checksums: each reaches the check it targets.

A peer that means harm (or a buggy writer) computes checksums correctly, so the reader's
checks after the checksum are the ones that protect memory. Every case here is a frame that
is well formed except for one field, preceded where useful by a valid frame, so the tests
also show that the valid frame's pages were written and nothing else was.
"""

from __future__ import annotations

import io
import tracemalloc

import lz4.block
import numpy as np
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st
from zlib_ng import zlib_ng

from migcodec.codecs import Batch, PageMode, available_codecs, get_codec
from migcodec.wire import (
    BadPreamble,
    ChecksumMismatch,
    CodecMissing,
    CorruptPayload,
    DigestMismatch,
    FrameReader,
    FrameTooLarge,
    FrameWriter,
    IncompleteStream,
    MalformedFrame,
    RunOutOfBounds,
    StreamAborted,
    StreamSummary,
    UnknownCodecId,
    UnsupportedVersion,
    WireError,
    memory_digest,
)
from migcodec.wire import format as fmt
from tests.plugin_dist import write_dist
from tests.wire.crafting import (
    CachedResolver,
    codec_entry,
    end_iteration,
    end_stream,
    frame_bytes,
    named_pages,
    preamble_bytes,
)

PAGE = 512
PAGES = 24
BATCH = 16
SENTINEL = 0xA5
CODECS = ["raw", "lz4", "zlib-ng", "zstd"]  # ids 0..3
TABLE = {i: get_codec(name).get_config() for i, name in enumerate(CODECS)}
PRE = preamble_bytes(PAGE, PAGES, BATCH, TABLE)
P = len(PRE)  # offset of frame 0
DATA = fmt.FrameType.DATA
RESOLVE = CachedResolver()
ZERO, RAW, ENC = int(PageMode.ZERO), int(PageMode.RAW), int(PageMode.ENCODED)


def receive(*frames: bytes, preamble: bytes = PRE, resolve=RESOLVE):
    """(destination, summary or WireError) for ``preamble`` followed by ``frames``."""
    dest = np.full((PAGES, PAGE), SENTINEL, np.uint8)
    try:
        reader = FrameReader(io.BytesIO(preamble + b"".join(frames)), resolve=resolve)
        return dest, reader.receive(dest)
    except WireError as exc:
        return dest, exc


def zero_frame(index: int, runs: list[tuple[int, int]]) -> bytes:
    """A valid data frame of zero pages (visible against the sentinel, no payload)."""
    n = sum(count for _, count in runs)
    return frame_bytes(index, DATA, codec_id=0, runs=runs, modes=[ZERO] * n)


def only_zeroed(dest: np.ndarray, runs: list[tuple[int, int]]) -> bool:
    """The pages of ``runs`` are zero and every other page still holds the sentinel."""
    expected = np.full_like(dest, SENTINEL)
    expected[named_pages(runs)] = 0
    return bool(np.array_equal(dest, expected))


VALID = [(3, 2), (10, 1)]
F0 = zero_frame(0, VALID)
F1 = P + len(F0)  # offset of frame 1 after F0


def test_the_crafted_stream_is_accepted_when_nothing_is_wrong():
    """The baseline every case below departs from by one field."""
    dest, result = receive(F0, end_stream(1, pages=3))
    assert isinstance(result, StreamSummary) and result.pages == 3
    assert only_zeroed(dest, VALID)


def test_crafted_bytes_are_what_the_real_writer_writes():
    """The helpers are only trustworthy if, asked for valid frames, they write exactly the
    writer's bytes."""
    memory = np.zeros((PAGES, PAGE), np.uint8)
    memory[10] = 7
    memory[3:5] = np.arange(PAGE, dtype=np.uint16).view(np.uint8)[:PAGE]
    codecs = [get_codec(name) for name in CODECS]
    out = io.BytesIO()
    writer = FrameWriter(out, PAGE, PAGES, codecs, max_batch_pages=BATCH)
    assert out.getvalue() == PRE
    encoded = codecs[0].encode(Batch(memory, [(10, 1), (3, 3)], PAGE, BATCH))
    writer.write_batch(encoded)
    writer.end_iteration(0, 4)
    writer.end_stream(b"digest")
    crafted = (
        frame_bytes(
            0, DATA, runs=[(10, 1), (3, 3)], modes=encoded.modes.tobytes(), payload=encoded.payload
        )
        + end_iteration(1, 0, 4)
        + end_stream(2, pages=4, digest=b"digest")
    )
    assert encoded.modes.tolist() == [RAW, RAW, RAW, ZERO]
    assert out.getvalue() == PRE + crafted


# -- lengths over their bounds: refused from the header, before the body is read ---------
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"run_count": 1, "page_count": 1, "payload_len": PAGE + 1},
            "payload of 513 bytes for 1 pages (at most 512)",
        ),
        (
            {"run_count": 1, "page_count": BATCH, "payload_len": 2**32 - 1},
            "payload of 4294967295 bytes for 16 pages (at most 8192)",
        ),
        ({"run_count": BATCH + 1, "page_count": 1}, "17 runs / 1 pages; the stream allows 1..16"),
        (
            {"run_count": 2**16 - 1, "page_count": 1},
            "65535 runs / 1 pages; the stream allows 1..16",
        ),
        (
            {"run_count": 1, "page_count": 2**32 - 1},
            "1 runs / 4294967295 pages; the stream allows 1..16",
        ),
    ],
)
def test_oversized_data_frame_lengths(fields, message):
    """No body follows the header: had the reader tried to read it, this would be a
    TruncatedStream, so FrameTooLarge proves the bound came first."""
    dest, result = receive(F0, frame_bytes(1, DATA, codec_id=1, body=b"", **fields))
    assert type(result) is FrameTooLarge
    assert str(result) == f"frame 1, byte offset {F1}: {message}"
    assert only_zeroed(dest, VALID)


@pytest.mark.parametrize(
    ("ftype", "flags", "payload_len", "name"),
    [
        (fmt.FrameType.END_ITERATION, 0, 2**32 - 1, "END_ITERATION"),
        (fmt.FrameType.END_STREAM, fmt.FLAG_DIGEST, 16 + fmt.MAX_DIGEST + 1, "END_STREAM"),
        (fmt.FrameType.ABORT, 0, fmt.MAX_ABORT_REASON + 1, "ABORT"),
    ],
)
def test_oversized_control_frame_lengths(ftype, flags, payload_len, name):
    _, result = receive(frame_bytes(0, ftype, flags=flags, payload_len=payload_len, body=b""))
    assert type(result) is FrameTooLarge
    assert str(result) == (
        f"frame 0, byte offset {P}: {name} frame with payload of {payload_len} bytes "
        f"and flags {flags:#x}"
    )


def test_a_4_gib_length_allocates_nothing():
    """The claimed length never reaches an allocator: the reader's peak is a few KiB."""
    header = frame_bytes(0, DATA, codec_id=1, run_count=1, page_count=BATCH, payload_len=2**32 - 1)
    reader = FrameReader(io.BytesIO(PRE + header), resolve=RESOLVE)
    tracemalloc.start()
    try:
        with pytest.raises(FrameTooLarge):
            reader.read_frame()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


# -- runs ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("runs", "pages", "message"),
    [
        ([(24, 1)], 1, "run 0 starts at page 24, beyond memory of 24 pages"),
        (
            [(2**64 - 1, 1)],
            1,
            "run 0 starts at page 18446744073709551615, beyond memory of 24 pages",
        ),
        (
            [(0, 1), (23, 2)],
            3,
            "run 1 (first page 23, 2 pages) lies outside guest memory of 24 pages",
        ),
        (
            [(0, 2**32 - 1)],
            1,
            "run 0 (first page 0, 4294967295 pages) lies outside guest memory of 24 pages",
        ),
        ([(3, 0)], 1, "run 0 is empty (0 pages); runs need >= 1 page"),
        ([(5, 1), (3, 0)], 1, "run 1 is empty (0 pages); runs need >= 1 page"),
        (
            [(2, 3), (4, 1)],
            4,
            "runs starting at pages 2 and 4 overlap; each page may appear once per batch",
        ),
        (
            [(7, 1), (7, 1)],
            2,
            "runs starting at pages 7 and 7 overlap; each page may appear once per batch",
        ),
    ],
)
def test_runs_outside_memory_empty_or_overlapping(runs, pages, message):
    bad = frame_bytes(1, DATA, codec_id=0, runs=runs, modes=[ZERO] * pages)
    dest, result = receive(F0, bad)
    assert type(result) is RunOutOfBounds
    assert str(result) == f"frame 1, byte offset {F1}: {message}"
    assert only_zeroed(dest, VALID)


# -- fields that contradict each other or the stream --------------------------------------
def test_unknown_codec_id():
    bad = frame_bytes(1, DATA, codec_id=9, runs=[(0, 1)], modes=[ZERO])
    dest, result = receive(F0, bad)
    assert type(result) is UnknownCodecId
    assert str(result) == (
        f"frame 1, byte offset {F1}: codec id 9 is not in the stream's codec table ([0, 1, 2, 3])"
    )
    assert only_zeroed(dest, VALID)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (
            frame_bytes(1, DATA, runs=[(0, 2)], modes=[ZERO] * 3),
            "runs name 2 pages but the header says 3",
        ),
        (
            frame_bytes(1, DATA, runs=[(0, 2), (9, 1)], modes=[ZERO, ZERO]),
            "runs name 3 pages but the header says 2",
        ),
        (frame_bytes(1, DATA, runs=[(0, 2)], modes=[ZERO, 16]), "undefined page mode 16"),
        (frame_bytes(1, DATA, runs=[(0, 1)], modes=[255]), "undefined page mode 255"),
        (frame_bytes(1, 0), "unknown frame type 0"),
        (frame_bytes(1, 9, payload=b"x"), "unknown frame type 9"),
        (
            frame_bytes(1, fmt.FrameType.END_ITERATION, runs=[(0, 1)], payload=bytes(16)),
            "control frame with codec, runs or pages",
        ),
        (
            frame_bytes(1, fmt.FrameType.END_STREAM, codec_id=1, payload=bytes(16)),
            "control frame with codec, runs or pages",
        ),
        (
            frame_bytes(1, fmt.FrameType.ABORT, page_count=1, payload=b"x"),
            "control frame with codec, runs or pages",
        ),
        (
            frame_bytes(1, DATA, flags=2, runs=[(0, 1)], modes=[ZERO]),
            "unknown data frame flags 0x2",
        ),
        (
            b"XF" + frame_bytes(1, DATA, runs=[(0, 1)], modes=[ZERO])[2:],
            "bad frame magic b'XF'",
        ),
    ],
)
def test_malformed_frames(frame, message):
    dest, result = receive(F0, frame)
    assert type(result) is MalformedFrame
    assert str(result) == f"frame 1, byte offset {F1}: {message}"
    assert only_zeroed(dest, VALID)


# -- payloads that pass the checksum but do not decode: memory untouched ------------------
def _garbage(n: int) -> bytes:
    return np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8).tobytes()


ZEROS_64K = bytes(64 * 1024)


@pytest.mark.parametrize(
    ("codec_id", "modes", "payload", "message"),
    [
        (1, [ENC] * 2, _garbage(100), "lz4: lz4 block does not decode to 1024 bytes: "),
        (2, [ENC] * 2, _garbage(100), "zlib-ng: zlib-ng stream is corrupt: "),
        (3, [ENC] * 2, _garbage(100), "zstd: zstd frame does not decode: "),
        (  # a decompression bomb: 64 KiB of zeros claimed to be 2 pages
            2,
            [ENC] * 2,
            zlib_ng.compress(ZEROS_64K, 1, -15),
            "zlib-ng: zlib-ng stream does not inflate to exactly 1024 bytes "
            "(got 1024, stream unfinished)",
        ),
        (1, [ENC] * 2, lz4.block.compress(ZEROS_64K, store_size=False), "lz4: lz4 block"),
        (
            3,
            [ENC] * 2,
            zstandard.ZstdCompressor(write_content_size=False).compress(bytes(PAGE)),
            "zstd: zstd frame decoded to 512 bytes, expected 1024",
        ),
        (
            0,
            [ENC, ZERO],
            b"x" * 10,
            "raw: raw frames carry no encoded pages; a page mode says otherwise",
        ),
        (
            0,
            [RAW, RAW],
            b"x" * 600,
            "raw: payload of 600 bytes is shorter than its 2 raw pages (1024 bytes)",
        ),
        (
            0,
            [ZERO, RAW],
            b"x" * 522,
            "raw: payload has 10 bytes beyond its raw pages but no encoded page",
        ),
        (1, [RAW, ENC], b"x" * 512, "lz4: lz4 block does not decode to 512 bytes: "),
    ],
)
def test_payload_that_does_not_decode_leaves_memory_untouched(codec_id, modes, payload, message):
    bad = frame_bytes(1, DATA, codec_id=codec_id, runs=[(12, 2)], modes=modes, payload=payload)
    dest, result = receive(F0, bad)
    assert type(result) is CorruptPayload
    assert str(result).startswith(f"frame 1, byte offset {F1}: {message}")
    assert only_zeroed(dest, VALID)


# -- the end of the stream -------------------------------------------------------------
def test_end_of_stream_page_total_wrong():
    _, result = receive(F0, end_stream(1, pages=4))
    assert type(result) is DigestMismatch
    assert str(result) == (
        f"frame 1, byte offset {F1}: sender reports 4 pages in 1 frames; "
        "received 3 pages in 1 frames"
    )


def test_end_of_stream_frame_total_wrong():
    _, result = receive(F0, end_stream(1, pages=3, frames=2))
    assert type(result) is DigestMismatch
    assert str(result).endswith("sender reports 3 pages in 2 frames; received 3 pages in 1 frames")


@pytest.mark.parametrize(
    ("iteration", "pages", "reported"),
    [(0, 4, "end of pass 0 reports 4 pages"), (1, 3, "end of pass 1 reports 3 pages")],
)
def test_end_of_pass_that_miscounts_is_malformed(iteration, pages, reported):
    """A pass's end frame counts the pages of that pass and numbers it in order; one that
    does not was written by a sender that lost count, and the stream stops there."""
    _, result = receive(F0, end_iteration(1, iteration, pages), end_stream(2, pages=3))
    assert type(result) is MalformedFrame
    assert str(result) == (
        f"frame 1, byte offset {F1}: {reported}; this is pass 0, which delivered 3 pages: "
        "the sender lost count of what it sent"
    )


def test_end_of_pass_counts_only_its_own_pages():
    second = zero_frame(2, [(20, 2)])
    _, ok = receive(F0, end_iteration(1, 0, 3), second, end_iteration(3, 1, 2), end_stream(4, 5))
    assert isinstance(ok, StreamSummary) and (ok.iterations, ok.pages) == (2, 5)


def test_end_of_stream_digest_wrong_and_right():
    """The same frames complete with the right digest and fail with one bit off."""
    expected = np.full((PAGES, PAGE), SENTINEL, np.uint8)
    expected[named_pages(VALID)] = 0
    good = memory_digest(expected)
    _, ok = receive(F0, end_stream(1, pages=3, digest=good))
    assert isinstance(ok, StreamSummary) and ok.digest_verified
    bad = bytes([good[0] ^ 1]) + good[1:]
    _, result = receive(F0, end_stream(1, pages=3, digest=bad))
    assert type(result) is DigestMismatch
    assert str(result) == (
        f"frame 1, byte offset {F1}: destination memory digest differs from the source's"
    )


def test_nothing_after_the_last_data_frame_is_incomplete_not_complete():
    _, result = receive(F0)
    assert type(result) is IncompleteStream


def test_abort_frame_carries_the_reason():
    out = io.BytesIO()
    writer = FrameWriter(out, PAGE, PAGES, [get_codec("raw")], max_batch_pages=BATCH)
    writer.end_iteration(0, 0)
    at = writer.bytes_written
    writer.abort("source lost its disk: migration cancelled")
    dest = np.full((PAGES, PAGE), SENTINEL, np.uint8)
    with pytest.raises(StreamAborted) as info:
        FrameReader(io.BytesIO(out.getvalue()), resolve=RESOLVE).receive(dest)
    assert str(info.value) == (
        f"frame 1, byte offset {at}: peer aborted: 'source lost its disk: migration cancelled'"
    )
    assert info.value.detail == "peer aborted: 'source lost its disk: migration cancelled'"
    assert (info.value.frame, info.value.offset) == (1, at)


def test_abort_reason_that_is_not_utf8_is_still_reported():
    _, result = receive(F0, frame_bytes(1, fmt.FrameType.ABORT, payload=b"bad \xff byte"))
    assert type(result) is StreamAborted
    assert str(result) == f"frame 1, byte offset {F1}: peer aborted: 'bad \ufffd byte'"


# -- the preamble ----------------------------------------------------------------------
def test_wrong_magic():
    bad = preamble_bytes(PAGE, PAGES, BATCH, TABLE, magic=b"QEVM\x00\x00\x00\x03")
    _, result = receive(preamble=bad)
    assert type(result) is BadPreamble
    assert str(result) == (
        "preamble, byte offset 0: not a migcodec stream (magic b'QEVM\\x00\\x00\\x00\\x03')"
    )


def test_unsupported_version():
    _, result = receive(preamble=preamble_bytes(PAGE, PAGES, BATCH, TABLE, version=3))
    assert type(result) is UnsupportedVersion
    assert isinstance(result, BadPreamble)
    assert str(result) == (
        "preamble, byte offset 8: stream version 3; this reader speaks versions 1, 2 "
        "(upgrade migcodec on the older side)"
    )


def test_unknown_preamble_flags_are_refused_as_a_newer_version_not_ignored():
    """Unknown frame flags are refused; so are a preamble's: a source that sets one means
    something for the whole stream that this reader would silently miss."""
    _, result = receive(preamble=preamble_bytes(PAGE, PAGES, BATCH, TABLE, flags=0x4))
    assert type(result) is UnsupportedVersion
    assert str(result) == (
        "preamble, byte offset 10: stream preamble sets flags 0x0004, which this reader "
        "does not know (upgrade migcodec on the older side)"
    )


def test_preamble_checksum():
    _, result = receive(preamble=preamble_bytes(PAGE, PAGES, BATCH, TABLE, bad_checksum=True))
    assert type(result) is ChecksumMismatch
    assert str(result) == f"preamble, byte offset {P - 8}: preamble checksum does not match"


@pytest.mark.parametrize(
    ("geometry", "message"),
    [
        ((100, PAGES, BATCH), "page size 100 is not a multiple of 8 in 512..2097152"),
        ((PAGE + 4, PAGES, BATCH), "page size 516 is not a multiple of 8 in 512..2097152"),
        ((PAGE, 0, BATCH), "memory of 0 pages is out of range"),
        ((PAGE, 2**41, BATCH), "memory of 2199023255552 pages is out of range"),
        ((PAGE, PAGES, 0), "batch limit of 0 pages is out of range 1..4096"),
    ],
)
def test_impossible_geometry(geometry, message):
    _, result = receive(preamble=preamble_bytes(*geometry, TABLE))
    assert type(result) is BadPreamble
    assert str(result) == f"preamble, byte offset 0: {message}"


@pytest.mark.parametrize(
    ("entries", "count", "cls", "message"),
    [
        (
            [codec_entry(0, "raw", {"name": "raw"}), codec_entry(0, "lz4", {"name": "lz4"})],
            None,
            BadPreamble,
            "byte offset 49: codec id 0 appears twice",
        ),
        (
            [codec_entry(0, "raw", b"{not json")],
            None,
            BadPreamble,
            "byte offset 28: codec entry 0 has an invalid config",
        ),
        (
            [codec_entry(0, "raw", {"name": "lz4"})],
            None,
            BadPreamble,
            "byte offset 28: codec entry 0 has an invalid config",
        ),
        (
            [codec_entry(0, "raw", b"[1]")],
            None,
            BadPreamble,
            "byte offset 28: codec entry 0 has an invalid config",
        ),
        (
            [codec_entry(0, b"\xff", b"{}")],
            None,
            BadPreamble,
            "byte offset 28: codec entry 0 has an invalid config",
        ),
        ([], 256, FrameTooLarge, "byte offset 28: codec table of 256 entries"),
        (
            [fmt.CODEC_ENTRY.pack(0, 65, 2) + b"r" * 65 + b"{}"],
            None,
            FrameTooLarge,
            "byte offset 28: codec entry with a 65-byte name and 2-byte config",
        ),
        (
            [fmt.CODEC_ENTRY.pack(0, 3, 4097) + b"raw" + b" " * 4097],
            None,
            FrameTooLarge,
            "byte offset 28: codec entry with a 3-byte name and 4097-byte config",
        ),
    ],
)
def test_bad_codec_tables(entries, count, cls, message):
    _, result = receive(preamble=preamble_bytes(PAGE, PAGES, BATCH, entries, codec_count=count))
    assert type(result) is cls
    assert str(result) == f"preamble, {message}"


@pytest.mark.parametrize(
    "config",
    [
        b"[" * 4096,
        b'{"name":"raw","x":' + b"[" * 2000 + b"]" * 2000 + b"}",
        # a key given twice: the destination read the last, another than a reader that
        # keeps the first would (json.loads keeps the last without a word)
        b'{"name":"raw","level":1,"level":9}',
    ],
    ids=["unterminated", "well-formed", "key-twice"],
)
def test_deeply_nested_config_json_is_a_bad_preamble(config):
    """JSON nested deeper than the interpreter's recursion limit raises RecursionError in
    ``json.loads``; from a peer that is a malformed preamble, not a crash."""
    assert len(config) <= fmt.MAX_CODEC_CONFIG
    _, result = receive(
        preamble=preamble_bytes(PAGE, PAGES, BATCH, [codec_entry(0, "raw", config)])
    )
    assert type(result) is BadPreamble
    assert str(result) == "preamble, byte offset 28: codec entry 0 has an invalid config"


def test_batch_geometry_too_large_to_buffer_is_refused_before_allocating():
    """Largest page size times largest batch is 8 GiB of frame buffer: each bound holds on
    its own, so their product needs its own bound, checked before the buffer exists."""
    pre = preamble_bytes(fmt.MAX_PAGE_SIZE, PAGES, fmt.MAX_BATCH_PAGES, TABLE)
    tracemalloc.start()
    try:
        with pytest.raises(FrameTooLarge) as info:
            FrameReader(io.BytesIO(pre), resolve=RESOLVE)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    assert str(info.value) == (
        "preamble, byte offset 0: batches of 4096 pages of 2097152 bytes need 8 GiB of frame "
        "buffer; the limit is 64 MiB"
    )


def test_largest_allowed_batch_geometry_is_accepted():
    pre = preamble_bytes(fmt.MAX_PAGE_SIZE, PAGES, fmt.MAX_BATCH_BYTES // fmt.MAX_PAGE_SIZE, TABLE)
    reader = FrameReader(io.BytesIO(pre), resolve=RESOLVE)
    assert reader.preamble.max_batch_pages == 32


def test_peer_batch_limit_over_this_sides_limit():
    data = preamble_bytes(PAGE, PAGES, BATCH, TABLE)
    with pytest.raises(FrameTooLarge) as info:
        FrameReader(io.BytesIO(data), resolve=RESOLVE, max_batch_pages=8)
    assert str(info.value) == (
        "preamble, byte offset 0: peer batches of 16 pages exceed this side's limit of 8"
    )


def test_codec_not_installed_is_refused_at_the_preamble():
    """Through the real registry: the message lists what is installed and how to add more."""
    table = {**TABLE, 4: {"name": "qat-deflate", "level": 1}}
    preamble = preamble_bytes(PAGE, PAGES, BATCH, table)
    dest, result = receive(zero_frame(0, VALID), preamble=preamble, resolve=get_codec)
    assert type(result) is CodecMissing
    installed = ", ".join(available_codecs())
    assert str(result) == (
        "preamble: cannot decode codec id 4 of the peer's codec table "
        "('qat-deflate'): no codec named 'qat-deflate' is "
        f"installed (installed: {installed}); a third-party codec is installed as a package "
        "with a 'migcodec.codecs' entry point"
    )
    assert (dest == SENTINEL).all()


def test_codec_config_this_side_cannot_build_is_refused_at_the_preamble():
    table = {0: {"name": "zstd", "level": 99}}
    _, result = receive(preamble=preamble_bytes(PAGE, PAGES, BATCH, table), resolve=get_codec)
    assert type(result) is CodecMissing
    assert str(result) == (
        "preamble: cannot decode codec id 0 of the peer's codec table "
        "('zstd'): zstd level must be a non-zero integer "
        f"{-(2**17)}..{zstandard.MAX_COMPRESSION_LEVEL}, got 99"
    )


# -- fuzzing behind the checksum -------------------------------------------------------
@st.composite
def checksummed_frames(draw) -> list[tuple[bytes, list[tuple[int, int]]]]:
    """1-3 frames with random fields but correct checksums and indices, sometimes closed
    by an end-of-stream frame with the right totals.

    Fields are drawn mostly valid, one or two at a time wrong, so that the checks after the
    checksum (runs, modes, decoding, end-of-stream totals) are reached, not only the header
    bounds.
    """
    frames: list[tuple[bytes, list[tuple[int, int]]]] = []
    pages_sent = 0
    for index in range(draw(st.integers(1, 3))):
        ftype = draw(st.sampled_from([DATA] * 8 + [2, 3, 4, 0, 7]))
        if ftype != DATA:
            payload = draw(st.one_of(st.binary(max_size=40), st.just(bytes(16))))
            frames.append((frame_bytes(index, ftype, payload=payload), []))
            continue
        singles = draw(st.lists(st.integers(0, PAGES - 1), unique=True, min_size=1, max_size=6))
        runs = [(p, 1) for p in singles]
        if draw(st.integers(0, 4)) == 0:  # one wild run: outside, empty or overlapping
            runs.append(draw(st.tuples(st.integers(0, 30), st.integers(0, 6))))
        n = sum(c for _, c in runs)
        n_modes = draw(st.sampled_from([n] * 6 + [n - 1, n + 1]))
        modes = draw(
            st.lists(st.sampled_from([0, 0, 1, 1, 2, 2, 3, 16]), min_size=n_modes, max_size=n_modes)
        )
        n_raw = modes.count(RAW)
        payload = draw(
            st.one_of(
                st.binary(min_size=n_raw * PAGE, max_size=n_raw * PAGE),
                st.binary(min_size=n_raw * PAGE, max_size=n_raw * PAGE + 40),
                st.binary(max_size=64),
            )
        )
        codec_id = draw(st.sampled_from([0, 0, 1, 2, 3, 9]))
        flags = draw(st.sampled_from([0] * 8 + [1, 4]))
        frames.append(
            (
                frame_bytes(
                    index,
                    DATA,
                    codec_id=codec_id,
                    flags=flags,
                    runs=runs,
                    modes=modes,
                    payload=payload,
                ),
                runs,
            )
        )
        pages_sent += n
    if draw(st.booleans()):
        frames.append((end_stream(len(frames), pages=pages_sent), []))
    return frames


@given(frames=checksummed_frames())
def test_checksummed_garbage_is_only_ever_a_wire_error(frames):
    """Whatever the fields say, the reader raises a WireError subclass or completes
    consistently; pages no frame names keep the sentinel, and a frame whose payload does
    not decode writes none of its pages."""
    dest = np.full((PAGES, PAGE), SENTINEL, np.uint8)
    reader = FrameReader(io.BytesIO(PRE + b"".join(f for f, _ in frames)), resolve=RESOLVE)
    try:
        summary = reader.receive(dest)
    except WireError as exc:
        assert type(exc) is not WireError
        assert 0 <= exc.frame <= len(frames)
        if isinstance(exc, CorruptPayload):
            earlier = [r for _, runs in frames[: exc.frame] for r in runs]
            fresh = np.setdiff1d(named_pages(frames[exc.frame][1]), named_pages(earlier))
            assert (dest[fresh] == SENTINEL).all()
    else:
        read = frames[: summary.frames]  # an early end-of-stream frame ends the stream
        assert summary.pages == sum(c for _, runs in read for _, c in runs)
    named = np.zeros(PAGES, bool)
    for _, runs in frames:
        for first, count in runs:
            named[first : first + count] = True
    assert (dest[~named] == SENTINEL).all()


def test_plugin_whose_dependency_is_missing_is_refused_naming_the_package(plugin_site):
    """A registered plugin that cannot import its library: the stream is refused before any
    page moves, and the message says what to pip install."""
    write_dist(
        plugin_site,
        "migcodec-qat",
        {"qat-deflate": "migcodec_qat_test:QatCodec"},
        {"migcodec_qat_test": "import qatzip_sdk_for_tests  # not installed\n"},
    )
    table = {**TABLE, 4: {"name": "qat-deflate", "level": 1}}
    preamble = preamble_bytes(PAGE, PAGES, BATCH, table)
    dest, result = receive(zero_frame(0, VALID), preamble=preamble, resolve=get_codec)
    assert type(result) is CodecMissing
    assert str(result) == (
        "preamble: cannot decode codec id 4 of the peer's codec table "
        "('qat-deflate'): codec 'qat-deflate' failed to "
        "load (ModuleNotFoundError: No module named 'qatzip_sdk_for_tests'); "
        "pip install qatzip_sdk_for_tests"
    )
    assert (dest == SENTINEL).all()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def checksummed_preambles(draw) -> bytes:
    """Preambles with a valid checksum and odd but parseable contents: geometry near and
    past its bounds, codec configs naming real codecs with arbitrary JSON parameters."""
    valid = draw(st.integers(0, 3)) > 0  # mostly a sane geometry, so codecs get resolved
    page_size = PAGE if valid else draw(st.sampled_from([0, 8, 513, 2**21, 2**21 + 8]))
    memory_pages = PAGES if valid else draw(st.sampled_from([0, 2**40, 2**40 + 1, 2**64 - 1]))
    max_batch = BATCH if valid else draw(st.sampled_from([0, 32, 4096, 4097, 2**16 - 1]))
    entries = []
    for codec_id in draw(st.lists(st.integers(0, 255), max_size=3, unique=True)):
        name = draw(st.sampled_from([*CODECS, "nope", ""]))
        params = draw(
            st.dictionaries(
                st.text(max_size=12) | st.sampled_from(["level", "acceleration", "wbits", "name"]),
                JSON,
                max_size=3,
            )
        )
        config = params if draw(st.integers(0, 5)) == 0 else {**params, "name": name}
        entries.append(codec_entry(codec_id, name, config))
    return preamble_bytes(page_size, memory_pages, max_batch, entries)


@given(preamble=checksummed_preambles(), tail=st.sampled_from([b"", bytes(40)]))
def test_checksummed_preambles_are_only_ever_wire_errors(preamble, tail):
    """Resolved through the real registry: a config it rejects (unknown parameter, wrong
    type, out of range) must refuse the stream as CodecMissing, never escape as another
    exception."""
    try:
        reader = FrameReader(io.BytesIO(preamble + tail))
    except WireError as exc:
        assert type(exc) is not WireError and exc.frame == -1
    else:
        assert reader.preamble.page_size * reader.preamble.max_batch_pages <= fmt.MAX_BATCH_BYTES
        assert set(reader.codecs) == set(reader.preamble.codecs)
