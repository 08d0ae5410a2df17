"""The ``auto`` policy: predict every arm's outcome on this window, buy a probe only when
it can change the decision by more than it costs.

An arm's outcome on a window is predicted from:

- the window's size and zero pages (every arm sends a zero page as a one-byte marker);
- per compressing arm, its log ratio over the non-zero pages, modelled as a shared level
  plus a per-arm offset, ``L + d_a``, in a Kalman filter. Compressors' ratios move together
  (the content is what changes), so playing one arm informs all of them. The played arm's
  outcome is free evidence; a probe of a few sampled pages is bought evidence, with a learnt
  bias, shared and per arm (a few pages compress worse than a whole batch, by how much
  depends on the codec and on what the arm's plays saw:
  :class:`~migcodec.selector.policies.kalman.RatioFilter`). The level drifts between
  windows, more when the cheap features show a change of content, and by as far as
  played windows showed it jumping;
- per delta arm, the payload its format would write for the sampled pages' changed words
  (:meth:`~migcodec.codecs.delta.DeltaCodec.estimate_sizes`) with a learnt bias, plus its
  fall-back's payload for pages the destination does not hold. The delta arms' shared
  level is filtered over the windows of about the same size: a sample moves it by what
  samples have been worth (how far they missed what played windows sent), and played
  windows set it. A delta arm's loss is its expectation over that level's error, as
  large as played windows showed it (:meth:`Auto._spread_delta`): records that may come
  out larger than estimated may fill the link;
- per arm, CPU time from the calibrated cost model (:mod:`migcodec.selector.costmodel`):
  a compressor's at its predicted ratio, a delta arm's by the changed words and runs of
  changed bytes of the sample's held pages, which its encode time follows;
  corrected by learnt factors: the host's, shared by all arms and learnt from the plays
  of every arm but the delta arms; one the delta arms share, learnt from theirs (how a
  program's writes meet delta formats, which no calibration sees); and one per arm (the
  delta arms' filtered jointly with the part they share, so that one arm's plays do not
  carry its error to another arm measured before: :meth:`Auto._learn_delta_cpu`).

The objective turns these into a predicted reward per arm and the best is played, or an
arm no window has measured yet where trying it is worth what it may lose (its cost on this
program's memory may be far from the calibration's: on recorded traces XBZRLE's against a
DSA record's stands anywhere from 0.8x to 2.3x the calibration's), on the window's first
few batches, the rest of the window played by the best arm (:meth:`Auto.split`). An arm's
own CPU factor grows less known with every second of stream that plays other arms
(``cost_drift``), and one back at its prior counts as not yet measured: a factor measured
on one slow window does not keep an arm off the rest of a long stream. The cheap
features are read only when they pay: the policy keeps a moving average, per guest byte, of
the loss that reading them avoided, and also reads them when no window of about this one's
size has been read (features are kept per size: programs alternate bursts with a few pages of
housekeeping, and each kind describes its own next windows), when a window sent more or less
than predicted (in both cases unless the read costs more than the whole window is predicted
to take), or when reading them costs at most ``upkeep`` of the time played on the
features of this size since they were read (so keeping estimates fresh costs a bounded share
of the migration). A probe of arm ``a`` is bought when its expected value (the loss it
avoids by revealing a better arm, over how far a probe of its pages can move ``a``'s
estimated ratio: the less the pages say over their noise, the less) exceeds its CPU
time, charged to the window: probes go to large windows whose best arms are close, and stop
once the estimates are sharp.

Under the throughput objective a window takes as long as the busier of the encoders and the
link, so the best arm for a window may leave one of them idle. A window is then shared with
an arm bound by the other (a compressor's batches beside raw or delta batches): each plays
the part of the window at which both are predicted equally busy, when that saves at least
``balance`` of the window's time (:meth:`Auto._balanced`), and while the encoders run about
as fast as calibrated (on a crowded host neither idle resource is free). No single codec can
do this, so on traces where neither resource dominates ``auto`` beats every fixed arm and
even the per-window oracle of single arms.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from migcodec.codecs import CodecKind
from migcodec.codecs.base import RUN_BYTES
from migcodec.extensions import optional_extension
from migcodec.selector.costmodel import KNOTS, ArmCost
from migcodec.selector.features import WindowFeatures
from migcodec.selector.objectives import Outcome, Throughput
from migcodec.selector.policies.base import Policy
from migcodec.selector.policies.kalman import _LEVEL_PRIOR, RatioFilter, kalman_update
from migcodec.wire.format import MAX_BATCH_PAGES

#: Gauss-Hermite nodes and weights (probabilists'), for expectations over a log ratio
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(7)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()
_NODE_WEIGHTS = tuple(zip(_NODES.tolist(), _WEIGHTS.tolist(), strict=True))
_NODES_THEN_WEIGHTS = np.concatenate([_NODES, _WEIGHTS])  # as the C valuation takes them

_probes, PROBE_VALUES = optional_extension("migcodec.selector._probes", "Python")
_native_values = None if _probes is None else _probes.probe_values
#: the most arms the C valuation takes (``MAX_ARMS`` in ``_probes.c``)
_NATIVE_MAX_ARMS = 256
#: the share of a probe's noise that its sample puts on every arm probed in the window
#: alike (0: independent probes; 1: the sample's error only)
_PROBE_SHARED = 0.5
#: the variance of a whole window's own outcome as evidence of its arm's log ratio
_PLAY_VAR = 0.01
#: prior variance of one sampled page's log payload of the delta arms against its window's
#: (learnt from played windows): about a factor of e either way
_DELTA_NOISE_PRIOR = 1.0
#: the largest draw of that variance one window teaches, in multiples of its estimate (a
#: clip at two standard deviations): a window whose payload a sample missed by far (one
#: page of many changed words among few) must not make every later sample worthless
_DELTA_NOISE_CLIP = 4.0
#: how much less the delta arms' level of one window size says of a window of another (a
#: variance of the log, per unit of the log of their sizes' ratio): windows of about one
#: size share their writes, and the further apart two are, the less (see
#: Auto._delta_level_of)
_SIZE_APART_VAR = 0.1
#: step of the moving mean of the delta level's squared errors in units of its variance
#: (see Auto._spread_delta): a squared error is a noisy draw (a Gaussian's has a standard
#: deviation of twice its mean), so the mean takes about ten played windows to settle
_LEVEL_CALIB_STEP = 0.1
#: below this variance of the delta level (a standard deviation of 5 %) a window is
#: priced at its estimate: the spread would move its predicted time by less than the
#: model's own error
_LEVEL_SPREAD_MIN_VAR = 0.0025
#: prior variance of the log of the CPU factor all arms share (this host's encode time over
#: the calibration's), by the objective's clock. The calibration times codec calls alone
#: on this host in thread CPU time: CPU time elsewhere on the host differs by what caches
#: and load do to it (a third, give or take), while the wall time of encoders that share
#: their host with the guest and the stream's other threads can be several times as long
_CPU_PRIOR_VAR = {"cpu": 0.09, "wall": 0.64}
#: prior variance of the log of each arm's own factor on top of the shared one: what slows
#: one codec on a host slows the others nearly as much
_CPU_ARM_VAR = 0.04
#: prior variance of the log of a factor the delta arms share on top of the host's: their
#: work also depends on what the destination holds, on how a program's writes fall in its
#: pages and on the mirror of it that a stream's encoders share, which a calibration on one
#: window sees only in part. Their plays teach this factor and their own, never the host's:
#: put there, such an error made every compressor look as much slower or faster than it
#: is, and a compressor that was the best fixed arm was never tried. No larger than an
#: arm's own: priced by the changes they encode, the delta formats no longer move alike
#: (the measured CPU time in ``docs/results/selector.md``: XBZRLE below its model on most
#: programs where DSA records are at or above theirs, and a loaded host slows DSA records
#: more), and a shared part as large as 0.25 put most of DSA's error on XBZRLE too, which
#: then looked as dear and was not played where it was the best arm
_CPU_DELTA_VAR = 0.04
#: the variance of one whole window's CPU time as evidence of these factors, and the least
#: variance they keep (the host's load can change from window to window); at that least
#: variance the shared factor's estimate is used as known (a point estimate)
_CPU_PLAY_VAR = 0.04
_CPU_DRIFT_VAR = 0.01
#: batches of a window a trial plays an arm on (the rest of the window plays the best arm),
#: by the objective's clock: the evidence after which an arm counts as tried (see
#: Auto.update), and more of it in wall time, which the encoders' host shares with the
#: guest and the stream's threads (a migration engine's trial of 4 batches measured one
#: codec at 2.5x its windows' time and tipped the host's factor)
_TRIAL_BATCHES = {"cpu": 4, "wall": 16}
#: how many times the average decision a timed one counts as at most, and how many are
#: timed before the average starts, from the least of them (Auto.probe_mask)
_DECISION_OUTLIER = 4.0
_DECISIONS_SEEDING = 3
#: the host's CPU factor (its encoders' time over the calibration's) above which no window
#: is shared between two arms (see Auto._balanced): encoders that take this much longer
#: than calibrated wait for cores the guest and the stream's other threads hold, so
#: neither the encoders' idle time in the model nor the link's is free
_CROWDED_HOST = 1.5
#: the largest ratio of a window's stream time to its encoders' time an arm's pace learns
#: from (the log of a factor of 64), and the weight of an arm's first such window (taken
#: half: one window's noise is not a fact; see Auto.learn_elapsed)
_PACE_CLIP = math.log(64.0)
_PACE_FIRST = 0.5
#: a window whose stream time is at most this much over its link's time was the link's: it
#: shows nothing of the work its frames make (see Auto.learn_elapsed)
_PACE_LINK_SLACK = 1.1
#: the most an arm not yet paced is thought to wait as the arms paced do: every arm waits
#: for cores the stream's other work holds, but one arm's frames waiting longer than that
#: is that arm's (a slow decoder)
_PACE_SHARED_MOST = 2.0
_PACE_SHARED_LOG = math.log(_PACE_SHARED_MOST)
#: how many of an arm's last windows its pace is learnt from the median of
_PACE_WINDOWS = 3
#: the largest draw of the level's jump one window teaches, in multiples of the estimate
#: (or of ``drift`` squared, before there is one): a clip at two standard deviations, so
#: that one window of unrelated content does not set the level loose for the whole stream
_JUMP_CLIP = 4.0
#: the features kept, read on windows of different sizes (see Auto.wants_features)
_KEPT_READS = 8
#: the step of the moving average of each delta arm's log estimate against the others'
#: (see Auto._delta_estimates): about five windows
_DELTA_POOL_STEP = 0.2
#: three-point Gauss-Hermite rule (probabilists') over the log factor
_CPU_NODES = (0.0, -math.sqrt(3.0), math.sqrt(3.0))
_CPU_WEIGHTS = (2.0 / 3.0, 1.0 / 6.0, 1.0 / 6.0)
_CHEAPEST = min(_CPU_NODES)
#: a neutral cost model for arms without a calibration (learnt from plays from then on)
_NEUTRAL = ArmCost(20e-6, 0.0, [5e-6] * len(KNOTS))
_LOG_KNOTS = np.log(np.array(KNOTS))
#: steps of the tabulated cost curves over log ratios 1..KNOTS[-1] (about 1 % apart)
_GRID_STEPS = 640
#: grid steps per unit of log ratio
_GRID_SCALE = _GRID_STEPS / float(_LOG_KNOTS[-1])


def _grid_step(log_ratio: float) -> int:
    """The step of the tabulated cost curves (see ``Auto._page_costs``) at ``log_ratio``
    (>= 0), the last one beyond the last knot."""
    step = int(log_ratio * _GRID_SCALE)
    return step if step < _GRID_STEPS else _GRID_STEPS


def _least_var(var: float) -> float:
    """``max(var, _CPU_DRIFT_VAR)``, in a conditional expression: the update runs it three
    times a window, and a call of ``max`` costs several times as much."""
    return _CPU_DRIFT_VAR if var < _CPU_DRIFT_VAR else var


def _argmin(values: list[float]) -> int:
    """The first index of the smallest value (as ``np.argmin``), on a short list."""
    return values.index(min(values))


@dataclass(slots=True, eq=False)
class _Prediction:
    """What ``Auto._payloads`` computed for one window's features, per arm, and what from:
    the features' context array (see ``Auto._payloads``), the share of pages held, the
    filter's version and the delta arms' pooled estimates. Kept until the features change;
    a move of the filter refreshes its entries in place. A delta arm's bias moves only that
    arm's entries: they are priced again
    (``Auto._price_delta``) when the prediction is next used, which a window that reads new
    features never does."""

    context: np.ndarray
    held: float
    zero_share: float  # the context's, as a float (numpy's scalar costs more per read)
    version: int
    estimates: list[float] | None
    payload: list[float]
    lr: list[float]
    per_page: list[float]
    #: per delta arm with a fall-back arm: the share of pages held, the fall-back's payload,
    #: its model CPU per page it encodes, and per non-zero page of the window (the pages not
    #: held: the fall-back part, priced once here, read on every window played on these
    #: features: ``Auto._delta_page_cost``, ``Auto._learn``)
    fallback_parts: list[tuple[float, float, float, float] | None]
    #: each delta arm's bias as its entries were priced
    biases: list[float]
    #: per arm, the model's CPU seconds per held page for the changes the sample shows
    #: (changed words and runs of changed bytes: a delta arm's work; 0 for the others),
    #: and the part of it that moves with the delta arms' level (``Auto._change_costs``)
    changes: list[float]
    moving: list[float]
    #: per delta arm, its records' bytes per non-zero page (the held pages' part of its
    #: payload; 0 for the others)
    records: list[float]
    #: the variance of the delta arms' level the window was priced at (0: none)
    level_var: float


def _fallback_part(parts: tuple[float, float, float, float] | None) -> float:
    """The model CPU seconds per non-zero page of a delta arm's fall-back part (its pages
    not held, at the fall-back's cost) from its fall-back parts (``Auto._price_delta``)."""
    return 0.0 if parts is None else parts[3]


def _about(pages: float, read_pages: float) -> bool:
    """Whether a window of ``pages`` pages is of about the size of one of ``read_pages``
    (within a factor of 4): the features of one describe the other (see
    ``Auto.wants_features``)."""
    return read_pages / 4 <= pages <= read_pages * 4


@dataclass(slots=True, eq=False)
class _Read:
    """Features read on a window, and the predicted time of the windows played on them
    since (see ``Auto.wants_features``)."""

    features: WindowFeatures
    #: what reading them cost, as priced (Auto._scan_cost: their scan's CPU seconds, a
    #: pause in it counted as at most a few times what a scan costs here)
    scan_s: float = 0.0
    since_s: float = 0.0
    #: the predicted loss per page of the last window played on these features
    per_page_s: float = 0.0
    #: the delta arms' level on windows of this size, and its variance (see
    #: Auto._delta_level_of): the window's as priced, then corrected by its plays
    level: float | None = None
    level_var: float = 0.0
    #: the log of what the delta arms' records came to over their prediction on windows
    #: of this size played on the features last read on another (a moving average, carried
    #: from one read of the size to the next; see Auto._learn_stale)
    stale_bias: float = 0.0


@dataclass(slots=True, eq=False)
class _DeltaSample:
    """One window's sample of the delta arms (``raw``, its estimates array), the level it
    showed and the held pages it read, the level and variance the filter priced the window
    at (``Auto._delta_level_of``), and the features kept for its size once it was read
    (whose level its plays correct)."""

    raw: np.ndarray
    sampled: float
    pages: float
    level: float
    var: float
    entry: _Read | None = None
    #: the level of the windows of its size before it, and that level's variance before
    #: the drift between windows (None: the first of its size, or its jump already learnt)
    prior: tuple[float, float] | None = None
    #: per arm, the model's CPU seconds per held page of the changes it shows, and the
    #: part of them that moves with the level (made once: see Auto._change_costs)
    changes: list[float] | None = None
    moving: list[float] | None = None


class Auto(Policy):
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
    1.5 % behind zstd alone over the trace. Between arms of one kind, whose predictions
    share a model, the least predicted loss plays.

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
    defaults were not moved after them. ``upkeep`` and
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
        self.ratios = RatioFilter(self._c.size)
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

    def _price_delta(self, i: int, kept: _Prediction) -> None:
        """Delta arm ``i``'s entries of ``kept``: its payload, log ratio, model CPU per page
        and fall-back parts, from its estimate, its bias and its fall-back's entries."""
        page_size = self.page_size
        payload, estimates, held = kept.payload, kept.estimates, kept.held
        bias = kept.biases[i] = self.delta_bias[i]
        # pages the destination does not hold go through the arm's fall-back, as its arm
        # would send them (raw, when no arm is configured like it)
        fallback = self.fallbacks[i]
        fb = payload[fallback] if fallback >= 0 else float(page_size)
        if estimates is None:  # nothing held: every page through the fall-back
            each, share, records = fb, 0.0, 0.0
            kept.records[i] = 0.0
        else:
            est = estimates[i]  # an arm without an estimate sends pages raw
            if not math.isfinite(est):
                est = page_size
            est *= math.exp(bias)
            if est > page_size:
                est = page_size
            kept.records[i] = held * est
            each = held * est + (1.0 - held) * fb
            if each < 1.0:
                each = 1.0
            share, records = held, math.log(page_size / (1.0 if est < 1.0 else est))
        payload[i] = each
        kept.lr[i] = math.log(page_size / each)
        rows = self._cost_rows
        parts = None
        if fallback >= 0:
            cost = rows[fallback][_grid_step(kept.lr[fallback])]
            if share < 1.0:  # a batch with a page not held calls the fall-back too
                cost += self._fallback_call_cost(fallback, share, kept.zero_share)
            parts = (share, fb, cost, (1.0 - share) * cost)
        kept.fallback_parts[i] = parts
        own = rows[i][_grid_step(records)] + kept.changes[i]
        kept.per_page[i] = self._delta_page_cost(own, parts)

    def _fallback_priced(
        self, cpu: list[float], pages: float, factors: list[float] | None = None
    ) -> list[int]:
        """Move each delta arm's fall-back part of ``cpu`` (its pages not held, ``pages``
        non-zero pages times the host's factor, which the fall-back codec encodes) from its
        own factor to the fall-back arm's, and return the arms moved. At its own factor, a
        delta arm on a first pass was priced below its fall-back arm whenever that arm had
        measured slower than its calibration: lz4 at 1.1x lost the first pass of a redis
        image to XBZRLE running lz4, whose factor, measured on those windows, then said
        nothing about its records."""
        moved = []
        parts, fallbacks = self._prediction.fallback_parts, self.fallbacks
        factors = self._arm_factor if factors is None else factors
        for i in self._delta_arms:
            part = _fallback_part(parts[i])
            if part > 0.0:
                cpu[i] += part * pages * (factors[fallbacks[i]] - factors[i])
                moved.append(i)
        return moved

    def _fallback_call_cost(self, fallback: int, held: float, zero_share: float) -> float:
        """The fall-back arm's per-call cost, per page it encodes for a delta arm: a batch
        calls it once for all its pages the destination does not hold, which with ``held``
        of ``k`` non-zero pages held is a batch in ``1 - held**k``, for the ``(1 - held) k``
        pages it encodes there. Without it, a delta arm on a window held nowhere (a first
        pass) was priced as its fall-back's pages plus its own per-call cost, which is
        below the fall-back arm's own: it won the first pass of a 256 MiB redis image
        from lz4, which it then ran with its own bookkeeping besides."""
        k = self.batch_pages * (1.0 - zero_share)
        k = 1.0 if k < 1.0 else k
        batches = 1.0 - held**k  # the share of batches that call the fall-back
        return self._fixed_rows[fallback][0] * batches / ((1.0 - held) * k)

    def _change_costs(self, f: WindowFeatures) -> tuple[list[float], list[float]]:
        """Per arm, the model's CPU seconds per held page for the changes ``f``'s sample
        shows: its changed words (the context's share of them) and runs of changed bytes,
        at the arm's costs per word and per run (a delta arm's; 0 for the others), and the
        part of that which moves with the delta arms' level. Made once per sample (called
        after :meth:`_delta_estimates` of ``f``): a window played on kept features prices
        its delta arms again whenever a play moves the filter or a bias.

        Where the level filter puts the window's payload (the words its records encode)
        away from what its sample shows, the words move with it, and the runs move by the
        share that they move with the words from page to page: the slope of a page's runs
        on its words (pooled over the windows sampled, as the arms' offsets are, with
        :data:`_DELTA_POOL_STEP`), times the sample's words over its runs, from 0 to 1.
        On a recorded key-value cache's windows, where some values are rewritten whole (a
        few runs of many words) and other pages have a word changed here and there, that
        share is about a tenth: a window whose sample held few of the rewritten pages
        showed its runs about right and its words at a third, and its runs scaled with its
        words priced XBZRLE, whose time follows its runs, up to a quarter above what it
        took. Where pages are written alike (a database's, a JavaScript heap's) the share
        is near 1, as it was. Against the windows' true words and runs, on the recorded
        programs' traces, the runs so estimated miss by 0.11 (root mean square of the log)
        where runs scaled with the words missed by 0.18."""
        sample = None if f.delta_bytes is None else self._delta_sample(f.delta_bytes)
        if sample is None:  # nothing held: no records, nothing they encode
            return self._no_changes, self._no_changes
        if sample.changes is None:
            words, runs = float(f.context[3]) * (self.page_size // 8), f.change_runs
            moments = self._runs_moments  # pooled by _delta_estimates
            share = 1.0  # no spread of words seen yet: the runs move with them
            if moments[0] > 0.0 and runs > 0.0:
                share = moments[1] / moments[0] * words / runs
                share = 0.0 if share < 0.0 else 1.0 if share > 1.0 else share
            # the sampled pages show the words as they show the payload, with the same
            # error: the level the filter puts the window at moves them
            scale = math.exp(sample.level - sample.sampled)
            words *= scale
            moved = runs * share * scale  # the runs' part that moves with the level
            runs += moved - runs * share
            sample.changes = [
                per_word * words + per_run * runs for per_word, per_run in self._change_rows
            ]
            sample.moving = [
                per_word * words + per_run * moved for per_word, per_run in self._change_rows
            ]
        return sample.changes, sample.moving

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

    @staticmethod
    def _delta_page_cost(own: float, fallback: tuple[float, float, float, float] | None) -> float:
        """A delta arm's model CPU seconds per non-zero page: ``own``, what its records cost
        (its curve at their log ratio and the changes they encode: see
        :mod:`migcodec.selector.costmodel`), for the share
        of pages the destination holds, and its fall-back arm's cost per page for the
        others. ``fallback``: that share, the fall-back's payload and its cost per page
        (:meth:`_payloads` keeps them per window); without a fall-back arm, its own curve
        prices every page."""
        if fallback is None:
            return own
        return fallback[0] * own + fallback[3]

    def _sent_page_cost(self, arm: int, f: WindowFeatures, each: float) -> float:
        """The model's CPU seconds per non-zero page of a window ``arm`` sent at ``each``
        payload bytes per page (clipped to 1 byte and a whole page). For a delta arm, what
        its fall-back would have written for the pages the destination does not hold (the
        filter's estimate, as the choice priced it) is taken out, and the rest are its
        records (:meth:`_delta_page_cost`)."""
        page_size = self.page_size
        fallback = None
        changes = 0.0
        if self._delta_flags[arm]:
            self._payloads(f)  # the window's fall-back parts, as the choice computed them
            kept = self._prediction
            fallback = kept.fallback_parts[arm]
            changes = kept.changes[arm]  # what its records encoded, as the sample shows
            if fallback is not None:
                held, fb, _, _ = fallback
                each = (each - (1.0 - held) * fb) / (1e-9 if held < 1e-9 else held)
        # clipped, and the grid's look-up, in conditional expressions: min and max calls
        # cost several times as much, once per window
        each = 1.0 if each < 1.0 else page_size if page_size < each else each
        own = self._cost_rows[arm][_grid_step(math.log(page_size / each))] + changes
        return own if fallback is None else self._delta_page_cost(own, fallback)

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

    def _factors(self) -> list[float]:
        """Each arm's CPU factor past the host's, times its pace where the stream has shown
        one (:meth:`learn_elapsed`): the CPU time a window of it costs the stream."""
        if not self._paced:
            return self._arm_factor
        return [f * pace for f, pace in zip(self._arm_factor, self._pace, strict=True)]

    def _stale_moved(
        self,
        kept: _Prediction,
        stale: float,
        guest: float,
        nz: float,
        out: list[float],
        cpu: list[float],
        loss: list[float],
    ) -> None:
        """Each delta arm's records in ``out`` (and the CPU seconds of the changes they
        encode that move with them, as :meth:`_spread_delta` moves them) scaled by
        ``exp(stale)``, and its loss in ``loss`` anew."""
        scale = math.exp(stale) - 1.0
        for i in self._delta_arms:
            records = kept.records[i] * nz
            if records <= 0.0:
                continue
            out[i] += records * scale
            cpu[i] += self._moving_cpu(kept, i, nz) * scale
            loss[i] = self._scalar_loss(guest, out[i], cpu[i])

    def _moving_cpu(self, kept: _Prediction, i: int, nz: float) -> float:
        """Delta arm ``i``'s CPU seconds, on a window of ``nz`` non-zero pages priced as
        ``kept``, of the changes its records encode that move with the delta arms' level
        (:meth:`_change_costs`): what a level other than the estimate moves its time by."""
        factor = self._arm_factor[i] * self._pace[i]  # a pace is 1 until a window shows one
        return kept.moving[i] * kept.held * nz * factor * self._shared_factor

    def _spread_delta(
        self,
        kept: _Prediction,
        var: float,
        guest: float,
        nz: float,
        out: list[float],
        cpu: list[float],
        loss: list[float],
    ) -> None:
        """Each delta arm's loss in ``loss`` as its expectation over the delta arms'
        level, whose variance is ``var``, at the same expected records' bytes (a spread
        about the estimate, three points).

        A window takes as long as the busier of the encoders and the link: the loss is
        convex in the records' size, and its value at the estimate is the least it can
        expect. Two delta arms whose records differ in size and cost split on which
        binds: a smaller record wins where the link binds, a cheaper one where the
        encoders do, and a window predicted just on the encoders' side of that line is
        often on the link's. A recorded key-value cache's window sent 1.9x the records its
        sample showed, four standard deviations out by the level's variance, and played
        DSA records where XBZRLE's were 15 % faster. So the variance is the
        filter's times the mean squared error of played windows in its units
        (:meth:`_learn_delta_level`): about 1 where pages are written alike, 5-9 on
        key-value caches, whose values are rewritten whole in some pages and a word at a
        time in others. The records' CPU time moves with the changes they encode, as far
        as those move with the level (:meth:`_change_costs`); the cost per record of the
        arm's curve is held. A held page's record is at most a
        page (a larger one goes raw): where the spread's highest level would pass that,
        the arm's spread is narrowed until it does not, at the same mean."""
        fast = self._fast and self._cpu_scales is None
        for i in self._delta_arms:
            moved = self._arm_spread(kept, var, nz, i)
            if moved is None:
                continue
            records, changes, spread = moved
            if fast:  # _point_loss, inline
                to_cpu, to_link = self._to_cpu, self._to_link
                total = 0.0
                for w, s in spread:
                    busy = (cpu[i] + changes * s) * to_cpu
                    sending = (out[i] + records * s) * to_link
                    total += w * (busy if busy > sending else sending)
            else:
                sent = np.array([out[i] + records * s for _, s in spread])
                busy = np.array([cpu[i] + changes * s for _, s in spread])
                total = float(np.dot(_CPU_WEIGHTS, self._loss(guest, sent, busy)))
            loss[i] = total

    def _arm_spread(
        self, kept: _Prediction, var: float, nz: float, i: int
    ) -> tuple[float, float, list[tuple[float, float]]] | None:
        """Delta arm ``i``'s records' bytes and the CPU seconds of the changes they encode
        that move with the level, on a window of ``nz`` non-zero pages priced as ``kept``,
        and the weights and scales (less 1) of the level's spread of variance ``var`` for
        it (narrowed where its highest level would pass raw held pages:
        :meth:`_spread_delta`); ``None`` for an arm without records."""
        records = kept.records[i] * nz
        if records <= 0.0:
            return None
        kept_nodes = self._spread_nodes
        if kept_nodes[0] == var:  # windows played on one read's features share theirs
            nodes = kept_nodes[1]
        else:
            nodes = self._spread_nodes_of(math.sqrt(var))
            self._spread_nodes = (var, nodes)
        changes = self._moving_cpu(kept, i, nz)
        room = kept.held * self.page_size * nz  # the held pages' bytes, sent raw
        if records * (1.0 + nodes[-1][1]) > room:  # at the highest level (+sqrt(3))
            most = math.log(room / records)  # <= 1.5, the most any spread reaches
            nodes = self._spread_nodes_of(math.sqrt(3.0) - math.sqrt(3.0 - 2.0 * most))
        return records, changes, nodes

    @staticmethod
    def _spread_nodes_of(sd: float) -> list[tuple[float, float]]:
        """The weights and scales (less 1) of a log-normal spread of standard deviation
        ``sd`` of the log, at three points, whose scales average 1."""
        mean = -0.5 * sd * sd
        return [
            (w, math.exp(mean + sd * z) - 1.0)
            for w, z in zip(_CPU_WEIGHTS, _CPU_NODES, strict=True)
        ]

    @property
    def _read(self) -> WindowFeatures | None:
        """The features the window is played on (the last read of about its size)."""
        entry = self._read_entry
        return None if entry is None else entry.features

    # -- which features to read -------------------------------------------------------
    def wants_features(self, pages: float) -> bool:
        self._pages = pages
        if self.n_arms < 2:
            return False  # one arm: no choice for features to change
        entry = self._similar(pages)
        if entry is None or self._stale_play:
            # no window of about this size read (the others say little of it), or the last
            # window sent other than predicted: read, unless reading costs more than the
            # window is predicted to take on the last features read. Such a read loses on
            # its window whatever it reveals, and what it tells of the next windows of its
            # size is worth as little to each. On a recorded key-value cache, windows of 1
            # to 23 pages between bursts were read at each change of size, each read
            # costing more than its window took
            return not self._read_costs_more(entry, pages)
        self._read_entry = entry
        cost = self._read_s(entry.scan_s)
        if cost <= self.upkeep * entry.since_s and self._feature_value > 0.0:
            # fresh estimates for a bounded share of the time, while reading has changed a
            # choice: where no read ever did (one arm best on every window), such rereads
            # bought nothing, and a cost model calibrated with dearer memory scans put
            # `auto` 0.5 % behind DSA records on a recorded database at 10 Gbit/s. A window
            # sent other than predicted is still read (_stale_play), and a read that
            # changes the choice starts these again
            return True
        if cost < self.negligible * entry.per_page_s * pages:
            return True  # next to nothing against the window: any better choice pays
        expected = self._feature_value * pages * self.page_size
        return expected > self.value * cost

    def _read_costs_more(self, entry: _Read | None, pages: float) -> bool:
        """Whether reading a window of ``pages`` pages costs more than the window is
        predicted to take on ``entry`` (else on the newest read kept), which it is then
        played on; False while nothing was read. The read is priced as ``entry``'s, its
        scan in proportion to the pages it samples where the window has fewer pages than
        ``entry`` sampled (a lower bound: the scan has a fixed part), so that a read is
        skipped only where even that costs more than the window."""
        if entry is None:
            if not self._reads:
                return False
            entry = self._reads[0]
        read = entry.features
        scan = entry.scan_s
        if pages < read.sample:
            scan *= (pages if pages > 1.0 else 1.0) / read.sample
        if self._read_s(scan) <= min(self._predict(read, pages)[3]):
            return False
        self._read_entry = entry
        return True

    def _scan_cost(self, fresh: WindowFeatures) -> float:
        """What reading ``fresh`` cost, as later reads of its size are priced: its scan's
        CPU seconds, but where the caller gave the machine's calibrated cost of a scan
        (:attr:`features_prior`), at most :data:`_DECISION_OUTLIER` times that cost as
        this host has lately run it (a moving ratio, itself moved by each scan so
        clipped). A pause the scan did not cause (a collection of the interpreter's
        garbage) counted whole, and priced every later read of its size out: on a phased
        workload, the windows of a phase whose delta records were a fiftieth of what the
        compressor played sent, read on none of them. A replay's scans (a table's, smooth
        where calibrated) are priced as measured."""
        spent = fresh.cheap_s
        prior = self.features_prior
        if prior is None:
            return spent
        calibrated = prior[0] + prior[1] * fresh.sample
        if calibrated <= 0.0:
            return spent
        ratio = self._scan_ratio
        seen = spent / calibrated
        most = _DECISION_OUTLIER * ratio
        seen = seen if seen < most else most
        self._scan_ratio = ratio + self.learn * (seen - ratio)
        return seen * calibrated

    def _read_s(self, scan_s: float) -> float:
        """What reading features whose scan takes ``scan_s`` CPU seconds costs a window:
        the scan and the decision of which probes to buy on them, in the objective's units,
        as the window's predicted loss is: CPU seconds over the objective's CPU rate (the
        throughput objective's workers; nothing under the wire objective, whose loss CPU
        time does not enter: priced as seconds there, reads looked a third of a window's
        loss, and a recorded database's windows after its first few were played on stale
        features, on zstd where XBZRLE sent a third less). A host whose encoders' wall
        time is several times their CPU time stretches the feeding thread's reads as much
        (measured on a real image's first pass: reads priced unstretched fell under
        ``negligible`` on 47 of 64 windows, and cost a migration 5 % of its time). Where
        the reads hold up the stream (:attr:`reads_stall_encoders`, the engine's chooser)
        a read's time counts whole: on one pass of a sequence guest (128 MiB, 1 Gbit/s,
        zstd played throughout) a busy loop of 2 ms before each window's read lengthened
        the migration by 0.8 of it, and rereads priced over the workers, each under 1 % of
        its window, took `auto` 5 % behind zstd played alone (0.7 % priced whole)."""
        rate = 1.0 if self.reads_stall_encoders and self._timed else self._read_rate
        return (scan_s + self._decision_s) * self._stretch / rate

    def _similar(self, pages: float) -> _Read | None:
        """The features last read on a window of about ``pages`` pages (within a factor
        of 4), if any are kept."""
        for entry in self._reads:
            if _about(pages, entry.features.pages):
                return entry
        return None

    def _value_of_reading(self, fresh: WindowFeatures) -> list[float]:
        """Predict the window ``fresh`` describes, and learn what reading its features
        changed against the last ones read: every arm's predicted output bytes, CPU seconds
        and loss (as :meth:`_predict`). The stale prediction comes first, so that what
        :meth:`_payloads` keeps afterwards is this window's, which the update reuses."""
        entry = self._similar(fresh.pages)
        stale_arm = None
        if entry is not None:
            stale_arm = _argmin(self._predict(entry.features, fresh.pages, entry.stale_bias)[3])
        predicted = self._predict(fresh)
        if stale_arm is not None:
            loss = predicted[3]
            avoided = (loss[stale_arm] - min(loss)) / max(fresh.pages * self.page_size, 1.0)
            old = self._feature_value
            step = self.learn
            self._feature_value = avoided if math.isinf(old) else old + step * (avoided - old)
        carried = 0.0 if entry is None else entry.stale_bias  # a lesson of the size's
        self._read_entry = entry = _Read(fresh.cheap(), self._scan_cost(fresh))
        entry.stale_bias = carried
        sample = self._delta_sample(fresh.delta_bytes)
        if sample is not None:
            entry.level, entry.level_var, sample.entry = sample.level, sample.var, entry
        kept = [e for e in self._reads if not _about(fresh.pages, e.features.pages)]
        self._reads = [self._read_entry, *kept[: _KEPT_READS - 1]]
        self._stale_play = False
        return predicted

    # -- which probes to buy ---------------------------------------------------------
    def probe_mask(self, features: WindowFeatures) -> np.ndarray | None:
        """Which arms to probe on the window ``features`` describe; what deciding costs is
        kept (the caller's price, :attr:`probe_decision_s`, or this call's CPU time, in a
        moving average), and priced with every later read (:meth:`_read_s`): it is
        several times what the cheap features cost, and a read that did not count it paid
        on windows where the encoders bind.

        The average starts at the machine's calibrated price where the caller has one
        (:attr:`probe_decision_prior_s`), else at the least of the first
        :data:`_DECISIONS_SEEDING` calls, and a call timed at more than
        :data:`_DECISION_OUTLIER` times it counts as that many: a pause the decision did
        not cause (the interpreter collecting its garbage in a large process, a storm of
        page faults) is CPU time of this thread all the same, and one of 0.2 s priced
        every read out for dozens of windows (on a phased workload, every window of a
        phase whose delta records were a fiftieth of what the compressor played on the
        last features sent), or for good when it was the first (no read timed another). A
        decision that really grew dearer still moves the average up, by nearly twice a
        call."""
        priced = self.probe_decision_s
        if priced is not None:
            self._decision_s = priced
            return self._probe_mask(features)
        t0 = time.thread_time()
        mask = self._probe_mask(features)
        spent = time.thread_time() - t0
        kept = self._decision_s
        self._decisions_timed += 1
        if kept <= 0.0 or (
            self.probe_decision_prior_s is None and self._decisions_timed <= _DECISIONS_SEEDING
        ):  # no price yet: the least of the first few timed (pauses only add)
            self._decision_s = spent if kept <= 0.0 or spent < kept else kept
        else:
            most = _DECISION_OUTLIER * kept
            self._decision_s = kept + self.learn * ((spent if spent < most else most) - kept)
        return mask

    def _probe_mask(self, features: WindowFeatures) -> np.ndarray | None:
        self._drift(features)
        mask = np.zeros(self.n_arms, dtype=bool)
        payload, out, cpu, loss = self._value_of_reading(features)
        self._last = (features, loss, out, cpu)  # choose() reuses it when no probe is bought
        m = features.probe_pages
        c = self._c
        if m <= 0 or not c.size:  # nothing to probe (an all-zero sample, or no compressor)
            return mask
        order = sorted(range(self.n_arms), key=loss.__getitem__)
        best = order[0]
        second = loss[order[1]] if self.n_arms > 1 else math.inf
        n, zero, nz, calls = self._window(features, None)
        if self._fast and self._cpu_scales is None:
            gains, costs = self._probe_values(m, payload, loss, best, second, n, zero, nz, calls)
        else:
            gains, costs = self._probe_values_priced(
                m, payload, loss, best, second, n, zero, nz, calls
            )
        # bought greedily, the most valuable per second first, each charged on top of the
        # probes bought before it. With loss rates a probe costs its CPU time over the CPU
        # rate (the throughput objective's workers) even where the window leaves CPU idle:
        # probes run on the
        # thread that feeds the encoders, on cores the encoders and the rest of the host
        # share, so idle CPU in the model is not free in a pipeline
        worth = [i for i, g in enumerate(gains) if g > 0.0]
        if not worth:
            return mask
        guest = n * self.page_size
        out_best, cpu_best = out[best], cpu[best]
        base = loss[best]
        spent = 0.0
        for i in sorted(worth, key=lambda i: -gains[i] / max(costs[i], 1e-9)):
            if self._fast:
                after = base + costs[i] / self._cpu_rate
            else:
                after = self._scalar_loss(guest, out_best, cpu_best + spent + costs[i])
            if gains[i] > self.value * (after - base):
                mask[c[i]] = True
                spent += costs[i]
                base = after
        return mask

    def _probe_spreads(self, m: float) -> tuple[list[float], list[float]]:
        """Each compressing arm's estimated log ratio, and how far a probe of ``m`` pages
        can move it: the spread of the estimate after it (the preposterior), which is the
        prior's less what the probe's own noise leaves unknown; taken as the prior's, a
        probe looked worth as much as the truth."""
        noise = self.probe_noise**2 / m
        # a variance of 0 leaves nothing for a probe to reveal (and with no noise, 0 / 0)
        spreads = [
            math.sqrt(v * v / (v + noise)) if v > 0.0 else 0.0 for v in self.ratios.var().tolist()
        ]
        return self.ratios.mean().tolist(), spreads

    def _probe_values(
        self, m, payload, loss, best, second, n, zero, nz, calls
    ) -> tuple[list[float], list[float]]:
        """Per compressing arm, what a probe of ``m`` pages is expected to save on the
        window (over the quadrature points of its log ratio after the probe: the loss it
        avoids by revealing a better arm than ``best``, or, for the best arm, by revealing
        that the ``second`` best is better) and what it costs in CPU seconds. An objective
        with loss rates (:attr:`Objective.loss_rates`) with the CPU factor known, in float
        operations per arm and
        point: on arrays of a few entries each numpy call costs more than its arithmetic,
        and this runs on every window whose features are read (``_probe_values_priced``
        is the same on arrays, for any objective). The C extension runs the same
        operations in the same order where it is built (:data:`PROBE_VALUES`)."""
        if self._c_table is not None:
            window = (float(m), self.probe_noise**2, loss[best], second, float(best), n, zero)
            return _native_values(
                self.ratios.state,
                self._cost_flat,
                self._c_table,
                _NODES_THEN_WEIGHTS,
                self._arm_factor,
                payload,
                (
                    *window,
                    nz,
                    calls,
                    self._shared_factor,
                    self._to_cpu,
                    self._to_link,
                    float(self.page_size),
                    self._log_page,
                    float(RUN_BYTES),
                    _GRID_SCALE,
                ),
            )
        return self._probe_values_loop(m, payload, loss, best, second, n, zero, nz, calls)

    def _probe_values_loop(
        self, m, payload, loss, best, second, n, zero, nz, calls
    ) -> tuple[list[float], list[float]]:
        """:meth:`_probe_values` in Python, where the C extension is not built."""
        mu, spreads = self._probe_spreads(m)
        page_size, log_page = float(self.page_size), self._log_page
        base_out = n + calls * RUN_BYTES
        to_cpu, to_link = self._to_cpu, self._to_link
        shared = self._shared_factor
        least = loss[best]
        gains, costs = [], []
        for (arm, _), mean, sd in zip(self._c_state, mu, spreads, strict=True):
            per_call, per_zero = self._fixed_rows[arm]
            row = self._cost_rows[arm]
            fixed = per_call * calls + per_zero * zero
            factor = self._arm_factor[arm] * shared
            gain = 0.0
            for z, weight in _NODE_WEIGHTS:
                lr = mean + sd * z
                lr = (lr if lr < log_page else log_page) if lr > 0.0 else 0.0
                busy = (fixed + row[_grid_step(lr)] * nz) * factor * to_cpu
                sending = (base_out + nz * page_size / math.exp(lr)) * to_link
                trial = busy if busy > sending else sending
                saved = trial - second if arm == best else least - trial
                if saved > 0.0:
                    gain += weight * saved
            gains.append(gain)
            probed = math.log(page_size / payload[arm])
            costs.append((per_call + row[_grid_step(probed if probed > 0.0 else 0.0)] * m) * factor)
        return gains, costs

    def _probe_values_priced(
        self, m, payload, loss, best, second, n, zero, nz, calls
    ) -> tuple[list[float], list[float]]:
        """:meth:`_probe_values` for any objective, with the loss expected over the CPU
        factor while it is uncertain (:meth:`_loss`), on arrays."""
        mu, spreads = self._probe_spreads(m)
        mu, sd = np.array(mu), np.array(spreads)
        c = self._c
        # each compressing arm's loss at each quadrature point of its log ratio
        each = np.maximum(
            self.page_size / np.exp(np.maximum(mu[:, None] + sd[:, None] * _NODES, 0.0)), 1.0
        )
        trial_out = n + calls * RUN_BYTES + nz * each
        fixed = (self._per_call[c] * calls + self._per_zero[c] * zero)[:, None]
        factor = np.array(self._arm_factor)[c] * self._shared_factor
        trial_cpu = (fixed + self._page_costs(c, self.page_size / each) * nz) * factor[:, None]
        trial = self._loss(n * self.page_size, trial_out, trial_cpu)
        gain = (
            np.where(
                (c == best)[:, None],
                np.maximum(trial - second, 0.0),
                np.maximum(loss[best] - trial, 0.0),
            )
            @ _WEIGHTS
        )
        probe_cpu = (
            self._per_call[c] + self._page_costs(c, self.page_size / np.array(payload)[c]) * m
        ) * factor
        return gain.tolist(), probe_cpu.tolist()

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
            and loss[held] <= least * (1.0 + self.cross_margin)
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

    def _trial(
        self,
        f: WindowFeatures,
        arm: int,
        best: float,
        untried: list[int],
        out: list[float],
        cpu: list[float],
    ) -> int:
        """The first arm of ``untried`` worth trying on this window instead of ``arm``, the
        arm of least predicted loss ``best`` (see :meth:`_pick`), or ``arm``."""
        guest = max(f.pages, 1.0) * self.page_size
        horizon = max(self._played_bytes / guest, 1.0)
        held = self._mostly_held(f)
        # a trial plays the arm on a part of the window (split): it loses that part's share
        part = self._trial_pages / max(f.pages, 1.0)
        part = part if part < 1.0 else 1.0
        for a in untried:
            if a == arm or (self._delta_flags[a] and not held):
                continue
            cheapest = self._scalar_loss(guest, out[a], cpu[a] * self._cheapest_scale[a])
            if cheapest >= best:
                continue  # out of reach at its cheapest node: nothing to save
            sd = self._trial_sd[a]
            trial = [
                cheapest
                if z == _CHEAPEST
                else self._scalar_loss(guest, out[a], cpu[a] * math.exp(sd * z))
                for z in _CPU_NODES
            ]
            weighted = list(zip(_CPU_WEIGHTS, trial, strict=True))
            saves = sum(w * (best - t) for w, t in weighted if t < best)
            costs = sum(w * t for w, t in weighted) - best
            if saves > 0 and saves * horizon > self.value * max(costs, 0.0) * part:
                return a
        return arm

    def _balanced(
        self, f: WindowFeatures, best: int, loss: list[float], out: list[float], cpu: list[float]
    ) -> int:
        """The arm to play first on the window, ``best`` (the arm of least predicted loss)
        or a partner that shares the window with it (:meth:`split`).

        Under the throughput objective a window takes as long as the busier of the
        encoders and the link: an arm that keeps the encoders busy leaves the link idle,
        and one that fills the link leaves encoders idle. Played on parts of one window,
        two such arms both work, and the window takes less time than either alone takes
        on all of it (a compressor's batches beside raw or delta batches, which send more
        and cost less; ``docs/results/selector.md`` shows what it gains on recorded
        traces). The partner's share is
        the one at which the encoders and the link are predicted equally busy, in whole
        batches; a split is played when it saves at least ``balance`` of the window's
        predicted time, as a margin against the predictions' error (a split whose arms
        are both really bound by the same resource takes the weighted mean of their times).
        Where a delta arm's records are uncertain (its level's spread, :meth:`_spread_delta`),
        the split found at the estimates must save that share of the best arm's time in
        expectation over the spread as well: the share balanced at the estimate
        leaves the link or the encoders idle at the other levels, and a window that one
        arm alone would have played through the miss then takes the slower arm's time on
        its part. On a recorded key-value cache at 10 Gbit/s with ``balance`` at 0.02, raw
        pages beside XBZRLE's records, on windows the estimates put at least 2 % faster
        so, took up to 28 % longer than XBZRLE alone where the records came out larger
        than the sample showed; over the spread, those windows are not shared.
        Windows are shared only while the encoders run about as fast as calibrated
        (:data:`_CROWDED_HOST`): the model counts the encoders' time and the link's, and
        on a host whose encoders wait for cores the rest is other threads' time: in the
        reference engine, whose loopback's sender, receiver and decoder share the encoders'
        cores, shared windows slowed migrations both ways (``docs/results/migration.md``).
        The arm learnt from longest ago plays the part the update learns from, so both
        arms' estimates stay current."""
        self._expected, self._expected_out = loss[best], out[best]
        pages, step = self._window_pages, self.batch_pages
        if not self._timed or self._cpu_scales is not None or pages < 2 * step:
            return best
        if self._shared_factor > _CROWDED_HOST:
            return best  # the model's idle encoders or link are other threads' time
        to_cpu, to_link = self._to_cpu, self._to_link
        busy_best, sending_best = cpu[best] * to_cpu, out[best] * to_link
        cpu_bound = busy_best > sending_best
        # against the best arm's time at its estimate, as the shared window's is priced
        least = (busy_best if cpu_bound else sending_best) * (1.0 - self.balance)
        # a partner bound by the other resource uses more of the one the best arm leaves
        # idle than the best arm does (else its own loss would be less): a shared window
        # takes at least that resource's time alone
        if (sending_best if cpu_bound else busy_best) >= least:
            return best
        partner, partner_pages = best, 0.0
        for arm in range(self.n_arms):  # indexed: enumerate(zip()) costs twice as much
            busy, sending = cpu[arm] * to_cpu, out[arm] * to_link
            if (busy > sending) == cpu_bound:
                continue  # bound by what binds the best arm (the best arm itself, too)
            # the share of pages on the partner at which encoders and link are equally busy
            share = (sending_best - busy_best) / ((busy - busy_best) - (sending - sending_best))
            part = round(share * pages / step) * step
            if not 0 < part < pages:
                continue
            share = part / pages
            busy = busy_best + share * (busy - busy_best)
            sending = sending_best + share * (sending - sending_best)
            mixed = busy if busy > sending else sending
            if mixed < least:
                least, partner, partner_pages = mixed, arm, float(part)
        if partner == best:
            return best
        flags = self._delta_flags
        spreads = self._split_spreads(f, pages) if flags[best] or flags[partner] else None
        if spreads is not None:  # the split found at the estimates, over the spread
            # against the best arm's loss, which is already its expectation over the spread
            # when it is a delta arm (_spread_delta) and its time at the estimate otherwise
            least = self._mixed(spreads, best, partner, partner_pages / pages, out, cpu)
            if least >= loss[best] * (1.0 - self.balance):
                return best
        self._expected = least
        learnt = self._learnt
        if learnt[partner] <= learnt[best]:
            self._split = (best, partner_pages)
            self._expected_out = out[partner]
            return partner
        self._split = (partner, pages - partner_pages)
        return best

    def _split_spreads(
        self, f: WindowFeatures, pages: float
    ) -> dict[int, tuple[float, float, list[tuple[float, float]]]] | None:
        """Per delta arm with records, :meth:`_arm_spread` on a window of ``pages`` pages
        played on ``f``, while the delta arms' level is uncertain enough to spread; else
        ``None``."""
        if not self._delta_arms:
            return None
        self._payloads(f)  # the window's prediction, as the choice made it
        kept = self._prediction
        var = kept.level_var * self._level_calib
        if var <= _LEVEL_SPREAD_MIN_VAR:
            return None
        nz = (pages if pages > 1.0 else 1.0) * (1.0 - kept.zero_share)
        spreads = {}
        for i in self._delta_arms:
            moved = self._arm_spread(kept, var, nz, i)
            if moved is not None:
                spreads[i] = moved
        return spreads or None

    def _mixed(
        self,
        spreads: dict[int, tuple[float, float, list[tuple[float, float]]]],
        best: int,
        partner: int,
        share: float,
        out: list[float],
        cpu: list[float],
    ) -> float:
        """The expected time of a window whose ``share`` of pages ``partner`` plays and
        the rest ``best``, over the delta arms' level (``spreads``, :meth:`_split_spreads`):
        at each of its three points, both arms' records at that point of their own spread
        (the same level, but where one arm's spread is narrowed at raw pages, as
        :meth:`_spread_delta` prices it alone, a point nearer its estimate); an arm without
        records at its estimate."""
        to_cpu, to_link = self._to_cpu, self._to_link
        moving = []
        for arm in (best, partner):
            records, changes, nodes = spreads.get(arm, (0.0, 0.0, None))
            moving.append((cpu[arm], changes, out[arm], records, nodes))
        total = 0.0
        for k, weight in enumerate(_CPU_WEIGHTS):
            busy = sending = 0.0
            for part, (c, changes, o, records, nodes) in zip(
                (1.0 - share, share), moving, strict=True
            ):
                scale = 0.0 if nodes is None else nodes[k][1]
                busy += part * (c + changes * scale) * to_cpu
                sending += part * (o + records * scale) * to_link
            total += weight * (busy if busy > sending else sending)
        return total

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

    def learn_elapsed(self, arm: int, elapsed_s: float, outcome: Outcome) -> None:
        """Learn ``arm``'s pace from a window it played whole: ``elapsed_s``, the stream's
        time for the batches ``outcome`` counts (how long their frames took to go out, as
        the engine's sender saw them), over its encoders' time (by the objective's clock,
        over the workers), where the link does not account for it (only under the
        throughput objective). The arm's CPU time is then predicted times its pace: a moving
        average of the log of the median of its last :data:`_PACE_WINDOWS` such ratios (the
        less of two; its first window's taken at :data:`_PACE_FIRST`; each ratio between 1
        and :data:`_PACE_CLIP`, and 1 where the link accounts for the window), so that one
        window slowed by a pause of the host's moves nothing.

        The model counts the encoders' time and the link's, and a stream also waits for the
        work it does not see: what the frames cost the destination's receiver and decoder,
        which in the reference engine share the encoders' cores (a sequence guest's zstd
        windows took 0.93-1.26 times what their encoders and the link account for, a redis
        server's memory image's lz4 windows at 10 Gbit/s 1.5 times, where raw windows took
        their link's time), or a destination that decodes one codec slowly (in software,
        where the source has the accelerator). The link is paced by the engine and its time
        is known; the rest scales with the work each arm's frames make, so it is the CPU
        side a pace multiplies. An arm no window has paced yet goes at the least pace the
        stream has shown, up to :data:`_PACE_SHARED_MOST` (on a host where every arm waits
        for its cores, another arm is not thought faster only because it was not timed),
        and a delta arm at its fall-back's (on pages the destination does not hold it sends
        them through that arm); an arm counted untried again (``cost_drift``) forgets its
        pace, so that a destination busy for a while does not keep its arm off for good."""
        if not self._timed or arm < 0 or arm >= self.n_arms:
            return
        sent = outcome.output_bytes
        busy = outcome.busy_s(self._clock) * self._to_cpu
        if not (busy > 0.0 and elapsed_s > 0.0 and math.isfinite(elapsed_s)):
            return
        if elapsed_s <= sent * self._to_link * _PACE_LINK_SLACK:
            y = 0.0  # the link accounts for the window: it waited for nothing unseen
        else:  # no faster than its encoders: a window that seems to have gone out faster
            # went into the sockets' buffers (the first few megabytes of a stream do)
            y = math.log(elapsed_s / busy)
            y = _PACE_CLIP if y > _PACE_CLIP else 0.0 if y < 0.0 else y
        recent = self._pace_recent[arm]
        recent.append(y)
        if len(recent) > _PACE_WINDOWS:
            del recent[0]
        y = sorted(recent)[len(recent) // 2] if len(recent) > 2 else min(recent)
        seen = self._pace_seen[arm] = self._pace_seen[arm] + 1
        own = self._pace_log
        own[arm] += (_PACE_FIRST if seen == 1 else self.learn) * (y - own[arm])
        self._set_paces()

    def _set_paces(self) -> None:
        """Every arm's pace: its own where a window has paced it, else its fall-back's (a
        delta arm) or the least shown, up to :data:`_PACE_SHARED_MOST` (see
        :meth:`learn_elapsed`)."""
        own, seen, fallbacks = self._pace_log, self._pace_seen, self.fallbacks
        shown = [x for x, n in zip(own, seen, strict=True) if n]
        least = min(shown) if shown else 0.0
        least = _PACE_SHARED_LOG if least > _PACE_SHARED_LOG else least
        paces = []
        for arm, x in enumerate(own):
            if not seen[arm]:
                fallback = fallbacks[arm]
                x = own[fallback] if fallback >= 0 and seen[fallback] else least
            paces.append(math.exp(x))
        self._pace = paces
        self._paced = True

    def _forget_pace(self, arm: int) -> None:
        """``arm``'s pace back to what nothing has shown (see :meth:`learn_elapsed`)."""
        self._pace_log[arm], self._pace_seen[arm] = 0.0, 0
        self._pace_recent[arm].clear()
        if self._paced:
            self._set_paces()

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

    def _learn_delta_cpu(self, arm: int, y: float, weight: float) -> None:
        """Learn delta arm ``arm``'s CPU factor past the host's from ``y``, the log of its
        window's measured time over the model's less the host's factor, of a window of
        ``weight`` (see :meth:`_learn`), and set every delta arm's factor from it.

        The delta arms' factors past the host's are one Gaussian: the part they share and
        each arm's own (priors :data:`_CPU_DELTA_VAR`, :data:`_CPU_ARM_VAR`), with their
        covariance, updated by a Kalman filter. An arm played often teaches its own factor
        and, through the shared part, what an arm not played since should expect; an arm
        measured before keeps what its own plays showed: they pinned the sum of its part
        and the shared one, and the covariance remembers it. Learnt apart, as the
        compressors' are (a split of each error in proportion to the two variances, each
        a moving average), every play of one arm moved the other by as much as the shared
        part took, play after play: in a measured table of a key-value cache, where DSA
        records took 1.2-1.5x their model and XBZRLE 0.95x, thirty DSA windows moved
        XBZRLE's factor from 1.0 to 1.2, beside DSA's 1.3, and XBZRLE, the best fixed arm
        there, was played on few windows. The played arm's own part may move between
        plays (a variance of ``learn`` squared times :data:`_CPU_PLAY_VAR` over
        1 - ``learn``, each), so that a steadily played arm's factor moves by ``learn`` of
        each error, as a moving average's would; the shared part does not, or it would
        carry one arm's drift to the arms not played. An arm not played grows less known
        with the stream's time instead (:meth:`_retry_stale`). One call of the filters'
        update (:func:`~migcodec.selector.policies.kalman.kalman_update`) on a 3 by 4
        state for two delta arms."""
        state, size = self._delta_state, self._delta_state.shape[0]
        j = self._delta_pos[arm]
        state[j, j] += self._delta_drift
        # the played arm's factor is the shared part plus its own: entries 0 and j
        kalman_update(state, j, y, _CPU_PLAY_VAR / weight)
        # each delta arm's factor, as _pick prices it (and its trial's, while untried)
        family, untried = state.item(0, size), self._untried
        for p, a in enumerate(self._delta_arms, 1):
            own = self.cpu_arm[a] = state.item(p, size)
            self._cpu_arm_var[a] = state.item(p, p)
            self._arm_factor[a] = math.exp(family + own)
            if a in untried:
                self._trial_prior(a)

    def _delta_estimates(self, f: WindowFeatures) -> list[float] | None:
        """The delta arms' estimates of ``f`` (payload bytes per held page): the window's
        level (the mean of their logs), and each arm's offset from it pooled over the
        windows read (a moving average, :data:`_DELTA_POOL_STEP`). Every arm's estimate
        comes from the same few sampled pages, so their level moves with the sample, but
        their offsets, how one format meets a program's writes against another, move
        slowly: taken from one sample each, they tipped close calls between delta arms
        window by window (a recorded database's trace: XBZRLE's estimate off by half on
        single windows, where the two formats' costs lay within a quarter of each other).
        The sample's spread of changed words per page, and how its runs vary with them, are
        pooled alike, weighed by the held pages sampled (see :meth:`_change_costs`)."""
        raw = f.delta_bytes
        if raw is None:
            return None
        for seen, estimates in self._pooled:  # this window's, or the last read's: pooled once
            if seen is raw:
                return estimates
        pages = self._held_sampled(f)
        moments, step = self._runs_moments, _DELTA_POOL_STEP
        moments[0] += step * (pages * f.words_var - moments[0])
        moments[1] += step * (pages * f.words_runs_cov - moments[1])
        estimates = raw.tolist()
        arms = [a for a in self._delta_arms if math.isfinite(estimates[a]) and estimates[a] > 0]
        if arms:
            step = _DELTA_POOL_STEP
            logs = [math.log(estimates[a]) for a in arms]
            sampled = sum(logs) / len(logs)
            level = self._delta_level_of(f, raw, sampled)
            offsets = self._delta_offsets
            for a, x in zip(arms, logs, strict=True):
                if len(arms) > 1:
                    old = offsets[a]
                    offsets[a] = x - sampled if old is None else old + step * (x - sampled - old)
                estimates[a] = math.exp(level + (offsets[a] if len(arms) > 1 else 0.0))
        # kept by the estimates' array, which every copy of one window's features shares
        # (cheap(), masked(), the copy kept as the last read), so a window counts once:
        # the last two, since the window read before this one is priced again beside it
        # (_value_of_reading)
        self._pooled = [(raw, estimates), self._pooled[0]]
        return estimates

    def _delta_level_of(self, f: WindowFeatures, raw: np.ndarray, sampled: float) -> float:
        """The delta arms' level on ``f``'s window (the log of a held page's payload): a
        Kalman filter's over the windows of about its size (kept with their features, see
        :meth:`wants_features`; windows of other sizes hold other writes), moved towards
        the level its sample shows (``sampled``) by how much that sample is worth. A
        sample of ``m`` held pages estimates the level with variance ``noise / m``, where
        ``noise``, learnt from played windows (:meth:`_learn_delta_level`), is large where
        pages differ in how many words a program changed in them: on a recorded VM
        guest's windows a few dozen sampled pages put XBZRLE's time anywhere from 0.6x to
        2x what it took, and taken as they were, chose it over LZ4 on the windows it lost.
        The prior says less of a window the further its size is from the one it was read
        on (:data:`_SIZE_APART_VAR`): a key-value cache's window of twice the pages of the
        last had records of three times the size per page, which its sample showed and a
        prior as strong as a same-sized window's pulled most of the way back. How far the
        level moves between windows beyond ``drift`` is learnt from played windows, as the
        compressors' is (:meth:`_learn_delta_level`, :meth:`_learn_level_jump`): a recorded
        key-value cache's held pages took a factor of up to 9 more or fewer changed bytes
        from one window to the next, which a drift fit for slowly changing content held
        back towards the windows before, pricing XBZRLE's encode time (bound by its runs
        of changed bytes) up to a third above what it took. The first window of a size
        has only its sample."""
        pages = self._held_sampled(f)
        pages = 1.0 if pages < 1.0 else pages
        noise = self._delta_noise / pages
        prior = self._similar(f.pages)
        before = None  # the level of the windows of its size before it, and its variance
        if prior is None or prior.level is None:
            level, var = sampled, noise
        else:
            read = prior.features.pages
            apart = math.log((f.pages if f.pages > 1.0 else 1.0) / (read if read > 1.0 else 1.0))
            apart = apart if apart > 0.0 else -apart
            before = (prior.level, prior.level_var + _SIZE_APART_VAR * apart)
            var = before[1] + self.drift**2 + self._delta_jump
            gain = var / (var + noise)
            level = prior.level + gain * (sampled - prior.level)
            var *= 1.0 - gain
        sample = _DeltaSample(raw, sampled, pages, level, var, prior=before)
        self._delta_samples = [sample, *self._delta_samples[:1]]
        return level

    @staticmethod
    def _held_sampled(f: WindowFeatures) -> float:
        """How many of the pages ``f`` sampled are non-zero and held by the destination:
        what a delta sample's estimates are averaged over."""
        return f.sample * (1.0 - float(f.context[1])) * f.held_frac

    def _delta_sample(self, raw: np.ndarray | None) -> _DeltaSample | None:
        """The sample of the window whose delta estimates are ``raw``, if it is one of the
        last two (a loop, not a generator: once a window, where making one costs more)."""
        for sample in self._delta_samples:
            if sample.raw is raw:
                return sample
        return None

    def _learn_delta_level(
        self, arm: int, f: WindowFeatures, each: float, missed: float, nz: float
    ) -> None:
        """Learn from delta arm ``arm``'s payload ``each`` per page on ``f``'s window,
        whose log over the arm's estimate for it is ``missed``: the gap to the arm's own estimate
        from the window's sample is one draw of the sample's noise, and the level it
        implies (through the arm's offset in ``estimate``) is the window's, which the
        features of its size keep (with a played window's variance). How far that level
        lies from the one the windows before it held, beyond their variance and the
        drift, is one draw of the level's jump between windows (learnt once per window
        sampled, clipped as the compressors' is)."""
        raw = f.delta_bytes
        sample = self._delta_sample(raw)
        if sample is None:  # a window sampled before the last two: its sample is gone
            return
        own = float(raw[arm])
        bias = self.delta_bias[arm]
        if math.isfinite(own) and own > 0:
            gap = (math.log(each / own) - bias) ** 2 * sample.pages
            cap = _DELTA_NOISE_CLIP * self._delta_noise
            gap = cap if gap > cap else gap
            self._delta_noise += self.learn * (gap - self._delta_noise)
        implied = missed - bias + sample.level
        # how far the level missed, in units of the variance the window was priced with:
        # unclipped, since the spread that uses it is there for the heavy tail
        if sample.var > 0.0:
            z2 = (implied - sample.level) ** 2 / sample.var
            self._level_calib += _LEVEL_CALIB_STEP * (z2 - self._level_calib)
        noise = self.probe_noise**2 / nz
        noise = noise if noise > _PLAY_VAR else _PLAY_VAR
        before = sample.prior
        if before is not None:  # how far the level moved since the windows before it
            sample.prior = None
            moved = implied - before[0]
            surprise = moved * moved - before[1] - noise - self.drift**2
            surprise = surprise if surprise > 0.0 else 0.0
            self._delta_jump = self._jump_step(self._delta_jump, surprise)
        entry = sample.entry
        if entry is None or entry.level is None:
            return
        gain = entry.level_var / (entry.level_var + noise)
        entry.level += gain * (implied - entry.level)
        entry.level_var *= 1.0 - gain

    def _learn_stale(self, arm: int, each: float) -> None:
        """Learn from delta arm ``arm``'s payload ``each`` per non-zero page on a window
        played on the features last read on another window of its size: what its
        records came to over their estimate moves the size's ``stale_bias`` (a moving
        average of the log, at ``learn``), which windows played on the size's features
        price every delta arm's records with (:meth:`_predict`).

        The compressors learn from every window played, through their filter; the delta
        arms' estimates come from a window's own sample, and a window played on older
        features taught them nothing. Where content alternates, the windows read and the
        windows played on what they read differ: a recorded JavaScript heap's windows
        played on the last read sent XBZRLE records 1.6 to 3.2 times their estimate, window
        after window, while those read came within about a fifth of theirs, and ``auto`` went on
        playing XBZRLE where zstd level 3 took half the time (1.5 % behind zstd level 3
        alone at 1 Gbit/s once reads cost less; 2.4 % ahead with this)."""
        played = self._played_on
        if played is None or played[0].features.held_frac <= 0.9:
            return  # a window mostly sent through the fall-back says little of the records
        entry, kept = played
        records = kept.records[arm]
        sent = each - (kept.payload[arm] - records)  # less what the fall-back was priced at
        if records > 0.0 and sent > 0.0:
            bias = entry.stale_bias
            entry.stale_bias = bias + self.learn * (math.log(sent / records) - bias)

    @staticmethod
    def _mostly_held(f: WindowFeatures) -> bool:
        """Whether the destination holds most of the pages ``f`` sampled (a delta arm's
        window is then mostly records)."""
        return f.delta_bytes is not None and f.held_frac >= 0.5

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
