"""Write small streams in QEMU's migration format, to test the reader on exact contents.

The layout follows QEMU 7.2's ``savevm`` stream (see ``migcodec.datasets.qemu_stream``):
file header, configuration section, a RAM START section with the block list, RAM PART
and END sections of page records, each RAM section ending with EOS and a footer, then
device state (here a FULL section's first bytes and junk: the reader stops before it).
XBZRLE pages are encoded with migcodec's encoder against the page as last sent.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from migcodec.codecs.plugins.xbzrle import xbzrle_encode
from migcodec.datasets import qemu_stream as q

PAGE = 4096
RAM_ID = 2  # QEMU numbers sections from 0; RAM is the third registered on x86


def name(text: str) -> bytes:
    raw = text.encode()
    return bytes([len(raw)]) + raw


@dataclass
class Forge:
    """Builds a stream section by section; ``sent`` mirrors what the destination holds."""

    blocks: list[tuple[str, int]] = field(default_factory=lambda: [("pc.ram", 16 * PAGE)])
    machine: str = "pc-i440fx-7.2"
    out: bytearray = field(default_factory=bytearray)
    sent: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    last_block: str | None = None
    footers: bool = True

    def header(self, config: bool = True, subsections: bytes = b"") -> Forge:
        self.out += struct.pack(">II", q.MAGIC, q.FILE_VERSION)
        if config:
            self.out += bytes([q.CONFIGURATION]) + struct.pack(">I", len(self.machine))
            self.out += self.machine.encode() + subsections
        return self

    def start(self) -> Forge:
        self.out += bytes([q.SECTION_START]) + struct.pack(">I", RAM_ID) + name("ram")
        self.out += struct.pack(">II", 0, q.RAM_VERSION)
        total = sum(length for _, length in self.blocks)
        self.out += struct.pack(">Q", total | q.FLAG_MEM_SIZE)
        for block, length in self.blocks:
            self.out += name(block) + struct.pack(">Q", length)
        return self.eos()

    def section(self, kind: int = q.SECTION_PART) -> Forge:
        self.out += bytes([kind]) + struct.pack(">I", RAM_ID)
        return self

    def eos(self) -> Forge:
        self.out += struct.pack(">Q", q.FLAG_EOS)
        if self.footers:
            self.out += bytes([q.SECTION_FOOTER]) + struct.pack(">I", RAM_ID)
        return self

    def _head(self, block: str, page: int, flag: int) -> None:
        flags = flag | (q.FLAG_CONTINUE if block == self.last_block else 0)
        self.out += struct.pack(">Q", page * PAGE | flags)
        if not flags & q.FLAG_CONTINUE:
            self.out += name(block)
        self.last_block = block

    def zero(self, page: int, block: str = "pc.ram", fill: int = 0) -> Forge:
        self._head(block, page, q.FLAG_ZERO)
        self.out.append(fill)
        self.sent[block, page] = np.full(PAGE, fill, dtype=np.uint8)
        return self

    def page(self, page: int, content: np.ndarray, block: str = "pc.ram") -> Forge:
        self._head(block, page, q.FLAG_PAGE)
        self.out += content.tobytes()
        self.sent[block, page] = content.copy()
        return self

    def xbzrle(self, page: int, content: np.ndarray, block: str = "pc.ram") -> Forge:
        old = self.sent.get((block, page), np.zeros(PAGE, dtype=np.uint8))
        results, _, data = xbzrle_encode(old[None, :], content[None, :])
        assert results[0] > 0, "the forge sends XBZRLE only for a change that fits"
        self._head(block, page, q.FLAG_XBZRLE)
        self.out += bytes([q.ENCODING_FLAG_XBZRLE]) + struct.pack(">H", data.size) + data.tobytes()
        self.sent[block, page] = content.copy()
        return self

    def device_state(self) -> bytes:
        """The stream so far, then the start of a device section and bytes the reader
        must never look at."""
        return bytes(self.out) + bytes([q.SECTION_FULL]) + b"\xff" * 32


def text_page(seed: int, generation: int = 0) -> np.ndarray:
    """A page of text whose generations differ in a few bytes (XBZRLE's case)."""
    line = f"page {seed:05d} generation {generation:04d} ".encode()
    raw = (line * (PAGE // len(line) + 1))[:PAGE]
    return np.frombuffer(raw, dtype=np.uint8).copy()


def sample_stream() -> tuple[bytes, list[list[tuple[int, str]]]]:
    """A stream of three iterations and a stop-and-copy stage over 16 pages, and per window
    the (page, kind) records it holds in order."""
    f = Forge().header().start()
    f.section()  # bulk pass: every page, zero or whole
    bulk = [(p, "page" if p % 3 == 0 else "zero") for p in range(16)]
    for p, kind in bulk:
        f.page(p, text_page(p)) if kind == "page" else f.zero(p)
    f.eos()
    f.section()  # second pass: two XBZRLE pages, one new whole page, one freed
    second = [(0, "xbzrle"), (4, "page"), (6, "xbzrle"), (9, "zero")]
    f.xbzrle(0, text_page(0, 1)).page(4, text_page(4, 1)).xbzrle(6, text_page(6, 1))
    f.zero(9)
    f.eos().section()  # third pass, split over two sections
    third = [(3, "xbzrle"), (6, "xbzrle")]
    f.xbzrle(3, text_page(3, 2)).eos().section().xbzrle(6, text_page(6, 2)).eos()
    f.section(q.SECTION_END)  # stop and copy
    last = [(0, "xbzrle"), (15, "page")]
    f.xbzrle(0, text_page(0, 3)).page(15, text_page(15, 3)).eos()
    return f.device_state(), [bulk, second, third, last]
