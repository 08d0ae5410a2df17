"""The destination: read the stream into memory, verify it, tell the source the verdict."""

from __future__ import annotations

import contextlib
import os
import socket

import numpy as np

from migcodec.wire import FrameReader, StreamSummary, WireError
from migcodec.wire.handshake import send_reply


def default_memory_limit() -> int:
    """Half of physical memory: a peer may not make us allocate more than that."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2


def receive_migration(
    sock: socket.socket, memory: np.ndarray | None = None, max_memory_bytes: int | None = None
) -> tuple[StreamSummary, np.ndarray]:
    """Receive a whole migration on ``sock``; return the summary and the memory.

    The preamble is refused (and the source told why) when it asks for more memory than
    ``memory`` holds, or than ``max_memory_bytes`` (half of RAM by default) when the memory
    is allocated here. Success is reported to the source only after the end-of-stream frame
    arrived and the memory digest matched; any failure is sent back (best effort) and
    re-raised.
    """
    if memory is not None:
        limit = memory.nbytes
    else:
        limit = max_memory_bytes if max_memory_bytes is not None else default_memory_limit()
    reader = FrameReader(sock, reply_to=sock, max_memory_bytes=limit)
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
