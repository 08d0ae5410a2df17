"""Hand-written DEFLATE (RFC 1951): fixed-Huffman blocks with matches at chosen distances,
and dynamic-Huffman blocks with chosen code tables.

An encoder picks its own matches, so no compressor can be asked for "a match exactly 4097
bytes back at byte 6000"; a history check is only tested at its boundary with streams
written token by token. Nor does an encoder write code tables that are over-subscribed by
one code or declare more code lengths than the block has codes: a walk's checks of a
dynamic block's tables are only tested at their boundaries with blocks written field by
field.
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

    def done(self) -> bytes:
        if self.n:
            self.out.append(self.acc & 0xFF)
        return bytes(self.out)


Code = dict[int, tuple[int, int]]  # symbol -> (code, length)


def canonical_code(lengths: Sequence[int]) -> Code:
    """The codes RFC 1951 3.2.2 assigns to symbols of these code lengths (0: no code)."""
    counts = [0] * 16
    for n in lengths:
        counts[n] += 1
    counts[0] = 0
    code, next_code = 0, [0] * 16
    for n in range(1, 16):
        code = (code + counts[n - 1]) << 1
        next_code[n] = code
    assigned = {}
    for symbol, n in enumerate(lengths):
        if n:
            assigned[symbol] = (next_code[n], n)
            next_code[n] += 1
    return assigned


def is_prefix_code(lengths: Sequence[int]) -> bool:
    """Whether codes of these lengths fit (Kraft's sum at most 1: not over-subscribed)."""
    return sum(1 << (15 - n) for n in lengths if n) <= 1 << 15


FIXED_LIT = canonical_code([8] * 144 + [9] * 112 + [7] * 24 + [8] * 8)
FIXED_DIST = canonical_code([5] * 30)


def _tokens(bits: _Bits, tokens: Sequence[Token], lit: Code, dist: Code) -> None:
    """``tokens`` in the codes ``lit`` and ``dist``; those a code lacks a symbol for are
    left out."""
    for token in tokens:
        if isinstance(token, bytes):
            for byte in token:
                if byte in lit:
                    bits.code(*lit[byte])
            continue
        length, distance = token
        i = max(k for k, base in enumerate(_LEN_BASE) if base <= length)
        j = max(k for k, base in enumerate(_DIST_BASE) if base <= distance)
        if 257 + i not in lit or j not in dist:
            continue
        bits.code(*lit[257 + i])
        bits.put(length - _LEN_BASE[i], _LEN_EXTRA[i])
        bits.code(*dist[j])
        bits.put(distance - _DIST_BASE[j], _DIST_EXTRA[j])
    if 256 in lit:
        bits.code(*lit[256])


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
    _tokens(bits, tokens, FIXED_LIT, FIXED_DIST)
    return bits.done()


#: how many times the code length symbols 16, 17 and 18 repeat: (extra bits, least)
_REPEATS = {16: (2, 3), 17: (3, 3), 18: (7, 11)}


def dynamic_stream(
    n_lit: int, n_dist: int, length_codes: Sequence[tuple[int, int]], tokens: Sequence[Token]
) -> bytes:
    """One final dynamic-Huffman block written field by field, checked for nothing: HLIT and
    HDIST declare ``n_lit`` and ``n_dist`` codes (any number their 5 bits hold), the code
    length code gives each of its 19 symbols 5 bits (symbol ``s``: code ``s``), and
    ``length_codes`` are its symbols as written, each with the value of its repeat bits
    (ignored for 0..15), whatever lengths they add up to. ``tokens`` follow in the codes
    those lengths make, when they make codes (:func:`is_prefix_code`), with the end of
    block when it has a code."""
    bits = _Bits()
    bits.put(1, 1)  # BFINAL
    bits.put(2, 2)  # BTYPE 10: dynamic Huffman
    bits.put(n_lit - 257, 5)
    bits.put(n_dist - 1, 5)
    bits.put(19 - 4, 4)  # HCLEN: all 19 code length codes
    for _ in range(19):
        bits.put(5, 3)
    lengths: list[int] = []
    for symbol, repeat in length_codes:
        bits.code(symbol, 5)
        if symbol < 16:
            lengths.append(symbol)
            continue
        extra, least = _REPEATS[symbol]
        bits.put(repeat, extra)
        value = lengths[-1] if symbol == 16 and lengths else 0
        lengths.extend([value] * (least + repeat))
    lit, dist = lengths[:n_lit], lengths[n_lit : n_lit + n_dist]
    if is_prefix_code(lit) and is_prefix_code(dist):
        _tokens(bits, tokens, canonical_code(lit), canonical_code(dist))
    return bits.done()
