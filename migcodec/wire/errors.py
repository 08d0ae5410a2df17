"""Wire failures. Every one names the frame index and byte offset where it was found.

Text a peer chose (an abort reason, a refusal, a codec name from its table) enters a message
only through :func:`peer_text`: quoted and escaped, so a hostile sender cannot print a line
that reads like this side's own output, nor send terminal control sequences.
"""

from __future__ import annotations


def peer_text(text: str) -> str:
    """``text`` from a peer or a file as it is shown: quoted and escaped the way ``repr``
    writes a string (newlines as ``\\n``, control and escape characters as ``\\x..``),
    so it stays on one line and reads as quoted data."""
    return repr(text)


def one_line(message: str) -> str:
    """``message`` with every character that is not printable escaped (as :func:`repr`
    escapes it): a last guard for messages that embed text from elsewhere."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


class WireError(Exception):
    """A migration stream that cannot be trusted from this point on."""

    def __init__(self, message: str, frame: int | None = None, offset: int | None = None):
        where = []
        if frame is not None:
            where.append("preamble" if frame < 0 else f"frame {frame}")
        if offset is not None:
            where.append(f"byte offset {offset}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.frame = frame
        self.offset = offset
        self.detail = message


class TruncatedStream(WireError):
    """The stream ended inside a preamble or frame."""


class PeerTimeout(TruncatedStream):
    """The stream stops here: the peer did not connect, send, take data or finish within
    this side's limits (idle timeout, deadline)."""


class IncompleteStream(WireError):
    """The stream ended cleanly between frames but before its end-of-stream frame."""


class BadPreamble(WireError):
    """Not a migcodec stream, or a preamble with impossible values."""


class UnsupportedVersion(BadPreamble):
    """A stream version this reader does not speak."""


class CodecMissing(WireError):
    """The stream uses a codec this side cannot decode; the message names what to install."""


class ChecksumMismatch(WireError):
    """A preamble or frame whose checksum does not match: corrupt, lost or reordered data."""


class FrameTooLarge(WireError):
    """A length field over the negotiated bound, refused before any allocation."""


class MalformedFrame(WireError):
    """A frame whose fields contradict each other or the negotiated stream."""


class UnknownCodecId(MalformedFrame):
    """A data frame naming a codec id absent from the preamble's table."""


class RunOutOfBounds(MalformedFrame):
    """A run naming pages outside guest memory, empty, or overlapping another."""


class CorruptPayload(WireError):
    """A frame whose checksum matched but whose payload does not decode to its pages."""


class StreamAborted(WireError):
    """The peer aborted the migration and said why (``reason``, as sent; the message shows
    it quoted and escaped)."""

    def __init__(self, reason: str, frame: int | None = None, offset: int | None = None):
        super().__init__(f"peer aborted: {peer_text(reason)}", frame, offset)
        self.reason = reason


class TrailingData(WireError):
    """Bytes follow the end-of-stream frame: the stream is not one a writer wrote."""


class UnverifiedStream(WireError):
    """The stream carried no memory digest, so what arrived cannot be checked."""


class MemoryMismatch(WireError):
    """Destination memory is not the size the stream's preamble announces."""


class DigestMismatch(WireError):
    """The end-of-stream totals or memory digest differ from what was received."""
