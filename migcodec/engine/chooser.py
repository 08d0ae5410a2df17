"""How the migration thread asks which codec to use for the next window of batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from migcodec.codecs import Batch, Codec, DestinationMirror, Measurements, get_codec

#: names ``--codec`` takes besides plugin names
CODEC_ALIASES = {"none": "raw"}


class CodecChooser(Protocol):
    """What the engine asks of a chooser; :class:`FixedChooser` is the simplest one.

    ``codecs`` is the stream's codec table and ``label`` names the choice in reports.
    ``start_stream`` hands over the stream's mirror of what the destination holds (``None``
    when no codec of the table reads it). ``choose`` returns an index into ``codecs`` for the
    next window (its batches, in order, not yet encoded: a chooser reads only the pages it
    samples); ``report`` feeds back each batch's measurements (from the sender thread, which
    must not wait on the chooser: the link idles while it does); ``close`` ends the stream.
    A chooser may also have ``prepare(window)``, outside this protocol: the engine then calls
    it with the next window (the very object it will choose for) while the current window
    fills the request pool, so that work done there costs the pipeline no wait. And it may
    have ``split``, read after each ``choose``: ``None``, or ``(rest, k)`` to have only the
    window's first ``k`` batches encoded with the codec chosen and the others with codec
    ``rest`` (a trial of a codec on a part of a window).

    ``wants_teaching`` says whether the mirror must record what codecs that do not read the
    destination send (copies that cost the sender), from the second pass on. A chooser may
    leave it false while no delta arm has been played and turn it true before the first
    window that plays one; once true it stays true. Pages not recorded are forgotten instead,
    so either answer is correct: it only decides what a delta can later be made against.
    """

    codecs: list[Codec]
    label: str
    wants_teaching: bool

    def start_stream(self, destination: DestinationMirror | None) -> None: ...

    def choose(self, window: Sequence[Batch]) -> int: ...

    def report(self, index: int, stats: Measurements) -> None: ...

    def close(self) -> None: ...


class FixedChooser:
    """One codec for the whole migration (what QEMU does); ``label`` names the choice in
    reports as the user wrote it (``none`` for the raw codec), by default the codec's
    name."""

    wants_teaching = True

    def __init__(self, codec: Codec, label: str | None = None) -> None:
        self.codecs = [codec]
        self.label = label or codec.name

    def start_stream(self, destination: DestinationMirror | None) -> None:
        return None

    def choose(self, window: Sequence[Batch]) -> int:
        return 0

    def report(self, index: int, stats: Measurements) -> None:
        return None

    def close(self) -> None:
        return None


def make_chooser(spec: str, link_rate: float | None, workers: float) -> CodecChooser:
    """The chooser ``--codec SPEC`` means: ``auto`` (the adaptive selector, maximising
    throughput at ``link_rate`` bytes/s with ``workers`` encoders), ``none`` (raw), or one
    plugin's name."""
    if spec == "auto":
        # imported here: the engine uses the selector, never the other way round
        from migcodec.selector.adaptive_chooser import auto_chooser

        return auto_chooser(link_rate, workers)
    return FixedChooser(get_codec(CODEC_ALIASES.get(spec, spec)), label=spec)
