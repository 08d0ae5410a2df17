"""Byte sinks and sources over files and sockets, so the writer and reader need neither."""

from __future__ import annotations

import socket
from collections.abc import Sequence


def send_all_parts(sock: socket.socket, parts: Sequence) -> None:
    """``sendall`` for a list of buffers: one ``sendmsg`` per frame where the kernel takes it."""
    views = [memoryview(p).cast("B") for p in parts if memoryview(p).nbytes]
    while views:
        sent = sock.sendmsg(views)
        while views and sent >= views[0].nbytes:
            sent -= views[0].nbytes
            views.pop(0)
        if views and sent:
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

    def fill(self, view: memoryview) -> int:
        """Read until ``view`` is full or the stream ends; return the byte count read."""
        got = 0
        while got < len(view):
            n = self._readinto(view[got:])
            if not n:
                break
            got += n
        return got
