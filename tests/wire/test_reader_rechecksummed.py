"""A hostile peer computes checksums too: frames of a real stream changed and checksummed
again, so that every check after the checksum decides.

The stream carries every built-in codec, delta codecs against the stream's mirror
included, over three iterations that resend every page. One frame is changed (bits of its
body, a codec id swapped for another codec's, a payload cut or lengthened with its length
field to match, a run or a page mode changed) and its checksum recomputed. Whatever the
change, the reader either raises a specific :class:`WireError` or ends with destination
memory equal to the source's, byte for byte, and the digest verified: nothing a peer sends
comes back different without an error.
"""

from __future__ import annotations

import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migcodec.codecs import Batch, DestinationMirror, get_codec
from migcodec.hashing import checksum
from migcodec.wire import FrameReader, FrameWriter, WireError, memory_digest
from migcodec.wire import format as fmt
from tests.wire.crafting import CachedResolver

PAGE = 4096
PAGES = 48
STEP = 8  # pages per batch
CODECS = ["raw", "lz4", "zstd", "zlib-ng", "qat", "iaa", "xbzrle", "dsa-delta"]
RESOLVE = CachedResolver()


def _stream() -> tuple[bytes, list[tuple[int, int]], np.ndarray]:
    """The stream, where each frame lies in it, and the source memory at its end."""
    rng = np.random.default_rng(3)
    memory = rng.integers(0, 256, (PAGES, PAGE), dtype=np.uint8) // 16
    memory[::7] = 0
    memory[1::5] = rng.integers(0, 256, (len(memory[1::5]), PAGE), dtype=np.uint8)
    codecs = [get_codec(name) for name in CODECS]
    out = io.BytesIO()
    writer = FrameWriter(out, PAGE, PAGES, codecs, max_batch_pages=STEP)
    mirror = DestinationMirror(PAGE, recording=True)
    spans = []

    def frame(write, *args) -> None:
        start = out.tell()
        write(*args)
        spans.append((start, out.tell()))

    for iteration in range(3):
        if iteration:  # the guest changes 1 % of its words: delta codecs send deltas
            words = memory.view(np.uint64)
            words[rng.random(words.shape) < 0.01] ^= np.uint64(0xFF00FF)
        for i, first in enumerate(range(0, PAGES, STEP)):
            codec = codecs[(i + 3 * iteration) % len(codecs)]
            half = STEP // 2
            runs = [(first + half, half), (first, half)] if i % 2 else [(first, STEP)]
            batch = Batch(memory, runs, PAGE, STEP)
            frame(writer.write_batch, codec.encode(batch, destination=mirror))
        frame(writer.end_iteration, iteration, PAGES)
    frame(writer.end_stream, memory_digest(memory))
    return out.getvalue(), spans, memory.copy()


STREAM, SPANS, SOURCE = _stream()


def _receive(data: bytes) -> np.ndarray | WireError:
    dest = np.full((PAGES, PAGE), 0xA5, np.uint8)
    try:
        summary = FrameReader(io.BytesIO(data), resolve=RESOLVE).receive(dest)
    except WireError as exc:
        return exc
    assert summary.digest_verified
    return dest


def test_the_stream_round_trips_and_carries_every_codec():
    assert (_receive(STREAM) == SOURCE).all()
    ids = {STREAM[start + 3] for start, _ in SPANS if STREAM[start + 2] == fmt.FrameType.DATA}
    assert ids == set(range(len(CODECS)))


@st.composite
def rechecksummed(draw) -> bytes:
    """The stream with one frame changed and its checksum made to match."""
    index = draw(st.integers(0, len(SPANS) - 1))
    start, end = SPANS[index]
    magic, ftype, codec_id, flags, runs, pages, payload_len, _ = fmt.FRAME_HEADER.unpack(
        STREAM[start : start + fmt.FRAME_HEADER.size]
    )
    body = bytearray(STREAM[start + fmt.FRAME_HEADER.size : end])
    data = ftype == fmt.FrameType.DATA
    how = draw(
        st.sampled_from(["bits", "codec", "cut", "extend", "run", "mode"] if data else ["bits"])
    )
    if how == "bits":
        for at in draw(st.lists(st.integers(0, len(body) * 8 - 1), min_size=1, max_size=4)):
            body[at // 8] ^= 1 << (at % 8)
    elif how == "codec":
        codec_id = draw(st.integers(0, len(CODECS) - 1).filter(lambda c: c != codec_id))
    elif how == "cut" and payload_len:
        cut = draw(st.integers(1, min(payload_len, 64)))
        del body[-cut:]
        payload_len -= cut
    elif how == "extend":
        extra = draw(st.binary(min_size=1, max_size=16))
        body += extra
        payload_len += len(extra)
    elif how == "run":
        at = draw(st.integers(0, runs - 1)) * fmt.RUN.size + draw(st.sampled_from([0, 8]))
        body[at] = (body[at] + draw(st.sampled_from([1, 255, 8]))) % 256
    elif how == "mode":
        body[runs * fmt.RUN.size + draw(st.integers(0, pages - 1))] = draw(st.integers(0, 5))
    head = fmt.FRAME_HEAD.pack(magic, ftype, codec_id, flags, runs, pages, payload_len)
    frame = head + fmt.CHECKSUM.pack(checksum([head, bytes(body)], seed=index)) + bytes(body)
    return STREAM[:start] + frame + STREAM[end:]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=rechecksummed())
def test_a_changed_frame_with_a_matching_checksum_is_an_error_or_changes_nothing(data):
    result = _receive(data)
    if isinstance(result, WireError):
        assert type(result) is not WireError  # a specific failure, not the base class
    else:
        assert (result == SOURCE).all()
