"""The C walk (``_deflatescan.c``) answers as the Python walk does, on every stream: the
same scan of what zlib and zlib-ng write, the same DecodeError (words included) for what
they would not, whatever the history and block limit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zlib_ng import zlib_ng

from migcodec.codecs import deflate_scan
from migcodec.codecs.deflate_scan import (
    _DIST_BASE,
    _DIST_EXTRA,
    _LEN_BASE,
    _LEN_EXTRA,
    python_scan_deflate,
    scan_deflate,
)
from migcodec.datasets import GENERATORS
from tests.codecs.deflate_craft import dynamic_stream, fixed_stream
from tests.codecs.kernel_paths import outcome
from tests.plugin_dist import REPO

pytestmark = pytest.mark.skipif(
    deflate_scan.native is None, reason=f"DEFLATE walk: {deflate_scan.DEFLATE_SCAN}"
)

LIBRARIES = {"zlib": zlib, "zlib-ng": zlib_ng}
STRATEGIES = (zlib.Z_DEFAULT_STRATEGY, zlib.Z_FILTERED, zlib.Z_HUFFMAN_ONLY, zlib.Z_RLE,
              zlib.Z_FIXED)  # fmt: skip
histories = st.one_of(st.none(), st.sampled_from([0, 1, 258, 4096]), st.integers(0, 40000))
block_limits = st.one_of(st.none(), st.integers(0, 12))


def agree(stream, history, max_blocks) -> tuple[str, object]:
    """What both walks say about ``stream``: a scan, or a DecodeError and its words."""
    c = outcome(scan_deflate, stream, history, max_blocks)
    assert c[0] in ("ok", "DecodeError"), c
    assert c == outcome(python_scan_deflate, stream, history, max_blocks)
    return c


@st.composite
def pages(draw) -> bytes:
    """Random bytes, a workload's page, or bytes that recur more than 4 KiB further on."""
    kind = draw(st.sampled_from(["random", "workload", "far"]))
    if kind == "random":
        return draw(st.binary(max_size=6000))
    if kind == "workload":
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        size = draw(st.sampled_from([4096, 8192, 16384]))
        return GENERATORS[draw(st.sampled_from(sorted(GENERATORS)))](rng, 1, size)[0].tobytes()
    chunk = draw(st.binary(min_size=3, max_size=300))
    gap = draw(st.binary(min_size=4097, max_size=9000))
    return chunk + gap + chunk * draw(st.integers(1, 3))


@st.composite
def deflated(draw) -> bytes:
    """A page compressed by zlib or zlib-ng at a random level, strategy, window, memLevel."""
    library = LIBRARIES[draw(st.sampled_from(sorted(LIBRARIES)))]
    level = draw(st.integers(0, 9))
    wbits = -draw(st.integers(9, 15))
    deflater = library.compressobj(
        level, zlib.DEFLATED, wbits, draw(st.integers(1, 9)), draw(st.sampled_from(STRATEGIES))
    )
    return deflater.compress(draw(pages())) + deflater.flush()


@settings(max_examples=120, deadline=None)
@given(stream=deflated(), history=histories, max_blocks=block_limits)
def test_the_walks_agree_on_what_zlib_writes(stream, history, max_blocks):
    verdict, scan = agree(stream, history, max_blocks)
    assert verdict == "ok"  # valid DEFLATE: a scan, whatever the limits
    if max_blocks is None and scan.far_match is None:
        assert scan.output_bytes == len(zlib.decompress(stream, -15))


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200), history=histories, max_blocks=block_limits)
def test_the_walks_agree_on_any_bytes(data, history, max_blocks):
    agree(data, history, max_blocks)


@settings(max_examples=200, deadline=None)
@given(
    stream=deflated(),
    flips=st.lists(st.integers(0, 2**20), max_size=4),
    insert=st.tuples(st.integers(0, 2**16), st.binary(max_size=4)),
    keep=st.one_of(st.none(), st.integers(0, 2**16)),
    drop=st.integers(0, 3),
    history=histories,
    max_blocks=block_limits,
)
def test_the_walks_agree_on_damaged_streams(stream, flips, insert, keep, drop, history, max_blocks):
    damaged = bytearray(stream)
    for bit in flips:
        if damaged:
            damaged[bit // 8 % len(damaged)] ^= 1 << (bit % 8)
    at, extra = insert
    at %= len(damaged) + 1
    damaged[at:at] = extra
    if keep is not None:  # cut anywhere
        del damaged[keep % (len(damaged) + 1) :]
    del damaged[len(damaged) - drop :]  # the last bytes: the final block's last symbols
    agree(bytes(damaged), history, max_blocks)


@settings(max_examples=100, deadline=None)
@given(stream=deflated(), cut=st.integers(0, 2**16))
def test_the_walks_agree_on_cut_streams(stream, cut):
    # the last few bytes hold the final block's last symbols and its end: cut there, a
    # symbol or a stored block's bytes run a bit, a byte or a few past the end
    for kept in (len(stream) - 1, len(stream) - 2, len(stream) - 3, cut % (len(stream) + 1)):
        agree(stream[: max(kept, 0)], 4096, None)


@st.composite
def code_lengths(draw, n: int, end_of_block: bool = False) -> list[int]:
    """Lengths for ``n`` symbols: every symbol 15 bits (the longest codes, decoded past a
    walk's table, and matches of up to 48 bits; an incomplete code, which a walk takes), or
    a complete prefix code on some of them (the leaves of a random binary tree no deeper
    than 15, or of the deepest), then perhaps one code too many (over-subscribed by a 15-bit
    code, the least there is) or one too few (incomplete)."""
    shape = draw(st.sampled_from(["flat", "tree", "deep"]))
    if shape == "flat":
        return [15] * n
    if shape == "deep":  # 1, 2, .. 15, 15 bits
        depths = [*range(1, min(n, 16)), min(n, 16) - 1] if n > 1 else [1]
    else:
        depths = [1, 1] if n > 1 else [1]
        for _ in range(draw(st.integers(0, min(n, 40) - len(depths)))):
            i = draw(st.integers(0, len(depths) - 1))
            if depths[i] < 15:
                depths[i : i + 1] = [depths[i] + 1] * 2
    change = draw(st.sampled_from(["complete", "one more", "one fewer"]))
    if change == "one more" and len(depths) < n:
        depths.append(15)
    elif change == "one fewer" and len(depths) > 1:
        del depths[draw(st.integers(0, len(depths) - 1))]
    symbols = draw(st.lists(st.integers(0, n - 1), min_size=len(depths), max_size=len(depths),
                            unique=True))  # fmt: skip
    if end_of_block and 256 not in symbols:  # it gets a code
        symbols[0] = 256
    lengths = [0] * n
    for symbol, depth in zip(symbols, depths, strict=False):
        lengths[symbol] = depth
    return lengths


def _covers(code: tuple[int, int]) -> int:
    symbol, repeat = code
    return 1 if symbol < 16 else (3 if symbol < 18 else 11) + repeat


@st.composite
def length_codes(draw, lengths: list[int]) -> list[tuple[int, int]]:
    """``lengths`` as code length symbols, runs as repeats (16, 17, 18) where the draw says
    so; perhaps with the last repeat running 1..4 lengths past them."""
    codes: list[tuple[int, int]] = []
    i = 0
    while i < len(lengths):
        run = 1
        while i + run < len(lengths) and lengths[i + run] == lengths[i]:
            run += 1
        if lengths[i] == 0 and run >= 3 and draw(st.booleans()):
            k = min(run, 138)
            codes.append((18, k - 11) if k >= 11 else (17, k - 3))
        elif i and lengths[i - 1] == lengths[i] and run >= 3 and draw(st.booleans()):
            k = min(run, 6)
            codes.append((16, k - 3))
        else:
            k = 1
            codes.append((lengths[i], 0))
        i += k
    past = draw(st.integers(0, 4))
    if past:
        removed = 0
        while codes and removed + past < 3:
            removed += _covers(codes.pop())
        total = min(removed + past, 138)
        codes.append((17, total - 3) if total <= 10 else (18, total - 11))
    return codes


def _values(base: tuple[int, ...], extra: tuple[int, ...], symbols: list[int]):
    """A length or distance of one of ``symbols``, with any value of its extra bits."""
    return st.sampled_from(symbols).flatmap(
        lambda k: st.integers(base[k], base[k] + (1 << extra[k]) - 1)
    )


@st.composite
def coded_tokens(draw, lit: list[int], dist: list[int]) -> list:
    """Literals and matches of the symbols that have codes in ``lit`` and ``dist``
    (lengths), the longest codes and largest extra bits too. Matches reach past the start
    of the output as often as not, which both walks report with the distance they read."""
    literals = [s for s in range(256) if lit[s]]
    lengths = [k for k in range(29) if 257 + k < len(lit) and lit[257 + k]]
    distances = [k for k in range(min(len(dist), 30)) if dist[k]]
    kinds = []
    if literals:
        kinds.append(st.lists(st.sampled_from(literals), min_size=1, max_size=8).map(bytes))
    if lengths and distances:
        kinds.append(
            st.tuples(
                _values(_LEN_BASE, _LEN_EXTRA, lengths),
                _values(_DIST_BASE, _DIST_EXTRA, distances),
            )
        )
    return draw(st.lists(st.one_of(kinds), max_size=30)) if kinds else []


@st.composite
def dynamic_blocks(draw) -> bytes:
    """A dynamic block with random code tables (:func:`code_lengths`), most of them valid,
    and literals and matches in them."""
    # every code, the largest extra bits among them, or any number the fields hold
    n_lit = draw(st.one_of(st.just(286), st.integers(257, 288)))
    n_dist = draw(st.one_of(st.just(30), st.integers(1, 32)))
    lit = draw(code_lengths(min(n_lit, 286), end_of_block=draw(st.integers(0, 7)) > 0))
    lit += [0] * (n_lit - len(lit))
    dist = draw(code_lengths(min(n_dist, 30)))
    dist += [0] * (n_dist - len(dist))
    tokens = draw(coded_tokens(lit, dist))
    return dynamic_stream(n_lit, n_dist, draw(length_codes(lit + dist)), tokens)


@settings(max_examples=300, deadline=None)
@given(stream=dynamic_blocks(), history=histories, keep=st.integers(0, 2**16))
def test_the_walks_agree_on_any_code_tables(stream, history, keep):
    agree(stream, history, None)
    agree(stream[: keep % (len(stream) + 1)], history, None)


@settings(max_examples=200, deadline=None)
@given(
    tokens=st.lists(
        st.one_of(
            st.binary(min_size=1, max_size=40),
            st.tuples(st.integers(3, 258), st.integers(1, 32768)),
        ),
        max_size=12,
    ),
    empty_blocks=st.integers(0, 4),
    history=histories,
    max_blocks=block_limits,
)
def test_the_walks_agree_on_matches_at_any_distance(tokens, empty_blocks, history, max_blocks):
    # crafted tokens reach past the start of the output as often as not: both refuse alike
    agree(fixed_stream(tokens, empty_blocks), history, max_blocks)


def test_the_walks_agree_on_the_longest_matches_at_every_bit_offset():
    # every code 15 bits: a match of 257 bytes 32768 back takes 48 bits (15 + 5 + 15 + 13),
    # and the literals before it put it at each offset within a byte
    every_code_15_bits = [(15, 0)] * (286 + 30)
    for literals in range(8):
        tokens = [b"a", *[(258, 1)] * 130, b"a" * literals, (257, 32768)]
        verdict, scan = agree(dynamic_stream(286, 30, every_code_15_bits, tokens), None, None)
        assert verdict == "ok" and scan.max_distance == 32768


def test_both_walks_find_the_first_match_beyond_the_history_zlib_writes():
    rng = np.random.default_rng(3)
    chunk = rng.integers(0, 256, 200, dtype=np.uint8).tobytes()
    data = chunk + rng.integers(0, 256, 6000, dtype=np.uint8).tobytes() + chunk
    for library in LIBRARIES.values():
        deflater = library.compressobj(6, zlib.DEFLATED, -15)
        verdict, scan = agree(deflater.compress(data) + deflater.flush(), 4096, None)
        assert verdict == "ok" and scan.far_match[1] == 6200  # the chunk's start, or next


def test_memoryviews_are_walked_where_they_lie_or_copied():
    stream = fixed_stream([b"abcdefgh" * 700, (5, 4096), (7, 4097)])
    expected = python_scan_deflate(stream, 4096)
    padded = bytearray(b"\xff" + stream + b"\xff")
    assert scan_deflate(memoryview(padded)[1:-1], 4096) == expected
    spread = bytes(b for byte in stream for b in (byte, 0))
    assert scan_deflate(memoryview(spread)[::2], 4096) == expected  # not contiguous


def test_the_c_walk_is_the_one_that_runs():
    assert deflate_scan.DEFLATE_SCAN == "C extension"


def test_the_benchmark_prints_the_walks_rates_and_ratios():
    command = [sys.executable, str(REPO / "benchmarks" / "deflate_scan.py")]
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [*command, "--pages", "1", "--repeats", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": path},  # this checkout's migcodec
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["deflate_scan"] == "C extension"
    for line in report["workloads"]:
        assert line["pages_checked"] == 1
        assert line["check_c_mb_s"] > line["check_python_mb_s"] > 0
        assert line["check_c_over_python"] > 1 and line["decode_c_over_python"] > 1
