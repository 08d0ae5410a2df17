"""A guest that dirties its memory at a set rate, as the migration runs.

Contents come from a pool of pre-generated pages of the chosen guest (``memcached``,
``seq``, ``ones``...), written with numpy fancy assignment so that a Python thread can
sustain high dirty rates. Each write stamps a counter into the page so rewritten pages
differ, and the fill stamps each page's number into it so that no two pages are alike;
except a ``zero`` guest's: its pages stay zero pages (memory a guest has freed and
zeroed), which is what that guest stands for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from migcodec.datasets import generate_pages
from migcodec.datasets.workload import PATTERNS, WRITE_STYLES
from migcodec.engine.dirty import DirtyLog

#: ``progress(pages_filled, total_pages)`` while a guest's memory is filled
FillProgress = Callable[[int, int], None]
#: pages filled between two progress calls (64 MiB of 4 KiB pages)
FILL_CHUNK_PAGES = 16384


class GuestError(RuntimeError):
    """The guest's writer failed or could not be paused; the migration cannot go on."""


class GuestWorkload:
    """Dirties ``memory`` at ``rate`` bytes/s in ticks, marking the dirty log after writing.

    Writing before marking is what keeps pre-copy correct: a page collected between the
    two is marked again and resent. ``pause()`` returns only once the guest is stopped at
    a tick boundary (stop-and-copy needs a quiet guest).
    """

    def __init__(
        self,
        memory: np.ndarray,
        dirty: DirtyLog,
        rate: float,
        content: str = "memcached",
        pattern: str = "uniform",
        style: str = "whole",
        seed: int = 0,
        tick_s: float = 0.005,
        hot_fraction: float = 0.1,
    ) -> None:
        if pattern not in PATTERNS or style not in WRITE_STYLES:
            raise ValueError(f"pattern must be one of {PATTERNS}, style one of {WRITE_STYLES}")
        self.memory = memory
        self.content = content
        self.dirty = dirty
        self.rate = rate
        self.pattern = pattern
        self.style = style
        self.tick_s = tick_s
        self.hot_pages = max(1, int(memory.shape[0] * hot_fraction))
        self._rng = np.random.default_rng(seed)
        # the pages writes and fills copy from: made now, outside the migration's clock,
        # unless nothing will be written (a memory image kept as it is, by a still guest)
        self._pool_args = (content, min(memory.shape[0], 1024), seed + 1)
        self._pool = generate_pages(*self._pool_args) if rate > 0 else None
        self._sweep_at = 0
        self._stamp = 0
        self._stamped = content != "zero"  # see the module's docstring
        self.bytes_dirtied = 0
        self.active_s = 0.0
        self.failure: BaseException | None = None  # what ended the writer, if anything
        self._run = threading.Event()
        self._paused = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="migcodec-guest", daemon=True)

    def fill(self, progress: FillProgress | None = None) -> None:
        """Give every page initial contents (the guest's memory before migration).

        Filling touches every page, which takes seconds for gigabytes, so it goes in chunks
        of :data:`FILL_CHUNK_PAGES` and calls ``progress(pages_filled, total)`` after each;
        the contents do not depend on the chunking.
        """
        n = self.memory.shape[0]
        if self._pool is None:
            self._pool = generate_pages(*self._pool_args)
        picks = self._rng.integers(0, self._pool.shape[0], n)
        stamps = np.arange(n, dtype="<u8").view(np.uint8).reshape(n, 8)
        for first in range(0, n, FILL_CHUNK_PAGES):
            last = min(n, first + FILL_CHUNK_PAGES)
            # straight into memory: fancy indexing would build a temporary of the chunk first
            np.take(self._pool, picks[first:last], axis=0, out=self.memory[first:last], mode="clip")
            if self._stamped:
                self.memory[first:last, :8] = stamps[first:last]
            if progress is not None:
                progress(last, n)

    def start(self) -> None:
        self._run.set()
        if self.rate > 0:
            self._thread.start()

    def pause(self, timeout: float = 5.0) -> None:
        """Stop the guest at a tick boundary. Raises :class:`GuestError` when its writer
        failed or does not stop within ``timeout`` seconds (a tick that takes longer)."""
        self._raise_failure()
        if not self._thread.is_alive():
            return
        self._run.clear()
        if not self._paused.wait(timeout):
            self._raise_failure()
            raise GuestError(
                f"the guest did not pause within {timeout:g} s (one tick of its writes took "
                "longer); dirty memory at a lower rate"
            )

    def _raise_failure(self) -> None:
        if self.failure is not None:
            raise GuestError(
                f"the guest's writer failed: {type(self.failure).__name__}: {self.failure}"
            ) from self.failure

    def stop(self) -> None:
        self._stop.set()
        self._run.set()
        if self._thread.is_alive():
            self._thread.join()

    def _pick(self, k: int) -> np.ndarray:
        n = self.memory.shape[0]
        if self.pattern == "uniform":
            return np.unique(self._rng.integers(0, n, k))
        if self.pattern == "hotset":
            return np.unique(self._rng.integers(0, min(n, self.hot_pages), k))
        pages = (self._sweep_at + np.arange(min(k, n))) % n
        self._sweep_at = int(pages[-1] + 1) % n
        return np.sort(pages)

    def _write(self, pages: np.ndarray) -> None:
        k = pages.shape[0]
        self._stamp += 1
        if self.style == "whole":
            self.memory[pages] = self._pool[self._rng.integers(0, self._pool.shape[0], k)]
            if self._stamped:
                self.memory[pages, :8] = np.uint8(self._stamp & 0xFF)
        else:  # a few 8-byte words per page: counters, pointers, timestamps
            words = self.memory.view(np.uint64)
            cols = self._rng.integers(0, words.shape[1], (k, 8))
            words[pages[:, None], cols] += np.uint64(self._stamp)

    def _loop(self) -> None:
        try:
            self._dirty_until_stopped()
        except BaseException as exc:  # kept for pause() and the report, not printed
            self.failure = exc
            self._paused.set()  # nothing writes any more: a pause need not wait

    def _dirty_until_stopped(self) -> None:
        budget = 0.0
        last = time.perf_counter()
        n_pages, page_size = self.memory.shape
        # a tick writes at most every page once: a rate beyond what the memory holds per
        # tick rewrites all of it each tick, and the rest is not carried over (it would
        # grow without bound, and the pages written with it)
        most = n_pages * page_size
        while not self._stop.is_set():
            if not self._run.is_set():
                self._paused.set()
                self._run.wait()
                self._paused.clear()
                last = time.perf_counter()
                continue
            time.sleep(self.tick_s)
            now = time.perf_counter()
            budget = min(budget + (now - last) * self.rate, most)
            self.active_s += now - last
            last = now
            k = int(budget // page_size)
            if k <= 0:
                continue
            budget -= k * page_size
            pages = self._pick(k)
            self._write(pages)
            self.dirty.mark(pages)
            self.bytes_dirtied += pages.shape[0] * page_size


def make_guest(
    memory: np.ndarray,
    dirty_rate: float,
    content: str = "memcached",
    pattern: str = "uniform",
    style: str = "whole",
    seed: int = 0,
    fill: bool = True,
    fill_progress: FillProgress | None = None,
) -> GuestWorkload:
    """A guest over ``memory`` with a dirty log of its own (``guest.dirty``).

    ``fill=False`` keeps what the memory already holds, so a real memory image migrates as
    it is rather than as generated pages; the guest still dirties it with ``content``.
    ``fill_progress`` follows the fill (see :meth:`GuestWorkload.fill`).
    """
    guest = GuestWorkload(
        memory, DirtyLog(memory.shape[0]), dirty_rate, content, pattern, style, seed
    )
    if fill:
        guest.fill(fill_progress)
    return guest
