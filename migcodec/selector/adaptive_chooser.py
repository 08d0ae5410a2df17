"""The adaptive chooser: a :class:`~migcodec.selector.online.Selector` behind the migration
engine's chooser protocol (:class:`migcodec.engine.chooser.CodecChooser`).

The engine (``migcodec.engine``) asks ``choose(sample_batch) -> index`` once per window of
batches and calls ``report(index, stats)`` from its sender thread as each batch completes.
This adapter turns that into the selector's decide / add / finish cycle: a window's decision
is finished when the next window is chosen (or on :meth:`close`), with the batches reported
by then. The protocol is structural, so nothing here imports the engine (dependencies point
one way: engine uses selector).

What the destination holds for the sample's pages, which the changed-word feature and the
delta probes need, comes from the stream's destination mirror (a page it does not know counts
as a zero page).

Recording every page other codecs send in that mirror costs a copy per page, and on a guest
that rewrites whole pages no delta ever pays for it. So the chooser asks for that recording
(:attr:`SelectorChooser.wants_teaching`) only once a delta is worth having: when a delta arm
is chosen, or when its own record of a few pages (:class:`SampleHistory`) shows pages
dirtied again changing sparsely enough that a delta would send less than the best
compressing arm does. Until then the mirror only forgets what other codecs overwrite.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence

import numpy as np

from migcodec.codecs import Batch, Codec, CodecKind, DestinationMirror, Measurements
from migcodec.codecs.batch import expand_runs, run_pages_at
from migcodec.codecs.zero import zero_page_rows
from migcodec.selector.arms import DEFAULT_ARMS, DELTA_ARMS, parse_arms
from migcodec.selector.features import WindowFeatures, changed_words, delta_bytes, sample_rows
from migcodec.selector.objectives import make_objective
from migcodec.selector.online import Decision, Selector
from migcodec.selector.policies import parse_policy

#: ``--codec auto``'s arms: every CPU codec and delta codec an installation has (the
#: ``auto`` policy buys probes only where they pay, so an arm that rarely wins costs little)
AUTO_ARMS = ";".join(DEFAULT_ARMS + DELTA_ARMS)
#: what ``--codec auto`` runs: the ``auto`` policy with its defaults
AUTO_POLICY = "auto"
#: bytes/s an unlimited link is modelled as: 100 Gbit/s, a link no pipeline here can fill
UNLIMITED_LINK = 12.5e9


def auto_chooser(
    link_rate: float | None, workers: float, arms: str = AUTO_ARMS, policy: str = AUTO_POLICY
) -> SelectorChooser:
    """The chooser behind ``--codec auto``: the ``auto`` policy over ``arms``, maximising
    migration throughput at ``link_rate`` bytes/s (``None``: unlimited, modelled as a link
    no pipeline here can fill, :data:`UNLIMITED_LINK`) with ``workers`` encoders.
    ``policy``, another specification (``auto:balance=1``), runs that configuration under
    its own label (``benchmarks/auto_pairs.py`` compares two in migrations)."""
    # wall time: a migration's encoders share the host with the guest and the stream's own
    # threads, and what a batch costs the migration is how long its engine was busy, which
    # thread CPU time does not see (a CPU-heavy codec looks as cheap on a crowded host as
    # on an idle one)
    objective = make_objective(
        "throughput", link=link_rate or UNLIMITED_LINK, workers=workers, clock="wall"
    )
    selected = parse_policy(policy)
    selector = Selector(selected, parse_arms(arms), objective)
    return SelectorChooser(selector, label=selected.label)


#: the fewest batches of an arm's window whose framing times say how long the stream took
#: for it (:meth:`SelectorChooser.report`): the span of fewer is mostly one batch's jitter
PACED_BATCHES = 8
#: what a batch's report is timed with (a module attribute, so that a test can set the time)
_clock = time.perf_counter

#: a delta is worth the caches' upkeep once it would send at most this share of what the
#: best compressing arm sends: a margin for the copies teaching costs the sender
WORTH_TEACHING = 0.8


class SampleHistory:
    """The chooser's own record of a fixed few guest pages, as they were when last seen,
    to tell whether pages dirtied again changed sparsely (a delta pays) or were rewritten.

    Memory is cut into ``pages`` blocks (of at least 16 pages) and one page per block is
    watched, at a position in its block drawn by hashing the block number (a fixed stride
    would alias with the guest's own layout). So any window of pages dirtied again holds
    pages seen in an earlier pass, in proportion to its size, and each watched page has a
    row of its own: none evicts another. Watching costs a few vector operations over the
    window's page numbers and a copy of its watched pages, on the migration thread.

    A watched page rewritten between being watched and being sent looks more changed than
    it was sent, which can only delay teaching: this history is never the base of a delta.
    """

    def __init__(self, pages: int = 256, evidence: int = 8) -> None:
        self.pages, self.evidence = pages, evidence
        self._versions: np.ndarray | None = None  # one row per block
        self._known: np.ndarray | None = None
        self._block = 16
        self._watched_page = np.zeros(0, dtype=np.int64)
        self._seen = 0  # watched pages seen again since the last verdict
        self._sent = 0.0  # bytes a delta would have sent for them

    @property
    def known(self) -> int:
        """How many watched pages have a recorded version."""
        return 0 if self._known is None else int(np.count_nonzero(self._known))

    def _watched_in(self, runs: np.ndarray) -> np.ndarray:
        """The watched pages among the pages ``runs`` name, in their order: one candidate
        per block a run touches (the table of watched pages is built once), not a test of
        each of the window's pages, which expanding its runs into thousands of page
        numbers on every window took first."""
        first, count = runs[:, 0], runs[:, 1]
        block = self._block
        low = first // block
        spans = (first + count - 1) // block - low + 1
        end = first + count
        if spans.max() > 1:  # runs over several blocks: a candidate for each
            first, end = np.repeat(first, spans), np.repeat(end, spans)
            low = expand_runs(np.column_stack((low, spans)))
        candidates = self._watched_page[low]
        return candidates[(candidates >= first) & (candidates < end)]

    def watch(self, memory: np.ndarray, runs: np.ndarray) -> float | None:
        """The share of their bytes a delta would send for the watched pages seen again
        since the last verdict (a zero page costs its marker, as with every arm), once
        there are ``evidence`` of them; else ``None``. ``runs``: the window's runs of
        pages (:func:`window_runs`)."""
        n_pages, page_size = memory.shape
        if self._versions is None:
            self._block = block = max(16, -(-n_pages // self.pages))
            rows = -(-n_pages // block)
            self._versions = np.zeros((rows, page_size), dtype=np.uint8)
            self._known = np.zeros(rows, dtype=bool)
            # each block's watched page, at a position in the block drawn by hashing the
            # block number (a block cut short by the end of memory may watch none)
            number = np.arange(rows, dtype=np.uint64)
            spot = ((number * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)) % np.uint64(block)
            self._watched_page = (number * np.uint64(block) + spot).astype(np.int64)
        picked = self._watched_in(runs)
        if not picked.size:
            return None
        rows = picked // self._block
        pages = memory[picked]
        seen = self._known[rows]
        if seen.any():
            now = pages[seen]
            changed = changed_words(now, self._versions[rows[seen]])
            zero = zero_page_rows(now)
            zero = np.zeros(changed.size, dtype=bool) if zero is None else zero
            self._sent += float(delta_bytes(changed, page_size, zero).sum())
            self._seen += changed.size
        self._versions[rows] = pages
        self._known[rows] = True
        if self._seen < self.evidence:
            return None
        share = self._sent / (self._seen * page_size)
        self._seen, self._sent = 0, 0.0
        return share


def _batches_split(
    window: Sequence[Batch], split: tuple[int, float] | None
) -> tuple[int, int] | None:
    """A policy's split of a window by pages, ``(rest, pages)``, as the engine takes it:
    ``(rest, k)``, the first ``k`` batches holding at least ``pages`` pages (``None``
    when that is the whole window)."""
    if split is None:
        return None
    rest, pages = split
    held = 0
    for k, batch in enumerate(window, 1):
        held += batch.n_pages
        if held >= pages:
            return (rest, k) if k < len(window) else None
    return None


def window_runs(window: Sequence[Batch]) -> np.ndarray:
    """The runs of pages of a window's batches, in order, as one ``(n, 2)`` array: what
    its sample and its watched pages are found in, without expanding its pages."""
    return np.concatenate([batch.runs for batch in window])


class SelectorChooser:
    """Adapts a :class:`Selector` to the engine's ``CodecChooser`` protocol."""

    def __init__(self, selector: Selector, label: str = "auto") -> None:
        self.selector = selector
        # features are read here on the engine's migration thread, between refills of
        # the encoders' request pool: a read holds the stream up for its whole time
        selector.policy.reads_stall_encoders = True
        self.label = label
        self.codecs: list[Codec] = selector.codecs
        self.rewards: list[float] = []
        self._lock = threading.Lock()
        self._reports: deque[tuple[int, Measurements, float]] = deque()
        self._prepared: tuple[Sequence[Batch], tuple] | None = None
        self._open: Decision | None = None
        self._destination: DestinationMirror | None = None
        # arms that encode against the destination
        self._tracking_arms = {i for i, c in enumerate(self.codecs) if c.reads_destination}
        self._compressing = np.array(
            [c.kind not in (CodecKind.DELTA, CodecKind.RAW) for c in self.codecs]
        )
        #: whether delta caches must learn what other arms send (read by the engine's
        #: sender per batch); once set it stays set, since a cache that has sent a page
        #: must hear of every later version of it
        self.wants_teaching = False
        #: after a choice, ``(rest, k)`` when only the window's first ``k`` batches play the
        #: arm chosen and the others arm ``rest`` (a trial, see ``Policy.split``), else None
        self.split: tuple[int, int] | None = None
        self._history = SampleHistory()

    def start_stream(self, destination: DestinationMirror | None) -> None:
        """A new stream to a new destination: what it holds is read from ``destination``."""
        with self._lock:
            self._destination = destination

    def prepare(self, window: Sequence[Batch]) -> None:
        """Read what choosing ``window`` needs (its sample's features, the history's record
        of its watched pages) ahead of the choice. The engine calls this while its request
        pool is full, so that the choice, between two windows, is the decision alone and
        leaves the encoders and the link nothing to wait for; the features are then read
        before the previous window's outcome is learnt, which only the decision needs."""
        with self._lock:
            self._prepared = (window, self._read(window))

    def choose(self, window: Sequence[Batch]) -> int:
        with self._lock:
            self._finish_open()
            prepared, self._prepared = self._prepared, None
            if prepared is not None and prepared[0] is window:
                features, share, watched = prepared[1]
            else:
                features, share, watched = self._read(window)
            self._open = self.selector.choose(features=features)
            self.split = _batches_split(window, self._open.split)
            if watched:
                worth = share is not None and share <= self._worth_teaching()
                self.wants_teaching = bool(worth or self._open.arm in self._tracking_arms)
            return self._open.arm

    def _read(self, window: Sequence[Batch]) -> tuple[WindowFeatures | None, float | None, bool]:
        """The window's features (``None`` when the policy plays it without them), the
        history's verdict on its watched pages, and whether the history watched it."""
        watch = bool(self._tracking_arms) and not self.wants_teaching
        policy = self.selector.policy
        total = sum(batch.n_pages for batch in window)
        read = policy.needs != "none" and policy.wants_features(float(total))
        if not (watch or read):
            return None, None, False  # no sample read: nothing to pay for
        memory, runs = window[0].memory, window_runs(window)
        features = self._features(memory, runs, total) if read else None
        share = self._history.watch(memory, runs) if watch else None
        return features, share, watch

    def _features(self, memory: np.ndarray, runs: np.ndarray, total: int) -> WindowFeatures:
        """The features of a sample of the ``total`` pages ``runs`` name, charged with what
        gathering the sample and looking up the destination's versions cost (work the
        engine does only for the features, on the thread that feeds the encoders)."""
        t0 = time.thread_time()
        indices = self._sample(runs, total)
        hit, held = self._held(indices, memory.shape[1])
        sample = memory[indices]
        return self.selector.features(
            sample,
            held,
            sampled=True,
            window_pages=total,
            held=hit,
            gather_s=time.thread_time() - t0,
        )

    def _sample(self, runs: np.ndarray, total: int) -> np.ndarray:
        """The page numbers of the window's sample (spread over the whole window, as the
        offline evaluation samples a window) among the ``total`` pages ``runs`` name."""
        size = self.selector.extractor.sample_size(total)
        return run_pages_at(runs, sample_rows(total, size))

    def _worth_teaching(self) -> float:
        """The largest share of a page a delta may send and still be worth its caches:
        ``WORTH_TEACHING`` of what the best compressing arm has been sending, or of a raw
        page before any has been played. Against the ratio, not a fixed share: on a guest
        rewriting whole pages, watched pages rewritten after the dirty log was read come
        round unchanged since they were sent, so a window's delta share can look small
        while a compressor still beats it by far."""
        recent = self.selector.recent_ratio[self._compressing]
        best = max(float(np.nanmax(recent)), 1.0) if np.isfinite(recent).any() else 1.0
        return WORTH_TEACHING / best

    def report(self, index: int, stats: Measurements) -> None:
        """Count a batch the engine's sender framed (in stream order), timed: the span
        of a window's batches going out is the stream's time for them, which its policy
        learns from beside what the encoders measured (``Policy.learn_elapsed``)."""
        # no lock: the engine's sender calls this per batch, and it must never wait for a
        # choice (reading a window's features takes milliseconds, and a sender that waits
        # leaves the link idle); a deque's append is atomic, and the next choice counts
        # what was reported by then
        self._reports.append((index, stats, _clock()))

    def close(self) -> None:
        """Finish the last window (call when the migration ends)."""
        with self._lock:
            self._finish_open()

    def _finish_open(self) -> None:
        """Count the batches reported so far towards the open decision and finish it."""
        reports, decision = self._reports, self._open
        first = last = 0.0
        counted = 0
        while reports:
            index, stats, at = reports.popleft()
            if decision is not None and decision.arm == index:
                decision.add(stats)
                if not counted:
                    first = at
                last = at
                counted += 1
        if decision is not None and decision.input_bytes:
            if counted >= PACED_BATCHES:
                # n batches framed over n - 1 intervals: each batch took one of them
                decision.elapsed_s = (last - first) * counted / (counted - 1)
            self.rewards.append(self.selector.finish(decision))
        self._open = None

    def _held(
        self, indices: np.ndarray, page_size: int
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Which sampled pages the destination is known to hold, and their versions (zeros
        where unknown); ``(None, None)`` when no arm reads the destination."""
        if not self._tracking_arms:
            return None, None
        if self._destination is None:  # nothing sent yet: the destination holds none of them
            return np.zeros(indices.size, bool), np.zeros((indices.size, page_size), np.uint8)
        return self._destination.held(indices)
