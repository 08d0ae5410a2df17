"""The destination's answer to a preamble, for two-way channels (a socket).

The source sends its preamble and waits; the destination resolves every codec and answers
accept, or refuse with the reason (which names the package to install). A destination that
lacks a codec therefore stops the migration before any page moves, not mid-stream. The same
reply carries the destination's verdict on the memory it received.

A source that sets :data:`~migcodec.wire.format.PREAMBLE_REPLY_CHECKSUM` gets a checksum
after every reply, and takes no acceptance whose checksum does not match: one flipped bit of
the status byte would otherwise turn a refusal of damaged memory into its confirmation. A
refusal stays a refusal whatever its checksum says (it fails the migration either way), and
is read without one from a destination too old to know the flag, which refuses it.
"""

from __future__ import annotations

import struct

from migcodec.hashing import checksum
from migcodec.wire.errors import (
    ChecksumMismatch,
    PeerTimeout,
    TruncatedStream,
    WireError,
    peer_text,
)
from migcodec.wire.format import CHECKSUM, MAX_ABORT_REASON, encode_reason
from migcodec.wire.io import Sink, Source

REPLY = struct.Struct("<4sBH")
REPLY_MAGIC = b"MCRP"
ACCEPT, REFUSE = 0, 1


class HandshakeRefused(WireError):
    """The destination refused the stream; the reason says what it lacks."""


def send_reply(target: object, accepted: bool, reason: str = "", checksummed: bool = False) -> None:
    """Answer the source: accept, or refuse with ``reason``; with ``checksummed`` (the
    source's preamble asked for it) followed by the reply's checksum. A source that hung
    up is a :class:`TruncatedStream` and one that takes nothing a :class:`PeerTimeout`, as
    when a read fails: a raw ``BrokenPipeError`` would reach the command line, which takes
    it for a closed standard output and exits without a word."""
    text = encode_reason(reason)
    sink = Sink(target)
    what = "refusal" if not accepted else f"verdict {reason!r}" if reason else "acceptance"
    head = REPLY.pack(REPLY_MAGIC, ACCEPT if accepted else REFUSE, len(text))
    parts = [head, text]
    if checksummed:
        parts.append(CHECKSUM.pack(checksum([head, text])))
    try:
        sink.write_parts(parts)
        sink.flush()
    except TimeoutError as exc:
        raise PeerTimeout(f"the source did not take this side's {what}: {exc}") from exc
    except OSError as exc:
        raise TruncatedStream(
            f"connection failed before this side's {what} reached the source "
            f"({type(exc).__name__}: {exc})"
        ) from exc


def read_reply(source: object, answering: str = "the preamble", checksummed: bool = False) -> None:
    """Return when the destination accepted; raise :class:`HandshakeRefused` otherwise
    (its reason quoted and escaped: it is the peer's text), :class:`PeerTimeout` when the
    destination did not answer in time, :class:`TruncatedStream` when it hung up, and
    with ``checksummed`` :class:`ChecksumMismatch` for an acceptance whose checksum does
    not match. ``answering`` names what the reply answers (the preamble, the end of the
    stream) in the message of a reply that is not one."""
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
    if checksummed:
        trailer = bytearray(CHECKSUM.size)
        _fill(src, trailer, "before the checksum of its answer")
        if CHECKSUM.unpack(trailer)[0] != checksum([head, reason]):
            raise ChecksumMismatch(
                f"destination's acceptance of {answering} does not match its checksum: the "
                "reply was damaged on the way, so nothing it says can be taken as confirmed"
            )


def _fill(src: Source, buf: bytearray, when: str) -> None:
    try:
        got = src.fill(memoryview(buf))
    except TimeoutError as exc:
        raise PeerTimeout(f"destination did not answer: {exc}") from exc
    except OSError as exc:
        raise TruncatedStream(f"connection failed {when} ({type(exc).__name__}: {exc})") from exc
    if got < len(buf):
        raise TruncatedStream(f"destination closed the connection {when}")
