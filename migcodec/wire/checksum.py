"""Frame and preamble checksums (xxh3-64), computed over segments without joining them."""

from __future__ import annotations

from collections.abc import Iterable

import xxhash


def checksum(parts: Iterable, seed: int = 0) -> int:
    hasher = xxhash.xxh3_64(seed=seed)
    for part in parts:
        hasher.update(part)
    return hasher.intdigest()
