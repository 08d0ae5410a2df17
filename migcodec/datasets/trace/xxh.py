"""xxh3-64 over parts without joining them (the wire's checksum, kept local: ``datasets``
depends on nothing of ours but ``codecs``)."""

from __future__ import annotations

from collections.abc import Iterable

import xxhash


def checksum(parts: Iterable) -> int:
    hasher = xxhash.xxh3_64()
    for part in parts:
        hasher.update(part)
    return hasher.intdigest()
