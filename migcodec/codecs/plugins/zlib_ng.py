"""``zlib-ng``: DEFLATE through zlib-ng, the usual CPU baseline for migration (zlib level 1)."""

from __future__ import annotations

from zlib_ng import zlib_ng

from migcodec.codecs.base import Codec, is_integer
from migcodec.codecs.errors import DecodeError


def inflate_capped(data, room: int, wbits: int, what: str):
    """Inflate the DEFLATE stream at the start of ``data`` to at most ``room`` bytes (the
    cap comes before any output, so a hostile stream cannot balloon). Returns the output
    and the inflater, whose ``eof``, ``unused_data`` and ``unconsumed_tail`` say how the
    stream ended; a corrupt stream is a :class:`DecodeError` naming ``what``."""
    inflater = zlib_ng.decompressobj(wbits)
    try:
        return inflater.decompress(data, room), inflater
    except zlib_ng.error as exc:
        raise DecodeError(f"{what} is corrupt: {exc}") from exc


def inflate_exact(blob, expected: int, wbits: int, what: str) -> bytes:
    """Inflate ``blob`` to exactly ``expected`` bytes, never allocating more; a stream
    that ends early, runs long or carries trailing bytes is a :class:`DecodeError`."""
    out, inflater = inflate_capped(blob, expected, wbits, f"{what} stream")
    if len(out) != expected or not inflater.eof or inflater.unconsumed_tail:
        raise DecodeError(
            f"{what} stream does not inflate to exactly {expected} bytes "
            f"(got {len(out)}, stream {'ended' if inflater.eof else 'unfinished'})"
        )
    if inflater.unused_data:
        raise DecodeError(f"{what} stream has {len(inflater.unused_data)} trailing bytes")
    return out


class ZlibNgCodec(Codec):
    """DEFLATE at ``level`` (1 by default). ``wbits`` picks the container as zlib does:
    -9..-15 raw DEFLATE (default -15, no header), 9..15 zlib, 25..31 gzip."""

    name = "zlib-ng"

    def __init__(self, level: int = 1, wbits: int = -15) -> None:
        if not is_integer(level) or not 0 <= level <= 9:
            raise ValueError(f"zlib-ng level must be an integer 0..9, got {level!r}")
        if not is_integer(wbits) or not (
            -15 <= wbits <= -9 or 9 <= wbits <= 15 or 25 <= wbits <= 31
        ):
            raise ValueError(f"zlib-ng wbits must be -15..-9, 9..15 or 25..31, got {wbits!r}")
        self.level = level
        self.wbits = wbits

    def encode_pages(self, pages):
        return zlib_ng.compress(pages, self.level, self.wbits)

    def decode_pages(self, blob, n_pages, page_size):
        return inflate_exact(blob, n_pages * page_size, self.wbits, "zlib-ng")
