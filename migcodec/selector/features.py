"""Per-window features: cheap, vectorised summaries of a sample of the window's pages.

Context-free bandits reach only about 0.4-0.75 of the per-window oracle on real memory
(DESIGN.md): the best codec changes too often to be learnt from past rewards alone. A
selector near the oracle has to *predict* each arm's outcome from the window itself, so two
kinds of feature are computed here, and their cost is measured separately because a policy
must pay for what it reads:

- **cheap** (a few tens of microseconds): zero-page fraction, byte-histogram entropy,
  fraction of 8-byte words changed against what the destination holds (the delta cache);
- **probes**: every compressing arm encodes the same small sample of pages (a few runs of
  consecutive pages) and gives a ratio and a rate; a delta arm's size follows from the
  per-page changed-word counts, because a delta record costs a fixed number of bytes per
  changed word (DSA: 10; XBZRLE about as much for scattered words).

Everything is computed on the sample with numpy; no Python loop runs per page or byte.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from migcodec.codecs import Batch, DestinationMirror
from migcodec.codecs.base import RUN_BYTES as _RUN_BYTES
from migcodec.codecs.zero import zero_page_rows

#: names of the entries of :attr:`WindowFeatures.context`, in order
CONTEXT_NAMES = ("bias", "zero_frac", "entropy", "changed_frac", "delta_known")
#: bytes a delta record spends per changed 8-byte word (DSA delta record entry)
DELTA_BYTES_PER_WORD = 10


@dataclass(slots=True)
class WindowFeatures:
    """Features of one window.

    ``context`` is the fixed vector ``CONTEXT_NAMES`` (entropy scaled to 0..1).
    ``predicted_ratio`` / ``predicted_rate`` are per-arm estimates from probes (guest bytes
    per output byte, guest bytes per second of one worker); ``nan`` where an arm was not
    probed. ``cheap_s`` and ``probe_s`` (per arm) are the CPU seconds the features cost.
    """

    context: np.ndarray
    predicted_ratio: np.ndarray | None = None
    predicted_rate: np.ndarray | None = None
    cheap_s: float = 0.0
    probe_s: np.ndarray | None = None

    def cost_s(self, level: str) -> float:
        """Seconds a policy reading ``level`` features (none, cheap, probe) is charged:
        the cheap features, plus every probe that was actually computed or revealed."""
        if level == "none":
            return 0.0
        if level == "cheap" or self.probe_s is None:
            return self.cheap_s
        return self.cheap_s + float(self.probe_s.sum())

    def cheap(self) -> WindowFeatures:
        """The same window with the probes hidden (what a policy sees before asking)."""
        return WindowFeatures(self.context, cheap_s=self.cheap_s)

    def masked(self, mask: np.ndarray | None) -> WindowFeatures:
        """The same window revealing only the probes of arms in ``mask`` (replaying a
        table that holds every probe: a policy sees, and pays for, what it asked for)."""
        if mask is None or self.predicted_ratio is None:
            return self.cheap()
        return WindowFeatures(
            self.context,
            np.where(mask, self.predicted_ratio, np.nan),
            np.where(mask, self.predicted_rate, np.nan),
            self.cheap_s,
            np.where(mask, self.probe_s, 0.0),
        )


def _timed_encode(codec, pages: np.ndarray, destination=None) -> tuple:
    """Encode ``pages`` as one batch; return its measurements and the CPU time of this call.

    Timed here because ``stats.cpu_s`` is sampled (one encode in several reads the clock,
    see ``Codec.encode``), and a probe is one call whose cost must be measured, not
    estimated from another call's.
    """
    m, page_size = pages.shape
    batch = Batch(pages, [(0, m)], page_size, m)
    cpu0 = time.thread_time()
    stats = codec.encode(batch, destination=destination).stats
    return stats, time.thread_time() - cpu0


@functools.lru_cache(maxsize=64)
def sample_rows(n_pages: int, sample_pages: int, run: int = 4) -> np.ndarray:
    """Rows of a sample: ``sample_pages // run`` runs of ``run`` consecutive pages, spread
    evenly over the window (consecutive pages keep the cross-page redundancy a 64-page batch
    sees; spreading covers a window whose content changes along memory)."""
    if n_pages <= sample_pages:
        rows = np.arange(n_pages)
        rows.flags.writeable = False
        return rows
    run = max(1, min(run, sample_pages))  # a run never longer than the sample or window
    n_runs = max(1, sample_pages // run)
    starts = np.linspace(0, n_pages - run, n_runs).astype(np.int64)
    rows = (starts[:, None] + np.arange(run)).reshape(-1)
    rows = np.unique(rows)
    rows.flags.writeable = False  # cached and shared
    return rows


def byte_entropy(sample: np.ndarray, stride: int = 3) -> float:
    """Shannon entropy of the byte histogram in bits per byte (0..8), from every
    ``stride``-th byte (odd, so 8-byte structure is not aliased; a histogram of a few
    thousand bytes is as informative as one of all of them, at a fraction of the cost)."""
    counts = np.bincount(sample.reshape(-1)[::stride], minlength=256)
    total = counts.sum()
    if not total:
        return 0.0
    p = counts[counts > 0] / total
    return float(-(p * np.log2(p)).sum())


def changed_words(pages: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Changed 8-byte words per page between ``previous`` and ``pages`` (same shape)."""
    a = np.ascontiguousarray(pages).view(np.uint64)
    b = np.ascontiguousarray(previous).view(np.uint64)
    return np.count_nonzero(a != b, axis=1)


def delta_bytes(changed: np.ndarray, page_size: int, zero: np.ndarray) -> np.ndarray:
    """Modelled delta-record bytes per page: ``10 x changed words`` capped at a raw page,
    nothing for a zero page (sent as a marker), plus the one-byte page mode every page costs."""
    body = np.minimum(changed * DELTA_BYTES_PER_WORD, page_size)
    return np.where(zero, 0, body) + 1


class FeatureExtractor:
    """Computes :class:`WindowFeatures` for windows over a fixed list of arms.

    ``kinds`` are the arms' codec kinds; ``codecs`` their instances (only compressing and raw
    arms are probed by encoding). ``probe=False`` computes the cheap features only.
    """

    def __init__(self, codecs: Sequence, sample_pages: int = 16, batch_pages: int = 64) -> None:
        if sample_pages < 1:
            raise ValueError(f"sample_pages must be >= 1, got {sample_pages}")
        self.codecs = list(codecs)
        self.kinds = [c.kind for c in self.codecs]
        self.sample_pages = sample_pages
        self.batch_pages = batch_pages
        # arms are probed with private instances: a probe then shares no state (an
        # accelerator's queues, the CPU-clock sampling of Codec.encode) with the engine
        # thread that encodes the stream with the arm's own instance; a delta arm's probe
        # encodes against a mirror of what the destination holds for the sample
        self._probes = [type(c).from_config(c.get_config()) for c in self.codecs]
        self._reads_destination = [c.reads_destination for c in self.codecs]
        self.zero_page_s = 0.0
        self.fixed_s, self.per_page_s = self._calibrate()

    def _probe_delta(self, i: int, data: np.ndarray, held: np.ndarray):
        """Encode the sample's non-zero pages with arm ``i`` against ``held`` (what the
        destination has for them); building the mirror is part of the probe's cost."""
        rows = np.arange(data.shape[0], dtype=np.int64)
        return _timed_encode(self._probes[i], data, DestinationMirror.holding(rows, held))

    def _calibrate(self) -> tuple[np.ndarray, np.ndarray]:
        """Each arm's cost model of one encode call: a fixed part (batch set-up, zero scan,
        a delta codec's cache lookups and blob layout, measurements) and a part per page,
        from the best of a few encodes of 1 and of 16 pages of text (a delta arm: against
        versions with 1/64 of their words changed). A probe of this window then scales the
        model by how much slower or faster this window's pages are; a model with only a
        per-page part would make a delta arm, whose cost is mostly fixed, look 2-3x slow.
        """
        letters = np.frombuffer(b"migration page, dirty window ", dtype=np.uint8)
        pages = letters[np.random.default_rng(0).integers(0, letters.size, (16, 4096))]
        held = pages.copy()
        held.view(np.uint64)[:, ::64] += np.uint64(1)
        rows = np.arange(16, dtype=np.int64)
        fixed = np.zeros(len(self.codecs))
        per_page = np.zeros(len(self.codecs))
        for i in range(len(self.codecs)):
            best = {}
            for m in (1, 16):
                best[m] = float("inf")
                for _ in range(4):
                    mirror = None
                    if self._reads_destination[i]:
                        mirror = DestinationMirror.holding(rows[:m], held[:m])
                    _, cpu = _timed_encode(self._probes[i], pages[:m], mirror)
                    best[m] = min(best[m], cpu)
            per_page[i] = max(best[16] - best[1], 0.0) / 15
            fixed[i] = max(best[1] - per_page[i], 0.0)
        # every arm scans zero pages the same way (the framework sends them as markers)
        from migcodec.codecs.plugins.raw import RawCodec

        zeros = np.zeros((64, 4096), dtype=np.uint8)
        raw = RawCodec()
        scan = min(_timed_encode(raw, zeros)[1] for _ in range(4))
        one = min(_timed_encode(raw, zeros[:1])[1] for _ in range(4))
        self.zero_page_s = max(scan - one, 0.0) / 63
        return fixed, per_page

    def sample_size(self, n_pages: int) -> int:
        """About 1/64 of the window, so a probe costs each arm about 1/64 of encoding the
        window, however small the window (at least one page, at most ``sample_pages``)."""
        return int(min(self.sample_pages, max(1, n_pages // 64)))

    def extract(
        self,
        pages: np.ndarray,
        previous: np.ndarray | None = None,
        probe: np.ndarray | bool | Callable[[WindowFeatures], np.ndarray | None] = True,
        sampled: bool = False,
    ) -> WindowFeatures:
        """Features of a window whose pages are ``pages`` (``(n, page_size)`` uint8).

        ``previous`` is what the destination holds for those pages (the delta cache), or
        ``None`` when unknown. ``probe`` says which arms to probe: all (``True``), none
        (``False``/``None``), a boolean mask, or a function given the cheap features that
        returns a mask (how a policy buys only the probes it needs). ``sampled`` says
        ``pages`` already are the window's sample (drawn with :meth:`sample_size` and
        :func:`sample_rows` by a caller that never gathers the whole window, as the
        migration engine does), so all of them are used.
        """
        clock = time.thread_time  # CPU time of this thread, as encode costs are counted
        t0 = clock()
        n, page_size = pages.shape
        size = n if sampled else self.sample_size(n)
        rows = sample_rows(n, size, min(4, size))
        if not rows.size:
            return WindowFeatures(np.array([1.0, 0.0, 0.0, 1.0, 0.0]), cheap_s=clock() - t0)
        # the sample is gathered once (not at all when it is every row, as the engine's
        # pre-drawn sample is); zero pages are markers for every arm, so only the non-zero
        # ones (``data``, and what the destination holds for them, ``held``) are looked at
        sample = pages if rows.size == n else pages[rows]
        zero = zero_page_rows(sample)
        if zero is None:
            zero_frac, data = 0.0, sample
            held = None if previous is None else (previous if rows.size == n else previous[rows])
        else:
            nz_rows = rows[~zero]
            zero_frac = float(np.count_nonzero(zero)) / rows.size
            data = sample[~zero]
            held = None if previous is None else previous[nz_rows]
        m = data.shape[0]
        entropy = byte_entropy(data[:1]) / 8.0 if m else 0.0
        changed = None
        if held is not None:
            changed = changed_words(data, held)
            # over the non-zero pages: a zero page is a marker whatever it replaced
            changed_frac = float(changed.sum()) / max(m * (page_size // 8), 1)
        else:
            changed_frac = 1.0
        context = np.array([1.0, zero_frac, entropy, changed_frac, 0.0 if changed is None else 1.0])
        cheap_s = clock() - t0
        k = len(self.codecs)
        if callable(probe):
            probe = probe(WindowFeatures(context, cheap_s=cheap_s))
        if probe is None or probe is False or rows.size == 0:
            return WindowFeatures(context, cheap_s=cheap_s)
        if zero_frac == 1.0 and changed is None:  # every arm sends zero markers: nothing to learn
            probe = np.zeros(k, dtype=bool)
        mask = np.ones(k, dtype=bool) if probe is True else np.asarray(probe, dtype=bool)
        ratio = np.full(k, np.nan)
        rate = np.full(k, np.nan)
        probe_s = np.zeros(k)
        nz = 1.0 - zero_frac
        for i in np.flatnonzero(mask):  # one probe per arm, not per page
            t1 = clock()
            stats = None
            if self._reads_destination[i]:
                if changed is not None and m:  # else nothing held to encode against
                    stats = self._probe_delta(i, data, held)
            elif m:
                stats = _timed_encode(self._probes[i], data)
            if stats is not None:
                stats, cpu_s = stats
                payload = max(stats.output_bytes - m - _RUN_BYTES, 1) / m  # per non-zero page
                per_page = 1.0 + nz * payload + _RUN_BYTES / self.batch_pages
                ratio[i] = page_size / per_page
                if stats.device_s is not None:  # emulated hardware: its modelled time
                    work = stats.device_s / m * max(nz * self.batch_pages, 1.0)
                else:  # the arm's call model, scaled by how this window's pages compare
                    fixed, each = self.fixed_s[i], self.per_page_s[i]
                    model = fixed + each * m
                    scale = cpu_s / model if model > 0 else 1.0
                    work = scale * (fixed + each * max(nz * self.batch_pages, 1.0))
                    # plus the batch's zero pages, which the sample's non-zero pages omit
                    work += self.zero_page_s * zero_frac * self.batch_pages
                rate[i] = self.batch_pages * page_size / work if work > 0 else np.inf
            probe_s[i] = clock() - t1
        return WindowFeatures(context, ratio, rate, cheap_s, probe_s)
