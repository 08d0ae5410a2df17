"""xxh3-64 over a sequence of buffers without joining them: wire frames and trace records.

A leaf module (like ``units``), so ``wire`` and ``datasets`` share it without depending on
each other.
"""

from __future__ import annotations

from collections.abc import Iterable

import xxhash


def checksum(parts: Iterable, seed: int = 0) -> int:
    hasher = xxhash.xxh3_64(seed=seed)
    for part in parts:
        hasher.update(part)
    return hasher.intdigest()
