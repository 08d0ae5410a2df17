"""``rle``: a run-length codec, the smallest complete example of a migcodec plugin.

Memory that compresses well by run-length is common in guests (zero tails of slab chunks,
memset buffers, page-table pages full of one pattern). The transform is vectorised: run
boundaries come from one comparison of the buffer with itself shifted by a byte, and decode
is one ``np.repeat``; there is no Python loop per byte, run or page.

Blob layout (little-endian), covering all the non-zero pages of a batch as one buffer::

    u32 run_count | run_count x u8 value | run_count x u16 (length - 1)

Runs longer than ``max_run`` bytes are split. The framework around the codec handles zero
pages, raw fall-back (random pages, where runs would triple the size), runs over guest
memory and in-place writes; this module only turns pages into a blob and back.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from migcodec.codecs import Codec, DecodeError

__all__ = ["RunLengthCodec", "rle_decode", "rle_encode", "run_starts"]

_COUNT = np.dtype("<u4")
_LENGTH = np.dtype("<u2")
MAX_RUN = 1 << 16  # a u16 stores length - 1


def run_starts(flat: np.ndarray) -> np.ndarray:
    """Index of the first byte of every run of equal bytes in a flat ``uint8`` array."""
    if flat.size == 0:
        return np.zeros(0, np.int64)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    return np.concatenate((np.zeros(1, np.int64), change))


def rle_encode(data: np.ndarray, max_run: int = MAX_RUN, starts: np.ndarray | None = None) -> bytes:
    """Run-length encode a ``uint8`` array (runs of at most ``max_run`` bytes).

    ``starts`` may pass in :func:`run_starts` of the flattened data when already computed.
    """
    flat = data.reshape(-1)
    if starts is None:
        starts = run_starts(flat)
    lengths = np.diff(starts, append=flat.size)
    values = flat[starts]
    pieces = -(-lengths // max_run)  # ceil: how many runs each long run becomes
    if (pieces > 1).any():
        values = np.repeat(values, pieces)
        total = np.repeat(lengths, pieces)
        # position of each piece inside its original run: 0, 1, ... pieces - 1
        first_piece = np.repeat(np.cumsum(pieces) - pieces, pieces)
        nth = np.arange(values.size) - first_piece
        lengths = np.minimum(total - nth * max_run, max_run)
    head = np.array([values.size], _COUNT)
    return b"".join((head.tobytes(), values.tobytes(), (lengths - 1).astype(_LENGTH).tobytes()))


def rle_decode(blob: Any, expected: int) -> np.ndarray:
    """Decode ``blob`` to exactly ``expected`` bytes, or raise :class:`DecodeError`.

    Nothing is allocated from a length the blob claims until it has been checked: the run
    count against the blob's size, and the sum of the run lengths against ``expected``.
    """
    raw = np.frombuffer(blob, np.uint8)
    if raw.size < _COUNT.itemsize:
        raise DecodeError(f"rle blob of {raw.size} bytes has no run count")
    count = int(raw[:4].view(_COUNT)[0])
    if raw.size != 4 + 3 * count:
        raise DecodeError(
            f"rle blob of {raw.size} bytes cannot hold the {count} runs it announces "
            f"({4 + 3 * count} bytes)"
        )
    values = raw[4 : 4 + count]
    lengths = raw[4 + count :].view(_LENGTH).astype(np.int64) + 1
    decoded = int(lengths.sum())
    if decoded != expected:
        raise DecodeError(f"rle runs cover {decoded} bytes where {expected} were expected")
    return np.repeat(values, lengths)


class RunLengthCodec(Codec):
    """Run-length encoding of a batch's non-zero pages, as one buffer.

    ``max_run`` (1..65536) caps a run's length; it changes the blob, never what decodes,
    and it is part of the config (the constructor's keyword arguments, kept as attributes
    of the same name) like any parameter a stream must be able to name.
    """

    name = "rle"

    def __init__(self, max_run: int = MAX_RUN) -> None:
        if not isinstance(max_run, int) or isinstance(max_run, bool) or not 1 <= max_run <= MAX_RUN:
            raise ValueError(f"rle max_run must be an integer 1..{MAX_RUN}, got {max_run!r}")
        self.max_run = max_run

    def encode_pages(self, pages: np.ndarray) -> bytes | None:
        flat = pages.reshape(-1)
        starts = run_starts(flat)
        if 4 + 3 * starts.size >= flat.size:
            # cannot pay even before long runs are split: skip building the blob and let the
            # framework send these pages raw (typical of random or already compressed data)
            return None
        return rle_encode(flat, self.max_run, starts)

    def decode_pages(self, blob: memoryview, n_pages: int, page_size: int) -> np.ndarray:
        return rle_decode(blob, n_pages * page_size)
