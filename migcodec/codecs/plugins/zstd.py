"""``zstd``: Zstandard over the whole batch; negative levels are its fast modes."""

from __future__ import annotations

import threading

import zstandard

from migcodec.codecs.base import Codec, is_integer
from migcodec.codecs.batch import DEFAULT_MAX_PAGES
from migcodec.codecs.errors import DecodeError
from migcodec.codecs.page_views import DEFAULT_PAGE_SIZE

#: ZSTD_minCLevel(): -ZSTD_TARGETLENGTH_MAX (python-zstandard does not export it)
ZSTD_MIN_LEVEL = -(1 << 17)

#: the input size a level's parameters are chosen for: a default batch
PARAMETER_SOURCE_BYTES = DEFAULT_MAX_PAGES * DEFAULT_PAGE_SIZE


class ZstdCodec(Codec):
    """Zstandard at ``level`` (default 1; negative levels down to zstd's minimum are faster).

    zstd contexts are not thread safe, so each thread keeps its own; the frame omits the
    content size and checksum because the batch layout and the wire already carry both.

    zstd chooses a level's parameters (match length, search depth, table sizes) by the size
    of each input; here they are chosen once, for a default batch
    (:data:`PARAMETER_SOURCE_BYTES`), and every call uses them. A call then compresses
    alike whatever number of pages it holds: a batch with a few pages left after its zero
    pages, and a selector's probe of a few pages, measure the arm that encodes the full
    batches. With the size-chosen parameters a 16-page probe runs level 3 with a minimum
    match of 5 bytes where a batch runs it with 4, and so ranked level 3 against level 1
    wrong on compressible windows. A full batch's output is unchanged.
    """

    name = "zstd"

    def __init__(self, level: int = 1) -> None:
        lo, hi = ZSTD_MIN_LEVEL, zstandard.MAX_COMPRESSION_LEVEL
        if not is_integer(level) or not lo <= level <= hi or level == 0:
            raise ValueError(f"zstd level must be a non-zero integer {lo}..{hi}, got {level!r}")
        self.level = level
        self._parameters = zstandard.ZstdCompressionParameters.from_level(
            level,
            source_size=PARAMETER_SOURCE_BYTES,
            write_content_size=False,
            write_checksum=False,
        )
        self._local = threading.local()

    def _contexts(self):
        local = self._local
        if not hasattr(local, "compressor"):
            local.compressor = zstandard.ZstdCompressor(compression_params=self._parameters)
            local.decompressor = zstandard.ZstdDecompressor()
        return local

    def encode_pages(self, pages):
        return self._contexts().compressor.compress(pages)

    def decode_pages(self, blob, n_pages, page_size):
        expected = n_pages * page_size
        try:
            # a frame header may claim any content size, and zstd then allocates it whatever
            # max_output_size says: refuse a claim other than the pages named, before that
            claimed = zstandard.get_frame_parameters(blob).content_size
            if claimed not in (zstandard.CONTENTSIZE_UNKNOWN, expected):
                raise DecodeError(
                    f"zstd frame claims {claimed} bytes where {expected} were expected"
                )
            out = self._contexts().decompressor.decompress(
                blob, max_output_size=expected, allow_extra_data=False
            )
        except zstandard.ZstdError as exc:
            raise DecodeError(f"zstd frame does not decode: {exc}") from exc
        if len(out) != expected:
            raise DecodeError(f"zstd frame decoded to {len(out)} bytes, expected {expected}")
        return out
