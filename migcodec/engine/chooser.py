"""How the migration thread asks which codec to use for the next window of batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from migcodec.codecs import Batch, Codec, Measurements


class CodecChooser(Protocol):
    """``codecs`` is the stream's codec table; ``choose`` returns an index into it for the
    next window (its batches, in order, not yet encoded: a chooser reads only the pages it
    samples), ``report`` feeds back each batch's measurements (from the sender thread)."""

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
