"""The link: a real socket, optionally paced by a token bucket at the sender."""

from __future__ import annotations

import socket
import threading
import time

from migcodec.wire.io import send_all_parts


class PacedSocket:
    """Writes whole frames (``write_parts``, which the wire's sink prefers) to a socket,
    limited to ``rate`` bytes/s by a token bucket.

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

    def write_parts(self, parts) -> None:
        """A whole frame in one token-bucket step and one ``sendmsg``."""
        if self.rate:
            self._wait_for(sum(memoryview(p).nbytes for p in parts))
        send_all_parts(self.sock, parts)

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
