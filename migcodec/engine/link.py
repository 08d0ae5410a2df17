"""The link: a real socket, optionally paced by a token bucket at the sender."""

from __future__ import annotations

import socket
import threading
import time

from migcodec.units import parse_rate, parse_size
from migcodec.wire.io import send_all_parts

__all__ = ["PacedSocket", "parse_rate", "parse_size"]


class PacedSocket:
    """File-like writer over a socket, limited to ``rate`` bytes/s by a token bucket.

    The bucket holds at most ``burst`` bytes, so short bursts go at line speed and the
    long-run average never exceeds the rate. ``None`` means unlimited.
    """

    def __init__(self, sock: socket.socket, rate: float | None, burst: int = 256 * 1024):
        self.sock = sock
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = time.perf_counter()
        self._lock = threading.Lock()
        self.bytes_sent = 0

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        if self.rate:
            self._wait_for(view.nbytes)
        self.sock.sendall(view)
        self.bytes_sent += view.nbytes
        return view.nbytes

    def write_parts(self, parts) -> None:
        """A whole frame in one token-bucket step and one ``sendmsg``."""
        nbytes = sum(memoryview(p).nbytes for p in parts)
        if self.rate:
            self._wait_for(nbytes)
        send_all_parts(self.sock, parts)
        self.bytes_sent += nbytes

    def _wait_for(self, nbytes: int) -> None:
        with self._lock:
            now = time.perf_counter()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= nbytes
            debt = -self._tokens
        if debt > 0:
            time.sleep(debt / self.rate)

    def flush(self) -> None:
        """Nothing is buffered here; present so the wire writer can flush any sink."""
