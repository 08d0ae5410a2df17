"""``raw``: pages as they are (zero pages still go as markers). The "no compression" arm."""

from __future__ import annotations

from migcodec.codecs.base import Codec
from migcodec.codecs.encoded import CodecKind
from migcodec.codecs.errors import DecodeError


class RawCodec(Codec):
    name = "raw"
    kind = CodecKind.RAW

    def encode_pages(self, pages):
        return None  # every page goes raw

    def decode_pages(self, blob, n_pages, page_size):
        raise DecodeError("raw frames carry no encoded pages; a page mode says otherwise")
