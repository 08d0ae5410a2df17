"""Constants, small helpers and the prediction record that the parts of the ``auto``
policy share."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from migcodec.extensions import optional_extension
from migcodec.selector.costmodel import KNOTS, ArmCost

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
#: how much of a compressor's log-ratio standard deviation widens ``cross_margin`` (see
#: Auto._cross_margin): on the development traces, priced with this host's calibration, a
#: database's second window went to lz4, predicted 2.7 % ahead of the XBZRLE played on the
#: first while lz4's ratio was known from one window's probes (a standard deviation of
#: 0.25 in its log), and took 19 % longer: 1.4 % of the trace behind XBZRLE alone. Replays
#: of those traces scored 0.05 to 0.3 alike on their least cell (0.986 -> 0.9995) and 0.1
#: best on their mean
_CROSS_SPREAD = 0.1
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
