"""``lz4``: LZ4 block format over the whole batch."""

from __future__ import annotations

import lz4.block

from migcodec.codecs.base import Codec, is_integer
from migcodec.codecs.errors import DecodeError

#: the largest acceleration LZ4 takes: a C int (it runs anything above 65537 as 65537); a
#: larger one was accepted here and failed every encode with an OverflowError
MAX_ACCELERATION = 2**31 - 1


class Lz4Codec(Codec):
    """LZ4 block (no frame header: the batch layout already says how big the output is).

    ``acceleration`` trades ratio for speed as in LZ4's fast mode (1 is the default).
    """

    name = "lz4"

    def __init__(self, acceleration: int = 1) -> None:
        if not is_integer(acceleration) or not 1 <= acceleration <= MAX_ACCELERATION:
            raise ValueError(
                f"lz4 acceleration must be an integer 1..{MAX_ACCELERATION}, got {acceleration!r}"
            )
        self.acceleration = acceleration

    def encode_pages(self, pages):
        return lz4.block.compress(
            pages, mode="fast", acceleration=self.acceleration, store_size=False
        )

    def decode_pages(self, blob, n_pages, page_size):
        expected = n_pages * page_size
        try:
            return lz4.block.decompress(blob, uncompressed_size=expected)
        except lz4.block.LZ4BlockError as exc:
            raise DecodeError(f"lz4 block does not decode to {expected} bytes: {exc}") from exc
