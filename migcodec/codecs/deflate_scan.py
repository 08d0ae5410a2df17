"""Walk the tokens of a raw DEFLATE stream (RFC 1951) without producing its output.

zlib answers "does this stream inflate?", but not "which block types does it use?" nor
"how far back does its furthest match reach?", and zlib's own too-far-back check depends on
how the caller splits the output between ``inflate`` calls. A device with a short history
(IAA keeps 4 KiB) refuses every stream with a longer match, whatever the split, so a
software decoder that stands in for it needs the exact answer: :func:`scan_deflate`.

The walk decodes Huffman codes of up to 9 bits (every fixed-Huffman code, and most dynamic
ones) with one table lookup, and longer codes bit by bit. Its cost is linear in the stream's
symbols, of which a stream has at most one per output byte plus one per block; an invalid
stream is a :class:`DecodeError`, never an exception of another type.

That walk in Python takes about 0.3 us a symbol: 20 ms for a 64 KiB page. The C extension
(``_deflatescan.c``) walks the same way, checks the same things in the same order and
reports the same problems, which :func:`scan_deflate` words alike; without a C compiler at
install time the extension is absent and :func:`python_scan_deflate` runs.
:data:`DEFLATE_SCAN` says which.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from migcodec.codecs.errors import DecodeError
from migcodec.extensions import optional_extension

_deflatescan, DEFLATE_SCAN = optional_extension("migcodec.codecs._deflatescan", "Python")
native = None if _deflatescan is None else _deflatescan.scan_deflate

#: block types (``BTYPE``)
STORED, FIXED, DYNAMIC = 0, 1, 2

_LEN_BASE = (3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83,
             99, 115, 131, 163, 195, 227, 258)  # fmt: skip
_LEN_EXTRA = (0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5,
              5, 0)  # fmt: skip
_DIST_BASE = (1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769,
              1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577)  # fmt: skip
_DIST_EXTRA = (0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11,
               11, 12, 12, 13, 13)  # fmt: skip
_CLEN_ORDER = (16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15)
_FAST_BITS = 9
_MAX_BITS = 15

# what the walks refuse, by the code the C walk returns for it (PROBLEM_* in _deflatescan.c)
(
    _ENDS,
    _ENDS_STORED,
    _STORED_CHECK,
    _RESERVED,
    _UNDEFINED,
    _NOT_IN_TABLE,
    _OVER_CLEN,
    _OVER_LIT,
    _OVER_DIST,
    _COUNTS,
    _REPEAT_FIRST,
    _RUN_PAST,
    _NO_END,
    _BEFORE_START,
) = range(1, 15)
#: the words of each problem; ``{0}`` and ``{1}`` are the numbers the walk reports with it
_PROBLEMS = {
    _ENDS: "DEFLATE stream ends inside a block",
    _ENDS_STORED: "DEFLATE stream ends inside a stored block",
    _STORED_CHECK: "DEFLATE stored block's length check does not match",
    _RESERVED: "DEFLATE stream uses the reserved block type 3",
    _UNDEFINED: "DEFLATE stream uses an undefined length or distance code",
    _NOT_IN_TABLE: "DEFLATE stream has a Huffman code that is not in its table",
    _OVER_CLEN: "DEFLATE code length code is over-subscribed",
    _OVER_LIT: "DEFLATE literal/length code is over-subscribed",
    _OVER_DIST: "DEFLATE distance code is over-subscribed",
    _COUNTS: "DEFLATE dynamic block declares {0} / {1} codes",
    _REPEAT_FIRST: "DEFLATE dynamic block repeats a length before the first",
    _RUN_PAST: "DEFLATE dynamic block's code lengths run past its codes",
    _NO_END: "DEFLATE dynamic block has no end-of-block code",
    _BEFORE_START: "DEFLATE match at output byte {0} reaches {1} bytes back, before the start "
    "of the output",
}


def _problem(code: int, a: int = 0, b: int = 0) -> DecodeError:
    return DecodeError(_PROBLEMS[code].format(a, b))


@dataclass
class DeflateScan:
    """What :func:`scan_deflate` found: each block's type, the output length, the furthest
    match distance, where the first match beyond ``history`` starts (``None``: none), and
    whether blocks beyond ``max_blocks`` were left unwalked."""

    block_types: list[int] = field(default_factory=list)
    output_bytes: int = 0
    max_distance: int = 0
    far_match: tuple[int, int] | None = None  # (output position, distance)
    #: the walk stopped at ``max_blocks`` blocks, and the stream has more
    more_blocks: bool = False


class _Code:
    """A canonical Huffman code: a table for codes of up to 9 bits, counts and sorted
    symbols for the longer ones (decoded as RFC 1951 3.2.2 assigns them)."""

    __slots__ = ("counts", "fast", "symbols")

    def __init__(self, lengths: list[int], oversubscribed: int) -> None:
        counts = [0] * (_MAX_BITS + 1)
        for n in lengths:
            counts[n] += 1
        counts[0] = 0
        left = 1
        for n in range(1, _MAX_BITS + 1):
            left = (left << 1) - counts[n]
            if left < 0:
                raise _problem(oversubscribed)
        offsets = [0] * (_MAX_BITS + 2)
        for n in range(1, _MAX_BITS + 1):
            offsets[n + 1] = offsets[n] + counts[n]
        symbols = [0] * offsets[_MAX_BITS + 1]
        for symbol, n in enumerate(lengths):
            if n:
                symbols[offsets[n]] = symbol
                offsets[n] += 1
        # table entry: symbol << 4 | length (0: a longer code, decoded bit by bit)
        fast = [0] * (1 << _FAST_BITS)
        code = 0
        index = 0
        for n in range(1, _FAST_BITS + 1):
            for _ in range(counts[n]):
                reverse = int(f"{code:0{n}b}"[::-1], 2)
                entry = symbols[index] << 4 | n
                for slot in range(reverse, 1 << _FAST_BITS, 1 << n):
                    fast[slot] = entry
                code += 1
                index += 1
            code <<= 1
        self.counts = counts
        self.symbols = symbols
        self.fast = fast

    def slow(self, bits: int) -> tuple[int, int]:
        """Decode a code longer than the table from ``bits`` (LSB first): symbol, length."""
        code = first = index = 0
        for n in range(1, _MAX_BITS + 1):
            code |= bits & 1
            bits >>= 1
            count = self.counts[n]
            if code - first < count:
                return self.symbols[index + code - first], n
            index += count
            first = (first + count) << 1
            code <<= 1
        raise _problem(_NOT_IN_TABLE)


_FIXED_LIT = _Code([8] * 144 + [9] * 112 + [7] * 24 + [8] * 8, _OVER_LIT)
_FIXED_DIST = _Code([5] * 30, _OVER_DIST)


def scan_deflate(
    stream: bytes | memoryview, history: int | None = None, max_blocks: int | None = None
) -> DeflateScan:
    """Walk the raw DEFLATE ``stream`` to its final block; stop at the first match whose
    distance exceeds ``history`` (when given) and report it in ``far_match``.

    With ``max_blocks``, stop after that many blocks without the final one and report it
    in ``more_blocks``: a block's code tables cost the walk hundreds of steps, and a
    dynamic block that holds nothing takes 12 bytes, so a stream of them would cost far
    more per byte than one of symbols.

    Raises :class:`DecodeError` for a stream that is not valid DEFLATE (a reserved block
    type, a bad code, a match before the start of the output, or bits running out).

    Walks in C where the extension was built (:data:`DEFLATE_SCAN`), else in Python
    (:func:`python_scan_deflate`): the same answers and the same errors.
    """
    if native is None:
        return python_scan_deflate(stream, history, max_blocks)
    limits = (_limit(history), _limit(max_blocks))
    try:
        result = native(stream, *limits)
    except BufferError:  # a memoryview that is not contiguous
        result = native(bytes(stream), *limits)
    if len(result) == 3:  # (problem, a, b)
        raise _problem(*result)
    types, out, max_distance, far_match, more_blocks = result
    return DeflateScan(list(types), out, max_distance, far_match, more_blocks)


def _limit(value: int | None) -> int:
    """``history`` or ``max_blocks`` as the C walk takes them: -1 for none, else 0 or more
    (a negative limit stops the walk where 0 does)."""
    return -1 if value is None else min(max(value, 0), 1 << 62)


def python_scan_deflate(
    stream: bytes | memoryview, history: int | None = None, max_blocks: int | None = None
) -> DeflateScan:
    """:func:`scan_deflate` in Python: the fall-back, and what the C walk is tested against."""
    data = bytes(stream)
    total_bits = 8 * len(data)
    scan = DeflateScan()
    pos = 0
    out = 0

    def bits_at(at: int, n: int) -> int:
        if at + n > total_bits:
            raise _problem(_ENDS)
        start = at >> 3
        return (int.from_bytes(data[start : start + 8], "little") >> (at & 7)) & ((1 << n) - 1)

    def peek(at: int) -> int:  # at least 57 bits, zero-padded past the end
        start = at >> 3
        return int.from_bytes(data[start : start + 8], "little") >> (at & 7)

    try:
        while True:
            if max_blocks is not None and len(scan.block_types) >= max_blocks:
                scan.more_blocks = True
                break
            final = bits_at(pos, 1)
            btype = bits_at(pos + 1, 2)
            pos += 3
            scan.block_types.append(btype)
            if btype == STORED:
                pos = (pos + 7) & ~7
                length = bits_at(pos, 16)
                if bits_at(pos + 16, 16) != length ^ 0xFFFF:
                    raise _problem(_STORED_CHECK)
                pos += 32 + 8 * length
                if pos > total_bits:
                    raise _problem(_ENDS_STORED)
                out += length
            elif btype == FIXED:
                pos, out = _walk(data, total_bits, pos, out, _FIXED_LIT, _FIXED_DIST, history, scan)
            elif btype == DYNAMIC:
                pos, lit, dist = _dynamic_codes(bits_at, peek, pos)
                pos, out = _walk(data, total_bits, pos, out, lit, dist, history, scan)
            else:
                raise _problem(_RESERVED)
            if scan.far_match is not None or final:
                break
    except IndexError as exc:  # a symbol outside the base tables: codes 286/287, 30/31
        raise _problem(_UNDEFINED) from exc
    scan.output_bytes = out
    return scan


def _dynamic_codes(
    bits_at: Callable[[int, int], int], peek: Callable[[int], int], pos: int
) -> tuple[int, _Code, _Code]:
    """Read a dynamic block's code tables; return the position after them and the codes."""
    n_lit = bits_at(pos, 5) + 257
    n_dist = bits_at(pos + 5, 5) + 1
    n_clen = bits_at(pos + 10, 4) + 4
    pos += 14
    if n_lit > 286 or n_dist > 30:
        raise _problem(_COUNTS, n_lit, n_dist)
    clen_lengths = [0] * 19
    for i in range(n_clen):
        clen_lengths[_CLEN_ORDER[i]] = bits_at(pos, 3)
        pos += 3
    clen = _Code(clen_lengths, _OVER_CLEN)
    lengths: list[int] = []
    while len(lengths) < n_lit + n_dist:
        window = peek(pos)
        entry = clen.fast[window & 511]
        symbol, n = (entry >> 4, entry & 15) if entry & 15 else clen.slow(window)
        pos += n
        if symbol < 16:
            lengths.append(symbol)
            continue
        if symbol == 16:
            if not lengths:
                raise _problem(_REPEAT_FIRST)
            value, repeat = lengths[-1], 3 + bits_at(pos, 2)
            pos += 2
        elif symbol == 17:
            value, repeat = 0, 3 + bits_at(pos, 3)
            pos += 3
        else:
            value, repeat = 0, 11 + bits_at(pos, 7)
            pos += 7
        lengths.extend([value] * repeat)
    bits_at(pos, 0)  # the last code length was read from bits the stream has
    if len(lengths) > n_lit + n_dist:
        raise _problem(_RUN_PAST)
    if lengths[256] == 0:
        raise _problem(_NO_END)
    return pos, _Code(lengths[:n_lit], _OVER_LIT), _Code(lengths[n_lit:], _OVER_DIST)


def _walk(
    data: bytes,
    total_bits: int,
    pos: int,
    out: int,
    lit: _Code,
    dist: _Code,
    history: int | None,
    scan: DeflateScan,
) -> tuple[int, int]:
    """Walk one Huffman-coded block from ``pos``; return the position and output length
    after it. Reads a 64-bit window per symbol (a whole match fits in 48 bits)."""
    lit_fast, dist_fast = lit.fast, dist.fast
    far = history if history is not None else 1 << 62
    while True:
        if pos >= total_bits:
            raise _problem(_ENDS)
        start = pos >> 3
        window = int.from_bytes(data[start : start + 8], "little") >> (pos & 7)
        entry = lit_fast[window & 511]
        symbol, n = (entry >> 4, entry & 15) if entry & 15 else lit.slow(window)
        pos += n
        window >>= n
        if symbol < 256:
            out += 1
            continue
        if symbol == 256:
            if pos > total_bits:
                raise _problem(_ENDS)
            return pos, out
        code = symbol - 257
        extra = _LEN_EXTRA[code]
        length = _LEN_BASE[code] + (window & ((1 << extra) - 1))
        pos += extra
        window >>= extra
        entry = dist_fast[window & 511]
        symbol, n = (entry >> 4, entry & 15) if entry & 15 else dist.slow(window)
        pos += n
        window >>= n
        extra = _DIST_EXTRA[symbol]
        distance = _DIST_BASE[symbol] + (window & ((1 << extra) - 1))
        pos += extra
        if pos > total_bits:
            raise _problem(_ENDS)
        if distance > out:
            raise _problem(_BEFORE_START, out, distance)
        if distance > scan.max_distance:
            scan.max_distance = distance
        if distance > far:
            scan.far_match = (out, distance)
            return pos, out
        out += length
