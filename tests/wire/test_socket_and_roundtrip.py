"""Streams over a real socket (the writer's ``sendmsg`` path, the reader's ``recv_into``),
and random streams of random batches through every codec, byte for byte."""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from migcodec.codecs import Batch, get_codec
from migcodec.datasets import generate_pages
from migcodec.wire import (
    FrameReader,
    FrameWriter,
    StreamAborted,
    TruncatedStream,
    memory_digest,
)
from migcodec.wire import format as fmt

PAGE = 4096
WAIT = 30.0
CODECS = ["raw", "lz4", "zlib-ng", "zstd"]


class Peer(threading.Thread):
    """The sending side: runs ``write`` on its socket, keeps any exception for the test."""

    def __init__(self, sock: socket.socket, write: Callable[[socket.socket], None]) -> None:
        super().__init__()
        self.sock, self.write, self.errors = sock, write, []

    def run(self) -> None:
        try:
            self.write(self.sock)
        except BaseException as exc:  # surfaced by the test through ``errors``
            self.errors.append(exc)
        finally:
            self.sock.close()


def over_socket(write: Callable[[socket.socket], None]) -> tuple[socket.socket, Peer]:
    """Run ``write`` on one end of a socket pair in a thread; return the other end.

    The stream is larger than the socket buffers, so the writer blocks until the reader
    drains it: partial ``sendmsg`` results are exercised, not just one big send.
    """
    sender, receiver = socket.socketpair()
    sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
    peer = Peer(sender, write)
    peer.start()
    return receiver, peer


def test_stream_round_trip_over_a_socket():
    memory = generate_pages("mixed", 256, 9)
    codecs = [get_codec(name) for name in CODECS]

    def write(sock: socket.socket) -> None:
        writer = FrameWriter(sock, PAGE, 256, codecs)
        for i, first in enumerate(range(0, 256, 32)):
            # two scattered runs per batch, the second half first
            runs = [(first + 16, 16), (first, 16)]
            writer.write_batch(codecs[i % 4].encode(Batch(memory, runs)))
        writer.end_iteration(0, 256)
        writer.end_stream(memory_digest(memory))

    receiver, thread = over_socket(write)
    with receiver:
        dest = np.zeros_like(memory)
        summary = FrameReader(receiver).receive(dest)
    thread.join(WAIT)
    assert thread.errors == []
    np.testing.assert_array_equal(dest, memory)
    assert summary.digest_verified and summary.pages == 256
    assert summary.pages_by_codec == {name: 64 for name in CODECS}


def test_peer_closing_mid_frame_is_a_truncated_stream():
    memory = generate_pages("random", 16, 2)
    cut: list[int] = []

    def write(sock: socket.socket) -> None:
        out = io.BytesIO()
        writer = FrameWriter(out, PAGE, 16, [get_codec("raw")])
        writer.write_batch(get_codec("raw").encode(Batch(memory, [(0, 4)])))
        first_end = out.tell()
        writer.write_batch(get_codec("raw").encode(Batch(memory, [(4, 4)])))
        cut.append(first_end + 1000)  # inside the second frame's payload
        sock.sendall(out.getvalue()[: cut[0]])

    receiver, thread = over_socket(write)
    dest = np.full_like(memory, 0xA5)
    with receiver, pytest.raises(TruncatedStream) as info:
        FrameReader(receiver).receive(dest)
    thread.join(WAIT)
    assert thread.errors == []
    assert (info.value.frame, info.value.offset) == (1, cut[0])
    np.testing.assert_array_equal(dest[:4], memory[:4])
    # the second frame (one run of raw pages) was being received in place: its pages hold
    # what arrived of them, and nothing else changed
    arrived = 1000 - fmt.FRAME_HEADER.size - fmt.RUN.size - 4
    np.testing.assert_array_equal(
        dest[4:8].reshape(-1)[:arrived], memory[4:8].reshape(-1)[:arrived]
    )
    assert (dest[4:8].reshape(-1)[arrived:] == 0xA5).all() and (dest[8:] == 0xA5).all()


def test_abort_over_a_socket():
    def write(sock: socket.socket) -> None:
        writer = FrameWriter(sock, PAGE, 16, [get_codec("lz4")])
        writer.end_iteration(0, 0)
        writer.abort("guest paused by the operator")

    receiver, thread = over_socket(write)
    with receiver, pytest.raises(StreamAborted) as info:
        FrameReader(receiver).receive(np.zeros((16, PAGE), np.uint8))
    thread.join(WAIT)
    assert thread.errors == []
    assert info.value.detail == "peer aborted: 'guest paused by the operator'"


@st.composite
def streams(draw):
    """Memory, and iterations of batches: each a codec and scattered, disjoint runs."""
    n_pages = 48
    kinds = draw(
        st.lists(st.sampled_from(["zero", "ones", "seq", "random"]), min_size=4, max_size=4)
    )
    memory = np.concatenate([generate_pages(kind, n_pages // 4, 1) for kind in kinds])
    batches = []
    for _ in range(draw(st.integers(1, 6))):
        pages = draw(st.lists(st.integers(0, n_pages - 1), unique=True, min_size=1, max_size=20))
        runs = [(p, 1) for p in pages]
        batches.append((draw(st.sampled_from(CODECS)), runs))
    return memory, batches


@given(case=streams())
def test_random_streams_round_trip(case):
    memory, batches = case
    codecs = [get_codec(name) for name in CODECS]
    out = io.BytesIO()
    writer = FrameWriter(out, PAGE, memory.shape[0], codecs)
    sent = np.zeros(memory.shape[0], bool)
    for name, runs in batches:
        writer.write_batch(codecs[CODECS.index(name)].encode(Batch(memory, runs)))
        sent[[p for p, _ in runs]] = True
    writer.end_stream()
    dest = np.full_like(memory, 0xA5)
    summary = FrameReader(io.BytesIO(out.getvalue())).receive(dest)
    np.testing.assert_array_equal(dest[sent], memory[sent])
    assert (dest[~sent] == 0xA5).all()
    assert summary.pages == sum(len(runs) for _, runs in batches)
    assert summary.bytes_read == len(out.getvalue()) == writer.bytes_written
