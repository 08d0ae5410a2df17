"""Every xxhash use in one place: frame and record checksums, and the whole-memory digest.

xxh3 is fast and not cryptographic. The checksums (xxh3-64, :func:`checksum`) cover wire
frames, the stream preamble and trace records; the digest (xxh3-128, :func:`memory_digest`)
is the end-of-stream check that the destination holds what the source sent. Both detect a
transfer that lost or garbled bytes; neither defends against a peer that forges streams,
which needs an authenticated channel underneath.

A leaf module (like ``units``), so ``wire`` and ``datasets`` share it without depending on
each other.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import xxhash

#: the digest's algorithm, as the end of a stream names it
DIGEST_NAME = "xxh3-128"


def checksum(parts: Iterable, seed: int = 0) -> int:
    """xxh3-64 of the concatenation of ``parts`` (buffers), without joining them: a frame's
    header and payload segments are hashed where they lie."""
    hasher = xxhash.xxh3_64(seed=seed)
    for part in parts:
        hasher.update(part)
    return hasher.intdigest()


def memory_digest(memory: object) -> bytes:
    """xxh3-128 of all of ``memory`` (any buffer), as 16 bytes."""
    return xxhash.xxh3_128_digest(np.frombuffer(memory, dtype=np.uint8))
