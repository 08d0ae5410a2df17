"""zstd: a claimed content size from a hostile peer must not drive allocation, and a call
compresses alike however many pages it holds."""

import numpy as np
import pytest
import zstandard

from migcodec.codecs import DecodeError, get_codec

EXPECTED = 4096


def _decode(blob):
    codec = get_codec("zstd")
    return codec.decode_pages(blob, 1, EXPECTED)


def test_a_frame_claiming_more_than_the_named_pages_is_refused_before_decoding():
    blob = zstandard.ZstdCompressor(level=1).compress(bytes(1 << 24))  # claims 16 MiB
    with pytest.raises(DecodeError, match=f"claims {1 << 24} bytes where {EXPECTED} were"):
        _decode(blob)


def test_trailing_bytes_after_the_frame_are_refused():
    blob = zstandard.ZstdCompressor(level=1, write_content_size=False).compress(bytes(EXPECTED))
    assert len(_decode(blob)) == EXPECTED
    with pytest.raises(DecodeError, match="unused data"):
        _decode(blob + b"garbage")


def _tokens(pages: int, seed: int) -> np.ndarray:
    """Pages of 4-byte words from a small vocabulary, each followed by a random byte: their
    repeats are 4 bytes long, which a level's match length decides whether it sees."""
    rng = np.random.default_rng(seed)
    vocabulary = rng.integers(0, 256, (64, 4), dtype=np.uint8)
    n = pages * 4096 // 5 + 1
    words = vocabulary[rng.integers(0, 64, n)]
    gaps = rng.integers(0, 256, (n, 1), dtype=np.uint8)
    return np.hstack([words, gaps]).reshape(-1)[: pages * 4096].reshape(pages, 4096)


def test_a_few_pages_compress_as_a_full_batch_of_the_same_content_does():
    """A probe of a few pages must measure the arm that encodes full batches: zstd left to
    itself picks level 3's parameters for 64 KiB with a 5-byte minimum match, and writes
    this content at 1.6x what a 64-page batch of it takes per page."""
    codec = get_codec("zstd", level=3)
    few, batch = _tokens(16, 1), _tokens(64, 2)
    per_page_few = len(codec.encode_pages(few)) / 16
    per_page_batch = len(codec.encode_pages(batch)) / 64
    assert per_page_few == pytest.approx(per_page_batch, rel=0.05)
    assert codec.decode_pages(codec.encode_pages(few), 16, 4096) == few.tobytes()
