"""Ctrl-C and SIGTERM: one way to end a command, and a way to finish a teardown first.

A command ends on SIGTERM as on Ctrl-C: :class:`Terminated` is a ``KeyboardInterrupt``, so
every cleanup written for Ctrl-C (a trace closed as incomplete, a region released) runs
for it too, and the command says ``terminated`` in one line. A teardown that stops threads
writing into or reading from memory its caller unmaps next runs under
:func:`interrupts_held`: interrupted halfway, it would leave them running on memory that is
gone, and the process would die of a segfault instead of printing a message. A leaf module
(like ``units``), so every package can use it.

A ``KeyboardInterrupt`` is also an exception like any other, which a codec's own code can
raise: one from a plugin ended ``bench`` as "interrupted" (status 130), blaming the user
for a codec's failure. :func:`from_signal` tells the two apart: the handlers here remember
the exception they raise, and a signal's handler runs in the main thread only.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: raised in the main thread as Ctrl-C's ``KeyboardInterrupt`` is."""


#: the exception the last signal raised through the handlers below (see from_signal)
_raised: list[BaseException] = []


def raise_terminated(signum: int, frame: object) -> None:
    """A SIGTERM handler: :class:`Terminated` in the main thread."""
    _raised[:] = [Terminated()]
    raise _raised[0]


def raise_interrupted(signum: int, frame: object) -> None:
    """A SIGINT handler: ``KeyboardInterrupt`` in the main thread, as Python's own raises
    it, remembered as a signal's (:func:`from_signal`)."""
    _raised[:] = [KeyboardInterrupt()]
    raise _raised[0]


def from_signal(exc: BaseException) -> bool:
    """Whether ``exc`` is Ctrl-C's or SIGTERM's ``KeyboardInterrupt`` (the command's end),
    not another exception, nor a ``KeyboardInterrupt`` that code (a codec's) raised itself.

    Outside the main thread none is a signal's: Python runs signal handlers in the main
    thread only. In it, where both handlers are this module's (a ``migcodec`` command),
    it is a signal's only if a handler raised it (or it was raised while handling one);
    under other handlers (a library's caller, Python's defaults) there is no telling, and
    it is taken for a signal's, as every ``KeyboardInterrupt`` was."""
    if not isinstance(exc, KeyboardInterrupt):
        return False
    if threading.current_thread() is not threading.main_thread():
        return False
    if (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) != (
        raise_interrupted,
        raise_terminated,
    ):
        return True
    raised = _raised[0] if _raised else None
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:  # the handler's, or raised handling it
        if exc is raised:
            return True
        seen.add(id(exc))
        exc = exc.__context__
    return False


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while the block runs and deliver the first after it: by
    its handler (the exception it raises), or, where its action is the system's default
    (a library's caller that set none for SIGTERM), by raising it again, so that it ends
    the process as it would have. Only the main thread receives signals (and may change
    their handlers): elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda signum, frame: held.append(signum))
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if held:
            handler = previous[held[0]]
            if callable(handler):
                handler(held[0], None)  # raises, as the signal would have
            elif handler == signal.SIG_DFL:
                signal.raise_signal(held[0])
