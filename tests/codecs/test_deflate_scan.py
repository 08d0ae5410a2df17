"""scan_deflate walks every block type as zlib writes it, and fails only with DecodeError;
every test here runs on both walks (C and Python)."""

from __future__ import annotations

import contextlib
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migcodec.codecs import DecodeError
from migcodec.codecs.deflate_scan import DYNAMIC, FIXED, STORED, scan_deflate
from migcodec.datasets import GENERATORS
from tests.codecs.deflate_craft import fixed_stream
from tests.codecs.kernel_paths import WALKS, deflate_walk


@pytest.fixture(autouse=True, params=WALKS)
def walk(request, monkeypatch) -> str:
    deflate_walk(request.param, monkeypatch)
    return request.param


def _deflate(data: bytes, level: int, strategy: int, wbits: int = -15) -> bytes:
    deflater = zlib.compressobj(level, zlib.DEFLATED, wbits, 8, strategy)
    return deflater.compress(data) + deflater.flush()


@pytest.mark.parametrize("workload", sorted(GENERATORS))
@pytest.mark.parametrize(
    ("level", "strategy"),
    [(1, zlib.Z_DEFAULT_STRATEGY), (9, zlib.Z_DEFAULT_STRATEGY), (6, zlib.Z_FIXED),
     (6, zlib.Z_HUFFMAN_ONLY), (6, zlib.Z_RLE), (0, zlib.Z_DEFAULT_STRATEGY)],
)  # fmt: skip
def test_scan_measures_what_zlib_inflates(workload, level, strategy):
    page = GENERATORS[workload](np.random.default_rng(5), 1, 16384)[0].tobytes()
    stream = _deflate(page, level, strategy)
    scan = scan_deflate(stream)
    assert scan.output_bytes == len(page)
    assert scan.far_match is None
    if strategy == zlib.Z_FIXED and workload != "random":
        assert set(scan.block_types) == {FIXED}
    if level == 0:
        assert set(scan.block_types) == {STORED}


def test_scan_reports_the_first_match_beyond_the_history():
    stream = fixed_stream([b"abcdefgh" * 700, (5, 4096), (7, 4097), (9, 5000)])
    assert scan_deflate(stream, 4096).far_match == (5605, 4097)
    whole = scan_deflate(stream)
    assert (whole.max_distance, whole.output_bytes, whole.far_match) == (5000, 5621, None)


def test_dynamic_blocks_are_read():
    text = b"".join(b"line %d of a log with some words\n" % i for i in range(400))
    scan = scan_deflate(_deflate(text, 9, zlib.Z_DEFAULT_STRATEGY))
    assert DYNAMIC in scan.block_types and scan.output_bytes == len(text)


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (b"", "DEFLATE stream ends inside a block"),
        (b"\x07", "DEFLATE stream uses the reserved block type 3"),
        (b"\x01\x05\x00\xfb\xff", "DEFLATE stored block's length check does not match"),
        (fixed_stream([b"ab", (3, 5)]), "DEFLATE match at output byte 2 reaches 5 bytes back"),
        (fixed_stream([b"abc"])[:-1], "DEFLATE stream ends inside a block"),
        (b"\x01\x05\x00\xfa\xffab", "DEFLATE stream ends inside a stored block"),
        # a fixed block's first symbol 286 (11000110): a length code no table defines
        (b"\x1b\x03", "DEFLATE stream uses an undefined length or distance code"),
    ],
)
def test_invalid_streams_are_decode_errors(stream, message):
    with pytest.raises(DecodeError, match=message):
        scan_deflate(stream)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=64))
def test_any_bytes_scan_or_raise_decode_error(data):
    with contextlib.suppress(DecodeError):
        scan_deflate(data)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(min_size=1, max_size=2048), flips=st.lists(st.integers(0, 10**6), max_size=3))
def test_corrupted_zlib_output_agrees_with_zlib(data, flips):
    stream = bytearray(_deflate(data * 3, 6, zlib.Z_DEFAULT_STRATEGY))
    for pos in flips:
        stream[pos % len(stream)] ^= 1 << (pos % 8)
    try:
        out = zlib.decompressobj(-15)
        inflated = out.decompress(bytes(stream))
        ok = out.eof
    except zlib.error:
        ok = False
    if ok:  # zlib inflates it: the walk must agree on the length
        assert scan_deflate(bytes(stream)).output_bytes == len(inflated)
    else:
        with contextlib.suppress(DecodeError):
            scan_deflate(bytes(stream))


def test_the_walk_stops_at_max_blocks_and_says_more_follow():
    stream = fixed_stream([b"abc", (3, 3)], empty_blocks=5)
    stopped = scan_deflate(stream, max_blocks=3)
    assert (stopped.block_types, stopped.more_blocks) == ([DYNAMIC] * 3, True)
    whole = scan_deflate(stream, max_blocks=6)
    assert (whole.block_types, whole.more_blocks, whole.output_bytes) == (
        [DYNAMIC] * 5 + [FIXED],
        False,
        6,
    )
