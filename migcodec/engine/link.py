"""The link: a real socket, optionally paced by a token bucket at the sender."""

from __future__ import annotations

import socket
import threading
import time

from migcodec.wire.io import send_all_parts

#: the bucket when the socket does not say what it buffers
DEFAULT_BURST = 256 * 1024
#: why a stopped link refuses a paced frame (see PacedSocket.stop)
_STOPPED = "the link stopped pacing: the migration is ending"
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

    def write_parts(self, parts) -> None:
        """A whole frame in one token-bucket step and one ``sendmsg``."""
        deadline = self.deadline
        if deadline is not None and time.perf_counter() >= deadline:
            raise LinkTimeLimit("the time was up with frames still to send")
        if self.rate:
            if self._stopped:
                raise LinkTimeLimit(_STOPPED)
            self._wait_for(sum(memoryview(p).nbytes for p in parts))
        send_all_parts(self.sock, parts)

    def _wait_for(self, nbytes: int) -> None:
        with self._lock:
            now = time.perf_counter()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= nbytes
            debt = -self._tokens
        if debt <= 0:
            return
        wait = debt / self.rate
        refused = None
        end = now + wait
        if self.deadline is not None and end > self.deadline:
            end = self.deadline
            refused = LinkTimeLimit(
                f"the link at {self.rate:g} bytes/s needed {wait:.3g} s more to pace a "
                f"{nbytes}-byte frame"
            )
        left = getattr(self.sock, "time_left", None)
        left = None if left is None else left()
        if left is not None and now + left < end:
            end, refused = now + max(left, 0.0), self.sock.deadline_passed()
        while now < end:
            if self._stopped:
                raise LinkTimeLimit(_STOPPED)
            time.sleep(min(end - now, PACING_SLICE_S))
            now = time.perf_counter()
        if refused is not None:
            raise refused

    def stop(self) -> None:
        """End a paced wait, from any thread, within :data:`PACING_SLICE_S`, and refuse
        every later paced frame: unpaced (``rate = None``), a last frame still goes out
        (the reason a migration ends)."""
        self._stopped = True

    def flush(self) -> None:
        """Nothing is buffered here; present so the wire writer can flush any sink."""


def _send_buffer(sock: socket.socket) -> int:
    """The bytes the kernel may queue on ``sock`` for the wire (its ``SO_SNDBUF``)."""
    try:
        size = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    except (OSError, AttributeError):  # not a socket the kernel buffers (a test double)
        return DEFAULT_BURST
    return max(int(size), DEFAULT_BURST)
