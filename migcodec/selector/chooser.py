"""A :class:`~migcodec.selector.online.Selector` behind the migration engine's chooser.

The engine (``migcodec.engine``) asks ``choose(sample_batch) -> index`` once per window of
batches and calls ``report(index, stats)`` from its sender thread as each batch completes.
This adapter turns that into the selector's decide / add / finish cycle: a window's decision
is finished when the next window is chosen (or on :meth:`close`), with the batches reported
by then. The protocol is structural, so nothing here imports the engine (dependencies point
one way: engine uses selector).

What the destination holds for the sample's pages, which the changed-word feature and the
delta probes need, comes from the first delta arm's cache (a miss counts as a zero page).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from migcodec.codecs import Batch, Codec, Measurements
from migcodec.selector.features import sample_rows
from migcodec.selector.online import Decision, Selector


class SelectorChooser:
    """Adapts a :class:`Selector` to the engine's ``CodecChooser`` protocol."""

    def __init__(self, selector: Selector) -> None:
        self.selector = selector
        self.codecs: list[Codec] = selector.codecs
        self.rewards: list[float] = []
        self._lock = threading.Lock()
        self._open: Decision | None = None

    def choose(self, window: Sequence[Batch]) -> int:
        with self._lock:
            self._finish_open()
            if self.selector.policy.needs == "none":
                self._open = self.selector.choose()
            else:
                memory, indices = self._sample(window)
                self._open = self.selector.choose(
                    memory[indices], self._held(indices, memory.shape[1]), sampled=True
                )
            return self._open.arm

    def _sample(self, window: Sequence[Batch]) -> tuple[np.ndarray, np.ndarray]:
        """Guest page numbers of the window's sample, spread over the whole window as the
        offline evaluation samples a window: a sample from the first batch alone (one page
        of it at 1/64) predicts a window's ratio and speed from a few KiB."""
        counts = [batch.n_pages for batch in window]
        extractor = self.selector.extractor
        size = extractor.sample_size(sum(counts))
        rows = sample_rows(sum(counts), size, min(4, size))
        ends = np.cumsum(counts)
        which = np.searchsorted(ends, rows, side="right")  # batch of each sampled row
        indices = np.empty(rows.size, dtype=np.int64)
        for b in np.unique(which):  # a few batches per window, not a loop per page
            picked = which == b
            start = ends[b] - counts[b]
            indices[picked] = window[b].page_indices[rows[picked] - start]
        return window[0].memory, indices

    def report(self, index: int, stats: Measurements) -> None:
        with self._lock:
            if self._open is not None and self._open.arm == index:
                self._open.add(stats)

    def close(self) -> None:
        """Finish the last window (call when the migration ends)."""
        with self._lock:
            self._finish_open()

    def _finish_open(self) -> None:
        if self._open is not None and self._open.input_bytes:
            self.rewards.append(self.selector.finish(self._open))
        self._open = None

    def _held(self, indices: np.ndarray, page_size: int) -> np.ndarray | None:
        for codec in self.codecs:
            if codec.kind != "delta":
                continue
            held = np.zeros((indices.size, page_size), dtype=np.uint8)
            cache = getattr(codec, "cache", None)
            if cache is None:  # nothing sent yet: the destination holds none of these pages
                return held
            with cache.lock:
                slots, hit = cache.lookup(indices)
                if hit.any():
                    held[hit] = cache.versions(slots[hit])
            return held
        return None
