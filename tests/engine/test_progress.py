"""The progress ticker: rare calls to the display, whatever the batch rate."""

import numpy as np

from migcodec.engine import DirtyLog
from migcodec.engine.progress import ProgressTicker


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_ticks_are_throttled_within_an_iteration_and_every_iteration_end_is_reported():
    dirty = DirtyLog(1000)
    dirty.mark(np.arange(10))
    wire = {"bytes": 0}
    clock = _Clock()
    calls = []
    ticker = ProgressTicker(calls.append, 4096, dirty, lambda: wire["bytes"], 0.1, clock)
    ticker.begin(0, 640)
    for _ in range(5):  # five batches within 50 ms: no call
        clock.now += 0.01
        wire["bytes"] += 64 * 2048
        ticker.batch(64)
    assert calls == []
    clock.now += 0.05  # 100 ms since the iteration began
    ticker.batch(64)
    assert len(calls) == 1
    p = calls[0]
    assert (p.iteration, p.iteration_pages, p.pages_sent) == (0, 640, 6 * 64)
    assert p.dirty_pages_left == 640 - 6 * 64 + 10
    assert np.isclose(p.rate, 6 * 64 * 4096 / 0.1)
    assert np.isclose(p.wire_rate, 5 * 64 * 2048 / 0.1)
    assert not p.iteration_done
    ticker.batch(64)  # no time passed since the last call
    assert len(calls) == 1
    ticker.end()  # an iteration end is always reported
    assert len(calls) == 2 and calls[-1].iteration_done and calls[-1].pages_sent == 7 * 64
    ticker.begin(1, 10, stop_and_copy=True)
    ticker.end()
    assert calls[-1].iteration == 1 and calls[-1].stop_and_copy


def test_without_a_display_the_ticker_never_reads_the_clock():
    def clock():
        raise AssertionError("clock read with no display")

    ticker = ProgressTicker(None, 4096, DirtyLog(8), lambda: 0, 0.1, clock)
    ticker.begin(0, 8)
    ticker.batch(8)
    ticker.end()
