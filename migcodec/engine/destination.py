"""The destination: read the stream into memory, verify it, tell the source the verdict."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable

import numpy as np

from migcodec.engine.guest_memory import check_available
from migcodec.wire import (
    FrameReader,
    MemoryMismatch,
    StreamSummary,
    TruncatedStream,
    UnverifiedStream,
    WireError,
)
from migcodec.wire.handshake import send_reply
from migcodec.wire.preamble import Preamble


def default_memory_limit() -> int:
    """Half of physical memory: a peer may not make us allocate more than that."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2


#: seconds the destination waits for the peer's next bytes before giving up on the stream
RECEIVE_TIMEOUT_S = 60.0

#: opens destination memory of ``(n_pages, page_size)`` once the source has announced it
MemoryOpener = Callable[[int, int], np.ndarray]


def _zeros(n_pages: int, page_size: int) -> np.ndarray:
    """Anonymous memory of the size the source announced, refused unless this machine has
    the RAM available: numpy takes any size under the limit (the kernel lends pages
    lazily), and the kernel would kill the destination once the pages arriving outgrew it."""
    check_available(
        n_pages * page_size,
        "destination memory",
        fix="free memory here, or receive into a --memory-file",
    )
    return np.zeros((n_pages, page_size), dtype=np.uint8)


def _given(memory: np.ndarray) -> MemoryOpener:
    """An opener for memory the caller already holds: it must be the size announced."""

    def opener(n_pages: int, page_size: int) -> np.ndarray:
        if memory.dtype != np.uint8 or memory.shape != (n_pages, page_size):
            if memory.dtype == np.uint8 and memory.ndim == 2:
                holds = f"{memory.shape[0]} pages of {memory.shape[1]} bytes"
            else:
                holds = f"a {memory.dtype} array of shape {memory.shape}"
            raise ValueError(
                f"destination memory is {holds}; the stream is for {n_pages} pages of "
                f"{page_size} bytes"
            )
        if not memory.flags.c_contiguous or not memory.flags.writeable:
            raise ValueError("destination memory must be a writable, C-contiguous array")
        return memory

    return opener


def receive_migration(
    sock: socket.socket,
    memory: np.ndarray | MemoryOpener | None = None,
    max_memory_bytes: int | None = None,
    timeout_s: float | None = RECEIVE_TIMEOUT_S,
    require_digest: bool = True,
) -> tuple[StreamSummary, np.ndarray]:
    """Receive a whole migration on ``sock``; return the summary and the memory.

    ``memory`` is an array, or a function called with the size the source announces (a
    file is sized to the stream that way); anonymous memory by default. The preamble is
    refused (and the source told why) when an array is not ``(pages, page_size)`` uint8 of
    the announced size, when it asks for more than ``max_memory_bytes`` (half of RAM by
    default; ``math.inf``: no bound, for a function that checks its own room, as a file's
    does) otherwise, when anonymous memory asks for more RAM than this machine has
    available, or when the function fails. Success is reported to the source only
    after the end-of-stream frame arrived and the memory digest matched; any failure is
    sent back (best effort) and re-raised. A source that hung up before that report reached
    it is a :class:`~migcodec.wire.TruncatedStream`: it never learnt that the memory
    arrived, so the migration did not complete. That is known here where the source had
    closed its side when the report was due (over TCP a report to a peer gone is sent all
    the same); a connection cut once the report is on its way, only the source's own
    outcome says (it resumes the guest: this side's memory is then a verified copy the
    source does not count on). A stream that ends without a digest cannot be
    verified and is refused (:class:`UnverifiedStream`) unless ``require_digest`` is false.
    A peer that sends nothing for ``timeout_s`` seconds (``None``: wait forever) breaks the
    stream; pass a :class:`~migcodec.wire.io.TimedSocket` to bound the whole migration too
    (its own idle timeout then bounds each call, and ``timeout_s`` is not used).
    """
    sock.settimeout(timeout_s)
    why = ""
    if isinstance(memory, np.ndarray):
        limit = memory.nbytes
        opener = _given(memory)
    else:
        limit = default_memory_limit() if max_memory_bytes is None else max_memory_bytes
        opener = memory if callable(memory) else _zeros
        if max_memory_bytes is None:
            why = (
                " (half of this machine's RAM; receive into a file, which takes what its "
                "disk holds)"
            )
    held: list[np.ndarray] = []

    def admit(preamble: Preamble) -> None:
        try:
            held.append(opener(preamble.memory_pages, preamble.page_size))
        # MemoryError: the announced size is within the limit but cannot be had here (an
        # address-space limit, strict overcommit, a cgroup): refused, and the source told
        except (ValueError, OSError, MemoryError) as exc:
            raise MemoryMismatch(f"cannot open destination memory: {exc}", -1) from exc

    reader = FrameReader(
        sock, reply_to=sock, max_memory_bytes=limit, admit=admit, max_memory_note=why
    )
    memory = held[0]
    try:
        summary = reader.receive(memory)
        if require_digest and not summary.digest_verified:
            raise UnverifiedStream(
                "the source ended the stream without a memory digest, so the received memory "
                "cannot be verified; refusing it (a migcodec source always sends one: check "
                "what is sending to this port)"
            )
    except WireError as exc:
        with contextlib.suppress(WireError):  # the source may be gone; re-raising says why
            send_reply(sock, False, str(exc), reader.replies_checksummed)
        raise
    if _hung_up(sock):
        # over TCP the reply to a peer gone would be sent all the same (its FIN only says
        # it sends no more): a source that closed without waiting for its answer was told
        # nothing, and this side kept a "verified" image the source had counted as failed
        raise TruncatedStream(
            "the source hung up before the destination could confirm the migration: it "
            "never learnt that the memory arrived, so the migration did not complete"
        )
    send_reply(sock, True, "memory verified", reader.replies_checksummed)
    return summary, memory


def _hung_up(sock: socket.socket) -> bool:
    """Whether the peer has closed its side of ``sock`` (or reset it), asked without
    waiting: a migcodec source sends nothing after its stream's last frame until it is
    answered, so anything there but nothing-yet means it is gone."""
    timeout = socket.socket.gettimeout(sock)
    # with a timeout, a socket waits for data before it reads (MSG_DONTWAIT included): a
    # source waiting for its answer was waited for, and its silence taken for a hang-up
    socket.socket.settimeout(sock, 0.0)
    try:
        return not socket.socket.recv(sock, 1, socket.MSG_PEEK)
    except (BlockingIOError, InterruptedError):
        return False  # nothing yet: still waiting for its answer
    except OSError:
        return True  # reset
    finally:
        socket.socket.settimeout(sock, timeout)
