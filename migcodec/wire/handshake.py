"""The destination's answer to a preamble, for two-way channels (a socket).

The source sends its preamble and waits; the destination resolves every codec and answers
accept, or refuse with the reason (which names the package to install). A destination that
lacks a codec therefore stops the migration before any page moves, not mid-stream.
"""

from __future__ import annotations

import struct

from migcodec.wire.errors import PeerTimeout, TruncatedStream, WireError, peer_text
from migcodec.wire.format import MAX_ABORT_REASON, encode_reason
from migcodec.wire.io import Sink, Source

REPLY = struct.Struct("<4sBH")
REPLY_MAGIC = b"MCRP"
ACCEPT, REFUSE = 0, 1


class HandshakeRefused(WireError):
    """The destination refused the stream; the reason says what it lacks."""


def send_reply(target: object, accepted: bool, reason: str = "") -> None:
    """Answer the source: accept, or refuse with ``reason``. A source that hung up is a
    :class:`TruncatedStream` and one that takes nothing a :class:`PeerTimeout`, as when a
    read fails: a raw ``BrokenPipeError`` would reach the command line, which takes it for
    a closed standard output and exits without a word."""
    text = encode_reason(reason)
    sink = Sink(target)
    what = "refusal" if not accepted else f"verdict {reason!r}" if reason else "acceptance"
    try:
        sink.write_parts([REPLY.pack(REPLY_MAGIC, ACCEPT if accepted else REFUSE, len(text)), text])
        sink.flush()
    except TimeoutError as exc:
        raise PeerTimeout(f"the source did not take this side's {what}: {exc}") from exc
    except OSError as exc:
        raise TruncatedStream(
            f"connection failed before this side's {what} reached the source "
            f"({type(exc).__name__}: {exc})"
        ) from exc


def read_reply(source: object, answering: str = "the preamble") -> None:
    """Return when the destination accepted; raise :class:`HandshakeRefused` otherwise
    (its reason quoted and escaped: it is the peer's text), :class:`PeerTimeout` when the
    destination did not answer in time, :class:`TruncatedStream` when it hung up.
    ``answering`` names what the reply answers (the preamble, the end of the stream) in
    the message of a reply that is not one."""
    src = Source(source)
    head = bytearray(REPLY.size)
    _fill(src, head, "before answering")
    magic, status, length = REPLY.unpack(head)
    if magic != REPLY_MAGIC or status not in (ACCEPT, REFUSE) or length > MAX_ABORT_REASON:
        raise WireError(f"destination answered {answering} with garbage ({bytes(head)!r})")
    reason = bytearray(length)
    _fill(src, reason, "mid-answer")
    if status == REFUSE:
        text = peer_text(reason.decode(errors="replace"))
        raise HandshakeRefused(f"destination refused the stream: {text}")


def _fill(src: Source, buf: bytearray, when: str) -> None:
    try:
        got = src.fill(memoryview(buf))
    except TimeoutError as exc:
        raise PeerTimeout(f"destination did not answer: {exc}") from exc
    except OSError as exc:
        raise TruncatedStream(f"connection failed {when} ({type(exc).__name__}: {exc})") from exc
    if got < len(buf):
        raise TruncatedStream(f"destination closed the connection {when}")
