"""Per-window features: cheap, vectorised summaries of a sample of the window's pages.

The best codec can change from window to window too often to be learnt from past rewards
alone, so a selector has to *predict* each arm's outcome from the window itself. Two kinds
of feature are computed, and their costs are measured separately because a policy pays for
what it reads:

- **cheap**: zero-page fraction, byte-histogram entropy, and against
  what the destination holds, the changed 8-byte words, differing bytes and runs of changed
  words per page, from which every delta arm predicts its own payload
  (:meth:`~migcodec.codecs.delta.DeltaCodec.estimate_sizes`) without encoding anything;
- **probes**: a compressing arm encodes the same few non-zero sampled pages, taken one by
  one from as many places in the sample as they number, and reports what it wrote and
  what that cost.

The cheap features come from one pass in C over the sampled rows, in place
(:mod:`migcodec.selector.scan`), or numpy where the extension is not built; no Python loop
runs per page or byte.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from migcodec.codecs import Batch, CodecKind
from migcodec.codecs.base import RUN_BYTES as _RUN_BYTES
from migcodec.codecs.bounded import codec_watch
from migcodec.codecs.delta import RECORD_ENTRY_BYTES, DeltaCodec
from migcodec.codecs.page_arrays import check_pages
from migcodec.codecs.roundtrip import failures_of
from migcodec.selector.scan import ESTIMATE_KINDS, SampleScan, histogram_entropy, scan_sample

#: names of the entries of :attr:`WindowFeatures.context`, in order
CONTEXT_NAMES = ("bias", "zero_frac", "entropy", "changed_frac", "delta_known")
#: a probe reads one page per this many pages of its window (within its bounds)
PAGES_PER_PROBE_PAGE = 512
#: a window this many pages large or more reads one more sampled page per this many pages
PAGES_PER_SAMPLE_PAGE = 256
#: the byte histogram reads every this many bytes of its two pages (see byte_entropy)
ENTROPY_STRIDE = 7


@dataclass(slots=True)
class WindowFeatures:
    """Features of one window.

    ``context`` is the fixed vector ``CONTEXT_NAMES`` (entropy scaled to 0..1). ``pages`` is
    how many pages the window holds and ``sample`` how many of them the features read.

    Cheap, per arm: ``delta_bytes``, a delta arm's predicted payload per non-zero page the
    destination holds (``nan`` for other arms), ``held_frac``, the share of non-zero
    sampled pages the destination holds, and ``change_runs``, the runs of changed bytes per
    held page (with the changed words, ``context``'s ``changed_frac``, what a delta arm's
    encode time follows: see :mod:`migcodec.selector.costmodel`), and over the held pages
    sampled, ``words_var``, the variance of a page's changed words, and
    ``words_runs_cov``, their covariance with its runs: how far the runs move with the
    words from page to page, so that a policy that learns the window's payload is not
    its sample's also knows how much of that its runs share.

    Probes, per arm: ``probe_out``, the payload bytes a compressing arm wrote for the
    ``probe_pages`` non-zero pages of the probe; ``predicted_ratio`` / ``predicted_rate``,
    the window ratio and per-worker rate those imply (``nan`` where an arm was not probed).
    ``cheap_s`` and ``probe_s`` (per arm) are the CPU seconds the features cost (``cheap_s``
    with a policy's decision of which probes to buy, when it was asked for one).
    """

    context: np.ndarray
    predicted_ratio: np.ndarray | None = None
    predicted_rate: np.ndarray | None = None
    cheap_s: float = 0.0
    probe_s: np.ndarray | None = None
    pages: float = 0.0
    sample: int = 0
    held_frac: float = 0.0
    delta_bytes: np.ndarray | None = None
    change_runs: float = 0.0
    words_var: float = 0.0
    words_runs_cov: float = 0.0
    probe_pages: int = 0
    probe_out: np.ndarray | None = None
    #: how many arms these features are known right for (0: none yet). A
    #: :class:`FeatureExtractor`'s and a checked table's are right by construction and
    #: say so; features a caller made are checked once, when a ``Selector`` is first
    #: given them (:func:`~migcodec.selector.policies.base.check_features`), which keeps
    #: the check off the hot path of features already known right. Not set by the
    #: constructor, so ``dataclasses.replace`` makes features to check again; a caller
    #: who changes a field in place after that is trusted
    checked_arms: int = field(default=0, init=False, repr=False, compare=False)

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
        out = WindowFeatures(
            self.context,
            cheap_s=self.cheap_s,
            pages=self.pages,
            sample=self.sample,
            held_frac=self.held_frac,
            delta_bytes=self.delta_bytes,
            change_runs=self.change_runs,
            words_var=self.words_var,
            words_runs_cov=self.words_runs_cov,
            probe_pages=self.probe_pages,
        )
        out.checked_arms = self.checked_arms
        return out

    def masked(self, mask: np.ndarray | None) -> WindowFeatures:
        """The same window revealing only the probes of arms in ``mask`` (replaying a
        table that holds every probe: a policy sees, and pays for, what it asked for)."""
        if mask is None or self.predicted_ratio is None:
            return self.cheap()
        out = self.cheap()
        out.predicted_ratio = np.where(mask, self.predicted_ratio, np.nan)
        out.predicted_rate = np.where(mask, self.predicted_rate, np.nan)
        out.probe_s = np.where(mask, self.probe_s, 0.0)
        if self.probe_out is not None:
            out.probe_out = np.where(mask, self.probe_out, np.nan)
        return out


def _timed_encode(codec, pages: np.ndarray, destination=None) -> tuple:
    """Encode ``pages`` as one batch; return its measurements and the CPU time of this call.

    Timed here because ``stats.cpu_s`` is sampled (one encode in several reads the clock,
    see ``Codec.encode``), and a probe is one call whose cost must be measured, not
    estimated from another call's. Whatever the codec's own code raises is a
    :class:`~migcodec.codecs.CodecFailed` naming it, as in a table's encodes. The encode is
    this thread's codec call while it runs (see :mod:`migcodec.codecs.bounded`).
    """
    m, page_size = pages.shape
    batch = Batch(pages, [(0, m)], page_size, m)
    with failures_of(codec.name, "to encode a probe of pages"):
        encoded, cpu_s = codec_watch().encoding(codec, batch, destination)
    return encoded.stats, cpu_s


@functools.lru_cache(maxsize=64)
def sample_rows(n_pages: int, sample_pages: int) -> np.ndarray:
    """Rows of a sample: ``sample_pages`` single pages spread evenly over the window, from
    its first page to its last. Neighbouring pages were written alike (a program rewrites an
    array or a slab at once), so a run of four is about one draw, not four: sampled in runs
    of four, recorded programs' windows had their delta arms' payload estimated with about
    twice the error of as many single pages (a numeric job's by 0.19 against 0.05, a
    standard deviation of the log), and with a bias of up to a fifth."""
    if n_pages <= sample_pages:
        rows = np.arange(n_pages)
    else:  # steps of more than one page: no row repeats
        rows = np.linspace(0, n_pages - 1, sample_pages).astype(np.int64)
    rows.flags.writeable = False  # cached and shared
    return rows


def byte_entropy(sample: np.ndarray, stride: int = 3) -> float:
    """Shannon entropy of the byte histogram in bits per byte (0..8), from every
    ``stride``-th byte (odd, so 8-byte structure is not aliased; a histogram of a few
    thousand bytes is as informative as one of all of them, at a fraction of the cost).
    ``H = log2(N) - sum(c log2 c) / N`` over the counts ``c``, from a table of ``c log2 c``."""
    data = sample.reshape(-1)[::stride]
    if not data.size:
        return 0.0
    return histogram_entropy(np.bincount(data, minlength=256), data.size)


def summed_formula(codec: DeltaCodec, page_size: int) -> tuple[int, int] | None:
    """The C scan's formula (an :data:`~migcodec.selector.scan.ESTIMATE_KINDS` value and its
    parameter) for ``codec``'s estimate, or ``None`` when its ``estimate_sizes`` must be
    called: it has no formula, or the formula is not the estimate's own any more (a
    subclass or a patch changed ``estimate_sizes`` and not ``formula_describes``, or the
    instance carries its own). Tests check every formula against its method."""
    cls = type(codec)
    if "estimate_sizes" in vars(codec) or cls.estimate_sizes is not cls.formula_describes:
        return None
    formula = codec.estimate_formula(page_size)
    if formula is None:
        return None
    kind, param = formula
    return ESTIMATE_KINDS[kind], int(param)


class _EstimatePlan(NamedTuple):
    """Which delta arms' estimates the C scan sums (``formulas``, for arm ``summed[j]``)
    and which are asked of their codec (``called``)."""

    formulas: tuple[tuple[int, int], ...]
    summed: tuple[int, ...]
    called: tuple[int, ...]


def changed_words(pages: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Changed 8-byte words per page between ``previous`` and ``pages`` (same shape)."""
    a = np.ascontiguousarray(pages).view(np.uint64)
    b = np.ascontiguousarray(previous).view(np.uint64)
    return np.count_nonzero(a != b, axis=1)


def delta_bytes(changed: np.ndarray, page_size: int, zero: np.ndarray) -> np.ndarray:
    """Modelled delta-record bytes per page: ``10 x changed words`` capped at a raw page,
    nothing for a zero page (sent as a marker), plus the one-byte page mode every page costs."""
    body = np.minimum(changed * RECORD_ENTRY_BYTES, page_size)
    return np.where(zero, 0, body) + 1


class FeatureExtractor:
    """Computes :class:`WindowFeatures` for windows over a fixed list of arms.

    ``sample_pages`` is how many pages the cheap features read of a window (changed words
    for every delta arm at once), growing with a large window up to ``max_sample_pages``
    (:meth:`sample_size`);
    ``probe_pages`` bounds the non-zero pages a compressing arm's probe encodes: a probe
    reads one page per :data:`PAGES_PER_PROBE_PAGE` of the window, at least
    ``min_probe_pages`` (a large window's decision is worth a sharper, dearer probe).
    """

    def __init__(
        self,
        codecs: Sequence,
        sample_pages: int = 32,
        batch_pages: int = 64,
        probe_pages: int = 32,
        min_probe_pages: int = 8,
        max_sample_pages: int = 512,
    ) -> None:
        if sample_pages < 1 or not 1 <= min_probe_pages <= probe_pages:
            raise ValueError(
                "sample_pages must be >= 1 and 1 <= min_probe_pages <= probe_pages, got "
                f"{sample_pages}, {min_probe_pages}, {probe_pages}"
            )
        self.codecs = list(codecs)
        self.kinds = [c.kind for c in self.codecs]
        self.sample_pages = sample_pages
        self.max_sample_pages = max(sample_pages, max_sample_pages)
        self.probe_pages = probe_pages
        self.min_probe_pages = min_probe_pages
        self.batch_pages = batch_pages
        # arms are probed with private instances: a probe then shares no state (an
        # accelerator's queues, the CPU-clock sampling of Codec.encode) with the engine
        # thread that encodes the stream with the arm's own instance
        watch = codec_watch()
        self._probes = [
            watch.calling(c, "its constructor", type(c).from_config, c.get_config())
            for c in self.codecs
        ]
        self._reads_destination = np.array([c.reads_destination for c in self.codecs])
        self._is_raw = np.array([c.kind == CodecKind.RAW for c in self.codecs])
        self._deltas = [c if isinstance(c, DeltaCodec) else None for c in self.codecs]
        self._delta_arms = tuple(i for i, c in enumerate(self._deltas) if c is not None)
        self._delta_codecs = [self._deltas[i] for i in self._delta_arms]
        self._plans: dict[tuple, _EstimatePlan] = {}
        self._no_estimates = np.full(len(self.codecs), np.nan)
        self.zero_page_s = 0.0
        self.fixed_s, self.per_page_s = self._calibrate()

    def _calibrate(self) -> tuple[np.ndarray, np.ndarray]:
        """Each compressing arm's cost of one probe call: a fixed part (batch set-up, zero
        scan, measurements) and a part per page, from the best of a few encodes of 1 and of
        16 pages of text. A probe of this window then scales the model by how much slower or
        faster this window's pages are."""
        letters = np.frombuffer(b"migration page, dirty window ", dtype=np.uint8)
        pages = letters[np.random.default_rng(0).integers(0, letters.size, (16, 4096))]
        fixed = np.zeros(len(self.codecs))
        per_page = np.zeros(len(self.codecs))
        for i in range(len(self.codecs)):
            if self._reads_destination[i]:
                continue  # predicted from changed words, never probed by encoding
            best = {}
            for m in (1, 16):
                best[m] = min(_timed_encode(self._probes[i], pages[:m])[1] for _ in range(4))
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

    def probe_size(self, window_pages: float) -> int:
        """Pages a probe of a window of ``window_pages`` pages encodes."""
        each = int(window_pages // PAGES_PER_PROBE_PAGE)
        # min(probe_pages, max(min_probe_pages, each)), in conditional expressions: once a
        # window, where each call of min or max costs several times as much
        each = self.min_probe_pages if each < self.min_probe_pages else each
        return self.probe_pages if each > self.probe_pages else each

    def sample_size(self, n_pages: int) -> int:
        """How many of a window's ``n_pages`` pages the features read: all of a small
        window, ``sample_pages`` of a larger one, and one per
        :data:`PAGES_PER_SAMPLE_PAGE` of a window large enough, up to
        ``max_sample_pages``. A large window's choice is worth a sharper estimate: a
        sampled page costs a fraction of a microsecond against the microseconds of encoding
        each of the window's pages, so the sample stays a fraction of a percent of the
        window's work while its estimates' noise shrinks with its square root."""
        n_pages = int(n_pages)
        want = n_pages // PAGES_PER_SAMPLE_PAGE  # clipped in conditional expressions, as above
        want = self.max_sample_pages if want > self.max_sample_pages else want
        want = self.sample_pages if want < self.sample_pages else want
        return want if want < n_pages else n_pages if n_pages > 1 else 1

    def extract(
        self,
        pages: np.ndarray,
        previous: np.ndarray | None = None,
        probe: np.ndarray | bool | Callable[[WindowFeatures], np.ndarray | None] = True,
        sampled: bool = False,
        window_pages: float | None = None,
        held: np.ndarray | None = None,
        gather_s: float = 0.0,
    ) -> WindowFeatures:
        """Features of a window whose pages are ``pages`` (``(n, page_size)`` uint8).

        ``previous`` is what the destination holds for those pages, or ``None`` when it
        holds none of them; ``held`` (bool per page), when given, says which of them it
        holds (the others' rows of ``previous`` are ignored). ``probe`` says which arms to
        probe: all (``True``), none (``False``/``None``), a boolean mask, or a function given
        the cheap features that returns a mask (how a policy buys only the probes it needs).
        ``sampled`` says ``pages`` already are the window's sample (drawn with
        :meth:`sample_size` and :func:`sample_rows` by a caller that never gathers the whole
        window, as the migration engine does); ``window_pages`` is then the window's true
        size (by default, ``len(pages)``); ``gather_s``, the CPU seconds such a caller
        spent gathering the sample, is charged with the features.
        """
        check_pages(pages)  # the scan reads rows as bytes: another dtype was misread
        if previous is not None:
            check_pages(previous, "previous")
        clock = time.thread_time  # CPU time of this thread, as encode costs are counted
        t0 = clock() - gather_s
        n, page_size = pages.shape
        k = len(self.codecs)
        total = float(n if window_pages is None else window_pages)
        if sampled or (window_pages is None and n <= self.sample_pages):
            size = n  # what sample_size says of a window no larger than the sample
        else:
            size = self.sample_size(int(total))
            size = n if size > n else size
        rows = sample_rows(n, size)
        sampled_rows = rows.size
        if not sampled_rows:
            empty = WindowFeatures(
                np.array([1.0, 0.0, 0.0, 1.0, 0.0]), cheap_s=clock() - t0, pages=total
            )
            empty.checked_arms = k
            return empty
        # one pass over the sampled rows in place: zero pages are markers for every arm, so
        # only non-zero ones are histogrammed, and only those the destination holds compared
        every = sampled_rows == n
        plan = self._plan(page_size)
        scan = scan_sample(
            pages,
            previous,
            None if every else rows,
            None if previous is None else held,
            ENTROPY_STRIDE,
            plan.formulas,
        )
        m = scan.nonzero
        zero_frac = 1.0 - m / sampled_rows
        # entropy of two pages from the two ends of the sample, every 7th byte (see
        # byte_entropy: a strided histogram is as informative as a full one)
        entropy = scan.entropy / 8.0
        delta = None
        held_frac = change_runs = words_var = words_runs_cov = 0.0
        changed_frac = 1.0
        has_previous = previous is not None and m > 0
        if has_previous and scan.kept:
            kept = scan.kept
            held_frac = kept / m
            changed_frac = float(scan.words) / (kept * (page_size // 8))
            change_runs = float(scan.runs) / kept
            words = scan.words / kept
            # the moments about the sample's means (clipped: rounding may leave a variance
            # of equal pages a hair below 0)
            words_var = scan.words_sq / kept - words * words
            words_var = words_var if words_var > 0.0 else 0.0
            words_runs_cov = scan.words_runs / kept - words * change_runs
            delta = self._estimates(scan, plan, page_size)
        context = np.array([1.0, zero_frac, entropy, changed_frac, float(has_previous)])
        cheap_s = clock() - t0
        features = WindowFeatures(
            context,
            cheap_s=cheap_s,
            pages=total,
            sample=sampled_rows,
            held_frac=held_frac,
            delta_bytes=delta,
            change_runs=change_runs,
            words_var=words_var,
            words_runs_cov=words_runs_cov,
            probe_pages=min(m, self.probe_size(total)),
        )
        features.checked_arms = k  # right by construction: not checked again
        if callable(probe):
            # deciding which probes to buy is part of reading the features, on the same
            # thread: charged with the cheap features, so that a policy weighing whether a
            # window's features are worth reading counts it (a few hundred microseconds of
            # a policy's Python per window in the engine, several times the scan's cost)
            t1 = clock()
            probe = probe(features)
            features.cheap_s += clock() - t1
        if probe is None or probe is False:
            return features
        mask = np.ones(k, dtype=bool) if probe is True else np.asarray(probe, dtype=bool)
        mask = mask & ~self._reads_destination
        sample = pages if every else pages[rows]  # gathered only for a probe
        zero = scan.zero_rows()
        nz_idx = None if zero is None else np.flatnonzero(~zero)
        self._probe(features, sample, nz_idx, zero_frac, mask, page_size)
        return features

    def _plan(self, page_size: int) -> _EstimatePlan:
        """How this page size's delta estimates are made, for the delta arms'
        ``estimate_sizes`` as they are now (a method replaced since is planned again)."""
        fns = tuple([c.estimate_sizes for c in self._delta_codecs])
        key = (page_size, fns)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._make_plan(page_size)
        return plan

    def _make_plan(self, page_size: int) -> _EstimatePlan:
        """The C formula of each delta arm whose estimate has one (:func:`summed_formula`);
        the other arms' ``estimate_sizes`` are called."""
        formulas, summed, called = [], [], []
        for i in self._delta_arms:  # a few arms, once per page size and set of methods
            formula = summed_formula(self._deltas[i], page_size)
            if formula is None:
                called.append(i)
            else:
                formulas.append(formula)
                summed.append(i)
        return _EstimatePlan(tuple(formulas), tuple(summed), tuple(called))

    def _estimates(self, scan: SampleScan, plan: _EstimatePlan, page_size: int) -> np.ndarray:
        """Each delta arm's predicted payload per held non-zero sampled page (``nan`` for
        other arms): the C scan's sums where it made them, the codec's own
        ``estimate_sizes`` otherwise (every arm on the numpy path). Integer sums, so
        either way the mean is the same float."""
        delta = self._no_estimates.copy()
        kept = scan.kept
        called = self._delta_arms
        if scan.sums is not None:
            for i, total in zip(plan.summed, scan.sums, strict=True):
                delta[i] = float(total) / kept
            called = plan.called
        if called:
            changes = scan.changes()
            watch = codec_watch()
            for i in called:  # a few delta arms, not per page
                codec = self._deltas[i]
                sizes = watch.calling(
                    codec, "estimate_sizes", codec.estimate_sizes, changes, page_size
                )
                delta[i] = float(sizes.sum()) / kept
        return delta

    def _probe(
        self,
        features: WindowFeatures,
        sample: np.ndarray,
        nz_idx: np.ndarray | None,
        zero_frac: float,
        mask: np.ndarray,
        page_size: int,
    ) -> None:
        """Encode up to ``probe_pages`` non-zero sampled pages with each arm of ``mask``.

        The pages are single pages spread evenly over the sample, not runs: a probe of a
        few runs sees as few places in the window, and where content changes along memory
        (a VM guest's: code, heap, page tables) its error is several times what its page
        count implies. Single pages miss the redundancy between neighbours that a batch
        sees, which compresses them a little worse than the window; that error is the same
        from window to window, and a policy learns it as the probes' bias."""
        clock = time.thread_time
        k = len(self.codecs)
        ratio = np.full(k, np.nan)
        rate = np.full(k, np.nan)
        out = np.full(k, np.nan)
        probe_s = np.zeros(k)
        m = features.probe_pages
        if m:
            n_nz = sample.shape[0] if nz_idx is None else nz_idx.size
            picked = sample_rows(n_nz, m)
            part = sample[picked if nz_idx is None else nz_idx[picked]]
            m = part.shape[0]
        nz = 1.0 - zero_frac
        for i in np.flatnonzero(mask):  # one probe per arm, not per page
            t1 = clock()
            if not m:
                pass  # every sampled page is zero: each arm sends markers only
            elif self._is_raw[i]:  # raw writes the pages as they are: its calibration says
                out[i] = float(m * page_size)  # what a copy of a batch costs
                work = self.fixed_s[i] + self.per_page_s[i] * max(nz * self.batch_pages, 1.0)
                work += self.zero_page_s * zero_frac * self.batch_pages
                rate[i] = self.batch_pages * page_size / work if work > 0 else np.inf
            else:
                stats, cpu_s = _timed_encode(self._probes[i], part)
                payload = max(stats.output_bytes - m - _RUN_BYTES, 1)
                out[i] = float(payload)
                if stats.device_s is not None:  # emulated hardware: its modelled time
                    work = stats.device_s / m * max(nz * self.batch_pages, 1.0)
                else:  # the arm's call model, scaled by how this window's pages compare
                    fixed, each = self.fixed_s[i], self.per_page_s[i]
                    model = fixed + each * m
                    scale = cpu_s / model if model > 0 else 1.0
                    work = scale * (fixed + each * max(nz * self.batch_pages, 1.0))
                    work += self.zero_page_s * zero_frac * self.batch_pages
                rate[i] = self.batch_pages * page_size / work if work > 0 else np.inf
            if np.isfinite(out[i]):
                per_page = 1.0 + nz * out[i] / m + _RUN_BYTES / self.batch_pages
                ratio[i] = page_size / per_page
            probe_s[i] = clock() - t1
        if features.delta_bytes is not None:  # delta arms: from the changed words, free
            held = features.held_frac
            each = held * features.delta_bytes + (1.0 - held) * page_size
            with np.errstate(invalid="ignore"):
                delta_ratio = page_size / (1.0 + nz * each + _RUN_BYTES / self.batch_pages)
            ratio = np.where(np.isnan(features.delta_bytes), ratio, delta_ratio)
        features.predicted_ratio = ratio
        features.predicted_rate = rate
        features.probe_out = out
        features.probe_s = probe_s
        features.probe_pages = m
