"""Byte sinks and sources over files and sockets, so the writer and reader need neither."""

from __future__ import annotations

import fcntl
import select
import socket
import struct
import termios
import time
from collections.abc import Callable, Sequence


class PeerIdle(TimeoutError):
    """A socket call waited the whole idle timeout: the peer sent or took nothing."""


class DeadlinePassed(TimeoutError):
    """The connection's overall deadline passed."""


class TimedSocket(socket.socket):
    """A connected socket whose every send and receive ends within an idle timeout and
    before an overall deadline, as :class:`TimeoutError` subclasses that say which.

    A plain socket timeout bounds one call: a peer that trickles a few bytes before each
    timeout runs out keeps a connection alive forever. Here each call's timeout is the idle
    timeout cut to what is left before the deadline, so the connection ends by the deadline
    whatever the peer does. Create one with :meth:`adopt`; the sink and source here (and
    everything that writes through :func:`send_all_parts`) use it as any socket.
    """

    idle_s: float | None
    deadline_s: float | None
    _deadline: float | None

    @classmethod
    def adopt(
        cls, sock: socket.socket, idle_s: float | None, deadline_s: float | None
    ) -> TimedSocket:
        """Take over ``sock``'s connection (``sock`` is left detached); the deadline runs
        from now."""
        timed = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        timed.idle_s = idle_s
        timed.deadline_s = deadline_s
        timed._deadline = None if deadline_s is None else time.monotonic() + deadline_s
        return timed

    def _arm(self) -> bool:
        """Set this call's timeout; return whether the deadline (not the idle timeout)
        bounds it."""
        timeout = self.idle_s
        if self._deadline is None:
            super().settimeout(timeout)
            return False
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise self.deadline_passed()
        by_deadline = timeout is None or left < timeout
        super().settimeout(left if by_deadline else timeout)
        return by_deadline

    def _deadline_message(self) -> str:
        return f"the connection's deadline of {self.deadline_s:g} s passed"

    def time_left(self) -> float | None:
        """Seconds left before the deadline (``None``: none), for a caller that waits
        before its next call (a paced link): its wait is bounded by the deadline too."""
        return None if self._deadline is None else self._deadline - time.monotonic()

    def deadline_passed(self) -> DeadlinePassed:
        """The error this socket's calls raise once the deadline has passed."""
        return DeadlinePassed(self._deadline_message())

    def _expired(self, by_deadline: bool, what: str) -> TimeoutError:
        if by_deadline:
            return self.deadline_passed()
        return PeerIdle(f"the peer {what} for {self.idle_s:g} s (the idle timeout)")

    def recv_into(self, buffer, nbytes: int = 0, flags: int = 0) -> int:
        by_deadline = self._arm()
        try:
            return super().recv_into(buffer, nbytes, flags)
        except TimeoutError as exc:
            raise self._expired(by_deadline, "sent nothing") from exc

    def sendmsg(self, buffers, *args) -> int:
        while True:
            by_deadline = self._arm()
            queued = _unacknowledged(self)
            try:
                return super().sendmsg(buffers, *args)
            except TimeoutError as exc:
                # a send waits until a third of the send buffer is free, which a peer
                # reading slowly takes longer than the idle timeout to free: one that read
                # 320 KB in 5 s was called one that "took no data for 5 s"
                left = _unacknowledged(self)
                if by_deadline or queued is None or left is None or left >= queued:
                    raise self._expired(by_deadline, "took no data") from exc

    def sendall(self, data, flags: int = 0) -> None:
        send_all_parts(self, [data])


def wait_to_send(
    sock: socket.socket, poll: select.poll, check: Callable[[], float], slice_s: float
) -> None:
    """Wait until ``sock`` takes more (``poll`` has it registered for ``POLLOUT``), in
    slices of at most ``slice_s``: before each, ``check()`` raises to end the wait (a
    caller's time limit, a stop) or returns the seconds it allows; a :class:`TimedSocket`
    ends it as its sends would, at its deadline or once the peer took no data for its
    idle timeout. A send then returns at once with what the socket took, where a blocked
    one waited out the socket's own timeout whatever the caller's bounds."""
    if poll.poll(0):
        return  # the usual case: room in the send buffer
    timed = sock if isinstance(sock, TimedSocket) else None
    idle = None if timed is None else timed.idle_s
    queued = None if idle is None else _unacknowledged(sock)
    since = time.monotonic()
    while True:
        wait = min(check(), slice_s)
        if timed is not None:
            timed._arm()  # raises once its deadline has passed
            now = time.monotonic()
            if idle is not None:
                left = _unacknowledged(sock)
                if queued is not None and left is not None and left < queued:
                    queued, since = left, now  # the peer took some: not idle
                elif now - since >= idle:
                    raise timed._expired(False, "took no data")
                wait = min(wait, since + idle - now)
        if poll.poll(max(wait, 0.0) * 1000.0):
            return


def _unacknowledged(sock: socket.socket) -> int | None:
    """Bytes ``sock`` has queued that its peer has not taken yet (TCP's unacknowledged
    and unsent bytes), or ``None`` where the system does not say."""
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except OSError:
        return None
    return struct.unpack("i", raw)[0]


def send_all_parts(
    sock: socket.socket, parts: Sequence, before_send: Callable[[], None] | None = None
) -> None:
    """``sendall`` for a list of buffers: one ``sendmsg`` per frame where the kernel takes it.
    ``before_send`` is called before each ``sendmsg`` (to wait until the socket takes more,
    within a bound of the caller's)."""
    views = [memoryview(p).cast("B") for p in parts]
    remaining = sum(view.nbytes for view in views)
    while remaining:
        if before_send is not None:
            before_send()
        sent = sock.sendmsg(views)
        remaining -= sent
        if not remaining:  # usually after the first call: the kernel took the whole frame
            return
        while sent >= views[0].nbytes:  # drop what went out (and empty parts)
            sent -= views.pop(0).nbytes
        if sent:
            views[0] = views[0][sent:]


class Sink:
    """Writes a frame's parts in order: sockets (and targets with ``write_parts``, such as
    the engine's paced link) take a whole frame per call, files one part per ``write``."""

    def __init__(self, target: object) -> None:
        self._sock = target if isinstance(target, socket.socket) else None
        self._parts = getattr(target, "write_parts", None)
        self._write = None if self._sock else getattr(target, "write", None)
        self._flush = getattr(target, "flush", None)

    def write_parts(self, parts: Sequence) -> None:
        if self._sock is not None:
            send_all_parts(self._sock, parts)
        elif self._parts is not None:
            self._parts(parts)
        else:
            for part in parts:
                self._write(part)

    def flush(self) -> None:
        if self._flush is not None:
            self._flush()


class Source:
    """Fills caller-provided buffers; returns how many bytes arrived before end of stream."""

    def __init__(self, source: object) -> None:
        self._sock = source if isinstance(source, socket.socket) else None
        if isinstance(source, socket.socket):
            self._readinto = source.recv_into
        elif hasattr(source, "readinto"):
            self._readinto = source.readinto
        else:
            read = source.read

            def readinto(view: memoryview) -> int:
                chunk = read(len(view))
                view[: len(chunk)] = chunk
                return len(chunk)

            self._readinto = readinto

    def check_deadline(self) -> None:
        """Raise the connection's :class:`DeadlinePassed` once its deadline has passed (a
        :class:`TimedSocket`'s; nothing for any other source), for work between reads."""
        if isinstance(self._sock, TimedSocket):
            left = self._sock.time_left()
            if left is not None and left <= 0:
                raise self._sock.deadline_passed()

    def pending(self) -> bool:
        """Whether any byte is left to read now. A socket is asked without waiting (its
        peer sends nothing after a stream's last frame until it is answered); a file is
        read one byte further."""
        if self._sock is not None:
            timeout = self._sock.gettimeout()
            self._sock.settimeout(0.0)  # a timeout would make recv wait for data first
            try:
                return bool(self._sock.recv(1, socket.MSG_PEEK))
            except OSError:  # nothing yet (BlockingIOError), or the peer is gone
                return False
            finally:
                self._sock.settimeout(timeout)
        probe = bytearray(1)
        return bool(self._readinto(memoryview(probe)))

    def fill(self, view: memoryview) -> int:
        """Read until ``view`` is full or the stream ends; return the byte count read."""
        got = 0
        while got < len(view):
            n = self._readinto(view[got:])
            if not n:
                break
            got += n
        return got
