"""``raw``: pages as they are (zero pages still go as markers). The "no compression" arm."""

from __future__ import annotations

import numpy as np

from migcodec.codecs.base import Codec, PageEncoding
from migcodec.codecs.encoded import CodecKind, PageMode
from migcodec.codecs.errors import DecodeError


class RawCodec(Codec):
    name = "raw"
    kind = CodecKind.RAW

    def _encode_pages(self, pages: np.ndarray, indices: np.ndarray) -> PageEncoding:
        return PageEncoding(b"", np.full(pages.shape[0], PageMode.RAW, dtype=np.uint8))

    def _decode_pages(self, blob, modes, current, page_size):
        raise DecodeError("raw frames carry no encoded pages; a page mode says otherwise")
