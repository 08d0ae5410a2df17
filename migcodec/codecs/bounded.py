"""Codec work on a thread of its own, waited for no longer than a codec call may last.

A command that calls codecs on its own thread (``evaluate``: every arm on every window, its
probes, its calibration) waits forever for a codec whose call never returns, and Python
cannot end a thread from outside. So such work is handed to a :class:`CodecThread` in
coarse units (a table's windows, a calibration, a cluster's task), and its caller waits
for each unit with a timeout. Coarse, because each handoff makes both threads wait to be
scheduled again: on a busy host that takes longer than the work of a batch or a small
window, and it would be charged to their timings.

While the worker is inside a codec call it says so on its :class:`Watch`, one attribute
written going in and one coming out, with no lock (the caller only reads it). A call that
has lasted :data:`~migcodec.codecs.stuck.STUCK_AFTER_S` is stuck: the caller raises
:class:`~migcodec.codecs.CodecStuck` naming the codec, and leaves the worker, a daemon
thread, inside it. Only codec calls can be stuck: migcodec's own code between them is
waited for however long it takes.

The whole unit runs on the worker, not only its codec calls, so every
:func:`time.thread_time` difference a unit takes (around a codec call, around features) is
of one thread, as it was when the caller ran the unit itself.

A worker left inside a codec call may still read what it was given. Units of evaluation
work read arrays that numpy owns (windows decoded from a trace, generated pages), which the
worker's references keep alive: nothing is unmapped under it, so it is not recorded with
:func:`~migcodec.codecs.stuck.leave_running`. A caller that hands over memory it will unmap
must record it there. A codec stuck in C code that holds the GIL stops every thread of the
process; no thread of it can bound that.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from migcodec.codecs import stuck
from migcodec.codecs.base import Codec
from migcodec.codecs.errors import CodecStuck
from migcodec.codecs.stuck import stuck_codec

if TYPE_CHECKING:
    from migcodec.codecs.batch import Batch
    from migcodec.codecs.encoded import Encoded
    from migcodec.codecs.mirror import DestinationMirror

T = TypeVar("T")

#: what a codec is called for while :func:`~migcodec.codecs.get_codec` builds it
BUILDING = "its import, probe or constructor"
#: seconds a waiting caller sleeps between looks at the worker's codec call (a quarter of
#: the bound, when that is shorter): a stuck codec is named this long after its bound
LOOK_EVERY_S = 1.0


class Watch:
    """The codec call a thread is in: ``call`` is ``(codec, call, since)`` (the codec, or
    its name while it is built; what it was called for; a :func:`time.perf_counter` value)
    from just before the call until it returns, else ``None``. The thread writes it; a
    thread waiting for it reads it.

    ``instead`` is what the user can do about the codec of that call, where it is not what
    the unit's caller says (a trace's own codec, read while building an evaluation's
    tables, is no arm to leave out), else ``None``.

    ``left`` is set when the waiting thread stopped waiting (a stuck codec, Ctrl-C): a
    long unit (a part of many windows) then stops at its next step, rather than work on
    for no one."""

    __slots__ = ("call", "instead", "left")

    def __init__(self) -> None:
        self.call: tuple[Codec | str, str, float] | None = None
        self.instead: str | None = None
        self.left = False

    def encoding(
        self, codec: Codec, batch: Batch, destination: DestinationMirror | None = None
    ) -> tuple[Encoded, float]:
        """``codec.encode(batch, destination=destination)``, watched while it runs, and the
        CPU seconds of this thread around the call alone: a measurement reads the clock
        around each codec call (per-batch ``stats.cpu_s`` is sampled), and the watch is
        written outside that span."""
        outer = self.call  # within another watched call, watched again once this returns
        self.call = (codec, "encode", time.perf_counter())
        cpu0 = time.thread_time()
        encoded = codec.encode(batch, destination=destination)
        cpu_s = time.thread_time() - cpu0
        self.call = outer
        return encoded, cpu_s

    def calling(
        self,
        codec: Codec | str,
        call: str,
        fn: Callable[..., T],
        *args: Any,
        instead: str | None = None,
    ) -> T:
        """``fn(*args)``, ``codec``'s ``call``, watched while it runs (a codec call that is
        timed writes :attr:`call` itself, around its clock), with ``instead`` (see the
        class). Within another watched call (a plugin's import within the building of
        its codec), the outer call is watched again once this one returns, and this one
        says what the outer says to do unless it says otherwise (a trace's codec, built
        by the plugin loader, which knows nothing of traces)."""
        outer, outer_instead = self.call, self.instead
        self.call = (codec, call, time.perf_counter())
        self.instead = outer_instead if instead is None else instead
        try:
            return fn(*args)
        finally:  # a caller may go on after a call that raised (a plugin that fails to load)
            self.call, self.instead = outer, outer_instead

    def stuck(self, bound: float, instead: str) -> CodecStuck | None:
        """The error naming the codec of the call the thread is in, once that call has
        lasted ``bound`` seconds (``instead``: what to do meanwhile, unless the call says),
        else ``None``. Read from another thread."""
        call = self.call
        if call is None:
            return None
        waited = time.perf_counter() - call[2]
        if waited < bound:
            return None
        return stuck_codec(call[0], waited, self.instead or instead, call[1])


_here = threading.local()
#: the watch of every thread that is no :class:`CodecThread`'s worker: written, never read
_UNWATCHED = Watch()


def codec_watch() -> Watch:
    """This thread's :class:`Watch` (a look-up per thread: take it once per unit of work or
    per call, and write it around each codec call)."""
    return getattr(_here, "watch", _UNWATCHED)


def stuck_in(
    thread: threading.Thread, watch: Watch, after: float, bound: float, instead: str
) -> CodecStuck | None:
    """Wait for ``thread``, watched by ``watch`` (:func:`watch_this_thread`), to end, and
    return ``None``; or return the error naming the codec of the call it is in
    (:meth:`Watch.stuck`), once that call has lasted ``bound`` seconds and the
    :func:`time.perf_counter` clock has passed ``after``. A thread that is slow but whose
    calls return (a destination working off its backlog) is waited for to the end: only a
    call that does not return is a reason to stop waiting, and the thread is then left
    inside it."""
    while True:
        thread.join(min(LOOK_EVERY_S, bound / 4))
        if not thread.is_alive():
            return None
        error = watch.stuck(bound, instead) if time.perf_counter() >= after else None
        if error is not None:
            return error


def watch_this_thread(watch: Watch | None = None) -> Watch:
    """A :class:`Watch` of this thread's own (``watch``, or a new one), for another thread
    to read: a thread that calls codecs for a caller that cannot hand it over as units (a
    migration's destination, decoding frames as they arrive) is watched so, and its
    caller, done waiting, names the codec call it is stuck in."""
    watch = _here.watch = Watch() if watch is None else watch
    return watch


class CodecThread:
    """A daemon thread that runs units of codec work for one caller, one at a time
    (:meth:`run`); started with the first unit. Close it (or use it as a context manager)
    to end the thread once it is idle; it is never waited for.

    ``instead`` is what the user can do about a stuck codec meanwhile (see
    :func:`~migcodec.codecs.stuck.stuck_codec`)."""

    def __init__(self, instead: str, name: str = "migcodec-codec-work") -> None:
        self.instead = instead
        self.name = name
        self._worker: _Worker | None = None

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` run on the worker: what it returns, or what it raises (the same
        exception, with its traceback and cause). :class:`~migcodec.codecs.CodecStuck`
        when a codec call in it lasts :data:`~migcodec.codecs.stuck.STUCK_AFTER_S`: the
        worker is left inside it, and the next unit starts another.

        On a worker already (a unit within a unit), ``fn`` runs right there, within the
        outer unit's bound and what it says to do instead."""
        if getattr(_here, "worker", False):
            return fn(*args)
        worker = self._worker
        if worker is None:
            worker = self._worker = _Worker(self.name)
        worker.todo.put((fn, args))
        try:
            done, value = worker.outcome(self.instead)
        except BaseException:  # stuck, or Ctrl-C while waiting: the unit is no one's
            worker.watch.left = True
            self.close()
            raise
        if done:
            return value
        raise value

    def close(self) -> None:
        """End the worker once it is idle (never, if it is stuck) and forget it."""
        if self._worker is not None:
            self._worker.todo.put(None)
            self._worker = None

    def __enter__(self) -> CodecThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_bounded(fn: Callable[..., T], *args: Any, instead: str) -> T:
    """``fn(*args)`` as the one unit of a :class:`CodecThread` of its own."""
    with CodecThread(instead) as thread:
        return thread.run(fn, *args)


class _Worker:
    """One thread, the units handed to it and their outcomes, ``(True, value)`` or
    ``(False, exception)``."""

    def __init__(self, name: str) -> None:
        self.todo: queue.SimpleQueue = queue.SimpleQueue()
        self.done: queue.SimpleQueue = queue.SimpleQueue()
        self.watch = Watch()
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    def _serve(self) -> None:
        _here.watch, _here.worker = self.watch, True
        while True:
            unit = self.todo.get()
            if unit is None:
                return
            self.done.put(self._outcome(*unit))
            del unit  # nothing of a unit is held while idle

    def _outcome(self, fn: Callable[..., Any], args: tuple) -> tuple[bool, Any]:
        try:
            return True, fn(*args)
        except BaseException as exc:  # the caller's to raise
            return False, exc
        finally:
            self.watch.call = self.watch.instead = None  # a codec call that raised left it

    def outcome(self, instead: str) -> tuple[bool, Any]:
        """The outcome of the unit handed over, waited for while the worker is in no codec
        call, or in one younger than the bound."""
        while True:
            bound = stuck.STUCK_AFTER_S  # read at each look: tests shorten it
            try:
                return self.done.get(timeout=min(LOOK_EVERY_S, bound / 4))
            except queue.Empty:
                error = self.watch.stuck(bound, instead)
                if error is not None:
                    raise error from None


__all__ = [
    "BUILDING",
    "LOOK_EVERY_S",
    "CodecThread",
    "Watch",
    "codec_watch",
    "run_bounded",
    "stuck_in",
    "watch_this_thread",
]
