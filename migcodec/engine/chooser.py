"""How the migration thread asks which codec to use for the next window of batches."""

from __future__ import annotations

import threading
from typing import Protocol

from migcodec.codecs import Batch, Codec, Measurements


class CodecChooser(Protocol):
    """``codecs`` is the stream's codec table; ``choose`` returns an index into it for the
    next window, ``report`` feeds back each batch's measurements (from the sender thread)."""

    codecs: list[Codec]

    def choose(self, sample: Batch) -> int: ...

    def report(self, index: int, stats: Measurements) -> None: ...


class FixedChooser:
    """One codec for the whole migration (what QEMU does)."""

    def __init__(self, codec: Codec) -> None:
        self.codecs = [codec]
        self._lock = threading.Lock()

    def choose(self, sample: Batch) -> int:
        return 0

    def report(self, index: int, stats: Measurements) -> None:
        return None
