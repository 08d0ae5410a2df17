"""The migration stream: preamble with codec table, checksummed frames, a paranoid reader."""

from migcodec.hashing import DIGEST_NAME, memory_digest
from migcodec.wire.errors import (
    BadPreamble,
    ChecksumMismatch,
    CodecMissing,
    CorruptPayload,
    DigestMismatch,
    FrameTooLarge,
    IncompleteStream,
    MalformedFrame,
    MemoryMismatch,
    PeerTimeout,
    RunOutOfBounds,
    StreamAborted,
    TrailingData,
    TruncatedStream,
    UnknownCodecId,
    UnsupportedVersion,
    UnverifiedStream,
    WireError,
    one_line,
    peer_text,
)
from migcodec.wire.format import VERSION, FrameType
from migcodec.wire.handshake import HandshakeRefused
from migcodec.wire.preamble import Preamble
from migcodec.wire.reader import Frame, FrameReader, StreamSummary
from migcodec.wire.writer import FrameWriter

__all__ = [
    "DIGEST_NAME",
    "VERSION",
    "BadPreamble",
    "ChecksumMismatch",
    "CodecMissing",
    "CorruptPayload",
    "DigestMismatch",
    "Frame",
    "FrameReader",
    "FrameTooLarge",
    "FrameType",
    "FrameWriter",
    "HandshakeRefused",
    "IncompleteStream",
    "MalformedFrame",
    "MemoryMismatch",
    "PeerTimeout",
    "Preamble",
    "RunOutOfBounds",
    "StreamAborted",
    "StreamSummary",
    "TrailingData",
    "TruncatedStream",
    "UnknownCodecId",
    "UnsupportedVersion",
    "UnverifiedStream",
    "WireError",
    "memory_digest",
    "one_line",
    "peer_text",
]
