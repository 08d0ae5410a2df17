"""The link: a real socket, optionally paced by a token bucket at the sender."""

from __future__ import annotations

import select
import socket
import threading
import time

from migcodec.wire.io import send_all_parts, wait_to_send

#: the bucket when the socket does not say what it buffers
DEFAULT_BURST = 256 * 1024
#: why a stopped link refuses a paced frame (see PacedSocket.stop)
_STOPPED = "the link was stopped: the migration is ending"
#: the least a slow link's frame is paced in (an Ethernet frame's payload): see _pace
MIN_PIECE_BYTES = 1500
#: the longest a paced wait sleeps at once: what it waits for (the deadline, a stop) is
#: read again after each
PACING_SLICE_S = 0.1


class LinkTimeLimit(TimeoutError):
    """The paced link would send past its deadline: the migration's time limit."""


class PacedSocket:
    """Writes whole frames (``write_parts``, which the wire's sink prefers) to a socket,
    limited to ``rate`` bytes/s by a token bucket.

    The bucket is what a network interface drains while the sender is away: the socket's
    send buffer (``SO_SNDBUF``) unless ``burst`` says otherwise. A sender that pauses (a
    thread switch, a chooser reading a window) finds on its return the room the wire made
    meanwhile, as it would on a real link, where the kernel keeps the interface busy from
    that buffer; a bucket much smaller than the buffer would idle the emulated link on any
    pause longer than it lasts (256 KiB is 2 ms at 1 Gbit/s), which no real link does. The
    bucket starts empty: the first bytes take as long to cross as any others, and the
    long-run average never exceeds the rate. ``None`` means unlimited.

    ``deadline`` (a ``time.perf_counter()`` value) bounds the pacing: a frame that would
    go out after it waits until the deadline and raises :class:`LinkTimeLimit`, so that a
    slow link ends a migration at its time limit rather than a frame's pacing later (a
    frame at a few bytes per second takes days). A frame handed over once the deadline has
    passed raises it too, paced or not: where the encoders set the pace (an unlimited or
    fast link, whose bucket is full), nothing else ended an iteration at the limit, and a
    2 GiB first pass through zlib-ng on one engine ran to 6.8 s under a 2 s limit.

    A paced wait sleeps in slices of :data:`PACING_SLICE_S`, and ends early at the
    socket's own deadline (a :class:`~migcodec.wire.io.TimedSocket`'s, raising its
    ``DeadlinePassed``) or once :meth:`stop` is called (``LinkTimeLimit``): one frame over
    a slow link is paced for minutes (190 KB at 20 kbit/s: 75 s), and Ctrl-C or a
    ``--deadline`` of 5 s waited for all of it.
    """

    def __init__(
        self,
        sock: socket.socket,
        rate: float | None,
        burst: int | None = None,
        deadline: float | None = None,
    ):
        self.sock = sock
        self.rate = rate
        self.deadline = deadline
        self.burst = _send_buffer(sock) if burst is None else burst
        self._tokens = 0.0
        self._stamp = time.perf_counter()
        self._lock = threading.Lock()
        self._stopped = False
        self.partial_frame = False
        # whether the socket takes more (see _before_send); None for a sink that is no
        # socket (a test's)
        self._poll = None
        if isinstance(sock, socket.socket):
            self._poll = select.poll()
            self._poll.register(sock, select.POLLOUT)

    def write_parts(self, parts) -> None:
        """A whole frame, paced: in one ``sendmsg`` on a link of a few Mbit/s or more, in
        pieces of :data:`PACING_SLICE_S` of the link's time on a slower one, each sent once
        the bucket has its bytes (:meth:`_pace`). ``partial_frame`` says whether a frame
        ended (an error) with part of it sent: the stream is then not at a frame's edge."""
        deadline = self.deadline
        if deadline is not None and time.perf_counter() >= deadline:
            raise LinkTimeLimit("the time was up with frames still to send")
        if self._stopped:
            raise LinkTimeLimit(_STOPPED)
        if self.rate:
            self._pace(parts)
        else:
            send_all_parts(self.sock, parts, self._before_send)
        self.partial_frame = False

    def _before_send(self) -> None:
        """Wait until the socket takes more of a frame (:func:`wait_to_send`), up to the
        deadline and while the link is not stopped: a peer that stopped reading fills the
        send buffer, and a send then blocked for the socket's own timeout (a minute for
        ``send``, none on a loopback), where the time limit was a few seconds."""
        if self._poll is not None:
            wait_to_send(self.sock, self._poll, self._time_allowed, PACING_SLICE_S)
        self.partial_frame = True  # a send follows: until it returns, part of it may be out

    def _time_allowed(self) -> float:
        """Seconds a wait to send may last before this link is asked again; raises once
        its deadline has passed or it is stopped."""
        if self._stopped:
            raise LinkTimeLimit(_STOPPED)
        deadline = self.deadline
        if deadline is None:
            return PACING_SLICE_S
        left = deadline - time.perf_counter()
        if left <= 0:
            raise LinkTimeLimit("the destination took no more of the stream before the time limit")
        return left

    def _pace(self, parts) -> None:
        """Take the frame's bytes from the bucket, and send it as they are there: whole,
        or where that takes longer than :data:`PACING_SLICE_S`, in pieces that long. A
        frame sent whole after its pacing left a slow link silent for all of it (190 KB at
        1 Mbit/s: 1.5 s), and a destination whose idle timeout was shorter gave up on a
        source that was sending. A frame that would go out after the deadline, or after
        the socket's own (a :class:`~migcodec.wire.io.TimedSocket`'s), is refused before
        any of it is sent, once that deadline has come."""
        rate = self.rate
        views = [memoryview(p).cast("B") for p in parts]
        nbytes = sum(view.nbytes for view in views)
        with self._lock:
            now = time.perf_counter()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * rate)
            self._stamp = now
            room = self._tokens
            self._tokens -= nbytes
        wait = max(nbytes - room, 0.0) / rate
        refused, until = None, now + wait
        if self.deadline is not None and until > self.deadline:
            until = self.deadline
            refused = LinkTimeLimit(
                f"the link at {rate:g} bytes/s needed {wait:.3g} s more to pace a "
                f"{nbytes}-byte frame"
            )
        left = getattr(self.sock, "time_left", None)
        left = None if left is None else left()
        if left is not None and now + left < until:
            until, refused = now + max(left, 0.0), self.sock.deadline_passed()
        if refused is not None:
            self._sleep_until(until)
            raise refused
        step = max(int(rate * PACING_SLICE_S), MIN_PIECE_BYTES)
        sent = 0
        for piece in _pieces(views, nbytes, step):
            sent += sum(view.nbytes for view in piece)
            self._sleep_until(now + max(sent - room, 0.0) / rate)
            send_all_parts(self.sock, piece, self._before_send)

    def _sleep_until(self, until: float) -> None:
        """Sleep until ``until`` (a ``time.perf_counter()`` value) in slices, ending early
        once the link is stopped."""
        now = time.perf_counter()
        while now < until:
            if self._stopped:
                raise LinkTimeLimit(_STOPPED)
            time.sleep(min(until - now, PACING_SLICE_S))
            now = time.perf_counter()

    def stop(self) -> None:
        """End a wait (paced, or for the socket to take more), from any thread, within
        :data:`PACING_SLICE_S`, and refuse every later frame: the migration is ending
        (Ctrl-C, SIGTERM)."""
        self._stopped = True

    def flush(self) -> None:
        """Nothing is buffered here; present so the wire writer can flush any sink."""


def _pieces(views: list[memoryview], nbytes: int, step: int):
    """``views`` (``nbytes`` in all) as lists of views of at most ``step`` bytes each, in
    order: one list, ``views`` itself, when they fit in one."""
    if nbytes <= step:
        yield views
        return
    piece, room = [], step
    for view in views:
        while view.nbytes:
            part = view[:room]
            piece.append(part)
            view = view[part.nbytes :]
            room -= part.nbytes
            if not room:
                yield piece
                piece, room = [], step
    if piece:
        yield piece


def _send_buffer(sock: socket.socket) -> int:
    """The bytes the kernel may queue on ``sock`` for the wire (its ``SO_SNDBUF``)."""
    try:
        size = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    except (OSError, AttributeError):  # not a socket the kernel buffers (a test double)
        return DEFAULT_BURST
    return max(int(size), DEFAULT_BURST)
