"""Negotiation over a real socket: a destination without a codec refuses at the preamble."""

import socket
import threading

import numpy as np
import pytest

from migcodec.codecs import Batch, CodecUnavailable, get_codec
from migcodec.wire import CodecMissing, FrameReader, FrameWriter, HandshakeRefused, TruncatedStream
from migcodec.wire.handshake import read_reply


def _lacks_zstd(config):
    if config["name"] == "zstd":
        raise CodecUnavailable("codec 'zstd' failed to load; pip install zstandard")
    return get_codec(config)


def _run_destination(sock, resolve, memory, outcome):
    try:
        with sock:
            outcome["summary"] = FrameReader(sock, resolve=resolve, reply_to=sock).receive(memory)
    except Exception as exc:  # recorded for the test thread to assert on
        outcome["error"] = exc


def _pair_and_destination(resolve, memory):
    src, dst = socket.socketpair()
    outcome: dict = {}
    thread = threading.Thread(target=_run_destination, args=(dst, resolve, memory, outcome))
    thread.start()
    return src, thread, outcome


def test_destination_lacking_a_codec_refuses_before_any_page_moves():
    memory = np.zeros((16, 4096), np.uint8)
    src, thread, outcome = _pair_and_destination(_lacks_zstd, memory)
    with src, pytest.raises(HandshakeRefused) as info:
        FrameWriter(src, 4096, 16, [get_codec("lz4"), get_codec("zstd")], await_reply_from=src)
    thread.join(timeout=10)
    assert "codec id 1 of the peer's codec table ('zstd')" in str(info.value)
    assert "pip install zstandard" in str(info.value)
    assert isinstance(outcome["error"], CodecMissing)


def test_accepted_handshake_then_stream_completes():
    source_memory = np.arange(16 * 4096, dtype=np.uint32).view(np.uint8)[: 16 * 4096]
    source_memory = source_memory.reshape(16, 4096).copy()
    dest = np.zeros_like(source_memory)
    src, thread, outcome = _pair_and_destination(get_codec, dest)
    with src:
        codec = get_codec("lz4")
        writer = FrameWriter(src, 4096, 16, [codec], await_reply_from=src)
        writer.write_batch(codec.encode(Batch(source_memory, [(0, 16)])))
        writer.end_stream()
        thread.join(timeout=10)
    assert "error" not in outcome
    assert outcome["summary"].pages == 16
    np.testing.assert_array_equal(dest, source_memory)


def test_a_preamble_of_a_newer_version_is_answered_with_the_upgrade_hint():
    """The source hears why (which versions this side speaks), not that the destination
    closed the connection before answering."""
    from migcodec.wire import UnsupportedVersion
    from tests.wire.crafting import preamble_bytes

    memory = np.zeros((16, 4096), np.uint8)
    src, thread, outcome = _pair_and_destination(get_codec, memory)
    with src:
        src.sendall(preamble_bytes(4096, 16, 16, {0: {"name": "lz4"}}, version=3))
        with pytest.raises(HandshakeRefused) as info:
            read_reply(src)
    thread.join(timeout=10)
    assert str(info.value) == (
        "destination refused the stream: 'stream version 3; this reader speaks versions 1, "
        "2 (upgrade migcodec on the older side)'"
    )
    assert isinstance(outcome["error"], UnsupportedVersion)


def test_a_missing_fall_back_is_named_not_the_package_of_the_codec_that_names_it():
    """A delta codec installed here whose fall-back is not: the source's package for the
    delta codec would not help, the fall-back's name does."""
    import io

    from migcodec.wire.preamble import Preamble

    preamble = Preamble(
        4096, 16, 16, {0: {"name": "xbzrle", "fallback": "nope-codec"}}, packages={0: "a-pkg"}
    )
    with pytest.raises(CodecMissing) as info:
        FrameReader(io.BytesIO(preamble.encode()))
    message = str(info.value)
    assert message.startswith(
        "preamble: cannot decode codec id 0 of the peer's codec table ('xbzrle'): no codec "
        "named 'nope-codec' is installed (installed: "
    )
    assert "a-pkg" not in message


def _reply_bytes(accepted: bool, reason: str, checksummed: bool) -> bytes:
    """What ``send_reply`` writes, as the source reads it."""
    import io

    from migcodec.wire.handshake import send_reply

    out = io.BytesIO()
    send_reply(out, accepted, reason, checksummed)
    return out.getvalue()


def test_an_acceptance_damaged_on_the_way_is_not_taken_for_one():
    """One bit of the status byte turns a refusal (of memory that did not verify, say)
    into an acceptance; the reply's checksum tells the two apart, and the source takes
    nothing for confirmed. A refusal stays a refusal, read whole or not."""
    import io

    from migcodec.wire import ChecksumMismatch
    from migcodec.wire.handshake import REPLY

    refusal = bytearray(_reply_bytes(False, "frame 3: checksum mismatch", checksummed=True))
    refusal[4] ^= 1  # REFUSE (1) -> ACCEPT (0)
    with pytest.raises(ChecksumMismatch) as info:
        read_reply(io.BytesIO(bytes(refusal)), "the end of the stream", checksummed=True)
    assert str(info.value) == (
        "destination's acceptance of the end of the stream does not match its checksum: the "
        "reply was damaged on the way, so nothing it says can be taken as confirmed"
    )
    accepted = _reply_bytes(True, "memory verified", checksummed=True)
    read_reply(io.BytesIO(accepted), checksummed=True)  # whole: accepted
    for cut in range(REPLY.size + len("memory verified"), len(accepted)):
        with pytest.raises(TruncatedStream):  # an acceptance without all of its checksum
            read_reply(io.BytesIO(accepted[:cut]), checksummed=True)
    # a destination too old to know the flag refuses it with a reply of the old form
    old = _reply_bytes(False, "stream preamble sets flags 0x0001", checksummed=False)
    with pytest.raises(HandshakeRefused, match="sets flags 0x0001"):
        read_reply(io.BytesIO(old), checksummed=True)


def test_a_source_that_waits_for_replies_asks_for_their_checksums_and_a_file_stream_does_not():
    import io

    from migcodec.wire.format import PREAMBLE_REPLY_CHECKSUM

    memory = np.zeros((16, 4096), np.uint8)
    src, thread, outcome = _pair_and_destination(get_codec, memory)
    with src:
        writer = FrameWriter(src, 4096, 16, [get_codec("lz4")], await_reply_from=src)
        writer.end_stream()
    thread.join(timeout=10)
    assert writer.replies_checksummed
    assert "error" not in outcome  # the destination answered with a checksum, and was read
    file_stream = io.BytesIO()
    assert not FrameWriter(file_stream, 4096, 16, [get_codec("lz4")]).replies_checksummed
    flags = int.from_bytes(file_stream.getvalue()[10:12], "little")  # the preamble's flags
    assert not flags & PREAMBLE_REPLY_CHECKSUM
