"""A :class:`~migcodec.selector.online.Selector` behind the migration engine's chooser.

The engine (``migcodec.engine``) asks ``choose(sample_batch) -> index`` once per window of
batches and calls ``report(index, stats)`` from its sender thread as each batch completes.
This adapter turns that into the selector's decide / add / finish cycle: a window's decision
is finished when the next window is chosen (or on :meth:`close`), with the batches reported
by then. The protocol is structural, so nothing here imports the engine (dependencies point
one way: engine uses selector).

What the destination holds for the sample's pages, which the changed-word feature and the
delta probes need, comes from the first delta arm's cache (a miss counts as a zero page).

Keeping that cache truthful costs the sender a copy of every page another codec sends
(``note_sent``), and on a guest that rewrites whole pages no delta ever pays for it: on a seq
guest at 1 Gbit/s the copies cost ``auto`` 0.9 µs of sender CPU per page, and with them
about 10 % of its throughput against fixed zstd. So the chooser asks for that teaching
(:attr:`SelectorChooser.wants_teaching`) only once a delta is worth having: when a delta arm
is chosen, or when its own record of a few pages (:class:`SampleHistory`) shows pages
dirtied again changing sparsely enough that a delta would at least halve them. Until then
the caches hold nothing, so nothing in them can go stale.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from migcodec.codecs import Batch, Codec, Measurements
from migcodec.codecs.delta_cache import DeltaCache
from migcodec.codecs.zero import zero_page_rows
from migcodec.selector.features import changed_words, delta_bytes, sample_rows
from migcodec.selector.online import Decision, Selector

#: a delta is worth the caches' upkeep once it would send at most this share of a page
#: (and no more than the best compressor sends)
WORTH_TEACHING = 0.5


class SampleHistory:
    """The chooser's own record of a fixed few guest pages, as they were when last seen,
    to tell whether pages dirtied again changed sparsely (a delta pays) or were rewritten.

    The pages are a fixed hashed subset of memory, ``pages`` of them (at most 1/16 of
    memory), so any window of pages dirtied again holds pages seen in an earlier pass, in
    proportion to its size. Watching them costs a hash of the window's page numbers and a
    copy of the window's subset pages, on the migration thread: 0.1 ms per 4096-page window
    of a 128 MiB guest (1/128 of its pages), 0.9 ms with 1024 pages watched.
    A subset page rewritten between being watched and being sent looks more changed than
    it was sent, which can only delay teaching: this history is never the base of a delta.
    """

    def __init__(self, pages: int = 256, evidence: int = 8) -> None:
        self.pages, self.evidence = pages, evidence
        self._store: DeltaCache | None = None
        self._cut = 0
        self._seen = 0  # subset pages seen again since the last verdict
        self._sent = 0.0  # delta bytes they would have cost

    def _subset(self, indices: np.ndarray) -> np.ndarray:
        """Which of ``indices`` are in the watched subset (Fibonacci hashing: a stride
        would alias with the guest's own layout)."""
        hashed = (indices.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32)
        return hashed < self._cut

    def watch(self, memory: np.ndarray, window: Sequence[Batch]) -> float | None:
        """The share of a page a delta would send, over the subset pages seen again since
        the last verdict, once there are ``evidence`` of them (else ``None``)."""
        n_pages, page_size = memory.shape
        if self._store is None:  # twice the slots: few watched pages evict each other
            self._store = DeltaCache(2 * self.pages * page_size, page_size)
            self._cut = int(min(1 / 16, self.pages / n_pages) * (1 << 32))
        indices = np.concatenate([batch.page_indices for batch in window])
        picked = indices[self._subset(indices)]
        if not picked.size:
            return None
        pages = memory[picked]
        slots, seen = self._store.lookup(picked)
        zero = zero_page_rows(pages)
        if zero is not None:  # a zero page is a marker for every arm, delta or not
            seen &= ~zero
        if seen.any():
            changed = changed_words(pages[seen], self._store.versions(slots[seen]))
            no_zero = np.zeros(changed.size, dtype=bool)
            self._sent += float(delta_bytes(changed, page_size, no_zero).sum())
            self._seen += changed.size
        self._store.store(picked, pages)
        if self._seen < self.evidence:
            return None
        share = self._sent / (self._seen * page_size)
        self._seen, self._sent = 0, 0.0
        return share


class SelectorChooser:
    """Adapts a :class:`Selector` to the engine's ``CodecChooser`` protocol."""

    def __init__(self, selector: Selector) -> None:
        self.selector = selector
        self.codecs: list[Codec] = selector.codecs
        self.rewards: list[float] = []
        self._lock = threading.Lock()
        self._open: Decision | None = None
        self._delta_arms = {i for i, c in enumerate(self.codecs) if c.kind == "delta"}
        self._compressing = np.array([c.kind not in ("delta", "raw") for c in self.codecs])
        #: whether delta caches must learn what other arms send (read by the engine's
        #: sender per batch); once set it stays set, since a cache that has sent a page
        #: must hear of every later version of it
        self.wants_teaching = False
        self._history = SampleHistory()

    def choose(self, window: Sequence[Batch]) -> int:
        with self._lock:
            self._finish_open()
            watch = bool(self._delta_arms) and not self.wants_teaching
            if self.selector.policy.needs == "none":
                self._open = self.selector.choose()
            else:
                memory, indices = self._sample(window)
                held = self._held(indices, memory.shape[1])
                self._open = self.selector.choose(memory[indices], held, sampled=True)
            if watch:
                share = self._history.watch(window[0].memory, window)
                worth = share is not None and share <= self._worth_teaching()
                self.wants_teaching = bool(worth or self._open.arm in self._delta_arms)
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

    def _worth_teaching(self) -> float:
        """The largest share of a page a delta may send and still be worth its caches:
        half a page, and no more than the best compressing arm has been sending (a seq
        page rewritten with other numbers keeps a third of its words, which zstd beats
        by far)."""
        recent = self.selector.recent_ratio[self._compressing]
        best = np.nanmax(recent) if np.isfinite(recent).any() else 1.0
        return min(WORTH_TEACHING, 1.0 / best)

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
