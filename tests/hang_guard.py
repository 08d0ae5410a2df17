"""A test that would hang on a bug fails instead: the call runs in a thread, given a bound
far above what it takes (a bound on a hang, not a timing)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def within(seconds: float, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``: what it returns, or raises, run in a daemon thread; an
    ``AssertionError`` if it is still running after ``seconds``."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = fn(*args)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="hang-guarded", daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{getattr(fn, '__name__', fn)} still running after {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
