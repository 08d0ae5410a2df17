"""Hand-written fixed-Huffman DEFLATE (RFC 1951 3.2.6) with matches at chosen distances.

An encoder picks its own matches, so no compressor can be asked for "a match exactly 4097
bytes back at byte 6000"; a history check is only tested at its boundary with streams
written token by token.
"""

from __future__ import annotations

from collections.abc import Sequence

# RFC 1951's length and distance tables, shared with the scanner under test: the crafted
# streams are checked by zlib, which would catch a wrong table in either
from migcodec.codecs.deflate_scan import _DIST_BASE, _DIST_EXTRA, _LEN_BASE, _LEN_EXTRA

Token = bytes | tuple[int, int]  # literals, or (length, distance)


class _Bits:
    def __init__(self) -> None:
        self.acc = 0
        self.n = 0
        self.out = bytearray()

    def put(self, value: int, nbits: int) -> None:
        """``nbits`` of ``value``, least significant first (header fields, extra bits)."""
        self.acc |= value << self.n
        self.n += nbits
        while self.n >= 8:
            self.out.append(self.acc & 0xFF)
            self.acc >>= 8
            self.n -= 8

    def code(self, code: int, nbits: int) -> None:
        """A Huffman code, most significant bit first."""
        self.put(int(f"{code:0{nbits}b}"[::-1], 2), nbits)

    def literal(self, symbol: int) -> None:
        if symbol < 144:
            self.code(0x30 + symbol, 8)
        elif symbol < 256:
            self.code(0x190 + symbol - 144, 9)
        elif symbol < 280:
            self.code(symbol - 256, 7)
        else:
            self.code(0xC0 + symbol - 280, 8)

    def done(self) -> bytes:
        if self.n:
            self.out.append(self.acc & 0xFF)
        return bytes(self.out)


def fixed_stream(tokens: Sequence[Token]) -> bytes:
    """One final fixed-Huffman block holding ``tokens``."""
    bits = _Bits()
    bits.put(1, 1)  # BFINAL
    bits.put(1, 2)  # BTYPE 01: fixed Huffman
    for token in tokens:
        if isinstance(token, bytes):
            for byte in token:
                bits.literal(byte)
            continue
        length, distance = token
        i = max(k for k, base in enumerate(_LEN_BASE) if base <= length)
        bits.literal(257 + i)
        bits.put(length - _LEN_BASE[i], _LEN_EXTRA[i])
        j = max(k for k, base in enumerate(_DIST_BASE) if base <= distance)
        bits.code(j, 5)
        bits.put(distance - _DIST_BASE[j], _DIST_EXTRA[j])
    bits.literal(256)
    return bits.done()
