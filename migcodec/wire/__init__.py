"""The migration stream: preamble with codec table, checksummed frames, a paranoid reader."""

from migcodec.wire.digest import DIGEST_NAME, memory_digest
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
    RunOutOfBounds,
    StreamAborted,
    TruncatedStream,
    UnknownCodecId,
    UnsupportedVersion,
    WireError,
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
    "Preamble",
    "RunOutOfBounds",
    "StreamAborted",
    "StreamSummary",
    "TruncatedStream",
    "UnknownCodecId",
    "UnsupportedVersion",
    "WireError",
    "memory_digest",
]
