"""This side's own limits, whatever the peer announces, and broken connections."""

import contextlib
import io
import socket
import threading
import time

import numpy as np
import pytest

from migcodec import ram
from migcodec.codecs import get_codec
from migcodec.engine import destination as destination_module
from migcodec.engine.destination import receive_migration
from migcodec.wire import FrameReader, FrameWriter, MemoryMismatch, StreamAborted
from migcodec.wire.errors import FrameTooLarge, TruncatedStream
from migcodec.wire.handshake import HandshakeRefused, read_reply
from tests.wire.crafting import preamble_bytes


def test_a_long_abort_reason_fits_even_with_tiny_batches():
    out = io.BytesIO()
    FrameWriter(out, 512, 4, [get_codec("raw")], max_batch_pages=1).abort("x" * 1000)
    with pytest.raises(StreamAborted) as info:
        FrameReader(io.BytesIO(out.getvalue())).receive(np.zeros((4, 512), np.uint8))
    assert info.value.reason == "x" * 1000


def test_destination_refuses_a_stream_for_more_memory_than_it_accepts():
    src, dst = socket.socketpair()
    with src, dst:
        FrameWriter(src, 4096, 1 << 20, [get_codec("raw")])  # 4 GiB of guest memory
        with pytest.raises(MemoryMismatch, match="accepts at most 1048576"):
            receive_migration(dst, max_memory_bytes=1 << 20)
        with pytest.raises(HandshakeRefused, match="accepts at most 1048576"):
            read_reply(src)


def test_destination_memory_this_machine_does_not_have_is_refused_and_the_source_told(
    monkeypatch,
):
    """Anonymous memory is lent lazily: numpy takes any size under the limit (half of
    physical RAM), and the kernel kills the destination once the pages arriving outgrow
    the RAM available, instead of the stream being refused with a reason."""
    monkeypatch.setattr(ram, "available_memory", lambda: 1 << 20)
    src, dst = socket.socketpair()
    with src, dst:
        src.sendall(preamble_bytes(4096, 1024, 64, {0: {"name": "raw"}}))  # 4 MiB
        with pytest.raises(MemoryMismatch) as info:
            receive_migration(dst, max_memory_bytes=1 << 30, timeout_s=1)
        assert str(info.value) == (
            "preamble: cannot open destination memory: destination memory needs 4 MiB of RAM, "
            "but this machine has 1 MiB available; free memory here, or receive into a "
            "--memory-file"
        )
        with pytest.raises(HandshakeRefused, match="destination memory needs 4 MiB of RAM"):
            read_reply(src)


def test_destination_memory_that_cannot_be_allocated_is_refused_and_the_source_told(
    monkeypatch,
):
    monkeypatch.setattr(ram, "available_memory", lambda: None)  # the system does not say
    src, dst = socket.socketpair()
    with src, dst:
        src.sendall(preamble_bytes(4096, 1 << 40, 64, {0: {"name": "raw"}}))  # 4 PiB
        with pytest.raises(MemoryMismatch) as info:
            receive_migration(dst, max_memory_bytes=1 << 62)
        assert str(info.value) == (
            "preamble: cannot open destination memory: Unable to allocate 4.00 PiB for an "
            "array with shape (1099511627776, 4096) and data type uint8"
        )
        with pytest.raises(HandshakeRefused, match="cannot open destination memory: Unable"):
            read_reply(src)


class _ResetSource:
    def __init__(self, data: bytes):
        self.data = io.BytesIO(data)

    def readinto(self, view):
        n = self.data.readinto(view)
        if not n:
            raise ConnectionResetError(104, "Connection reset by peer")
        return n


def test_a_reset_connection_is_a_wire_error():
    out = io.BytesIO()
    FrameWriter(out, 4096, 4, [get_codec("raw")])
    reader = FrameReader(_ResetSource(out.getvalue()))
    with pytest.raises(TruncatedStream, match="connection failed mid-stream"):
        reader.read_frame()


def test_a_connected_peer_that_sends_nothing_times_out_as_a_wire_error():
    src, dst = socket.socketpair()
    with src, dst:
        started = time.perf_counter()
        with pytest.raises(TruncatedStream, match="sent nothing for the receive timeout"):
            receive_migration(dst, timeout_s=0.05)
        assert time.perf_counter() - started < 5


def test_a_frame_buffer_this_host_cannot_hold_is_refused_before_the_stream_is_accepted(
    monkeypatch,
):
    """The body buffer (up to 64 MiB for the largest batches) is made before the answer:
    a host that cannot hold it refuses the stream, and the source hears why."""
    import migcodec.wire.reader as reader_module

    real = bytearray

    def scarce(size=0):
        if isinstance(size, int) and size > 1 << 20:
            raise MemoryError
        return real(size)

    monkeypatch.setattr(reader_module, "bytearray", scarce, raising=False)
    src, dst = socket.socketpair()
    with src, dst:
        src.sendall(preamble_bytes(4096, 1 << 16, 4096, {0: {"name": "raw"}}))
        with pytest.raises(FrameTooLarge) as info:
            FrameReader(dst, reply_to=dst)
        assert str(info.value) == (
            "preamble, byte offset 0: this destination cannot allocate the 16830464-byte frame "
            "buffer that batches of 4096 pages of 4096 bytes need; send smaller batches"
        )
        with pytest.raises(HandshakeRefused, match="cannot allocate the 16830464-byte frame"):
            read_reply(src)


def test_the_default_limit_says_what_it_is_and_what_takes_more(monkeypatch):
    """Half of this machine's RAM bounds memory of the destination's own; refused there,
    a stream said only "accepts at most N"."""
    monkeypatch.setattr(destination_module, "default_memory_limit", lambda: 1 << 20)
    src, dst = socket.socketpair()
    with src, dst:
        src.sendall(preamble_bytes(4096, 1024, 64, {0: {"name": "raw"}}))  # 4 MiB
        with pytest.raises(MemoryMismatch) as info:
            receive_migration(dst, timeout_s=1)
        refused = (
            "the stream is for 4194304 bytes of memory; this destination accepts at most "
            "1048576 (half of this machine's RAM; receive into a file, which takes what its "
            "disk holds)"
        )
        assert str(info.value) == f"preamble, byte offset 0: {refused}"
        with pytest.raises(HandshakeRefused) as told:
            read_reply(src)
        assert refused in str(told.value)


def test_a_file_or_region_is_not_bounded_by_half_of_ram(monkeypatch, tmp_path):
    """``receive --memory-file`` refused any guest over half of this machine's RAM, which
    a file does not take (its disk's room is checked where it is made); no option lifted
    it."""
    from migcodec.cli import main

    monkeypatch.setattr(destination_module, "default_memory_limit", lambda: 1 << 20)
    with socket.socket() as probe:  # a free port for the command to listen on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    image = tmp_path / "dest.img"
    args = ["receive", "--listen", f"127.0.0.1:{port}", "--memory-file", str(image)]
    codes = []
    command = threading.Thread(target=lambda: codes.append(main([*args, "--timeout", "5"])))
    command.start()
    try:
        for _ in range(100):  # until it listens
            with contextlib.suppress(ConnectionRefusedError):
                src = socket.create_connection(("127.0.0.1", port))
                break
            time.sleep(0.05)
        with src:
            src.sendall(preamble_bytes(4096, 1024, 64, {0: {"name": "raw"}}))  # 4 MiB
            src.settimeout(10)
            read_reply(src)  # accepted: a refusal raises HandshakeRefused
    finally:
        command.join(30)
    assert codes == [1]  # the source hung up after the preamble
    assert not image.exists()  # a file made for a migration that failed is removed
