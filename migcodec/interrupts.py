"""Ctrl-C and SIGTERM: one way to end a command, and a way to finish a teardown first.

A command ends on SIGTERM as on Ctrl-C: :class:`Terminated` is a ``KeyboardInterrupt``, so
every cleanup written for Ctrl-C (a trace closed as incomplete, a region released) runs
for it too, and the command says ``terminated`` in one line. A teardown that stops threads
writing into or reading from memory its caller unmaps next runs under
:func:`interrupts_held`: interrupted halfway, it would leave them running on memory that is
gone, and the process would die of a segfault instead of printing a message. A leaf module
(like ``units``), so every package can use it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: raised in the main thread as Ctrl-C's ``KeyboardInterrupt`` is."""


def raise_terminated(signum: int, frame: object) -> None:
    """A SIGTERM handler: :class:`Terminated` in the main thread."""
    raise Terminated()


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
