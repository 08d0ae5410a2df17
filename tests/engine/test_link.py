"""The emulated link: a token bucket the size of the socket's send buffer, starting empty.

Timed on a fake clock: the test asserts what the bucket asks the sender to wait, not how
fast a machine runs it."""

from __future__ import annotations

import socket
import time

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
        assert seconds <= link_module.PACING_SLICE_S  # a wait is read again that often
        self.slept.append(seconds)
        self.now += seconds

    @property
    def waited(self) -> float:
        return sum(self.slept)


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
    assert clock.waited == pytest.approx(0.1)  # empty at start: no head start
    clock.now += 0.25  # the sender is away: the wire drains 250 kB meanwhile
    link.write_parts([bytes(200_000)])
    assert clock.waited == pytest.approx(0.1)  # sent without waiting
    clock.now += 10.0  # a long pause: the room is the bucket's, no more
    link.write_parts([bytes(500_000)])
    assert clock.waited == pytest.approx(0.3)  # 500 kB, 300 kB of room: 0.2 s more
    assert sink.sent == 800_000


def test_a_frame_that_would_go_out_after_the_deadline_ends_the_link_at_it(clock):
    sink = _Sink()
    link = PacedSocket(sink, 1000.0, burst=1000, deadline=clock.now + 2.0)
    link.write_parts([b"x" * 1000])  # a second of pacing: within the deadline
    assert clock.waited == pytest.approx(1.0) and sink.sent == 1000
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


class _TimedSink(_Sink):
    """A socket with a deadline of its own, as a TimedSocket (``send --deadline``)."""

    def __init__(self, clock: _Clock, deadline: float) -> None:
        super().__init__()
        self.clock, self.deadline = clock, deadline

    def time_left(self) -> float:
        return self.deadline - self.clock.now

    def deadline_passed(self) -> TimeoutError:
        return TimeoutError("the connection's deadline of 5 s passed")


def test_a_paced_wait_ends_at_the_socket_s_own_deadline(clock):
    """``send --deadline 5`` over a slow link ended only once a frame's pacing was over
    (75 s for 190 KB at 20 kbit/s)."""
    sink = _TimedSink(clock, clock.now + 5.0)
    link = PacedSocket(sink, 2500.0, burst=1000, deadline=clock.now + 300.0)
    with pytest.raises(TimeoutError, match=r"^the connection's deadline of 5 s passed$"):
        link.write_parts([bytes(190_000)])
    assert clock.waited == pytest.approx(5.0) and sink.sent == 0


def test_a_stopped_link_ends_its_paced_wait_and_refuses_paced_frames(clock, monkeypatch):
    """Ctrl-C during a frame's pacing waited for all of it; stopped from another thread
    (here: from within the wait), it ends within a slice, and refuses later frames."""
    sink = _Sink()
    link = PacedSocket(sink, 2500.0, burst=1000)
    sleep = clock.sleep

    def stopped_after_a_second(seconds: float) -> None:
        sleep(seconds)
        if clock.waited >= 1.0:
            link.stop()

    monkeypatch.setattr(link_module.time, "sleep", stopped_after_a_second)
    stopped = r"^the link was stopped: the migration is ending$"
    with pytest.raises(link_module.LinkTimeLimit, match=stopped):
        link.write_parts([bytes(190_000)])
    assert clock.waited == pytest.approx(1.0, abs=link_module.PACING_SLICE_S)
    assert sink.sent == 1500 and link.partial_frame  # its first piece went out at 0.6 s
    with pytest.raises(link_module.LinkTimeLimit, match=stopped):
        link.write_parts([bytes(10)])
    link.rate = None
    with pytest.raises(link_module.LinkTimeLimit, match=stopped):
        link.write_parts([bytes(10)])
    assert sink.sent == 1500


def test_a_send_to_a_peer_that_stopped_reading_ends_at_the_deadline_or_a_stop():
    """A peer that read nothing more filled the send buffer, and a send then waited out
    the socket's own timeout (none here: forever) past the migration's time limit, and
    through Ctrl-C."""
    import threading

    ours, theirs = socket.socketpair()
    with ours, theirs:
        link = PacedSocket(ours, None, deadline=time.perf_counter() + 0.3)
        began = time.perf_counter()
        with pytest.raises(link_module.LinkTimeLimit, match=r"^the destination took no more"):
            for _ in range(10_000):  # until the buffers are full
                link.write_parts([bytes(65536)])
        assert 0.3 <= time.perf_counter() - began < 2.0
        link.deadline = None
        failed = []

        def write() -> None:
            try:
                link.write_parts([bytes(65536)])
            except link_module.LinkTimeLimit as exc:
                failed.append(exc)

        writer = threading.Thread(target=write)
        writer.start()
        time.sleep(0.3)
        assert writer.is_alive()  # waiting for the peer, with no deadline
        link.stop()
        writer.join(2.0)
        assert not writer.is_alive() and "the link was stopped" in str(failed[0])


def test_a_slow_link_s_frame_goes_out_in_pieces_as_the_bucket_has_them(clock):
    """Sent whole after its pacing, a frame left a slow link silent for all of it (190 KB
    at 1 Mbit/s: 1.5 s), and a destination with a shorter idle timeout gave up on a source
    that was sending. Pieces of a tenth of a second of the link each, in order; a frame a
    fast link sends in a tenth of a second goes out whole."""
    sent = []

    class Recording(_Sink):
        def sendmsg(self, buffers) -> int:
            sent.append((round(clock.now - 100.0, 6), b"".join(bytes(b) for b in buffers)))
            return super().sendmsg(buffers)

    link = PacedSocket(Recording(), 125_000.0, burst=10**6)  # 1 Mbit/s
    frame = [bytes(range(256)) * 400, b"tail" * 1000]  # 106,400 bytes
    link.write_parts(frame)
    assert b"".join(data for _, data in sent) == b"".join(frame)
    assert [len(data) for _, data in sent] == [12_500] * 8 + [6_400]
    assert [t for t, _ in sent] == [pytest.approx(0.1 * i) for i in range(1, 9)] + [
        pytest.approx(106_400 / 125_000)
    ]
    assert not link.partial_frame
    sent.clear()
    fast = PacedSocket(Recording(), 1.25e9, burst=10**6)
    fast.write_parts(frame)
    assert len(sent) == 1
