"""The ``auto`` policy's class: its state, its predictions, its choice and its update;
the parts it mixes in live beside it."""

from __future__ import annotations

import math

import numpy as np

from migcodec.codecs import CodecKind
from migcodec.codecs.base import RUN_BYTES
from migcodec.selector.features import WindowFeatures
from migcodec.selector.objectives import Outcome, Throughput
from migcodec.selector.policies.auto.common import (
    _CHEAPEST,
    _CPU_ARM_VAR,
    _CPU_DELTA_VAR,
    _CPU_DRIFT_VAR,
    _CPU_NODES,
    _CPU_PLAY_VAR,
    _CPU_PRIOR_VAR,
    _CPU_WEIGHTS,
    _CROSS_SPREAD,
    _DELTA_NOISE_PRIOR,
    _GRID_SCALE,
    _GRID_STEPS,
    _JUMP_CLIP,
    _LEVEL_SPREAD_MIN_VAR,
    _LOG_KNOTS,
    _NATIVE_MAX_ARMS,
    _NEUTRAL,
    _PLAY_VAR,
    _PROBE_SHARED,
    _TRIAL_BATCHES,
    _least_var,
    _native_values,
    _Prediction,
)
from migcodec.selector.policies.auto.delta import DeltaArms, _DeltaSample, _fallback_part
from migcodec.selector.policies.auto.pace import StreamPace
from migcodec.selector.policies.auto.probes import ProbeBuying
from migcodec.selector.policies.auto.reads import FeatureReads, _Read
from migcodec.selector.policies.auto.sharing import WindowSharing
from migcodec.selector.policies.base import Policy
from migcodec.selector.policies.kalman import _LEVEL_PRIOR, RatioFilter
from migcodec.wire.format import MAX_BATCH_PAGES


class Auto(StreamPace, WindowSharing, ProbeBuying, FeatureReads, DeltaArms, Policy):
    """Predict-and-pay selection; see the module docstring.

    ``drift``: how much the shared log ratio may move from one window to the next (standard
    deviation) with no sign of change; ``change``: how much more per unit of change of the
    cheap features (zero share, entropy); ``arm_drift``: how much an arm's offset from the
    others may move per window; ``cost_drift``: how much less an arm's CPU factor is known
    per second of stream since it was last measured (a variance of its log; an arm whose
    factor is back at its prior is tried again: :meth:`Auto._retry_stale`); ``probe_noise``:
    the standard deviation of one sampled page's log ratio (a probe of ``m`` pages:
    ``probe_noise / sqrt(m)``); ``value``: how much a probe's expected value (or an arm's
    first play's) must exceed its cost; ``learn``: step of the learnt corrections (delta
    bias, CPU factors); ``upkeep``: the largest share of the time played without features
    that rereading them, only to keep the estimates fresh, may cost (once a read has
    changed a choice: until then such rereads buy nothing). Its default is small
    because a read costs a migration more than the CPU time it is charged: its Python work
    holds the interpreter lock that the encoders' threads need around each batch
    (``docs/results/migration.md`` measures what rereading at most windows cost the
    reference engine). ``negligible``: the share of a window's predicted time (a window
    of its size, as last played) under which its cheap features are read whatever reading
    them was worth lately. ``balance``: the least share of a window's predicted time that
    playing two arms on it must save (:meth:`Auto._balanced`). ``cross_margin``: how much
    less loss (a share of it) an arm of the other kind than the arm that played the last
    window (a delta arm against a compressor or raw, or the other way) must be predicted
    to lose, to replace it. The two kinds are predicted by two models whose errors owe
    nothing to each other (a sample's changed words; a filtered ratio), each off by more
    than a few percent on a window, and the arm played last has just been checked against
    what it sent: on a recorded QEMU guest at 1 Gbit/s, a window whose XBZRLE records were
    predicted 0.5 % below zstd's output sent 43 % more, and that one window put ``auto``
    1.5 % behind zstd alone over the trace. Where one of them is a compressor, the margin
    widens by a tenth of its log ratio's standard deviation (:meth:`_cross_margin`): on
    the first windows its ratio is known from a few probes. Between arms of one kind,
    whose predictions share a model, the least predicted loss plays.

    The defaults are what ``python benchmarks/selector_eval.py --loto`` chose on the
    traces under ``corpus/traces/`` other than the one it scores: each parameter's value is
    the one chosen for most held-out traces, with this host's cost model as calibrated
    before its memory scans slowed (raw copies 0.10 us a page, the cheap features 0.43 us
    a sampled page). Calibrated again at 0.17 and 0.78 us, the grid chose ``drift`` 0.05,
    ``change`` 1.0 and ``balance`` 0.02 for most traces; with each compressor's own part
    of the probes' bias and the decision of which probes to buy charged (0.23 and 0.55
    us, and 67 us a decision among seven arms), ``change`` 0.5 for five traces of six,
    ``balance`` 0.02 for all six and ``drift`` 0.05 for four; with the probe valuation in C
    (47 us a decision among seven arms) and windows played on older features teaching the
    delta arms (:meth:`_learn_stale`), ``drift`` 0.05 for five, ``change`` 2.0 for five
    and ``balance`` 0.05 for four; calibrated again since (the same decisions under the
    throughput objective), ``drift`` 0.05, ``change`` 0.5 and ``balance`` 0.05 for five
    each (``docs/results/selector.md``: ``drift`` 0.05 with ``change`` 0.5 raised the
    development traces' mean by 0.3 % and lowered the held-out captures' by 0.2 %, their
    least cell from 0.985 to 0.972). Neighbouring values of
    each lie within half a percent of each other on most traces, so which wins moves with
    the calibration (``change`` 0.5 moves the development traces' mean by -0.1 to +0.2 %
    and the held-out captures' by -0.3 to 0 %, by cost model; ``drift`` 0.05, last, raised
    the development traces' mean by 0.2-0.4 % over three cost models and lowered the
    held-out captures' by 0.1-0.2 %, their least cell to 0.988), and ``balance`` 0.02
    costs the key-value cache at 10 Gbit/s up to 4 % (0.961-0.992 of XBZRLE alone); the
    defaults were not moved after them. On a host of another make
    (``docs/results/selector.md``) the grid chose ``drift`` 0.1 and ``change`` 0.5 for
    every trace: as defaults they raised the development traces' mean (1.028 to 1.032
    with that host's calibration, 1.0357 to 1.0367 with the recorded one) and lowered the
    held-out captures' (1.033 to 1.032; 1.0371 to 1.0328, their VM guest at 1 Gbit/s to
    0.986), and were not taken either. ``upkeep`` and
    ``value`` are not on that grid: they set how much work beyond the codecs a stream does,
    whose cost to a migration beyond its CPU time is in no table, so their defaults come
    from migrations (``docs/results/migration.md``). Nor is ``cost_drift``: a calibrated
    table prices an arm alike on its first window and its last, so no second look at an
    arm pays on one, while a stream's timings are what it guards against; its default
    brings a factor measured by one window back to its prior in about ten seconds of
    stream, so that a second look costs a few batches in ten seconds. Nor is
    ``cross_margin``: on the development traces only the QEMU guest has windows where a
    delta arm and a compressor are predicted within a few percent of each other, so with
    that trace left out the others cannot tell its values apart; 0.01 to 0.05 score
    within 0.1 % of each other there, and the held-out captures (``corpus/heldout/``)
    are where it was checked (``docs/results/selector-heldout.md``).

    A window played without probes costs a few float operations per arm, on lists: on
    arrays of a few entries each numpy call costs more than the arithmetic, and in CPython
    3.11 so does each call of ``min`` or ``max`` (measured at several times a conditional
    expression, which the per-window paths use instead). ``benchmarks/selector.py`` times a
    decision and its update. No loop runs per page.
    """

    # Slots for every attribute: CPython (3.11) keeps an instance's attributes in a
    # dict it reads without a specialised look-up once there are more than 30 of them,
    # and the decision and update of each window read several dozen (with slots, a
    # tenth less time per read, and 0.6 of the 22 us of a window's decision and update
    # in ``benchmarks/selector.py``). Base class attributes are slots here too; an
    # attribute missing from this list still works, from the instance's dict.
    __slots__ = (
        "_arm_factor",
        "_before_drift",
        "_byte_rate",
        "_bytes_cost",
        "_c",
        "_c_list",
        "_c_state",
        "_c_table",
        "_change_rows",
        "_cheapest_scale",
        "_chosen",
        "_clock",
        "_clocked",
        "_compressors",
        "_context",
        "_cost_flat",
        "_cost_grid",
        "_cost_rows",
        "_cpu_arm_var",
        "_cpu_rate",
        "_cpu_scales",
        "_cpu_var",
        "_cpu_weight",
        "_decision_s",
        "_decisions_timed",
        "_delta_arms",
        "_delta_cov",
        "_delta_drift",
        "_delta_flags",
        "_delta_jump",
        "_delta_noise",
        "_delta_offsets",
        "_delta_pos",
        "_delta_samples",
        "_delta_state",
        "_expected",
        "_expected_out",
        "_fast",
        "_feature_value",
        "_fixed_rows",
        "_grid_rows",
        "_incumbent",
        "_last",
        "_learnt",
        "_level_calib",
        "_level_jump",
        "_log_page",
        "_next_retry",
        "_no_changes",
        "_pace",
        "_pace_log",
        "_pace_recent",
        "_pace_seen",
        "_paced",
        "_pages",
        "_per_call",
        "_per_zero",
        "_played_bytes",
        "_played_on",
        "_pooled",
        "_prediction",
        "_ratio_version",
        "_raw_page_costs",
        "_read_entry",
        "_read_rate",
        "_reads",
        "_retry_due",
        "_runs_moments",
        "_scan_ratio",
        "_shared_factor",
        "_slot",
        "_split",
        "_spread_nodes",
        "_stale_play",
        "_stream_s",
        "_stretch",
        "_timed",
        "_to_cpu",
        "_to_link",
        "_trial_pages",
        "_trial_sd",
        "_untried",
        "_updates",
        "_window_pages",
        "_workers",
        "arm_drift",
        "balance",
        "batch_pages",
        "change",
        "cost_drift",
        "costs",
        "cpu_arm",
        "cpu_shared",
        "cross_margin",
        "delta_bias",
        "drift",
        "fallbacks",
        "is_delta",
        "kinds",
        "labels",
        "learn",
        "negligible",
        "objective",
        "page_size",
        "probe_noise",
        "ratios",
        "upkeep",
        "value",
    )

    name = "auto"
    needs = "probe"
    wants_costs = True

    def __init__(
        self,
        drift: float = 0.2,
        change: float = 2.0,
        arm_drift: float = 0.02,
        cost_drift: float = 0.002,
        probe_noise: float = 0.6,
        value: float = 2.0,
        learn: float = 0.3,
        upkeep: float = 0.02,
        negligible: float = 0.01,
        balance: float = 0.05,
        cross_margin: float = 0.02,
        batch_pages: int = 64,
    ) -> None:
        # each within what it can mean (standard deviations of a log past 5 are factors
        # past 150 per window, and a page's log ratio spans 8.3 at most; shares past 1 are
        # more than the whole), and so within what the filters' arithmetic holds: a drift
        # of 1e200 overflowed its square
        for key, number, high in (
            ("drift", drift, 5.0),
            ("change", change, 100.0),
            ("arm_drift", arm_drift, 5.0),
            ("cost_drift", cost_drift, 1.0),
            ("probe_noise", probe_noise, 20.0),
            ("value", value, 1e6),
            ("negligible", negligible, 1.0),
            ("balance", balance, 1.0),
            ("cross_margin", cross_margin, 1.0),
        ):
            self._require(key, number, 0, high)
        self._require("learn", learn, 0, 1, open_low=True)
        self._require("upkeep", upkeep, 0, 1, open_low=True)
        self._require("batch_pages", batch_pages, 1, MAX_BATCH_PAGES)
        self.drift, self.change, self.arm_drift = drift, change, arm_drift
        self.cost_drift = cost_drift
        self.probe_noise, self.value, self.learn = probe_noise, value, learn
        self.upkeep, self.batch_pages = upkeep, batch_pages
        self.negligible, self.balance = negligible, balance
        self.cross_margin = cross_margin

    # -- state -----------------------------------------------------------------------
    def _reset(self) -> None:
        k = self.n_arms
        kinds = np.array(self.kinds)
        self.is_delta = kinds == CodecKind.DELTA
        self._delta_flags = self.is_delta.tolist()  # per arm, as bools for scalar tests
        compressing = ~self.is_delta & (kinds != CodecKind.RAW)
        self._c = np.flatnonzero(compressing)  # compressing arms, in filter order
        self._c_list = self._c.tolist()
        self._slot: list[int | None] = [None] * k  # arm -> its filter slot (compressing arms)
        for slot, arm in enumerate(self._c_list):
            self._slot[arm] = slot
        # each compressing arm and the index of its offset in the filter's state
        self._c_state = [(arm, 2 + slot) for slot, arm in enumerate(self._c_list)]
        self._delta_arms = np.flatnonzero(self.is_delta).tolist()
        self._log_page = math.log(self.page_size)
        # each compressing arm's codec: its label's first word (Arm.label, "zstd level=1")
        labels = self.labels
        families = None if labels is None else [labels[a].split(" ", 1)[0] for a in self._c_list]
        self.ratios = RatioFilter(self._c.size, families)
        costs = [c if c is not None else _NEUTRAL for c in (self.costs or [None] * k)]
        self._per_call = np.array([c.per_call for c in costs])
        self._per_zero = np.array([c.per_zero_page for c in costs])
        # each arm's per-page cost at _GRID_STEPS + 1 log ratios from 1 to the last knot
        grid = np.linspace(0.0, _LOG_KNOTS[-1], _GRID_STEPS + 1)
        self._cost_grid = np.array([np.interp(grid, _LOG_KNOTS, c.per_page) for c in costs])
        self._cost_flat = self._cost_grid.reshape(-1)
        # the per-window prediction works on one number per arm: lists of floats cost a
        # fraction of what as many operations on arrays of a few entries do
        self._cost_rows = self._cost_grid.tolist()
        self._raw_page_costs = [row[0] for row in self._cost_rows]  # at a log ratio of 0
        self._fixed_rows = list(zip(self._per_call.tolist(), self._per_zero.tolist(), strict=True))
        # each compressing arm, its cost per call and per zero page: what the C valuation
        # reads (None: the Python loop values the probes)
        self._c_table = None
        if _native_values is not None and k <= _NATIVE_MAX_ARMS:
            c = self._c
            self._c_table = np.column_stack([c, self._per_call[c], self._per_zero[c]])
        # a delta arm's cost per changed word and per run of changed bytes
        self._change_rows = [(c.per_word, c.per_run) for c in costs]
        self._no_changes = [0.0] * k
        self._grid_rows = np.arange(k) * (_GRID_STEPS + 1)
        self.delta_bias = [0.0] * k  # log(actual / estimated) payload of delta arms
        self.cpu_shared = 0.0  # log(actual / modelled) CPU, the part all arms share
        # the part the delta arms share on top of it is _delta_state's first mean (see below)
        self.cpu_arm = [0.0] * k  # and each arm's own
        # how much of a window's worth of pages each arm's CPU was learnt from (see update)
        self._cpu_weight = [0.0] * k
        # model -> this machine: exp(cpu_shared) times each arm's exp(cpu_arm) (and, for a
        # delta arm, the exp of the delta arms' shared part), kept apart so that an update
        # recomputes a few numbers, not one per arm
        self._shared_factor = 1.0
        self._arm_factor = [1.0] * k
        # a loss is predicted as its expectation over the shared factor while that is
        # uncertain (before the first plays), so that an arm that is only better if the
        # host is as fast as the calibration's is not bet a whole window on
        self._clock = getattr(self.objective, "clock", "cpu")
        # the encoders' time by the objective's clock over their CPU time, which the
        # features' CPU time is stretched by (1 by the CPU clock, which learns nothing): a
        # ratio of moving averages of the played windows' times, so that a window of a
        # few pages, whose CPU time is a few clock ticks, weighs no more than its time
        self._stretch = 1.0
        self._clocked = None if self._clock == "cpu" else [0.0, 0.0]
        self._trial_pages = _TRIAL_BATCHES[self._clock] * self.batch_pages
        # how well the shared factor is known, and each arm's own (a variance of their
        # logs): an arm's CPU error is split between them in proportion, so that an arm
        # played alone does not make every arm not played look cheaper than it by as much
        # as the host slows it, nor a delta arm's costs that no calibration saw make every
        # compressor look slow
        self._cpu_var = _CPU_PRIOR_VAR[self._clock]
        self._cpu_arm_var = [_CPU_ARM_VAR] * k
        # the seconds of stream played (each window's time as the objective's model has it,
        # from what the window measured), those at which each arm's factor is back at its
        # prior, and the earliest of those (see _retry_stale)
        self._stream_s = 0.0
        self._retry_due = [math.inf] * k
        self._next_retry = math.inf
        # the delta arms' log CPU factors past the host's as one Gaussian: the part they
        # share, then each delta arm's own, and their covariance (see _learn_delta_cpu)
        self._delta_pos = [0] * k  # a delta arm's index in it
        for j, arm in enumerate(self._delta_arms):
            self._delta_pos[arm] = 1 + j
        size = 1 + len(self._delta_arms)
        # covariance and mean side by side, as kalman_update takes them (views of it)
        self._delta_state = np.zeros((size, size + 1))
        self._delta_cov = self._delta_state[:, :size]
        self._delta_cov[0, 0] = _CPU_DELTA_VAR
        for j in range(1, size):
            self._delta_cov[j, j] = _CPU_ARM_VAR
        # the variance one play adds to its arm's own part, so that its factor moves as
        # the moving average of CPU errors has it (see _learn_delta_cpu); at learn = 1,
        # every error taken whole, as nearly as a finite variance can
        still = 1.0 - self.learn
        self._delta_drift = self.learn**2 * _CPU_PLAY_VAR / (still if still > 0.01 else 0.01)
        # how far each arm's factor past the host's may be from its estimate (a standard
        # deviation of its log: the delta arms' shared part and the arm's own), and that
        # factor at the cheapest node of the prior (see _pick), kept with it
        self._trial_sd = [0.0] * k
        self._cheapest_scale = [1.0] * k
        for arm in range(k):
            self._trial_prior(arm)
        self._cpu_scales: tuple[float, ...] | None = self._factor_scales()
        self._workers = getattr(self.objective, "workers", 1.0)  # encoders, if it counts them
        # a loss of max(cpu / cpu rate, bytes / byte rate) (the objectives migcodec ships):
        # predicted in float operations per arm, where any other goes through arrays
        rates = self.objective.loss_rates
        self._fast = rates is not None
        # CPU seconds per unit of loss: what a read's CPU time costs (_read_s)
        self._read_rate = self._workers
        if self._fast:
            self._cpu_rate, self._byte_rate = rates
            self._to_cpu = 1.0 / self._cpu_rate
            self._to_link = 1.0 / self._byte_rate
            self._read_rate = self._cpu_rate
        # whether the bytes sent enter the loss: where they do not (the CPU objective), a
        # window that sent other than predicted says nothing of its loss (_learn)
        self._bytes_cost = not self._fast or self._byte_rate < math.inf
        # the window's time: what the stream's clock counts (_learn), and what sharing a
        # window between two arms shortens where both the encoders and the link bind
        self._timed = self._fast and isinstance(self.objective, Throughput)
        self._context: np.ndarray | None = None
        # the compressors' level's learnt jump between windows (a variance), and each
        # compressor's estimate before the last drift (see _learn_level_jump)
        self._level_jump = 0.0
        self._before_drift: tuple | None = None
        self._last: tuple[WindowFeatures, list[float], list[float], list[float]] | None = None
        # arms no window has measured the CPU time of yet (see _pick), and the windows
        # learnt from
        self._untried = list(range(k))
        self._incumbent = -1  # the arm that played the last window learnt whole (_pick)
        # each arm's pace (see learn_elapsed), its log, its last windows' ratios and how
        # many windows taught it; _paced: whether any has
        self._pace = [1.0] * k
        self._pace_log = [0.0] * k
        self._pace_recent: list[list[float]] = [[] for _ in range(k)]
        self._pace_seen = [0] * k
        self._paced = False
        self._pooled = [(None, None), (None, None)]  # (estimates array, pooled), newest first
        self._delta_offsets = [None] * k
        self._runs_moments = [0.0, 0.0]  # see _change_costs
        # the variance of one sampled page's log payload of the delta arms against the
        # window's, and the last two windows' samples, newest first (an engine reads the
        # next window's features before it learns from the last)
        self._delta_noise = _DELTA_NOISE_PRIOR
        self._delta_jump = 0.0  # the delta level's learnt move between windows (a variance)
        # the mean squared error of the delta arms' level on played windows, in units of
        # the variance it was priced with (see _spread_delta)
        self._level_calib = 1.0
        self._spread_nodes: tuple[float, list[tuple[float, float]]] = (-1.0, [])
        self._delta_samples: list[_DeltaSample] = []
        self._played_bytes = 0.0
        self._reads: list[_Read] = []  # the last read per size, newest first
        self._read_entry: _Read | None = None  # the one the window is played on
        self._stale_play = False  # the last window sent more or less than predicted
        # each move of the filter's estimates: what _payloads keeps goes stale
        self._ratio_version = 0
        self._compressors: tuple | None = None
        self._prediction: _Prediction | None = None
        self._feature_value = math.inf  # loss reading features avoided, per guest byte
        # CPU seconds a decision of which probes to buy costs (probe_mask): part of what
        # reading a window's features costs it
        prior = self.probe_decision_prior_s
        self._decision_s = 0.0 if prior is None else prior
        self._decisions_timed = 0
        self._scan_ratio = 1.0  # scans' CPU time over the calibration's (_scan_cost)
        self._pages = 0.0  # the size of the window being chosen for
        self._window_pages = 0.0  # the size of the window last chosen for (see update)
        self._split: tuple[int, float] | None = None  # see split()
        # the read a window played without features was played on, and its prediction
        self._played_on: tuple[_Read, _Prediction] | None = None
        # per arm, the count of windows learnt from when it was last learnt from (see
        # _balanced: of two arms that share a window, the one learnt from longest ago plays
        # the part the update sees)
        self._learnt = [0] * k
        self._updates = 0
        self._expected = 0.0  # the predicted loss of the arm chosen
        self._expected_out = 0.0  # and its predicted output bytes
        # every arm's predicted loss and CPU seconds on the window chosen for
        self._chosen: tuple[list[float], list[float]] | None = None

    def _mu(self) -> list[float]:
        """Log ratio (over non-zero pages) per arm: the filter's for compressing arms, 0
        for the others."""
        mu = [0.0] * self.n_arms
        for arm, m in zip(self._c_list, self.ratios.mean().tolist(), strict=True):
            mu[arm] = m
        return mu

    # -- predictions -----------------------------------------------------------------
    def _page_costs(self, arms: np.ndarray, ratio: np.ndarray) -> np.ndarray:
        """Per-page CPU seconds of ``arms`` at ``ratio`` (one per arm, or ``(arms, q)``):
        each arm's cost curve, tabulated finely in log ratio at bind time (a lookup, not an
        interpolation, per decision)."""
        x = np.log(ratio)
        x *= _GRID_SCALE
        idx = np.minimum(np.maximum(x, 0.0), _GRID_STEPS).astype(np.intp)
        rows = self._grid_rows[arms]  # each arm's offset into the flat table
        if idx.ndim == 2:
            rows = rows[:, None]
        return self._cost_flat[rows + idx]

    def _payloads(self, f: WindowFeatures) -> tuple[list[float], list[float], list[float]]:
        """Predicted payload bytes per non-zero page, its log ratio and the model's CPU
        seconds per non-zero page, per arm. The log ratios are the filter's for
        compressing arms and 0 for the others, so raw comes out at a whole page; a delta
        arm's payload is its estimate for the pages the destination holds and its
        fall-back's for the others (exactly the fall-back's when nothing is held, so that a
        tie goes to the fall-back, the arm listed first).

        None of it depends on the window's size: it is kept until the features or the
        estimates change (:class:`_Prediction`), so that windows played on the same
        features predict in a few float operations per arm. A window's features are known
        by their context array: the extractor makes one per window, with the window's other
        arrays, and every copy of the features (``cheap``, ``masked``) shares them."""
        kept = self._prediction
        if kept is not None and kept.context is f.context:
            if kept.version != self._ratio_version:  # the filter moved: its entries anew,
                _, kept.payload[:], kept.lr[:], kept.per_page[:] = self._base()
                kept.version = self._ratio_version
                for i in self._delta_arms:  # and the delta arms' (their fall-backs' moved)
                    self._price_delta(i, kept)
                return kept.payload, kept.lr, kept.per_page
            biases = self.delta_bias
            if kept.biases != biases:  # a delta arm's bias moved: its entries alone
                for i in self._delta_arms:
                    if kept.biases[i] != biases[i]:
                        self._price_delta(i, kept)
            return kept.payload, kept.lr, kept.per_page
        _, payload, lr, per_page = self._base()
        estimates = None
        if self._delta_arms:  # the delta arms' entries, on copies of the compressors'
            payload, lr, per_page = payload[:], lr[:], per_page[:]
            estimates = self._delta_estimates(f)
        kept = _Prediction(
            f.context,
            f.held_frac,
            float(f.context[1]),
            self._ratio_version,
            estimates,
            payload,
            lr,
            per_page,
            [None] * self.n_arms,
            self.delta_bias[:],
            *self._change_costs(f),
            [0.0] * self.n_arms,
            0.0,
        )
        if estimates is not None:
            sample = self._delta_sample(f.delta_bytes)
            kept.level_var = 0.0 if sample is None else sample.var
        for i in self._delta_arms:
            self._price_delta(i, kept)
        self._prediction = kept
        return payload, lr, per_page

    def _base(self) -> tuple[int, list[float], list[float], list[float]]:
        """The filter's version and :meth:`_compressor_payloads` under it (made once per
        version)."""
        base = self._compressors
        if base is None or base[0] != self._ratio_version:  # the filter moved
            base = self._compressors = (self._ratio_version, *self._compressor_payloads())
        return base

    def _compressor_payloads(self) -> tuple[list[float], list[float], list[float]]:
        """:meth:`_payloads` of every arm but the delta arms (those are left at a raw page),
        from the filter's state alone: kept until the filter moves."""
        page_size, log_page = self.page_size, self._log_page
        # the filter's state as floats once, then a few float operations per compressing
        # arm (conditional expressions, not min/max calls); the others stay at a raw page
        # (their cost per page at a raw page's, the first step of their curve)
        x = self.ratios.x.tolist()
        level = x[0]
        lr = [0.0] * self.n_arms
        payload = [float(page_size)] * self.n_arms
        per_page = self._raw_page_costs[:]
        rows = self._cost_rows
        for arm, j in self._c_state:
            m = level + x[j]
            m = (m if m < log_page else log_page) if m > 0.0 else 0.0
            lr[arm] = m
            payload[arm] = page_size * math.exp(-m)
            step = int(m * _GRID_SCALE)  # _grid_step, inline
            per_page[arm] = rows[arm][step if step < _GRID_STEPS else _GRID_STEPS]
        return payload, lr, per_page

    def _window(
        self, f: WindowFeatures, pages: float | None, zero_share: float | None = None
    ) -> tuple[float, ...]:
        """Pages, zero pages, non-zero pages and encode calls of a window of ``pages``
        pages (``None``: the size ``f`` was read on) whose zero share ``f`` gives (or
        ``zero_share``, that share as a float already)."""
        n = f.pages if pages is None else pages
        if n < 1.0:
            n = 1.0
        zero = n * (float(f.context[1]) if zero_share is None else zero_share)
        return n, zero, n - zero, float(math.ceil(n / self.batch_pages))

    def _factor_scales(self) -> tuple[float, ...] | None:
        """The CPU factor's quadrature points relative to its estimate, or ``None`` once
        it is known well enough to use the estimate alone."""
        if self._cpu_var <= _CPU_DRIFT_VAR:
            return None
        sd = self._cpu_var**0.5
        return tuple(math.exp(sd * z) for z in _CPU_NODES)

    def _loss(self, guest: float, out, cpu):
        """The objective's additive loss of a window (for throughput its seconds,
        ``max(cpu / workers, out / link)``), expected over the CPU factor while it is
        uncertain."""
        scales = self._cpu_scales
        if scales is None:
            return self._point_loss(guest, out, cpu)
        return sum(
            w * self._point_loss(guest, out, cpu * s)
            for w, s in zip(_CPU_WEIGHTS, scales, strict=True)
        )

    def _point_loss(self, guest: float, out, cpu):
        if self._fast:
            # an infinite rate makes its side free: a CPU time too large for a float (a
            # forged table's timings learnt as factors) over it is nan, which fmax passes by
            with np.errstate(invalid="ignore"):
                return np.fmax(cpu / self._cpu_rate, out / self._byte_rate)
        reward = self.objective.reward_arrays(guest, out, cpu, cpu)
        # a reward next to 0 (a forged table's timings learnt as factors) is a loss too
        # large for a float: infinite, as the objectives read it, without a warning
        with np.errstate(over="ignore"):
            return -self.objective.utility_arrays(reward) * guest / 1e9

    def _predict(self, f: WindowFeatures, pages: float | None = None, stale: float = 0.0):
        """Payload per non-zero page, output bytes, CPU seconds and loss, per arm, of a
        window of ``pages`` pages (``None``: the size ``f`` was read on) described by
        ``f`` (lists: the hot path, a few float operations per arm); ``stale``: the log
        of what the delta arms' records come to over their estimate on a window played on
        ``f`` that is not the one ``f`` was read on (:meth:`_learn_stale`)."""
        payload, _, per_page = self._payloads(f)
        n, zero, nz, calls = self._window(f, pages, self._prediction.zero_share)
        base = n + calls * RUN_BYTES
        shared = self._shared_factor
        out, cpu = [], []
        factors = self._factors()
        rows = zip(payload, self._fixed_rows, per_page, factors, strict=True)
        if self._fast and self._cpu_scales is None:  # one loop: each list it makes costs
            to_cpu, to_link = self._to_cpu, self._to_link
            loss = []
            for p, (per_call, per_zero), pp, g in rows:
                o = base + p * nz
                c = (per_call * calls + per_zero * zero + pp * nz) * g * shared
                out.append(o)
                cpu.append(c)
                busy, sending = c * to_cpu, o * to_link
                loss.append(busy if busy > sending else sending)
            for i in self._fallback_priced(cpu, nz * shared, factors):
                busy, sending = cpu[i] * to_cpu, out[i] * to_link
                loss[i] = busy if busy > sending else sending
        else:
            for p, (per_call, per_zero), pp, g in rows:
                out.append(base + p * nz)
                cpu.append((per_call * calls + per_zero * zero + pp * nz) * g * shared)
            self._fallback_priced(cpu, nz * shared, factors)
            loss = self._loss(n * self.page_size, np.array(out), np.array(cpu)).tolist()
        kept = self._prediction
        if stale != 0.0:
            self._stale_moved(kept, stale, n * self.page_size, nz, out, cpu, loss)
        var = kept.level_var * self._level_calib
        # the spread raises a delta arm's loss (about its estimate): below another arm's
        # already, it changes no choice, so it is priced only where a delta arm is best
        if var > _LEVEL_SPREAD_MIN_VAR and self._delta_flags[loss.index(min(loss))]:
            self._spread_delta(kept, var, n * self.page_size, nz, out, cpu, loss)
        return payload, out, cpu, loss

    def _scalar_loss(self, guest: float, out: float, cpu: float) -> float:
        """One window's loss as :meth:`_loss` predicts it (expected over the CPU factor
        while that is uncertain), for one arm."""
        if self._fast and self._cpu_scales is None:
            busy, sending = cpu / self._cpu_rate, out / self._byte_rate
            # a nan busy side (a CPU time too large for a float over an infinite rate:
            # _point_loss) is passed by
            return busy if busy > sending else sending
        return float(self._loss(guest, np.array([out]), np.array([cpu]))[0])

    def _drift(self, f: WindowFeatures) -> None:
        """Widen the estimates between windows: a little always, more on a change of the
        cheap features, and by as far as played windows showed the level jumping
        (:meth:`_learn_level_jump`). Each compressor's estimate before it (log ratio and
        variance) is kept for that lesson."""
        ratios = self.ratios
        self._before_drift = (f.context, ratios.state.copy())
        level = self.drift**2 + self._level_jump
        if self._context is not None:
            context, last = f.context.tolist(), self._context.tolist()
            zero, entropy = context[1] - last[1], context[2] - last[2]
            zero, entropy = zero if zero > 0.0 else -zero, entropy if entropy > 0.0 else -entropy
            level += (self.change * (zero if zero > entropy else entropy)) ** 2
        self._context = f.context
        ratios.drift(level if level < _LEVEL_PRIOR[1] else _LEVEL_PRIOR[1], self.arm_drift**2)

    def _learn_level_jump(self, slot: int, f: WindowFeatures, y: float, noise: float) -> None:
        """Learn how far the compressors' level moves from one window to the next beyond
        what ``drift`` and the cheap features allow: a played window's log ratio ``y``
        (with variance ``noise``) against what the filter held before the window's drift
        and probes, once per window read. Programs whose content changes little between
        windows teach nothing; a VM guest's windows of code, data and page tables in
        turn (recorded: ratios of 1.4 to 16 in consecutive windows) teach a jump large
        enough that a window's own probe outweighs the last windows' level, where a small
        drift kept its prediction at the last level, off by a factor of 3."""
        before = self._before_drift
        self._before_drift = None
        if before is None or before[0] is not f.context:
            return  # not the window whose drift was kept
        mean, var = RatioFilter.arm_moments(before[1], slot)
        missed = y - mean
        surprise = missed * missed - var - noise
        surprise = surprise if surprise > 0.0 else 0.0
        self._level_jump = self._jump_step(self._level_jump, surprise)

    def _jump_step(self, jump: float, surprise: float) -> float:
        """A learnt jump (a variance) moved towards one window's ``surprise``, clipped
        at :data:`_JUMP_CLIP` times the jump learnt so far (or the drift's variance, while
        that is larger): one window far off must not make every later estimate worthless."""
        cap = _JUMP_CLIP * (jump if jump > self.drift**2 else self.drift**2)
        surprise = cap if surprise > cap else surprise
        return jump + self.learn * (surprise - jump)

    # -- decision --------------------------------------------------------------------
    def split(self) -> tuple[int, float] | None:
        return self._split

    def choose(self, features: WindowFeatures | None = None) -> int:
        arm = self._choose(features)
        entry = self._read_entry
        if entry is not None:  # what a window of its size is expected to take, per page
            pages = self._window_pages
            entry.per_page_s = self._expected / (pages if pages > 1.0 else 1.0)
        return arm

    def _choose(self, features: WindowFeatures | None) -> int:
        self._split = None
        # the window's size, kept for its update: an engine reads the next window's
        # features (wants_features) before the last window is learnt from
        self._window_pages = self._pages if features is None else features.pages
        self._played_on = None
        if features is None:  # features skipped: the last ones read, at this window's size
            if self._read is None:
                mu = self._mu()
                return max(range(self.n_arms), key=mu.__getitem__)
            entry = self._read_entry
            _, out, cpu, loss = self._predict(entry.features, self._pages, entry.stale_bias)
            # what it was played on and priced with, for its update (an engine may have
            # read the next window's features by then: _learn_stale)
            self._played_on = (entry, self._prediction)
            arm = self._balanced(entry.features, loss.index(min(loss)), loss, out, cpu)
            self._chosen = (loss, cpu)
            entry.since_s += self._expected
            return arm
        if self._context is not features.context:
            self._drift(features)  # a caller that skipped probe_mask
        m = features.probe_pages
        seen = None
        if features.probe_out is not None and m > 0:
            seen = self._c[np.isfinite(features.probe_out[self._c])]
        if not (seen is not None and seen.size):
            last = self._last
            if last is not None and last[0].context is features.context:
                _, loss, out, cpu = last  # nothing new since probe_mask predicted
                return self._pick(features, loss, out, cpu)
        else:
            noise = self.probe_noise**2 / m
            y = np.log(m * self.page_size / np.maximum(features.probe_out[seen], 1.0))
            self.ratios.observe_probes(np.searchsorted(self._c, seen), y, noise, _PROBE_SHARED)
            self._ratio_version += 1
        _, out, cpu, loss = self._predict(features)
        return self._pick(features, loss, out, cpu)

    def _cross_margin(self, held: int, best: int) -> float:
        """``cross_margin`` between ``held``, the arm played last, and ``best``, of the other
        kind (one of them a delta arm), widened by :data:`_CROSS_SPREAD` of the compressor's
        log-ratio standard deviation, if one of them is a compressor: the first windows'
        ratios are known from a few probes, and a switch of kind on them is a bet on
        that."""
        compressor = held if self._delta_flags[best] else best
        slot = self._slot[compressor]
        if slot is None:  # raw: its bytes are known
            return self.cross_margin
        var = RatioFilter.arm_moments(self.ratios.state, slot)[1]
        spread = math.sqrt(var) if var > 0.0 else 0.0
        return self.cross_margin + _CROSS_SPREAD * spread

    def _pick(self, f: WindowFeatures, loss: list[float], out: list[float], cpu: list[float]):
        """The arm of least predicted loss, or one whose CPU time no window has measured
        yet, when trying it is worth what it may cost.

        The calibration prices content by its ratio alone, and how a format meets a
        program's memory moves one arm's cost against another's by more than the gap
        between close arms (recorded traces: XBZRLE at half a DSA record's cost on values
        rewritten whole, twice it on scattered words), which only a window played
        measures. Over its own factor's prior (three points), an arm not yet played is
        tried when the loss it is expected to save on this window, once known, scaled to
        the guest bytes played so far (a stream is expected to last as long again) exceeds
        ``value`` times what this window is expected to lose against the best: in bytes,
        not windows, so that the largest window, the dearest to try an arm on, does not
        count as one of many small ones. A
        delta arm is tried only on a window whose pages the destination mostly holds:
        elsewhere it would send them through its fall-back, and measure that. A trial plays
        the arm on the window's first few batches (:data:`_TRIAL_BATCHES`), the evidence it
        needs, and the best arm on the rest (:meth:`split`), so it costs that part's loss."""
        self._split = None
        least = min(loss)
        arm = best = loss.index(least)  # _argmin, inline
        held = self._incumbent
        if (
            held >= 0
            and held != best
            and self._delta_flags[held] != self._delta_flags[best]
            and loss[held] <= least * (1.0 + self._cross_margin(held, best))
        ):
            # an arm of the other kind predicted within the margin: the arm played last
            # stays (see cross_margin)
            arm = best = held
            least = loss[held]
        untried = self._untried
        if untried:
            if self._fast and self._cpu_scales is None:
                # the loss grows with CPU time: out of reach at its cheapest node, an arm
                # has nothing to save (most arms, most windows), and only a window with an
                # arm in reach prices any (_scalar_loss, inline, in a loop: a comprehension
                # would make and call a function every window); a delta arm in reach on a
                # window mostly not held (a first pass) is not tried there either (_trial)
                workers, link = self._cpu_rate, self._byte_rate
                scale, delta = self._cheapest_scale, self._delta_flags
                for a in untried:
                    if (
                        a != arm
                        and out[a] / link < least
                        and cpu[a] * scale[a] / workers < least
                        and not (delta[a] and not self._mostly_held(f))
                    ):
                        arm = self._trial(f, arm, least, untried, out, cpu)
                        break
            else:
                arm = self._trial(f, arm, least, untried, out, cpu)
        self._chosen = (loss, cpu)
        if arm == best:
            return self._balanced(f, best, loss, out, cpu)
        if f.pages > self._trial_pages:  # a trial, on a part of the window
            self._split = (best, float(self._trial_pages))
        self._expected, self._expected_out = loss[arm], out[arm]
        return arm

    def _outdone(self, arm: int, outcome: Outcome, share: float = 1.0) -> bool:
        """Whether ``arm``, had it been predicted to send the bytes ``outcome`` sent, would
        have lost at least as much as another arm was predicted to on that window
        (``share``: the part of the window the outcome covers, the others' loss scaled
        to it)."""
        if self._chosen is None:
            return True
        loss, cpu = self._chosen
        if len(loss) < 2:
            return False
        # the least of the others' losses, without making a list of them (once a window)
        own, loss[arm] = loss[arm], math.inf
        others = min(loss)
        loss[arm] = own
        if self._fast and self._cpu_scales is None:  # _scalar_loss, inline
            busy = cpu[arm] * share * self._to_cpu
            sending = outcome.output_bytes * self._to_link
            lost = sending if sending > busy else busy
        else:
            lost = self._scalar_loss(outcome.input_bytes, outcome.output_bytes, cpu[arm] * share)
        return lost >= others * share

    def _retry_stale(self) -> None:
        """Count every arm whose CPU factor is back at its prior as untried: its next
        plays are averaged anew, as its first were, and :meth:`_pick` tries it when that is
        worth what it may cost. An arm's factor grows back from what its last play left by
        ``cost_drift`` for each second of stream since (the variance of its log, up to
        :data:`_CPU_ARM_VAR`; a window's seconds as the objective's model has them, from
        what it measured); until then, the factor it learnt stands.

        An arm is played again only while its factor says it is the best, so a factor
        measured on one slow window kept the arm off every later window of a stream (in a
        measured table of a key-value cache, XBZRLE's first window timed during a burst of
        load, at 1.4x its later windows, where it would have been the best fixed arm):
        what is not measured again must not stay known. Per second, not per window or
        byte: what moves an arm's cost (the host's load, the program's phase) moves with
        time, and an engine's windows are a fraction of a trace's. Run only when an arm
        is due, so that a window costs one comparison."""
        untried, due = self._untried, self._retry_due
        for arm in range(self.n_arms):
            if due[arm] <= self._stream_s:
                due[arm] = math.inf
                self._cpu_arm_var[arm] = _CPU_ARM_VAR
                if self._delta_flags[arm]:  # its own part as unknown as before its first play
                    j, cov = self._delta_pos[arm], self._delta_cov
                    if cov.item(j, j) < _CPU_ARM_VAR:
                        cov[j, j] = _CPU_ARM_VAR
                    # its mirror, as _learn_delta_cpu keeps it
                    self._cpu_arm_var[arm] = cov.item(j, j)
                self._cpu_weight[arm] = 0.0
                self._forget_pace(arm)  # what the stream showed of it is as old
                if arm not in untried:
                    untried.append(arm)
                self._trial_prior(arm)
        self._next_retry = min(due)

    def _trial_prior(self, arm: int) -> None:
        """Recompute ``arm``'s factor past the host's spread and cheapest node (_pick)."""
        if self._delta_flags[arm]:  # the delta arms' part and its own, with their covariance
            j, cov = self._delta_pos[arm], self._delta_cov
            var = cov.item(0, 0) + 2.0 * cov.item(0, j) + cov.item(j, j)
        else:
            var = self._cpu_arm_var[arm]
        sd = self._trial_sd[arm] = var**0.5
        self._cheapest_scale[arm] = math.exp(sd * _CHEAPEST)

    def _learn(self, arm, reward, features, outcome: Outcome | None) -> None:
        # what probe_mask predicted is stale once a window was learnt from (an engine may
        # read a window's features before the previous window is finished)
        self._last = None
        skipped = features is None
        if skipped:  # learn against the last features read, as the choice was made
            features = self._read
        if outcome is None or features is None:
            return
        guest, sent, wall_s, cpu_s, device_s, zero = outcome
        clocked = self._clocked  # None by the CPU clock, whose stretch is 1
        # Outcome.busy_s, inline (a method call costs more than the choice, per window)
        busy = device_s if device_s is not None else cpu_s if clocked is None else wall_s
        if clocked is not None and device_s is None and cpu_s > 0.0:
            clocked[0] += self.learn * (busy - clocked[0])
            clocked[1] += self.learn * (cpu_s - clocked[1])
            self._stretch = clocked[0] / clocked[1]
        updates = self._updates = self._updates + 1
        self._learnt[arm] = updates
        page_size = self.page_size
        n = guest / page_size
        # the share of the window chosen for that the outcome covers: a part when the
        # window was split for a trial (or an engine reported only its first batches)
        window = self._window_pages
        share = n / window if 0.0 < n < window else 1.0
        self._played_bytes += guest / share
        if share == 1.0:
            self._incumbent = arm
        # a window that sent less than predicted, or more by so much that another arm
        # would have lost less: its content was not what the estimates said, and content
        # that moves faster than estimates carried from window to window can follow needs
        # the next window's features read, whatever they were worth lately. A window that
        # sent more, but not enough more to change the choice, leaves it standing: rereading
        # would pay for features that choose the same arm (the played arm's own outcome,
        # learnt below, is free). Judged on bytes, not time: what content does to a codec's
        # time is the cost model's to learn, and clocks are noisy where sizes are not; and
        # only where bytes enter the loss (not the CPU objective's: there such reads cost a
        # recorded QEMU guest 5 % of its CPU time against raw pages alone)
        slack = 1.0 + self.drift
        expected = self._expected_out * share
        if self._bytes_cost and (
            sent < expected / slack
            or (sent > expected * slack and self._outdone(arm, outcome, share))
        ):
            self._stale_play = True
        delta = self._delta_flags[arm]
        # the window's own count: a window played on older features may differ from them
        if zero is None:
            zero = n * float(features.context[1])
        nz = n - zero
        calls = math.ceil(n / self.batch_pages)
        payload = sent - n - calls * RUN_BYTES
        measured = nz >= 1.0 and payload > 0
        each = payload / nz if measured else float(page_size)
        # the model's cost of what was sent, priced before anything below moves the
        # estimates the choice priced it with
        per_page = self._sent_page_cost(arm, features, each)
        if measured:
            slot = self._slot[arm]
            if slot is not None:  # a compressing arm
                # a window of a few pages says as little about the next as a probe of as
                # many: its weight grows with its non-zero pages
                noise = self.probe_noise**2 / nz
                noise = noise if noise > _PLAY_VAR else _PLAY_VAR
                y = math.log(page_size / each)
                if not skipped:
                    self._learn_level_jump(slot, features, y, noise)
                self.ratios.observe(slot, y, noise)
                self._ratio_version += 1
            elif delta and skipped:
                self._learn_stale(arm, each)
            elif delta and not skipped and features.delta_bytes is not None:
                estimate = self._delta_estimates(features)[arm]
                if features.held_frac > 0.9 and math.isfinite(estimate) and estimate > 0:
                    # learnt only against this window's own estimate (a window played on
                    # the last features read would compare another window's sample), and
                    # at a tenth of the step: most of one window's error is its sample's,
                    # which the next window does not share and every delta arm's estimate
                    # does, so a faster step tips close calls between delta arms on noise
                    missed = math.log(each / estimate)
                    error = missed - self.delta_bias[arm]
                    self.delta_bias[arm] += self.learn * error / 10
                    self._learn_delta_level(arm, features, each, missed, nz)
        per_call, per_zero = self._fixed_rows[arm]
        model = per_call * calls + per_zero * zero + per_page * nz
        if busy > 0:  # the stream's time: the window's, as the objective's model has it
            if self._timed:
                busy_s, sending_s = busy * self._to_cpu, sent * self._to_link
                self._stream_s += busy_s if busy_s > sending_s else sending_s
            else:
                self._stream_s += busy / self._workers
            if self._stream_s >= self._next_retry:
                self._retry_stale()
        # a delta arm's fall-back part ran the fall-back codec, at the fall-back arm's
        # factor (_fallback_priced): what is left is its own, and the window teaches its
        # factor in proportion to that share (a first pass: its calls alone)
        own_share = 1.0
        if delta and model > 0:
            fallback_s = _fallback_part(self._prediction.fallback_parts[arm]) * nz
            if fallback_s > 0.0:
                own_share = 1.0 - fallback_s / model
                paid = fallback_s * self._arm_factor[self.fallbacks[arm]] * self._shared_factor
                busy, model = busy - paid, model - fallback_s
        if nz >= 1.0 and busy > 0 and model > 0:
            # split the error: what one arm's model misses, the others' likely miss too
            # (see _cpu_var); a window of less than a few batches is mostly fixed
            # cost and clock noise, so it weighs in proportion to its size. A compressor's
            # (or raw's) first plays are averaged (by weight) before the moving average
            # takes over: a host busier than the calibration's shows at once, not after
            # the first pass of memory went out on a model that is off. The delta arms'
            # factors are filtered jointly (_learn_delta_cpu)
            weight = nz / (4 * self.batch_pages)
            weight = (weight if weight < 1.0 else 1.0) * own_share
            seen = self._cpu_weight[arm] = self._cpu_weight[arm] + weight
            # an arm counts as tried once it has measured a window's worth of pages (a
            # delta arm, of its records): a play of a few pages measured its fixed cost
            # and the clock's noise, and must not end its trials
            if seen >= 1.0 and arm in self._untried and (not delta or self._mostly_held(features)):
                self._untried.remove(arm)
            evidence = weight / _CPU_PLAY_VAR
            if delta:  # the delta arms' part and their own, not the host's
                self._learn_delta_cpu(arm, math.log(busy / model) - self.cpu_shared, weight)
            else:
                own = self.cpu_arm[arm]
                error = math.log(busy / model) - self.cpu_shared - own
                step = self.learn * weight
                step = weight / seen if weight / seen > step else step
                arm_var = self._cpu_arm_var[arm]
                shared_var = self._cpu_var
                share = shared_var / (shared_var + arm_var)
                self.cpu_shared += step * error * share
                self._shared_factor = math.exp(self.cpu_shared)
                self.cpu_arm[arm] = own + step * error * (1.0 - share)
                self._cpu_arm_var[arm] = _least_var(1.0 / (1.0 / arm_var + evidence))
            # the hedge over the shared factor (_loss) ends with the first windows measured,
            # whichever arm played them: they show what this host's clock does to a
            # stream's encoders, if not which codec's model it moved (at its floor, as the
            # first windows leave it, evidence keeps it there)
            if self._cpu_var > _CPU_DRIFT_VAR:
                self._cpu_var = _least_var(1.0 / (1.0 / self._cpu_var + evidence))
            arm_var = self._cpu_arm_var[arm]
            if self.cost_drift > 0.0:  # when it is as unknown as before its first play
                due = self._stream_s + (_CPU_ARM_VAR - arm_var) / self.cost_drift
                self._retry_due[arm] = due
                if due < self._next_retry:
                    self._next_retry = due
            if not delta:  # (the delta arms': _learn_delta_cpu)
                self._arm_factor[arm] = math.exp(self.cpu_arm[arm])
                if arm in self._untried:  # only _pick's trials read it
                    self._trial_prior(arm)
            if self._cpu_scales is not None:
                self._cpu_scales = self._factor_scales()
