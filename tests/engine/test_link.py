"""The emulated link: a token bucket the size of the socket's send buffer, starting empty.

Timed on a fake clock: the test asserts what the bucket asks the sender to wait, not how
fast a machine runs it."""

from __future__ import annotations

import socket

import pytest

from migcodec.engine import link as link_module
from migcodec.engine.link import DEFAULT_BURST, PacedSocket


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def perf_counter(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class _Sink:
    """Takes whatever is sent (``send_all_parts`` calls ``sendmsg``)."""

    def __init__(self) -> None:
        self.sent = 0

    def sendmsg(self, buffers) -> int:
        n = sum(memoryview(b).nbytes for b in buffers)
        self.sent += n
        return n


@pytest.fixture
def clock(monkeypatch):
    fake = _Clock()
    monkeypatch.setattr(link_module.time, "perf_counter", fake.perf_counter)
    monkeypatch.setattr(link_module.time, "sleep", fake.sleep)
    return fake


def test_the_bucket_is_the_sockets_send_buffer():
    left, right = socket.socketpair()
    with left, right:
        left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        buffered = left.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        assert PacedSocket(left, 1e6).burst == max(buffered, DEFAULT_BURST)
        assert PacedSocket(left, 1e6, burst=4096).burst == 4096
    assert PacedSocket(_Sink(), 1e6).burst == DEFAULT_BURST  # no SO_SNDBUF to read


def test_the_first_bytes_wait_for_the_wire_and_a_pause_is_made_up_to_the_bucket(clock):
    sink = _Sink()
    link = PacedSocket(sink, rate=1e6, burst=300_000)
    link.write_parts([bytes(100_000)])
    assert clock.slept == [pytest.approx(0.1)]  # empty at start: no head start
    clock.now += 0.25  # the sender is away: the wire drains 250 kB meanwhile
    link.write_parts([bytes(200_000)])
    assert clock.slept == [pytest.approx(0.1)]  # sent without waiting
    clock.now += 10.0  # a long pause: the room is the bucket's, no more
    link.write_parts([bytes(500_000)])
    assert clock.slept[1:] == [pytest.approx(0.2)]  # 500 kB, 300 kB of room
    assert sink.sent == 800_000


def test_a_frame_that_would_go_out_after_the_deadline_ends_the_link_at_it(clock):
    sink = _Sink()
    link = PacedSocket(sink, 1000.0, burst=1000, deadline=clock.now + 2.0)
    link.write_parts([b"x" * 1000])  # a second of pacing: within the deadline
    assert clock.slept == [pytest.approx(1.0)] and sink.sent == 1000
    with pytest.raises(link_module.LinkTimeLimit, match="needed 5 s more to pace a 5000-byte"):
        link.write_parts([b"x" * 5000])
    assert clock.now == pytest.approx(102.0)  # it waited until the deadline, not 5 s
    assert sink.sent == 1000  # and sent nothing past it


@pytest.mark.parametrize("rate", [None, 1000.0])
def test_a_frame_handed_over_after_the_deadline_is_refused_paced_or_not(clock, rate):
    """Where the encoders set the pace (an unlimited link, or a paced one whose bucket
    is full), the frames went out after the deadline without a word, and an iteration
    ran on past the time limit."""
    sink = _Sink()
    link = PacedSocket(sink, rate, burst=10_000, deadline=clock.now + 2.0)
    clock.now += 1.0  # a paced link's bucket fills meanwhile
    link.write_parts([b"x" * 1000])
    assert sink.sent == 1000 and clock.slept == []
    clock.now += 1.0  # the deadline
    with pytest.raises(link_module.LinkTimeLimit, match=r"^the time was up with frames still"):
        link.write_parts([b"x" * 1000])
    assert sink.sent == 1000
    link.deadline = None  # lifted (a last frame telling the destination why)
    link.write_parts([b"x" * 1000])
    assert sink.sent == 2000
