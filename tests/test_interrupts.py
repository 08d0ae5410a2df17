"""A teardown under ``interrupts_held`` runs to its end whatever signals arrive."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from migcodec.interrupts import Terminated, interrupts_held, raise_terminated


@pytest.mark.parametrize(
    ("sig", "raised"), [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)]
)
def test_a_signal_during_the_block_is_raised_after_it_ends(sig, raised):
    """Each step of the block runs although the signal came at its start: unwound there,
    a migration left its threads on memory its caller then unmapped (a segfault)."""
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    steps = []
    try:
        with pytest.raises(raised), interrupts_held():
            os.kill(os.getpid(), sig)
            os.kill(os.getpid(), sig)  # and a second one, as a shell's group kill sends
            time.sleep(0.05)  # a handler would have run by now
            steps.append("stopped the threads")
        assert steps == ["stopped the threads"]
        assert signal.getsignal(sig) is not None and callable(signal.getsignal(sig))
        assert signal.getsignal(signal.SIGTERM) is raise_terminated  # restored
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_block_without_a_signal_raises_nothing_and_restores_the_handlers():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with interrupts_held():
        pass
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_off_the_main_thread_the_block_runs_as_it_is():
    """Only the main thread may change signal handlers (and only it receives signals)."""
    ran = []

    def work():
        with interrupts_held():
            ran.append(True)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert ran == [True]


def test_a_held_signal_whose_action_is_the_default_still_takes_it():
    """A library's caller that set no SIGTERM handler: held, the signal must still end the
    process after the block, not be dropped."""
    code = (
        "import os, signal\n"
        "from migcodec.interrupts import interrupts_held\n"
        "signal.signal(signal.SIGTERM, signal.SIG_DFL)\n"
        "with interrupts_held():\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    print('block ran', flush=True)\n"
        "print('not reached', flush=True)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (run.returncode, run.stdout) == (-signal.SIGTERM, "block ran\n")
