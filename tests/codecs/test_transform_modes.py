"""A transform's page modes are checked where they are made: a mode that would decode to
other bytes (ZERO for a page that is not, a wrapped cast, a compressor's mode its decode
refuses) is an error naming the codec, not a page that arrives different."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from migcodec.codecs import Batch, Codec, CodecFailed, PageEncoding

PAGE = 4096


class _Modes(Codec):
    """Sends every other page compressed, the rest raw, with the modes it is told to
    return (``None``: the right ones)."""

    name = "modes-under-test"

    def __init__(self, modes=None) -> None:
        self.modes = modes

    def params(self) -> dict:
        return {}

    def encode_pages(self, pages):
        n = pages.shape[0]
        right = np.where(np.arange(n) % 2 == 0, 2, 1).astype(np.uint8)
        blob = zlib.compress(pages[right == 2].tobytes())
        return PageEncoding(blob, right if self.modes is None else self.modes(n))

    def decode_pages(self, blob, n_pages, page_size):
        return zlib.decompress(blob)


def _pages(n: int = 4) -> np.ndarray:
    # compressible and no page zero: each page one byte value repeated, a few words changed
    pages = np.repeat(np.arange(1, n + 1, dtype=np.uint8)[:, None], PAGE, axis=1)
    pages[:, ::512] = 7
    return pages


def test_right_modes_round_trip_byte_for_byte():
    pages = _pages()
    codec = _Modes()
    encoded = codec.encode(Batch(pages, [(0, 4)]))
    assert encoded.modes.tolist() == [2, 1, 2, 1]
    out = np.zeros_like(pages)
    codec.decode(encoded, out)
    np.testing.assert_array_equal(out, pages)


HINT = "use another codec"


@pytest.mark.parametrize(
    ("modes", "problem"),
    [
        # a page that is not zero, sent as ZERO: the destination would zero-fill it
        (lambda n: np.array([2, 0, 2, 1], dtype=np.uint8), "page mode 0"),
        # int64 256 cast to uint8 is 0, ZERO again
        (lambda n: np.array([2, 256, 2, 1]), "page mode 256"),
        (lambda n: np.array([2, -1, 2, 1]), "page mode -1"),
        # a compressor has one encoded form: its decode refuses the others midway
        (lambda n: np.array([2, 3, 2, 1], dtype=np.uint8), "page mode 3"),
        (
            lambda n: np.array([2, 1, 2], dtype=np.uint8),
            "uint8 page modes of shape (3,) for 4 pages",
        ),
        (lambda n: np.array([2.0, 1.0, 2.0, 1.0]), "float64 page modes of shape (4,) for 4 pages"),
    ],
)
def test_modes_a_decode_would_get_wrong_are_refused_naming_the_codec(modes, problem):
    with pytest.raises(CodecFailed) as caught:
        _Modes(modes).encode(Batch(_pages(), [(0, 4)]))
    assert str(caught.value) == (
        f"codec 'modes-under-test' returned {problem} from its transform, which must return "
        f"one mode per page it was given, 1 (raw) or 2 (encoded); {HINT}"
    )
