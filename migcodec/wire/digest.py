"""Whole-memory digest for the end-of-stream check (xxh3-128: fast, not cryptographic).

It detects a migration that lost or garbled pages; it is not a defence against a peer that
forges streams, which needs an authenticated channel underneath.
"""

from __future__ import annotations

import numpy as np
import xxhash

DIGEST_NAME = "xxh3-128"


def memory_digest(memory: object) -> bytes:
    return xxhash.xxh3_128_digest(np.frombuffer(memory, dtype=np.uint8))
