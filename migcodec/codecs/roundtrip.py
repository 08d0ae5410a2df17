"""Whether a codec's output decodes back to the pages it encoded, and how a codec whose own
code fails or lies is named.

Sizes and times of a codec are worth nothing unless its output decodes to the pages: a
plugin that writes one byte per page would otherwise be the best codec of every benchmark
and the best arm of every evaluation. ``migcodec bench`` and an evaluation table both
check round trips with these, and both say in the same words which codec failed and what
to do about the package that provides it.
"""

from __future__ import annotations

import numpy as np

from migcodec.codecs.base import Codec
from migcodec.codecs.bounded import codec_watch
from migcodec.codecs.encoded import Encoded
from migcodec.codecs.errors import CodecError, CodecFailed, CodecStuck, RoundTripMismatch
from migcodec.codecs.registry import faulty_plugin_hint
from migcodec.interrupts import from_signal
from migcodec.ram import thread_refused

#: what a codec's own code may raise that is not the codec's failure: the codec layer's
#: errors (which say what to do already), Ctrl-C and SIGTERM, and memory running out
NOT_THE_CODECS = (CodecError, KeyboardInterrupt, MemoryError)
#: what a decode that is checked may raise that is not the codec's failure: a
#: :class:`DecodeError` is (the framework found the codec's own output malformed); a
#: codec stuck in it is named so already, with what to do
NOT_THE_DECODERS = (CodecStuck, KeyboardInterrupt, MemoryError)


class failures_of:
    """A block that runs codec ``name``'s own code ``during`` some work (``"in the
    benchmark"``, ``"to encode window 3's pages"``): whatever it raises but ``passed``
    (a plugin's exception, a ``SystemExit`` or an assertion included) leaves it as a
    :class:`CodecFailed` of one line naming the codec and what to do about its package,
    where it was a traceback, or for a ``SystemExit`` a silent exit.

    A class, not a generator: it wraps calls that are timed in microseconds."""

    __slots__ = ("during", "name", "passed")

    def __init__(
        self, name: str, during: str, passed: tuple[type[BaseException], ...] = NOT_THE_CODECS
    ) -> None:
        self.name, self.during, self.passed = name, during, passed

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, traceback: object) -> None:
        # a thread the process may not start is no codec's failure: a limit on the process
        # (its threads, or memory for their stacks) was blamed on the codec benchmarked
        if exc is None or thread_refused(exc):
            return
        # a KeyboardInterrupt no signal raised is the codec's own (bench said "interrupted")
        if isinstance(exc, self.passed) and (
            not isinstance(exc, KeyboardInterrupt) or from_signal(exc)
        ):
            return
        raise CodecFailed(
            f"codec {self.name!r} failed {self.during} ({type(exc).__name__}: {exc}); "
            f"{faulty_plugin_hint(self.name)}"
        ) from exc


def round_trip_mismatch(name: str, what: str) -> RoundTripMismatch:
    """The error that codec ``name`` decoded ``what`` to other bytes than it encoded."""
    return RoundTripMismatch(
        f"codec {name!r} decoded {what} to other bytes than it encoded; {faulty_plugin_hint(name)}"
    )


def check_round_trip(
    decoder: Codec, encoded: Encoded, memory: np.ndarray, rows: slice, pages: np.ndarray, what: str
) -> None:
    """Decode ``encoded`` into ``memory`` and check that its ``rows`` then hold ``pages``,
    byte for byte (one comparison of the whole batch).

    ``memory`` holds what the destination holds before the batch (a delta codec's base).
    ``decoder`` is an instance of its own, as a destination's is: one that shared the
    encoder's buffers could decode what the encoder left in them. A decode that raises
    anything but :data:`NOT_THE_DECODERS` is the codec's failure, and different bytes a
    :class:`RoundTripMismatch`; both name the codec and ``what`` it was decoding. The
    decode is this thread's codec call while it runs (:mod:`migcodec.codecs.bounded`)."""
    with failures_of(decoder.name, f"to decode {what}", NOT_THE_DECODERS):
        codec_watch().calling(decoder, "decode", decoder.decode, encoded, memory)
    if not np.array_equal(memory[rows], pages):
        raise round_trip_mismatch(decoder.name, what)
