"""Codec calls that never return: the error that names the codec, and the memory that the
threads left inside them may still read.

A codec's encode runs in a thread of the framework: an engine of
:class:`~migcodec.codecs.pool.CodecEngines`, or a migration's sender. A third-party codec
with an endless loop, or a vendor library call that hangs, never returns from it, and
Python cannot end a thread from outside. Its caller can only stop waiting (at a run's time
limit, a few seconds after Ctrl-C) and leave the thread running: a daemon thread, so that
the process can still exit.

Such a thread may still read the memory it was given, and its owner may unmap that memory
next: a codec that wakes up and reads it then crashes the process. So whoever leaves a
thread running records it here (:func:`leave_running`), and an owner about to unmap memory
asks :func:`still_read` first and, when it says so, leaves the mapping in place for the life
of the process rather than unmap it
(:meth:`~migcodec.engine.guest_memory.GuestMemory.close` does; a caller that frees memory
of its own after a migration must do the same). Memory that numpy owns needs no asking: the
stuck thread's references keep it alive.
"""

from __future__ import annotations

import threading
from typing import Protocol

import numpy as np

from migcodec.codecs.base import Codec
from migcodec.codecs.errors import CodecStuck
from migcodec.codecs.registry import codec_package

#: seconds a codec call may last before its codec is stuck, where a command waits for one
#: it cannot give a time limit (``bench``, ``evaluate``): a call encodes, decodes or probes
#: at most one batch, which takes any codec milliseconds, and one that never returns held
#: the command forever
STUCK_AFTER_S = 60.0


class MemoryReader(Protocol):
    """Threads left inside codec calls: ``memory_read()`` is the memory those calls were
    given, empty once they have all returned, and ``codecs_in_calls()`` the codecs whose
    calls those are."""

    def memory_read(self) -> list[np.ndarray]: ...

    def codecs_in_calls(self) -> list[Codec | str]: ...


_left: list[MemoryReader] = []
_lock = threading.Lock()


def leave_running(reader: MemoryReader) -> None:
    """Record that ``reader``'s threads are left inside codec calls: until those return,
    :func:`still_read` answers for the memory they were given."""
    with _lock:
        _left.append(reader)


def still_read(memory: np.ndarray) -> bool:
    """Whether a codec call left running may still read any byte of ``memory``, which must
    then stay mapped. Readers whose calls have all returned are forgotten here."""
    with _lock:
        reading = [(reader, reader.memory_read()) for reader in _left]
        _left[:] = [reader for reader, views in reading if views]
    return any(np.may_share_memory(memory, view) for _, views in reading for view in views)


def left_running_note() -> str:
    """A clause naming the codecs whose calls were left running and have not returned
    (``""`` if none), for the line that says a command was interrupted: the user who
    pressed Ctrl-C at a command that seemed to hang learns which codec held it, and what
    to do about it."""
    with _lock:
        readers = list(_left)
    fixes: dict[str, str] = {}  # what to do, by the codec's description
    for reader in readers:
        for codec in reader.codecs_in_calls():  # a name while the codec is being built
            described, package = _described(codec)
            fixes.setdefault(
                described,
                f"report it to the authors of {package}"
                if package
                else "its library or device may have hung",
            )
    return "".join(f"; {codec} had not returned from a call: {fix}" for codec, fix in fixes.items())


def _described(codec: Codec | str) -> tuple[str, str | None]:
    """``codec 'x' (from the package p)`` for ``codec`` (or its name, while it is built),
    and the package, ``None`` for migcodec's own codecs."""
    package = codec_package(codec)
    name = codec if isinstance(codec, str) else codec.name
    return f"codec {name!r}" + (f" (from the package {package})" if package else ""), package


def stuck_codec(
    codec: Codec | str,
    waited_s: float,
    instead: str = "choose another --codec",
    call: str = "encode",
) -> CodecStuck:
    """The error for ``codec`` (by its name, while it is being built), whose ``call``
    (``encode``, ``decode``, ``clone``...) has not returned after ``waited_s`` seconds:
    it names the package the codec came from (whose authors can fix it; none for
    migcodec's own codecs, whose library or device hung) and ``instead``, what the user
    can do meanwhile."""
    described, package = _described(codec)
    fix = f"report it to the authors of {package}, or {instead}" if package else instead
    return CodecStuck(
        f"{described} has not returned from {call} after {waited_s:.1f} s: "
        f"the codec is stuck; {fix}"
    )
