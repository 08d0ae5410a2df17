"""What the migration thread tells a progress display, and how rarely.

A display (a terminal bar, a log line) must never slow the migration thread: the ticker
costs one clock read per batch, calls the display at most every ``interval_s`` within an
iteration, and once at the end of each iteration (so at most ``max_iterations + 1`` extra
calls over a whole migration, however short its last iterations are).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from migcodec.engine.dirty import DirtyLog

PROGRESS_INTERVAL_S = 0.1


@dataclass(frozen=True)
class MigrationProgress:
    """Where a migration stands; rates are over the current iteration so far."""

    iteration: int
    iteration_pages: int  # pages this iteration sends
    pages_sent: int  # of those, handed to the codecs so far
    dirty_pages_left: int  # not yet sent in this iteration, plus dirtied again since
    rate: float  # guest bytes/s
    wire_rate: float  # bytes/s on the link
    stop_and_copy: bool = False
    iteration_done: bool = False


ProgressCallback = Callable[[MigrationProgress], None]


class ProgressTicker:
    """Turns per-batch counts into rare :class:`MigrationProgress` calls."""

    def __init__(
        self,
        progress: ProgressCallback | None,
        page_size: int,
        dirty: DirtyLog,
        wire_bytes: Callable[[], int],
        interval_s: float = PROGRESS_INTERVAL_S,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.progress = progress
        self.page_size = page_size
        self.dirty = dirty
        self.wire_bytes = wire_bytes
        self.interval_s = interval_s
        self.clock = clock
        self._iteration = 0
        self._pages = 0
        self._sent = 0
        self._stop_and_copy = False
        self._started = self._last = 0.0
        self._wire0 = 0

    def begin(self, iteration: int, n_pages: int, stop_and_copy: bool = False) -> None:
        if self.progress is None:
            return
        self._iteration, self._pages, self._sent = iteration, n_pages, 0
        self._stop_and_copy = stop_and_copy
        self._started = self._last = self.clock()
        self._wire0 = self.wire_bytes()

    def batch(self, n_pages: int) -> None:
        """A batch was submitted: report if the last report is ``interval_s`` old."""
        if self.progress is None:
            return
        self._sent += n_pages
        now = self.clock()
        if now - self._last >= self.interval_s:
            self._emit(now, done=False)

    def end(self, sent: int | None = None) -> None:
        """The iteration ended, having sent ``sent`` pages where that is not every page
        submitted (a stream that stopped midway)."""
        if self.progress is not None:
            if sent is not None:
                self._sent = sent
            self._emit(self.clock(), done=True)

    def _emit(self, now: float, done: bool) -> None:
        self._last = now
        elapsed = max(now - self._started, 1e-6)
        self.progress(
            MigrationProgress(
                iteration=self._iteration,
                iteration_pages=self._pages,
                pages_sent=self._sent,
                dirty_pages_left=self._pages - self._sent + self.dirty.count(),
                rate=self._sent * self.page_size / elapsed,
                wire_rate=(self.wire_bytes() - self._wire0) / elapsed,
                stop_and_copy=self._stop_and_copy,
                iteration_done=done,
            )
        )
