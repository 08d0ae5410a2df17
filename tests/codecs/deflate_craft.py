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


#: the code length code of :func:`_empty_dynamic_block`: symbol -> (code, length)
_CLEN_CODES = {18: (0b0, 1), 0: (0b10, 2), 1: (0b11, 2)}
_CLEN_ORDER = (16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15)


def _empty_dynamic_block(bits: _Bits) -> None:
    """A dynamic-Huffman block, not the last, of no symbol but its end: literal 0 and the
    end of block have 1-bit codes, no distance has one (12 bytes, three code tables)."""
    bits.put(0, 1)  # BFINAL
    bits.put(2, 2)  # BTYPE 10: dynamic Huffman
    bits.put(0, 5)  # HLIT: 257 literal/length codes
    bits.put(0, 5)  # HDIST: 1 distance code
    bits.put(18 - 4, 4)  # HCLEN: code length codes up to symbol 1's place
    for symbol in _CLEN_ORDER[:18]:
        bits.put(_CLEN_CODES.get(symbol, (0, 0))[1], 3)
    bits.code(*_CLEN_CODES[1])  # literal 0: 1 bit
    bits.code(*_CLEN_CODES[18])
    bits.put(138 - 11, 7)  # literals 1..138: none
    bits.code(*_CLEN_CODES[18])
    bits.put(117 - 11, 7)  # literals 139..255: none
    bits.code(*_CLEN_CODES[1])  # end of block: 1 bit
    bits.code(*_CLEN_CODES[0])  # the distance: none
    bits.code(1, 1)  # end of block


def fixed_stream(tokens: Sequence[Token], empty_blocks: int = 0) -> bytes:
    """One final fixed-Huffman block holding ``tokens``, after ``empty_blocks`` dynamic
    blocks that hold nothing."""
    bits = _Bits()
    for _ in range(empty_blocks):
        _empty_dynamic_block(bits)
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
