"""The link: a real socket, optionally paced by a token bucket at the sender."""

from __future__ import annotations

import re
import socket
import threading
import time

_SIZE = re.compile(r"\s*([0-9.]+)\s*([kKmMgGtT]?)(i?)(.*?)\s*")


def _scaled(text: str, what: str, example: str) -> tuple[float, str]:
    match = _SIZE.fullmatch(text)
    if not match:
        raise ValueError(f"cannot read {what} {text!r}; write e.g. {example}")
    value, prefix, binary, unit = match.groups()
    power = "kmgt".index(prefix.lower()) + 1 if prefix else 0
    return float(value) * (1024 if binary else 1000) ** power, unit


def parse_rate(text: str) -> float:
    """A rate in bytes per second: ``'1Gbit'`` and ``'10Gbps'`` are bits, ``'200MB/s'`` bytes."""
    value, unit = _scaled(text, "rate", "1Gbit, 10Gbit, 200MB/s")
    if unit in ("bit", "bit/s", "bps", "b", "b/s"):
        return value / 8
    if unit in ("", "B", "B/s", "Bps"):
        return value
    raise ValueError(f"unknown rate unit {unit!r} in {text!r}; use bit, bps or B/s")


def parse_size(text: str) -> int:
    """A size in bytes: ``'1GiB'``, ``'64MiB'``, ``'512MB'``, ``'4096'``."""
    value, unit = _scaled(text, "size", "64MiB, 1GiB")
    if unit not in ("", "B"):
        raise ValueError(f"unknown size unit {unit!r} in {text!r}; use B, KiB, MiB, GiB")
    return int(value)


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
