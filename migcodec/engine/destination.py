"""The destination: read the stream into memory, verify it, tell the source the verdict."""

from __future__ import annotations

import contextlib
import socket

import numpy as np

from migcodec.wire import FrameReader, StreamSummary, WireError
from migcodec.wire.handshake import send_reply


def receive_migration(
    sock: socket.socket, memory: np.ndarray | None = None
) -> tuple[StreamSummary, np.ndarray]:
    """Receive a whole migration on ``sock``; return the summary and the memory.

    Success is reported to the source only after the end-of-stream frame arrived and the
    memory digest matched; any failure is sent back (best effort) and re-raised.
    """
    reader = FrameReader(sock, reply_to=sock)
    if memory is None:
        memory = np.zeros((reader.memory_pages, reader.page_size), dtype=np.uint8)
    try:
        summary = reader.receive(memory)
    except WireError as exc:
        with contextlib.suppress(OSError):  # the source may be gone; re-raising says why
            send_reply(sock, False, str(exc))
        raise
    send_reply(sock, True, "memory verified")
    return summary, memory
