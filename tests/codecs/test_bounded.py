"""Codec work on a thread of its own: the caller gets its result or its exception, or, for
a codec call that never returns, a stuck codec named after the bound, the thread left
inside it."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from migcodec.codecs import CodecStuck, stuck
from migcodec.codecs.bounded import CodecThread, codec_watch, run_bounded
from migcodec.codecs.plugins.raw import RawCodec
from tests.hang_guard import within

INSTEAD = "leave it out"
#: the bound of these tests, in seconds
BOUND_S = 0.2


@pytest.fixture
def short_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stuck, "STUCK_AFTER_S", BOUND_S)


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """What a codec call that never returns waits for: set when the test ends, so that no
    thread outlives it inside the call."""
    event = threading.Event()
    yield event
    event.set()


def test_a_unit_returns_what_its_function_returns_on_a_daemon_thread():
    def where(x: int) -> tuple[int, str, bool]:
        thread = threading.current_thread()
        return x, thread.name, thread.daemon

    assert run_bounded(where, 3, instead=INSTEAD) == (3, "migcodec-codec-work", True)


def test_a_unit_that_raises_raises_the_same_exception_in_the_caller():
    cause = KeyError("no such dictionary")

    def fails() -> None:
        try:
            raise cause
        except KeyError as exc:
            raise ValueError("ring full") from exc

    with pytest.raises(ValueError, match="ring full") as info:
        run_bounded(fails, instead=INSTEAD)
    assert info.value.__cause__ is cause
    assert "fails" in [entry.name for entry in info.traceback]  # where it was raised


def test_a_codec_call_that_never_returns_is_stuck_after_the_bound(short_bound, release):
    """Named with the codec, the call and what to do; the thread is left inside the call,
    and the next unit runs on another. Should the call return, the unit is told that its
    caller left (to stop, rather than work on for no one)."""
    codec = RawCodec()
    inside: list[threading.Thread] = []
    left: list[bool] = []

    def never_returns() -> None:
        inside.append(threading.current_thread())
        codec_watch().calling(codec, "decode", release.wait)
        left.append(codec_watch().left)

    with CodecThread(INSTEAD) as thread:
        with pytest.raises(CodecStuck) as info:
            within(30, thread.run, never_returns)
        assert re.fullmatch(
            r"codec 'raw' has not returned from decode after \d+\.\d s: the codec is stuck; "
            "leave it out",
            str(info.value),
        ), info.value
        assert inside[0].is_alive() and inside[0].daemon
        assert thread.run(threading.current_thread) is not inside[0]
    release.set()
    inside[0].join(30)
    assert left == [True] and not inside[0].is_alive()


def test_a_call_within_a_call_says_what_the_outer_says_to_do_unless_it_says_otherwise(
    short_bound, release
):
    """A trace's codec is built by the plugin loader, whose own watched call says nothing
    of traces: stuck there, the codec was named with the unit's advice (leave it out of
    --codecs), not the trace's (record it again with another codec)."""
    codec = RawCodec()

    def building(instead: str | None) -> None:
        codec_watch().calling(codec, "its constructor", release.wait, instead=instead)

    def reading(instead: str | None) -> None:
        codec_watch().calling(codec, "decode", building, instead, instead="record it again")

    for inner, said in ((None, "record it again"), ("uninstall it", "uninstall it")):
        with pytest.raises(CodecStuck) as info:
            within(30, lambda inner=inner: run_bounded(reading, inner, instead=INSTEAD))
        assert re.fullmatch(
            r"codec 'raw' has not returned from its constructor after \d+\.\d s: the codec "
            f"is stuck; {said}",
            str(info.value),
        ), info.value


def test_work_between_codec_calls_is_waited_for_past_the_bound(short_bound):
    """Only a codec call can be stuck, and one that raised is over: migcodec's own work is
    waited for however long it takes."""
    codec = RawCodec()

    def raises() -> None:
        codec_watch().calling(codec, "encode", int, "not a number")

    def takes_a_while() -> str:
        threading.Event().wait(3 * BOUND_S)
        return "done"

    with CodecThread(INSTEAD) as thread:
        with pytest.raises(ValueError):
            thread.run(raises)
        assert within(30, thread.run, takes_a_while) == "done"


def test_a_unit_within_a_unit_runs_on_the_outer_units_thread():
    inner = CodecThread("unused")

    def outer() -> tuple[threading.Thread, threading.Thread]:
        return threading.current_thread(), inner.run(threading.current_thread)

    outer_thread, inner_thread = run_bounded(outer, instead=INSTEAD)
    assert outer_thread is inner_thread is not threading.current_thread()


def test_an_interrupted_command_names_a_codec_left_running_while_it_was_built():
    """A thread left inside a codec's constructor knows the codec by its name only: the
    line an interrupted command ends with named it as a codec object, and failed."""

    class Building:
        memory = [np.zeros(1, dtype=np.uint8)]

        def memory_read(self):
            return self.memory

        def codecs_in_calls(self):
            return ["half-built"] if self.memory else []

    reader = Building()
    stuck.leave_running(reader)
    try:
        assert stuck.left_running_note() == (
            "; codec 'half-built' had not returned from a call: its library or device may have hung"
        )
    finally:
        reader.memory = []
        stuck.still_read(np.zeros(1, dtype=np.uint8))  # forgets the reader: its call returned
    assert stuck.left_running_note() == ""
