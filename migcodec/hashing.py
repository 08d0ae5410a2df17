"""Every xxhash use in one place: frame and record checksums, sealed JSON documents, and
the whole-memory digest.

xxh3 is fast and not cryptographic. The checksums (xxh3-64, :func:`checksum`) cover wire
frames, the stream preamble and trace records, and seal the JSON documents migcodec keeps
(:func:`seal`: a trace's manifest, a machine's cost model); the digest (xxh3-128,
:func:`memory_digest`) is the end-of-stream check that the destination holds what the
source sent. Both detect a transfer that lost or garbled bytes; neither defends against a
peer that forges streams, which needs an authenticated channel underneath.

A leaf module (like ``units``), so ``wire`` and ``datasets`` share it without depending on
each other.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

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


#: the key under which a sealed JSON document carries its checksum
SEAL_KEY = "checksum"


def _document_checksum(doc: dict) -> str:
    """xxh3-64 of ``doc``'s canonical JSON (sorted keys, no spaces), as 16 hex digits. JSON
    numbers and strings read back as the values written, so a document that was only
    re-indented keeps its checksum and one whose values or keys changed does not."""
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return f"{checksum([canonical.encode()]):016x}"


def seal(doc: dict) -> dict:
    """``doc`` with the checksum of its content under :data:`SEAL_KEY`, to be written as
    JSON: a document edited or damaged since then fails :func:`unseal` instead of being
    read as something it was not."""
    return {**doc, SEAL_KEY: _document_checksum(doc)}


def unseal(doc: object) -> dict:
    """The content of a :func:`seal`-ed document read back from JSON, without its
    checksum. Raises :class:`ValueError` saying what is wrong when ``doc`` is not an
    object, has no checksum, or its content no longer matches it."""
    if not isinstance(doc, dict):
        raise ValueError(f"it holds a JSON {type(doc).__name__}, not an object")
    content = {key: value for key, value in doc.items() if key != SEAL_KEY}
    stored = doc.get(SEAL_KEY)
    if stored is None:
        raise ValueError(f"it has no {SEAL_KEY!r} of its content")
    actual = _document_checksum(content)
    if stored != actual:
        raise ValueError(
            f"its content does not match its {SEAL_KEY} ({stored!r}, content {actual!r}): it "
            "was edited or damaged after it was written"
        )
    return content


def memory_digest(memory: object) -> bytes:
    """xxh3-128 of all of ``memory`` (any buffer), as 16 bytes."""
    return xxhash.xxh3_128_digest(np.frombuffer(memory, dtype=np.uint8))


class RunningDigest:
    """:func:`memory_digest` of a buffer that is being written, hashed as it fills.

    A receiver calls :meth:`advance` to hash the buffer's prefix up to a byte offset while
    the bytes it just wrote there are still in cache, and :meth:`written` after writing
    bytes, so that what was hashed of them before is hashed again; :meth:`digest` hashes
    the rest and equals ``memory_digest(memory)`` of the buffer as it is then, whatever
    the order of writes.

    A rewind restarts from the last checkpoint at or below the written offset: the hash
    state is kept every ``step`` bytes (at most ``max_checkpoints`` of them, a few hundred
    bytes each), so it re-hashes less than ``step`` bytes before the write, not the prefix.

    The hashing runs in the caller's thread: a thread of its own would help only where a
    core is idle, and a migration keeps both ends of the socket busy, so handing each frame
    over would cost more than hashing it while it is still in cache.
    """

    MIN_STEP = 1 << 20

    def __init__(self, memory: object, max_checkpoints: int = 1024) -> None:
        self._flat = np.frombuffer(memory, dtype=np.uint8)
        self._size = self._flat.size
        self._step = max(self.MIN_STEP, -(-self._size // max_checkpoints))
        self._hasher = xxhash.xxh3_128()
        self._marks = [self._hasher.copy()]  # _marks[k]: the state after k * step bytes
        self.hashed = 0  # bytes [0, hashed) are in the hash state

    def written(self, offset: int) -> None:
        """Bytes from ``offset`` on may have changed: forget their hash."""
        if offset < self.hashed:
            k = max(offset, 0) // self._step
            self._hasher = self._marks[k].copy()
            del self._marks[k + 1 :]
            self.hashed = k * self._step

    def advance(self, end: int) -> None:
        """Hash the buffer up to byte ``end`` (bytes below ``hashed`` are not hashed again)."""
        end = min(end, self._size)
        step, flat = self._step, self._flat
        while self.hashed < end:
            stop = min(end, (self.hashed // step + 1) * step)
            self._hasher.update(flat[self.hashed : stop])
            self.hashed = stop
            if stop % step == 0:
                self._marks.append(self._hasher.copy())

    def extend(self, start: int, end: int) -> None:
        """Bytes ``[start, end)`` were just written or sent: hash them now if they continue
        the hashed prefix (while they are in cache), else leave them for later."""
        if start == self.hashed:
            self.advance(end)

    def digest(self, check: Callable[[], None] | None = None) -> bytes:
        """The digest of the whole buffer as it is now (16 bytes). ``check`` is called
        between steps of what is left to hash, and raises to stop (a connection's
        deadline): a stream that announced 12 GiB of memory in a file and ended at once
        had all of it read and hashed, 27 s past a deadline of 4 s."""
        if check is not None:
            while self.hashed < self._size:
                check()
                self.advance(self.hashed + self._step)
        self.advance(self._size)
        return self._hasher.digest()
