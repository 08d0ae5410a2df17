"""Page contents of the classic migration guests, generated vectorised and deterministically.

The three guests of the classic accelerator-migration experiment: ``ones`` (compression
friendly: pages of one repeated byte with a small counter), ``seq`` (little-endian uint64
sequence numbers) and ``memcached`` (slab items as memaslap fills them: item headers,
alphanumeric keys and values, unused chunk tails). Also ``zero``, ``text``, ``random`` and
``mixed``. Same seed, same bytes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import numpy as np

DEFAULT_PAGE_SIZE = 4096

# memaslap's defaults: 64-byte keys, 1024-byte values, both drawn from an alphanumeric block.
ALNUM = np.frombuffer(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", dtype=np.uint8
)
#: ALNUM[b % 62] for every byte b: one table lookup instead of a modulo and a lookup
_ALNUM_OF_BYTE = ALNUM[np.arange(256) % ALNUM.size]
MEMCACHED_KEY = 64
CHAR_BLOCK = 10 << 20  # memaslap's RAND_CHAR_SIZE
MEMCACHED_VALUE = 1024
MEMCACHED_HEADER = 56  # memcached 1.6 item header with CAS
MEMCACHED_CHUNK = 1184  # the slab class that holds a 1144-byte item (growth factor 1.25)

_WORDS = (  # noqa: SIM905 - a word list reads better as text
    "the of and to in is that for it as was with be by on not he this are or his from at "
    "which but have an they you were her she there been one all we their has would when "
    "migration memory page guest host dirty rate codec compress delta network device "
    "queue kernel virtual machine request buffer stream frame window selector throughput "
    "latency "
).split()


def _ones(rng: np.random.Generator, n: int, page_size: int) -> np.ndarray:
    pages = np.ones((n, page_size), dtype=np.uint8)
    counters = rng.integers(0, 1 << 62, n, dtype=np.int64).astype("<u8")
    pages[:, :8] = counters.view(np.uint8).reshape(n, 8)
    return pages


def _seq(rng: np.random.Generator, n: int, page_size: int) -> np.ndarray:
    base = int(rng.integers(0, 1 << 40))
    words = np.arange(base, base + n * page_size // 8, dtype="<u8")
    return words.view(np.uint8).reshape(n, page_size)


@functools.cache
def _char_block() -> np.ndarray:
    """memaslap's random character block: keys and values are slices of it at random offsets.

    memaslap fills one 10 MiB block of random alphanumerics at start-up and copies each
    value from a random offset, so this is both faithful and fast (a gather of whole rows
    instead of a per-byte table lookup). Built once per process from a fixed seed.
    """
    rng = np.random.default_rng(0x6D656D61)
    draws = rng.integers(0, 256, CHAR_BLOCK, dtype=np.uint8)
    return _ALNUM_OF_BYTE[draws]


def _memcached(rng: np.random.Generator, n: int, page_size: int) -> np.ndarray:
    total = n * page_size
    items = -(-total // MEMCACHED_CHUNK) + 1
    chunk = np.zeros((items, MEMCACHED_CHUNK), dtype=np.uint8)
    header = np.zeros((items, MEMCACHED_HEADER // 8), dtype="<u8")
    slab = int(rng.integers(0x7F00_0000_0000, 0x7FFF_0000_0000)) & ~0xFFFFF
    addresses = slab + np.arange(items, dtype=np.uint64) * MEMCACHED_CHUNK
    header[:, 0] = addresses + MEMCACHED_CHUNK  # next
    header[:, 1] = addresses - MEMCACHED_CHUNK  # prev
    header[:, 2] = rng.integers(0, 1 << 47, items, dtype=np.int64) & ~7  # hash chain
    times = rng.integers(1_000, 100_000, items, dtype=np.int64).astype(np.uint64)
    header[:, 3] = times | (np.uint64(0) << np.uint64(32))  # time, exptime 0
    header[:, 4] = np.uint64(MEMCACHED_VALUE + 2) | (np.uint64(1) << np.uint64(32))
    header[:, 5] = np.uint64(MEMCACHED_KEY) | (np.uint64(0x0D) << np.uint64(16))
    header[:, 6] = np.arange(1, items + 1, dtype=np.uint64) + np.uint64(rng.integers(1, 1 << 30))
    chunk[:, :MEMCACHED_HEADER] = header.view(np.uint8)
    body = MEMCACHED_KEY + 1 + MEMCACHED_VALUE
    block = _char_block()
    starts = rng.integers(0, block.size - body, items)
    text = np.lib.stride_tricks.sliding_window_view(block, body)[starts]
    text[:, MEMCACHED_KEY] = 0  # key terminator
    chunk[:, MEMCACHED_HEADER : MEMCACHED_HEADER + body] = text
    end = MEMCACHED_HEADER + body
    chunk[:, end : end + 2] = np.frombuffer(b"\r\n", dtype=np.uint8)
    offset = int(rng.integers(0, MEMCACHED_CHUNK))
    return chunk.reshape(-1)[offset : offset + total].reshape(n, page_size)  # a view


def _text(rng: np.random.Generator, n: int, page_size: int) -> np.ndarray:
    # enough words that a page is a slice of them (about 6 bytes each): 16384 up to 16 KiB
    # pages, and about three pages' worth for larger ones (2 MiB huge pages)
    picks = rng.integers(0, len(_WORDS), max(16384, page_size // 2))
    corpus = np.frombuffer(" ".join(_WORDS[i] for i in picks).encode(), dtype=np.uint8)
    starts = rng.integers(0, corpus.size - page_size, n)
    return np.lib.stride_tricks.sliding_window_view(corpus, page_size)[starts]


def _random(rng: np.random.Generator, n: int, page_size: int) -> np.ndarray:
    # full-range uint64 draws: cheaper than rng.bytes and just as uniform
    words = rng.integers(0, np.iinfo(np.uint64).max, (n, page_size // 8), np.uint64, True)
    return words.view(np.uint8)


def _zero(rng: np.random.Generator, n: int, page_size: int) -> np.ndarray:
    return np.zeros((n, page_size), dtype=np.uint8)


_MIXED = {"zero": 0.25, "ones": 0.2, "memcached": 0.25, "text": 0.15, "random": 0.15}


def mixed_pages(
    rng: np.random.Generator, weights: Mapping[str, float], n: int, page_size: int
) -> np.ndarray:
    """``n`` pages, each from a generator drawn with ``weights`` (relative, any scale): one
    vectorised call per generator, not per page."""
    names = list(weights)
    p = np.array([weights[k] for k in names], dtype=float)
    kinds = rng.choice(len(names), size=n, p=p / p.sum())
    pages = np.empty((n, page_size), dtype=np.uint8)
    for k, name in enumerate(names):
        rows = np.flatnonzero(kinds == k)
        if rows.size:
            pages[rows] = GENERATORS[name](rng, rows.size, page_size)
    return pages


def _mixed(rng: np.random.Generator, n: int, page_size: int) -> np.ndarray:
    return mixed_pages(rng, _MIXED, n, page_size)


GENERATORS: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "ones": _ones,
    "seq": _seq,
    "memcached": _memcached,
    "zero": _zero,
    "text": _text,
    "random": _random,
    "mixed": _mixed,
}


def generate_pages(
    workload: str, n_pages: int, seed: int = 0, page_size: int = DEFAULT_PAGE_SIZE
) -> np.ndarray:
    """A fresh ``(n_pages, page_size)`` uint8 array of ``workload`` pages."""
    if workload not in GENERATORS:
        raise ValueError(
            f"unknown workload {workload!r}; choose one of {', '.join(sorted(GENERATORS))}"
        )
    if n_pages < 0 or page_size <= 0 or page_size % 8:
        raise ValueError("n_pages must be >= 0 and page_size a positive multiple of 8")
    return GENERATORS[workload](np.random.default_rng(seed), n_pages, page_size)
