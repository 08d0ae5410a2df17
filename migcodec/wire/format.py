"""Byte layout of a migcodec stream, versions 1 and 2. All integers little-endian.

Preamble::

    magic "MIGCODEC" | u16 version | u16 flags | u32 page_size | u64 memory_pages
    | u16 max_batch_pages | u16 codec_count
    codec_count x ( u8 id | u8 name_len | u16 config_len | name | config JSON
                    [version 2: | u8 package_len | package] )
    u64 checksum (xxh3-64 of everything above)

Version 2 differs only in the ``package`` of each codec entry: the Python distribution that
provides the codec on the source (``migcodec-rle``), empty for migcodec's own codecs, so a
destination without the plugin can name what to install. A writer uses version 2 only when a
codec comes from another package; streams of migcodec's own codecs stay version 1, byte for
byte, so older readers still read them. No version 1 field could carry the name: an older
reader reads exactly the entries' bytes and passes every config key to the codec's
constructor, so an extra field there would be refused, not ignored; an older reader refuses
a version 2 stream at its version field, asking for an upgrade.

Frame::

    "MF" | u8 type | u8 codec_id | u16 flags | u16 run_count | u32 page_count
    | u32 payload_len | u64 checksum
    run_count x ( u64 first_page | u32 n_pages )     (data frames)
    page_count x u8 page mode                        (data frames)
    payload_len bytes

A frame's checksum is xxh3-64, seeded with the frame's index, over its first 16 header bytes
and its body: a lost, repeated or reordered frame fails its check like a corrupted one.

Reply (destination to source, over a two-way channel: to the preamble, and the verdict on
the stream after its end)::

    "MCRP" | u8 status (0 accept, 1 refuse) | u16 reason_len | reason
    [preamble flag 0x1 set: | u64 checksum (xxh3-64 of everything above)]

A source that waits for replies sets preamble flag 0x1 (``PREAMBLE_REPLY_CHECKSUM``); a
reader that does not know a flag refuses the stream, in a reply without the checksum.
"""

from __future__ import annotations

import re
import struct
from enum import IntEnum

MAGIC = b"MIGCODEC"
#: the version of streams whose codecs are all migcodec's own
VERSION = 1
#: the version whose codec entries name the package providing each codec
VERSION_PACKAGES = 2
#: the versions this reader speaks
VERSIONS = (VERSION, VERSION_PACKAGES)

PREAMBLE_FIXED = struct.Struct("<8sHHIQHH")
CODEC_ENTRY = struct.Struct("<BBH")
CHECKSUM = struct.Struct("<Q")
FRAME_HEADER = struct.Struct("<2sBBHHIIQ")
#: the header without its checksum: the 16 bytes the checksum covers
FRAME_HEAD = struct.Struct("<2sBBHHII")
FRAME_MAGIC = b"MF"
RUN = struct.Struct("<QI")
RUN_DTYPE = [("first", "<u8"), ("count", "<u4")]
END_ITERATION = struct.Struct("<QQ")
END_STREAM = struct.Struct("<QQ")

# Bounds a reader enforces before allocating anything.
MIN_PAGE_SIZE = 512
MAX_PAGE_SIZE = 1 << 21
MAX_MEMORY_PAGES = 1 << 40
MAX_BATCH_PAGES = 4096
#: page size x batch pages: the reader's frame buffer. Each bound above is sane alone; their
#: product (8 GiB) is not, so it has its own bound (e.g. 32 pages of 2 MiB, 4096 of 4 KiB)
MAX_BATCH_BYTES = 1 << 26
MAX_CODECS = 255
MAX_CODEC_NAME = 64
MAX_CODEC_CONFIG = 4096
PACKAGE_LENGTH = struct.Struct("<B")
#: a Python distribution name as PEP 508 allows it (letters, digits, ``.``, ``_``, ``-``)
PACKAGE_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")
MAX_ABORT_REASON = 4096  # an abort frame's reason, and a handshake reply's
MAX_DIGEST = 64

FLAG_DIGEST = 0x1  # end-of-stream frame carries a memory digest
#: a preamble flag: the source reads the destination's replies (its answer to the
#: preamble, its verdict on the stream) with a checksum after each, which the destination
#: then sends. Set by a source that waits for replies; streams to files leave it clear
PREAMBLE_REPLY_CHECKSUM = 0x1
#: the preamble flags this reader knows. A stream that sets others means something this
#: reader would miss, and is refused as of a newer version
PREAMBLE_FLAGS = PREAMBLE_REPLY_CHECKSUM


def encode_reason(reason: str) -> bytes:
    """A reason as it goes on the wire: UTF-8, cut to :data:`MAX_ABORT_REASON` bytes."""
    return reason.encode("utf-8", "replace")[:MAX_ABORT_REASON]


class FrameType(IntEnum):
    DATA = 1
    END_ITERATION = 2
    END_STREAM = 3
    ABORT = 4
