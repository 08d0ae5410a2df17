"""Traces: sequences of windows on disk, compressed with migcodec's own codecs, streamed.

``TraceWriter(path, memory_pages=...)`` appends windows; ``TraceReader(path)`` (alias
``Trace``) iterates them or fetches one by index, and ``info()`` reads the manifest.
"""

from .format import (
    TraceCorrupt,
    TraceError,
    TraceExists,
    TraceIncomplete,
    TraceNotFound,
    TraceTooLarge,
    TraceVersionError,
    TraceWriteFailed,
    TraceWriteInterrupted,
    UnsuitableCodec,
)
from .reader import PhaseSpan, Trace, TraceInfo, TraceReader, open_trace
from .writer import TraceWriter

__all__ = [
    "PhaseSpan",
    "Trace",
    "TraceCorrupt",
    "TraceError",
    "TraceExists",
    "TraceIncomplete",
    "TraceInfo",
    "TraceNotFound",
    "TraceReader",
    "TraceTooLarge",
    "TraceVersionError",
    "TraceWriteFailed",
    "TraceWriteInterrupted",
    "TraceWriter",
    "UnsuitableCodec",
    "open_trace",
]
