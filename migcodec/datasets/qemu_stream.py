"""QEMU's own migration stream, read as pages and imported as a trace.

A stream saved with ``migrate "exec:cat > FILE"`` (QEMU's ``savevm`` format, file version
3, as QEMU 7.2 writes it) is::

    "QEVM" be32(3)
    [0x07 configuration: be32 length, machine type, subsections 0x05 ...]
    0x01 START  section id, name "ram", instance id, version 4: the RAM block list
    0x02 PART   section id: pages of one pre-copy step      } each RAM section's contents
    ...                                                     } end with the flag EOS, and
    0x03 END    section id: the pages sent with the VM stopped  } a footer 0x7e + section id
    0x04 FULL   device state ...  0x00 EOF

Inside the RAM sections every record starts with ``be64(offset | flags)`` (the offset of a
page in its RAM block, the flags in the bits below the page size) and, unless the flag
CONTINUE says "the same block as the previous page", the block's name (a length byte and
the name). Then ZERO: one fill byte; PAGE: the page; XBZRLE: a byte 1, ``be16`` length and
that many bytes of XBZRLE encoding against what the destination holds; MEM_SIZE (only in
the START section): the total RAM size and the block list (name, ``be64`` length); EOS:
nothing, the section's contents end.

:class:`QemuStream` parses this lazily into :class:`PageRecord` objects and stops at the
first device-state section after the RAM END section: device state has no length
prefixes, and nothing in it is needed. Everything it reads is checked; anything it
cannot read is a :class:`QemuStreamError` naming the byte offset: a stream that is not
QEMU's, a file version or a feature this reader does not handle (compressed pages,
RDMA, block migration, ...), or a truncated or damaged stream; a gzip or xz file is read
to its end once before any of it is used, so that one failing its own integrity check is
refused whole (:func:`check_container`). Allocations are bounded
by what the stream holds or announced: names are at most 255 bytes, a page is the page
size, an XBZRLE encoding at most a page, and the destination memory kept for imports
holds only pages the stream sent (never-sent and zero pages take no memory).

:func:`qemu_windows` turns the page records into windows, one per pre-copy iteration:
the pages sent in it, their contents after it, and ``previous``, what the destination
held for them before (zero for a page never sent). Every XBZRLE page is decoded with
migcodec's own ``xbzrle`` decoder against that previous content, and re-encoded with
migcodec's encoder, which must give QEMU's bytes back exactly (QEMU encodes against its
cache, which holds what it last sent). The stream does not mark where one iteration (one
dirty-bitmap sync) ends, so windows are cut either

* at QEMU's own syncs, when ``sync_points`` are given: for each sync, the number of RAM
  sections of kind PART or END written before it (``corpus/qemu_stream.py`` takes them
  from QEMU's trace log; between two syncs QEMU sends each page at most once), or
* by default at each pass of QEMU's scan over RAM: QEMU sends dirty pages in ascending
  block and offset order, wrapping around at the end of RAM, so a page that does not come
  after the previous one starts a new pass. A pass and an iteration differ only in where
  the cut falls (QEMU syncs when few dirty pages are left, wherever its scan then is).
  QEMU syncs between sections and sends a page once between syncs, so its scan wraps at
  most once in a section: a section that wraps twice is refused as damaged.

Either way the pages sent with the VM stopped (the END section) are a window of their
own, whole even where the scan wraps inside it, phase ``stop-copy``; the first window is
phase ``bulk`` and the others ``precopy``.
"""

from __future__ import annotations

import functools
import gzip
import io
import itertools
import lzma
import math
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from migcodec.codecs.errors import DecodeError
from migcodec.codecs.plugins.xbzrle import xbzrle_decode, xbzrle_encode
from migcodec.datasets.trace.format import TraceError
from migcodec.datasets.window import Window
from migcodec.files import check_regular_file, parse_json, read_small_file
from migcodec.hashing import unseal

MAGIC = 0x5145564D  # "QEVM"
FILE_VERSION = 3
RAM_VERSION = 4
PAGE_SIZE = 4096  # x86's target page, unless the configuration says otherwise

# section types (migration/savevm.c)
EOF_ = 0x00
SECTION_START = 0x01
SECTION_PART = 0x02
SECTION_END = 0x03
SECTION_FULL = 0x04
SUBSECTION = 0x05
CONFIGURATION = 0x07
COMMAND = 0x08
SECTION_FOOTER = 0x7E

# RAM record flags (migration/ram.c)
FLAG_FULL = 0x01
FLAG_ZERO = 0x02
FLAG_MEM_SIZE = 0x04
FLAG_PAGE = 0x08
FLAG_EOS = 0x10
FLAG_CONTINUE = 0x20
FLAG_XBZRLE = 0x40
FLAG_HOOK = 0x80
FLAG_COMPRESS_PAGE = 0x100
FLAG_MULTIFD_FLUSH = 0x200
ENCODING_FLAG_XBZRLE = 0x01

UNSUPPORTED_FLAGS = {
    FLAG_FULL: "the obsolete FULL flag",
    FLAG_HOOK: "an RDMA hook (RDMA migration)",
    FLAG_COMPRESS_PAGE: "a compressed page (the compress capability)",
    FLAG_MULTIFD_FLUSH: "a multifd flush (the multifd capability)",
}

STAGES = {SECTION_START: "setup", SECTION_PART: "iterate", SECTION_END: "complete"}
MAX_MACHINE_NAME = 256  # the configuration's machine type (QEMU's are a few dozen bytes)
#: capabilities the configuration section may list (QEMU has a few dozen): each name costs
#: a byte of the stream, but of the decompressed stream, and a gzip file of 130 KB that
#: listed 4 billion empty names kept a reader appending them for a minute and a gigabyte
MAX_CAPABILITIES = 1024
#: command sections a stream may hold (QEMU sends a few per migration): each is 5 bytes of
#: the decompressed stream, and a gzip file of 24 KB of empty ones held a reader 30 s
MAX_COMMANDS = 4096
#: RAM blocks the block list may announce (QEMU has a few, and one per memory device): a
#: trace's manifest keeps each block's name, and a stream of 5 KB that announced 70,000
#: of 250-byte names was imported into a trace whose manifest no reader would open
MAX_RAM_BLOCKS = 4096


class QemuStreamError(TraceError):
    """A QEMU migration stream that cannot be read; ``offset`` is the byte of the
    (decompressed) stream where the problem is (``None`` where a compressed file's own
    check found it, which names no byte), and the message says what to do."""

    def __init__(self, message: str, offset: int | None) -> None:
        # None: found by the compression's own check, which names no byte
        super().__init__(
            message if offset is None else f"{message} (at byte {offset} of the stream)"
        )
        self.offset = offset


class NotQemuStream(QemuStreamError):
    """The file does not start like a QEMU migration stream."""


class QemuStreamUnsupported(QemuStreamError):
    """A QEMU stream of a version or with a feature this reader does not read."""


class QemuStreamTruncated(QemuStreamError):
    """The stream ends before the RAM section's end and the device state after it."""


class QemuStreamCorrupt(QemuStreamError):
    """The stream holds something QEMU's own loader would refuse."""


class QemuStreamTooLarge(TraceError):
    """A window of the stream larger than this machine has the memory to hold (see
    :data:`WINDOW_COPIES`), or more windows than the import was allowed to write."""


class QemuStreamTooManyWindows(QemuStreamTooLarge):
    """More windows than the import was allowed to write (see :data:`DEFAULT_MAX_WINDOWS`)."""


#: windows an import writes unless told otherwise: a stream's windows are its iterations
#: (or scan passes), and QEMU stops iterating once what is left to send fits its downtime,
#: so a migration makes a few, or tens; past many thousands it never converged. Each
#: window costs a trace record (a third of a millisecond, a few hundred bytes) for as
#: little as one 22-byte RAM section of the stream, which compresses ten-thousandfold: an
#: 8 KB gzip file of 150,000 such sections ran for 45 s and wrote 46 MiB
DEFAULT_MAX_WINDOWS = 10_000


#: copies of a window's pages that reading it may hold at once: its pages, what they
#: replaced, and a trace's encoding of them (the pages XORed with what they replaced,
#: and the encoded sections)
WINDOW_COPIES = 4


@dataclass(frozen=True)
class RamBlock:
    """One RAM block of the source, as the START section announced it."""

    name: str
    length: int  # bytes
    first_page: int  # its first page's number in the trace (blocks laid end to end)

    @property
    def pages(self) -> int:
        return -(-self.length // PAGE_SIZE)


@dataclass(frozen=True)
class PageRecord:
    """One page as the stream sent it."""

    offset: int  # where the record's header starts in the stream
    size: int  # bytes of the record in the stream (header, block name, payload)
    section: int  # RAM section: 0 the START section, then PART and END sections from 1
    stage: str  # "setup", "iterate" or "complete" (the END section: VM stopped)
    block: RamBlock
    page: int  # page number in the trace: block.first_page + offset in block / page size
    kind: str  # "zero", "page" or "xbzrle"
    data: bytes  # zero: the fill byte; page: its contents; xbzrle: the encoding


@dataclass
class StreamInfo:
    """What the stream's header, configuration and START section said."""

    version: int = 0
    machine: str | None = None
    page_size: int = PAGE_SIZE
    capabilities: list[str] = field(default_factory=list)
    blocks: list[RamBlock] = field(default_factory=list)
    ram_bytes: int = 0  # total RAM announced
    sections: int = 0  # RAM sections of kind PART and END
    end_offset: int = 0  # where the device state after the RAM END section begins

    @property
    def memory_pages(self) -> int:
        return sum(b.pages for b in self.blocks)


class _Input:
    """Exact reads from a byte stream, counting the offset; a short read is truncation."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self._back = b""  # bytes given back with unread(), read again first
        self.offset = 0

    def unread(self, data: bytes) -> None:
        """Give back the bytes just read: the next read returns them first."""
        self._back = data + self._back
        self.offset -= len(data)

    def read(self, n: int, what: str) -> bytes:
        head, self._back = self._back[:n], self._back[n:]
        try:
            data = head + self._f.read(n - len(head)) if n > len(head) else head
        except (EOFError, OSError, zlib.error, lzma.LZMAError) as exc:  # damaged compression
            raise QemuStreamTruncated(
                f"the compressed stream cannot be read past here while reading {what} "
                f"({exc}); it is truncated or damaged: record it again",
                self.offset,
            ) from None
        if len(data) != n:
            raise QemuStreamTruncated(
                f"the stream ends after {len(data)} of the {n} bytes of {what}; it is "
                "truncated: record it again, or copy the whole file",
                self.offset + len(data),
            )
        self.offset += n
        return data

    def byte(self, what: str) -> int:
        return self.read(1, what)[0]

    def be16(self, what: str) -> int:
        return struct.unpack(">H", self.read(2, what))[0]

    def be32(self, what: str) -> int:
        return struct.unpack(">I", self.read(4, what))[0]

    def be64(self, what: str) -> int:
        return struct.unpack(">Q", self.read(8, what))[0]

    def name(self, what: str) -> str:
        n = self.byte(f"the length of {what}")
        raw = self.read(n, what)
        return raw.decode("latin-1")


def open_stream(path: str | os.PathLike) -> BinaryIO:
    """``path`` opened for reading, decompressed on the fly when it is gzip or xz (offsets
    in errors are then offsets in the decompressed stream). Only a regular file is
    opened: a pipe or a device is refused with a ValueError. A compressed file is first
    read to its end once (:func:`check_container`), so that one failing its own integrity
    check is refused before any of its pages is used."""
    check_regular_file(
        path,
        "the stream",
        'save the stream to a file first (QEMU: migrate "exec:cat > FILE") and give the file',
    )
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic[:2] == b"\x1f\x8b":
        opener = gzip.open
    elif magic == b"\xfd7zXZ\x00":
        opener = lzma.open
    else:
        return open(path, "rb")
    with opener(path, "rb") as f:
        check_container(f)
    return opener(path, "rb")  # type: ignore[return-value]


#: how much of a compressed stream :func:`check_container` decompresses at a time
_CHECK_CHUNK = 1 << 20


def check_container(f: BinaryIO) -> None:
    """Read the decompressed stream ``f`` (gzip or xz) to its end, in chunks. The reader
    stops at the device state after the RAM sections, and gzip's CRC and length, at the
    end of the file, are checked only by a read that reaches them: a flipped bit in a
    page that the compression's own structure let through was imported as a different
    page, with no error. A file whose check fails, or that ends before its
    end-of-stream marker, is a :class:`QemuStreamCorrupt` or
    :class:`QemuStreamTruncated` (whose ``offset`` is ``None``)."""
    try:
        while f.read(_CHECK_CHUNK):
            pass
    except EOFError:
        raise QemuStreamTruncated(
            "the compressed file ends before its end-of-stream marker, so nothing in it "
            "can be trusted; it is truncated: copy the whole file, or record it again",
            None,
        ) from None
    except (OSError, zlib.error, lzma.LZMAError) as exc:
        raise QemuStreamCorrupt(
            f"the compressed file fails its integrity check ({exc}), so nothing in it can "
            "be trusted: copy it again from where it was recorded, or record it again",
            None,
        ) from None


class QemuStream:
    """The RAM pages of a QEMU migration stream, parsed lazily.

    ``QemuStream(path_or_file)``; iterate :meth:`records` once. ``info`` fills in as the
    stream is read: the header and configuration first, the block list with the START
    section, the section count and ``end_offset`` when the RAM END section is done.
    """

    def __init__(self, source: str | os.PathLike | BinaryIO | bytes) -> None:
        if isinstance(source, bytes | bytearray):
            self._own = True
            f: BinaryIO = io.BytesIO(bytes(source))
        elif isinstance(source, str | os.PathLike):
            self._own = True
            f = open_stream(source)
        else:
            self._own = False
            f = source
        self._file = f
        self._in = _Input(f)
        self.info = StreamInfo()
        self._blocks: dict[str, RamBlock] = {}
        self._ram_section_id: int | None = None
        #: the block of the previous page record, which CONTINUE refers to (across sections)
        self._last_block: RamBlock | None = None
        self._started = False
        self._commands = 0  # command sections read (see MAX_COMMANDS)
        # the RAM START section's first page record, if any, and its others, read as
        # records() asks for them (see start)
        self._setup_first: PageRecord | None = None
        self._setup: Iterator[PageRecord] = iter(())

    def close(self) -> None:
        if self._own:
            self._file.close()

    def __enter__(self) -> QemuStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the stream ------------------------------------------------------------------
    def start(self) -> StreamInfo:
        """Read the header, the configuration and the RAM START section (the block list),
        once; returns ``info``. :meth:`records` calls it first."""
        if self._started:
            return self.info
        self._started = True
        inp = self._in
        self._header()
        while True:
            at = inp.offset
            kind = inp.byte("the type of the next section")
            if kind == COMMAND:
                self._command()
                continue
            if kind != SECTION_START:
                raise QemuStreamCorrupt(
                    f"byte 0x{kind:02x} where the RAM START section (0x01) belongs", at
                )
            self._section_header(at, start=True)
            # QEMU's START section holds only the block list, which comes first: read up to
            # the first page record after it, if any, and leave the rest to records(). Kept
            # whole here, a decompressed stream of 9-byte zero records in that section held
            # a reader 200 bytes a record before the first window
            self._setup = self._ram(SECTION_START, 0)
            self._setup_first = next(self._setup, None)
            if not self.info.blocks:
                raise QemuStreamCorrupt("a RAM START section without the RAM block list", at)
            return self.info

    def records(self) -> Iterator[PageRecord]:
        """Every page record of the RAM sections, in stream order; returns when the RAM
        END section and its footer are read and the next section begins. Iterate once."""
        self.start()
        inp = self._in
        if self._setup_first is not None:
            first, self._setup_first = self._setup_first, None
            yield first
            yield from self._setup
        section = 0
        while True:
            at = inp.offset
            kind = inp.byte("the type of the next section")
            if kind in (SECTION_PART, SECTION_END):
                self._section_header(at, start=False)
                section += 1
                self.info.sections = section
                yield from self._ram(kind, section)
                if kind == SECTION_END:
                    self.info.end_offset = inp.offset
                    nxt = inp.byte("the section after the RAM END section")
                    if nxt not in (SECTION_FULL, EOF_, COMMAND):
                        raise QemuStreamCorrupt(
                            f"byte 0x{nxt:02x} after the RAM END section, where device state "
                            "(0x04) or the end of the stream (0x00) belongs",
                            inp.offset - 1,
                        )
                    return
            elif kind == COMMAND:
                self._command()
            elif kind == SECTION_START:
                self._unsupported_section(at)
            elif kind in (SECTION_FULL, EOF_):
                raise QemuStreamCorrupt(
                    "device state or the end of the stream before the RAM END section: this "
                    "is not a completed pre-copy migration (a snapshot or a cancelled "
                    "migration?); record a migration that completed",
                    at,
                )
            else:
                raise QemuStreamCorrupt(
                    f"byte 0x{kind:02x} where a section starts (0x02-0x04, 0x08)", at
                )

    def _header(self) -> None:
        inp = self._in
        magic = inp.be32("the file magic")
        if magic != MAGIC:
            raise NotQemuStream(
                f"the file starts with {struct.pack('>I', magic)!r}, not QEMU's b'QEVM': it "
                'is not a QEMU migration stream (save one with migrate "exec:cat > FILE")',
                0,
            )
        version = inp.be32("the file version")
        if version != FILE_VERSION:
            raise QemuStreamUnsupported(
                f"QEMU stream file version {version}; this reader reads version "
                f"{FILE_VERSION} (QEMU 2.x and later)",
                4,
            )
        self.info.version = version
        first = inp.read(1, "the first section")
        if first[0] == CONFIGURATION:
            self._configuration()
        else:
            inp.unread(first)

    def _configuration(self) -> None:
        inp = self._in
        at = inp.offset
        n = inp.be32("the length of the machine type")
        if n > MAX_MACHINE_NAME:
            raise QemuStreamCorrupt(
                f"a machine type of {n} bytes in the configuration section (at most "
                f"{MAX_MACHINE_NAME})",
                at,
            )
        self.info.machine = inp.read(n, "the machine type").decode("latin-1")
        while True:
            at = inp.offset
            kind = inp.byte("the section after the configuration")
            if kind != SUBSECTION:
                inp.unread(bytes([kind]))
                return
            name = inp.name("a configuration subsection's name")
            inp.be32(f"the version of {name}")
            if name == "configuration/target-page-bits":
                bits = inp.be32("the target page bits")
                if bits != 12:
                    raise QemuStreamUnsupported(
                        f"target pages of 2^{bits} bytes; this reader reads 4 KiB pages (x86)",
                        inp.offset - 4,
                    )
            elif name == "configuration/capabilities":
                count = inp.be32("the number of capabilities")
                if count > MAX_CAPABILITIES:
                    raise QemuStreamCorrupt(
                        f"{count} capabilities in the configuration section (at most "
                        f"{MAX_CAPABILITIES})",
                        inp.offset - 4,
                    )
                for _ in range(count):
                    self.info.capabilities.append(inp.name("a capability's name"))
            elif name == "configuration/uuid":
                inp.read(16, "the VM's UUID")
            else:
                raise QemuStreamUnsupported(
                    f"configuration subsection {name!r}, which this reader does not know "
                    "(a newer QEMU?)",
                    at,
                )

    def _section_header(self, at: int, *, start: bool) -> None:
        inp = self._in
        section_id = inp.be32("the section id")
        if start:
            name = inp.name("the section name")
            inp.be32("the instance id")
            version = inp.be32("the section version")
            if name != "ram":
                raise QemuStreamUnsupported(
                    f"an iterative section {name!r} besides RAM (block migration or dirty "
                    "bitmaps); record the stream with RAM as the only iterative state",
                    at,
                )
            if version != RAM_VERSION:
                raise QemuStreamUnsupported(
                    f"RAM section version {version}; QEMU's loader and this reader read "
                    f"version {RAM_VERSION}",
                    at,
                )
            self._ram_section_id = section_id
        elif section_id != self._ram_section_id:
            raise QemuStreamUnsupported(
                f"a section with id {section_id}, not the RAM section's "
                f"{self._ram_section_id} (other iterative state, e.g. block migration)",
                at,
            )

    def _footer(self) -> None:
        """The section footer, when the stream has them (QEMU 2.5 and later machines):
        0x7e and the section id again. A byte that is not 0x7e is left for the caller."""
        inp = self._in
        at = inp.offset
        kind = inp.byte("the section footer or the next section")
        if kind != SECTION_FOOTER:
            inp.unread(bytes([kind]))
            return
        section_id = inp.be32("the section footer's id")
        if section_id != self._ram_section_id:
            raise QemuStreamCorrupt(
                f"a section footer for section {section_id} after the RAM section "
                f"(id {self._ram_section_id})",
                at,
            )

    def _command(self) -> None:
        inp = self._in
        at = inp.offset - 1
        self._commands += 1
        if self._commands > MAX_COMMANDS:
            raise QemuStreamCorrupt(
                f"more than {MAX_COMMANDS} commands in the stream (QEMU sends a few)", at
            )
        inp.be16("the command")
        n = inp.be16("the command's length")
        inp.read(n, "the command's data")

    def _ram(self, kind: int, section: int) -> Iterator[PageRecord]:
        """One RAM section's records up to EOS, then its footer."""
        inp = self._in
        page_size = self.info.page_size
        stage = STAGES[kind]
        while True:
            at = inp.offset
            word = inp.be64("a RAM record header")
            flags = word & (page_size - 1)
            addr = word & ~(page_size - 1)
            what = flags & ~FLAG_CONTINUE
            if what == FLAG_EOS:
                break
            if what == FLAG_MEM_SIZE:
                if kind != SECTION_START or self.info.blocks:
                    raise QemuStreamCorrupt(
                        "a RAM block list outside the RAM START section, or a second one", at
                    )
                self._block_list(addr, at)
                continue
            for bit, text in UNSUPPORTED_FLAGS.items():
                if flags & bit:
                    raise QemuStreamUnsupported(
                        f"{text}, which this reader does not read; record the stream with "
                        "the xbzrle capability at most",
                        at,
                    )
            if what not in (FLAG_ZERO, FLAG_PAGE, FLAG_XBZRLE):
                raise QemuStreamCorrupt(
                    f"RAM record flags 0x{flags:x}: not one of ZERO, PAGE, XBZRLE, EOS or "
                    "MEM_SIZE (with CONTINUE)",
                    at,
                )
            if flags & FLAG_CONTINUE:
                last = self._last_block
                if last is None:
                    raise QemuStreamCorrupt(
                        "a page that continues the previous block, with no previous block", at
                    )
                block = last
            else:
                name = inp.name("a RAM block name")
                found = self._blocks.get(name)
                if found is None:
                    raise QemuStreamCorrupt(
                        f"a page of RAM block {name!r}, which the block list did not announce",
                        at,
                    )
                block = self._last_block = found
            if addr >= block.length:
                raise QemuStreamCorrupt(
                    f"a page at offset 0x{addr:x} of RAM block {block.name!r}, which is only "
                    f"0x{block.length:x} bytes",
                    at,
                )
            if what == FLAG_ZERO:
                data = inp.read(1, "a zero page's fill byte")
                rkind = "zero"
            elif what == FLAG_PAGE:
                data = inp.read(page_size, "a page")
                rkind = "page"
            else:
                if inp.byte("the XBZRLE encoding flag") != ENCODING_FLAG_XBZRLE:
                    raise QemuStreamCorrupt(
                        "an XBZRLE page whose encoding flag is not 1 (QEMU refuses it)",
                        inp.offset - 1,
                    )
                n = inp.be16("the XBZRLE encoding's length")
                if n > page_size:
                    raise QemuStreamCorrupt(
                        f"an XBZRLE encoding of {n} bytes, longer than a page ({page_size}); "
                        "QEMU refuses it",
                        inp.offset - 2,
                    )
                data = inp.read(n, "an XBZRLE encoding")
                rkind = "xbzrle"
            yield PageRecord(
                offset=at,
                size=inp.offset - at,
                section=section,
                stage=stage,
                block=block,
                page=block.first_page + addr // page_size,
                kind=rkind,
                data=data,
            )
        self._footer()

    def _block_list(self, total: int, at: int) -> None:
        from migcodec.datasets.trace.schema import MAX_MEMORY_PAGES

        inp = self._in
        if total > MAX_MEMORY_PAGES * self.info.page_size:
            raise QemuStreamUnsupported(
                f"{total} bytes of RAM announced, more than the {MAX_MEMORY_PAGES} pages of "
                f"{self.info.page_size} bytes a trace describes",
                at,
            )
        self.info.ram_bytes = total
        left = total
        first = 0
        ignore_shared = "x-ignore-shared" in self.info.capabilities
        while left:
            here = inp.offset
            name = inp.name("a RAM block name")
            length = inp.be64(f"the length of RAM block {name!r}")
            if ignore_shared:
                inp.be64(f"the address of RAM block {name!r}")
            if name in self._blocks:
                raise QemuStreamCorrupt(f"RAM block {name!r} announced twice", here)
            if len(self._blocks) == MAX_RAM_BLOCKS:
                raise QemuStreamCorrupt(
                    f"more than {MAX_RAM_BLOCKS} RAM blocks in the block list (QEMU has a few, "
                    "and one per memory device)",
                    here,
                )
            if length == 0 or length > left:
                raise QemuStreamCorrupt(
                    f"RAM block {name!r} of {length} bytes where the announced total leaves {left}",
                    here,
                )
            block = RamBlock(name, length, first)
            self._blocks[name] = block
            self.info.blocks.append(block)
            first += block.pages
            left -= length
        if not self.info.blocks:
            raise QemuStreamCorrupt("a RAM block list of no blocks (0 bytes of RAM)", at)

    def _unsupported_section(self, at: int) -> None:
        raise QemuStreamUnsupported(
            "a second iterative section (block migration or dirty bitmaps); record the "
            "stream with RAM as the only iterative state",
            at,
        )


# -- windows ---------------------------------------------------------------------------------
@dataclass
class ImportStats:
    """Counts over an import: what QEMU sent, and the XBZRLE interop check."""

    windows: int = 0
    pages: int = 0  # page records (a page sent in two windows counts twice)
    zero: int = 0
    normal: int = 0
    xbzrle: int = 0
    record_bytes: int = 0  # bytes of the page records (headers, names, payloads)
    xbzrle_bytes: int = 0  # bytes of the XBZRLE records' encodings
    #: XBZRLE pages whose re-encoding by migcodec differs from QEMU's bytes (a decode
    #: failure is an error, not a count: the stream is then corrupt)
    xbzrle_mismatches: int = 0
    stream_bytes: int = 0  # up to the device state after the RAM END section
    sections: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class _Open:
    """The window being collected: per page its content before the window (first send)
    and after it (last send)."""

    first_section: int
    stage: str
    before: dict[int, np.ndarray | None] = field(default_factory=dict)
    after: dict[int, np.ndarray | None] = field(default_factory=dict)
    counts: dict[str, int] = field(
        default_factory=lambda: {"zero": 0, "page": 0, "xbzrle": 0, "bytes": 0, "xbzrle_bytes": 0}
    )
    last_page: int = -1
    last_section: int = 0
    #: pages at which the window's room is checked next (see qemu_windows)
    check_at: int = 1 << 16


def qemu_windows(
    stream: QemuStream,
    sync_points: Sequence[int] | None = None,
    stats: ImportStats | None = None,
    max_windows: int = DEFAULT_MAX_WINDOWS,
) -> Iterator[Window]:
    """The windows of ``stream``, one per pre-copy iteration (see the module docstring for
    where the cuts fall, with and without ``sync_points``), with ``previous``; each window's
    ``meta["qemu"]`` says what QEMU sent in it (pages by kind, record bytes, XBZRLE bytes,
    sections). ``stats`` (updated as windows are produced) counts the whole stream. A
    stream of more than ``max_windows`` windows raises :class:`QemuStreamTooManyWindows` as it
    starts the one past them (see :data:`DEFAULT_MAX_WINDOWS`).

    The destination's memory is kept as the pages the stream sent (a zero page or one never
    sent holds zeros, kept as nothing), so memory follows the pages in the stream.
    """
    stats = stats if stats is not None else ImportStats()
    points = _check_points(sync_points)
    page_size = stream.info.page_size
    zero = np.zeros(page_size, dtype=np.uint8)
    held: dict[int, np.ndarray] = {}  # what the destination holds, pages not all zero
    current: _Open | None = None
    index = 0
    section = -1
    cut_here = False
    _check_room = _RoomCheck()
    # the section the scan last wrapped in: a stream of 9-byte records of one page made a
    # window of each, and a 17 KB gzip file ran for minutes
    wrapped_in = -1

    def close(w: _Open) -> Window | None:
        nonlocal index
        if not w.after:
            return None
        if index >= max_windows:
            raise QemuStreamTooManyWindows(
                f"the stream makes more than {max_windows} windows (the window past them "
                f"starts in RAM section {w.first_section}); a QEMU migration makes a few "
                "or tens before it converges, so the stream is damaged or was not written "
                "by QEMU, or its migration never converged: allow more windows if it is "
                "one you want whole"
            )
        _check_room(index, len(w.after), page_size)
        order = np.array(sorted(w.after), dtype=np.int64)
        pages = np.stack([zero if w.after[p] is None else w.after[p] for p in order])
        previous = np.stack([zero if w.before[p] is None else w.before[p] for p in order])
        phase = "stop-copy" if w.stage == "complete" else "bulk" if index == 0 else "precopy"
        meta = dict(w.counts, sections=[w.first_section, w.last_section])
        window = Window(index, order, pages, previous, phase=phase, meta={"qemu": meta})
        index += 1
        stats.windows = index
        return window

    # XBZRLE pages of the open window not decoded yet: pages of one window are independent
    # until one is sent again, so they are decoded (and re-encoded) as one batch
    pending: dict[int, PageRecord] = {}

    def settle() -> None:
        if not pending:
            return
        recs = list(pending.values())
        pending.clear()
        news = _decode_xbzrle(recs, [held.get(r.page) for r in recs], zero, stats)
        assert current is not None  # pending records belong to the open window
        for r, new in zip(recs, news, strict=True):
            if new is None:
                held.pop(r.page, None)
            else:
                held[r.page] = new
            current.after[r.page] = new

    records = stream.records()
    while True:
        try:
            rec = next(records, None)
        except QemuStreamError:
            settle()  # a damaged XBZRLE page before the damage found here comes first
            raise
        if rec is None:
            break
        if rec.section != section:  # a new section: is there a sync before its pages?
            section = rec.section
            ends = rec.stage == "complete"
            cut_here = points is not None and (
                (section - 1) in points or (ends and section in points)
            )
            if points is None and ends:
                cut_here = True  # the stop-and-copy pages are a window of their own
        # a new pass of the scan: a page that does not come after the previous one (the END
        # section stays whole: one sync, the VM stopped, each page sent at most once)
        wrapped = (
            points is None
            and current is not None
            and rec.stage != "complete"
            and rec.page <= current.last_page
        )
        if wrapped:
            if rec.section == wrapped_in:
                raise QemuStreamCorrupt(
                    "a RAM section whose pages go around RAM a second time: QEMU sends each "
                    "dirty page once between two syncs of its dirty bitmap, which fall "
                    "between sections, so its scan wraps at most once in a section; the "
                    "stream is damaged or was not written by QEMU",
                    rec.offset,
                )
            wrapped_in = rec.section
        if current is not None and (cut_here or wrapped):
            settle()
            done = close(current)
            if done is not None:
                yield done
            current = None
        cut_here = False
        if current is None:
            current = _Open(rec.section, rec.stage)
        current.stage = rec.stage
        current.last_section = rec.section
        current.last_page = rec.page
        if rec.page in pending:  # sent again in the same window: decode what came before
            settle()
        old = held.get(rec.page)
        if rec.page not in current.before:
            current.before[rec.page] = old
            if len(current.before) >= current.check_at:
                # checked as it grows, at each doubling: its own bookkeeping (a few hundred
                # bytes a page) grew unchecked until it closed, 300 MB for a 4 MB file
                _check_room(index, len(current.before), page_size)
                current.check_at *= 2
        if rec.kind == "xbzrle" and rec.data:
            pending[rec.page] = rec
        else:
            new = _apply(rec, old, zero)
            if new is None:
                held.pop(rec.page, None)
            else:
                held[rec.page] = new
            current.after[rec.page] = new
        c = current.counts
        c[rec.kind] += 1
        c["bytes"] += rec.size
        stats.pages += 1
        stats.record_bytes += rec.size
        if rec.kind == "zero":
            stats.zero += 1
        elif rec.kind == "page":
            stats.normal += 1
        else:
            stats.xbzrle += 1
            stats.xbzrle_bytes += len(rec.data)
            c["xbzrle_bytes"] += len(rec.data)
    settle()
    if current is not None:
        done = close(current)
        if done is not None:
            yield done
    stats.sections = stream.info.sections
    stats.stream_bytes = stream.info.end_offset
    if points and max(points) > stream.info.sections:
        raise QemuStreamError(
            f"a sync point after {max(points)} RAM sections, but the stream has "
            f"{stream.info.sections}: the sync points belong to another stream",
            stream.info.end_offset,
        )


class _RoomCheck:
    """Refuse window ``index`` of ``pages`` pages where this machine has not the memory to
    hold it as a window: what the stream holds does not bound it (a zero record of 9
    bytes is a page of the window), and without the check a stream of a megabyte whose
    records named a few GiB of pages was read until the kernel's out-of-memory killer
    ended the process.

    The machine's free memory is read again only for a window that needs more than
    :data:`_ROOM_SHARE` of what it had at the last reading: each reading opens four files
    of /proc and the cgroup's, and a stream of windows of a page each spent a third of its
    import reading them."""

    __slots__ = ("_free",)

    def __init__(self) -> None:
        self._free = 0.0  # at the last reading (inf: the system does not say)

    def __call__(self, index: int, pages: int, page_size: int) -> None:
        from migcodec import ram
        from migcodec.units import format_size

        need = WINDOW_COPIES * pages * page_size
        if need <= self._free * _ROOM_SHARE:
            return
        free = ram.available_memory()
        self._free = math.inf if free is None else free
        if free is not None and need > free:
            raise QemuStreamTooLarge(
                f"window {index} of the stream sends {pages} pages "
                f"({format_size(pages * page_size)}), and reading it holds up to "
                f"{WINDOW_COPIES} times that at once ({format_size(need)}: its pages, what "
                f"they replaced and their encoding), but this machine has {format_size(free)} "
                "available; read the stream on a machine with more free memory"
            )


#: the share of the free memory last read that a window may need without a new reading
_ROOM_SHARE = 1 / 16


def _check_points(points: Sequence[int] | None) -> frozenset[int] | None:
    if points is None:
        return None
    values = list(points)
    if not values:
        # QEMU syncs its dirty bitmap as a migration starts and at every pass: none cuts
        # no window, and the whole stream, every page sent several times, became one
        raise ValueError(
            "the sync points are empty, and QEMU syncs its dirty bitmap at least once per "
            "migration; give the counts recorded beside the stream (corpus/qemu_stream.py "
            "writes them), or none (leave out --sync-points) to cut a window per scan pass"
        )
    if any(not isinstance(p, int) or isinstance(p, bool) or p < 0 for p in values) or any(
        b < a for a, b in itertools.pairwise(values)
    ):
        raise ValueError(
            "sync points are non-decreasing counts of RAM sections (whole numbers >= 0), "
            f"not {values[:8]}"
        )
    return frozenset(values)


@functools.lru_cache(maxsize=256)
def _filled(page_size: int, byte: int) -> np.ndarray:
    """A read-only page of ``byte``, one per byte value, shared by every page a zero
    record fills with it (held pages are replaced, never written): a page of its own for
    each held 4 KiB per 9-byte record, and a stream of such records made the import
    hold thousands of times its own size."""
    page = np.full(page_size, byte, dtype=np.uint8)
    page.flags.writeable = False
    return page


def _apply(rec: PageRecord, old: np.ndarray | None, zero: np.ndarray) -> np.ndarray | None:
    """The page's content after a zero or whole-page record, or an empty XBZRLE encoding
    (which QEMU's loader accepts: the page is unchanged); ``None`` means all zero, and
    ``old`` is what the destination held before."""
    if rec.kind == "zero":
        return None if rec.data == b"\0" else _filled(zero.size, rec.data[0])
    if rec.kind == "page":
        new = np.frombuffer(rec.data, dtype=np.uint8)  # read only: held pages are replaced
        return new if new.any() else None
    return old


def _decode_xbzrle(
    recs: list[PageRecord], olds: list[np.ndarray | None], zero: np.ndarray, stats: ImportStats
) -> list[np.ndarray | None]:
    """Decode XBZRLE records of distinct pages against what the destination held
    (``olds``, ``None``: all zero) with migcodec's decoder, as one batch; re-encode the
    results with migcodec's encoder and count in ``stats`` every page whose encoding is
    not QEMU's bytes. A record that does not decode is a :class:`QemuStreamCorrupt` at
    its offset."""
    bases = np.stack([zero if o is None else o for o in olds])
    new = bases.copy()
    lengths = np.array([len(r.data) for r in recs], dtype=np.int64)
    data = np.frombuffer(b"".join(r.data for r in recs), dtype=np.uint8)
    try:
        xbzrle_decode(new, data, lengths)
    except DecodeError:
        for r, base in zip(recs, bases, strict=True):  # which record: decode one by one
            try:
                xbzrle_decode(
                    base.copy()[None, :], np.frombuffer(r.data, np.uint8), np.array([len(r.data)])
                )
            except DecodeError as exc:
                raise QemuStreamCorrupt(
                    f"an XBZRLE page that does not decode against what the destination "
                    f"holds ({exc}): the stream is damaged, or it was not read from its start",
                    r.offset,
                ) from None
        raise QemuStreamCorrupt(  # a batch fails only where one of its pages does
            "XBZRLE pages that do not decode together", recs[0].offset
        ) from None
    results, _, encoded = xbzrle_encode(bases, new)
    at = 0
    for r, result in zip(recs, results.tolist(), strict=True):
        ours = encoded[at : at + result].tobytes() if result > 0 else b""
        at += max(result, 0)
        if result != len(r.data) or ours != r.data:
            stats.xbzrle_mismatches += 1
    return [row.copy() if row.any() else None for row in new]


#: the largest sync points file read: corpus/qemu_stream.py writes a few kilobytes beside a
#: stream (the counts and QEMU's own reports), one count per dirty-bitmap sync
MAX_SYNC_POINTS_BYTES = 16 << 20


def read_sync_points(path: str | os.PathLike) -> list[int]:
    """Sync points from a JSON file: a list of counts (as a person writes them from QEMU's
    trace log), or a sealed object whose ``"sync_points"`` is one (as
    ``corpus/qemu_stream.py`` writes beside a stream, with the rest of the recording).

    The object must carry its seal (:func:`migcodec.hashing.seal`): a recording's counts
    are read from a file of many kilobytes, and a flipped bit that turned a 22 into a 23
    imported another trace (a window of 1538 pages where QEMU sent 1936) with exit status
    0. A list of counts alone is taken as it is: what a person typed is what they meant."""
    fix = "give the JSON file of sync points"
    try:  # a pipe, a device or a larger file is refused (ValueError) before it is read
        data = read_small_file(path, "the sync points file", MAX_SYNC_POINTS_BYTES, fix)
    except OSError as exc:
        raise ValueError(f"cannot read sync points from {path}: {exc}") from None
    try:
        doc = parse_json(data)
    except ValueError as exc:
        raise ValueError(f"cannot read sync points from {path}: {exc}") from None
    if isinstance(doc, dict):
        try:
            doc = unseal(doc)
        except ValueError as exc:
            raise ValueError(
                f"the sync points file {path} is a recording whose seal does not hold ({exc}); "
                "record it again with corpus/qemu_stream.py, or give the counts you trust "
                "as a JSON list"
            ) from None
    points = doc.get("sync_points") if isinstance(doc, dict) else doc
    if not isinstance(points, list):
        raise ValueError(
            f"{path} holds no sync points: a JSON list of counts, or an object with "
            '"sync_points" (as corpus/qemu_stream.py writes)'
        )
    _check_points(points)
    return points


def import_qemu_stream(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    sync_points: Sequence[int] | None = None,
    codec: str = "zstd",
    overwrite: bool = False,
    command: str | None = None,
    max_windows: int = DEFAULT_MAX_WINDOWS,
) -> tuple[ImportStats, StreamInfo]:
    """Write the windows of the QEMU stream at ``source`` (plain or gzip) as a trace at
    ``out``; returns the counts and what the stream announced. A stream that cannot be
    read raises :class:`QemuStreamError`, and one of more than ``max_windows`` windows
    :class:`QemuStreamTooManyWindows`; the trace is then not written, and a trace that
    ``overwrite`` was to replace is left as it was (the writer stages it)."""
    from migcodec.datasets.trace import TraceWriter

    stats = ImportStats()
    with QemuStream(source) as stream:
        info = stream.start()  # the block list sizes the trace
        with TraceWriter(
            out,
            memory_pages=max(info.memory_pages, 1),
            page_size=info.page_size,
            source=f"qemu-stream:{Path(source).name}",
            command=command,
            codec=codec,
            overwrite=overwrite,
            staged=True,
            meta={
                "method": "qemu-stream",
                "method_note": "QEMU's migration stream: one window per pre-copy "
                + (
                    "iteration (QEMU's dirty-bitmap syncs)"
                    if sync_points is not None
                    else "scan pass"
                ),
                "machine": info.machine,
                "blocks": [[b.name, b.length] for b in info.blocks],
                "sync_points": list(sync_points) if sync_points is not None else None,
            },
        ) as writer:
            for window in qemu_windows(stream, sync_points, stats, max_windows):
                writer.write(window)
            writer.meta["qemu"] = stats.as_dict()
    return stats, info


def reconstruct_ram(
    source: str | os.PathLike, max_bytes: int = 4 << 30
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Every RAM block's content at the end of the stream, as the destination would hold
    it (XBZRLE pages decoded by migcodec), with the import's counts. Allocates the RAM the
    stream announced, refused past ``max_bytes``."""
    stats = ImportStats()
    with QemuStream(source) as stream:
        info = stream.start()
        if info.ram_bytes > max_bytes:
            raise QemuStreamError(
                f"the stream announces {info.ram_bytes} bytes of RAM, more than the "
                f"{max_bytes} this reconstruction allocates",
                0,
            )
        flat = np.zeros(info.memory_pages * info.page_size, dtype=np.uint8)
        pages = flat.reshape(-1, info.page_size)
        for window in qemu_windows(stream, None, stats):
            pages[window.page_indices] = window.pages
        ram = {b.name: flat[b.first_page * info.page_size :][: b.length] for b in info.blocks}
    return ram, stats.as_dict()
