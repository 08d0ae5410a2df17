"""Damage for tests of stored files: what reads them back must refuse it or be unchanged."""

from collections.abc import Iterator


def flipped_bits(data: bytes, every: int) -> Iterator[tuple[int, bytes]]:
    """``data`` with one bit flipped, at every ``every``-th byte (a different bit each time,
    so every bit position is tried): the byte's offset and the damaged copy."""
    for offset in range(0, len(data), every):
        damaged = bytearray(data)
        damaged[offset] ^= 1 << (offset % 8)
        yield offset, bytes(damaged)
