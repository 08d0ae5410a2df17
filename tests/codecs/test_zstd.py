"""zstd frames from a hostile peer: a claimed content size must not drive allocation."""

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
