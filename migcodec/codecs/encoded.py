"""The result of encoding one batch, its measurements, and the closed sets of names they use.

How a page travels is a :class:`PageMode`; what kind of transform a codec is, a
:class:`CodecKind`; where its work ran, a :class:`CodecPath`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, IntEnum

import numpy as np

from migcodec.codecs.errors import DecodeError


class PageMode(IntEnum):
    """How one page travels. Values from ``ENCODED`` up belong to the codec.

    Codecs that need more than one encoded form (a delta codec's fall-back, an unchanged
    page) use values above ``ENCODED``; the framework hands them back unchanged at decode.
    """

    ZERO = 0
    RAW = 1
    ENCODED = 2


MAX_PAGE_MODE = 15


class TextEnum(str, Enum):
    """A closed set of names whose members are their strings.

    A member equals its plain string (``CodecKind.DELTA == "delta"``), hashes like it, and
    prints, formats and encodes to JSON as it (``str()`` and f-strings give the value, not
    ``CodecKind.DELTA``), so reports, JSON output and a plugin that sets the plain string
    all read the same. ``repr`` names the member.
    """

    def __str__(self) -> str:
        return self.value

    __format__ = str.__format__  # the value, padded or aligned like any string


class CodecKind(TextEnum):
    """What a codec's transform does, which is what a selector reasons about."""

    #: compresses each batch on its own (lz4, zstd, zlib-ng, QAT, IAA)
    COMPRESS = "compress"
    #: encodes pages against what the destination holds (XBZRLE, DSA delta records)
    DELTA = "delta"
    #: sends the pages as they are
    RAW = "raw"


class CodecPath(TextEnum):
    """Where a codec's work runs: in a probe, what an instance would take; in measurements,
    what one request took."""

    #: the device runs it
    HARDWARE = "hardware"
    #: a CPU implementation, a vendor's or ours, with the device's output format
    SOFTWARE = "software"
    #: software standing in for a device whose timing is modelled (``device_s``)
    EMULATED = "emulated"
    #: the plugin cannot run here (probes only)
    UNAVAILABLE = "unavailable"


def _not_buffers(exc: TypeError) -> DecodeError:
    return DecodeError(
        "encoded segments must be a tuple of buffers (bytes, bytearray, memoryview, numpy "
        f"arrays): {exc}"
    )


def nbytes_of(buffers) -> int:
    """Total bytes of buffers of any kind (bytes, memoryview, numpy arrays of any shape)."""
    return sum(memoryview(b).nbytes for b in buffers)


@dataclass(slots=True)
class Measurements:
    """What encoding one batch cost, for selectors and reports.

    ``device_s`` is the modelled device time of emulated hardware (``None`` for CPU codecs);
    it is a model, never a measurement, and reports say so.
    """

    input_bytes: int = 0
    output_bytes: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    device_s: float | None = None
    path: CodecPath = CodecPath.SOFTWARE
    #: all-zero pages among the input (each sent as a one-byte marker, whatever the codec)
    zero_pages: int = 0

    @property
    def ratio(self) -> float:
        return self.input_bytes / self.output_bytes if self.output_bytes else float("inf")


@dataclass(slots=True)
class Encoded:
    """Encoded pages of one batch: runs, a mode per page, and the payload.

    The payload is kept as segments (raw pages, then the codec's blob) so a writer can send
    them without joining them first. Segments may be views of a pooled buffer: they are valid
    until the request that produced them is released.
    """

    codec: str
    page_size: int
    runs: np.ndarray
    modes: np.ndarray
    segments: tuple = ()
    stats: Measurements = field(default_factory=Measurements)

    @property
    def n_pages(self) -> int:
        return int(self.modes.shape[0])

    @property
    def payload_nbytes(self) -> int:
        return nbytes_of(self.segments)

    @property
    def payload(self) -> bytes:
        """The payload as one bytes object (a copy; writers should use ``segments``)."""
        try:
            return b"".join(memoryview(s).cast("B") for s in self.segments)
        except TypeError as exc:
            raise _not_buffers(exc) from None

    def payload_view(self) -> memoryview:
        """The payload as one buffer, without a copy when it is a single segment. Segments
        that are not buffers raise :class:`DecodeError`: decoding reads them here first."""
        try:
            if len(self.segments) == 1:
                return memoryview(self.segments[0]).cast("B")
        except TypeError as exc:
            raise _not_buffers(exc) from None
        return memoryview(self.payload)

    def count(self, mode: PageMode) -> int:
        return int(np.count_nonzero(self.modes == mode))
