"""How the migration thread asks which codec to use for the next window of batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from migcodec.codecs import Batch, Codec, Measurements


class CodecChooser(Protocol):
    """``codecs`` is the stream's codec table; ``choose`` returns an index into it for the
    next window (its batches, in order, not yet encoded: a chooser reads only the pages it
    samples), ``report`` feeds back each batch's measurements (from the sender thread).

    Optional: ``wants_teaching`` (default true) says whether codecs with a history of the
    destination (delta caches) must learn what the others send, from the second pass on.
    A chooser may leave it false while no such codec has sent anything and turn it true
    before the first window that plays one; once true it must stay true (a cache that has
    sent a page must hear of every later version). The sender reads it as it frames each
    batch, so batches already submitted when it turns true may or may not be taught:
    either is correct, since their pages are in no cache yet."""

    codecs: list[Codec]

    def choose(self, window: Sequence[Batch]) -> int: ...

    def report(self, index: int, stats: Measurements) -> None: ...


class FixedChooser:
    """One codec for the whole migration (what QEMU does)."""

    def __init__(self, codec: Codec) -> None:
        self.codecs = [codec]

    def choose(self, window: Sequence[Batch]) -> int:
        return 0

    def report(self, index: int, stats: Measurements) -> None:
        return None
