"""A guest's writer is bounded by its memory, and its failure ends a migration clearly."""

from __future__ import annotations

import time

import numpy as np
import pytest

from migcodec.engine.guest import GuestError, make_guest


def test_a_rate_beyond_what_memory_holds_rewrites_it_each_tick_and_no_more():
    memory = np.zeros((16, 4096), np.uint8)
    guest = make_guest(memory, 1e30, "text", fill=False)  # 1e30 bytes/s: a typo's rate
    asked: list[int] = []  # pages each tick asks for (a page picked twice counts twice)
    real = guest._pick
    guest._pick = lambda k: (asked.append(k), real(k))[1]
    guest.start()
    time.sleep(0.1)
    guest.pause()
    guest.stop()
    assert guest.failure is None and asked
    assert max(asked) <= 16  # at most every page's worth per tick, not 1e30 bytes' worth


def test_a_failed_writer_is_reported_by_pause_not_printed_by_its_thread():
    memory = np.zeros((16, 4096), np.uint8)
    guest = make_guest(memory, 1e9, "text", fill=False)

    def broken(pages):
        raise MemoryError("no room for the pages")

    guest._write = broken
    guest.start()
    deadline = time.monotonic() + 5
    while guest.failure is None and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(
        GuestError, match="the guest's writer failed: MemoryError: no room for the pages"
    ):
        guest.pause()
    guest.stop()
