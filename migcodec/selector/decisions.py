"""What a policy's decision of which probes to buy costs, as a cost model prices it.

A policy that buys probes decides which to buy once it has read a window's cheap features
(``Policy.probe_mask``): for ``auto`` that is the window's whole prediction, some tens of
microseconds of Python on the thread that feeds the encoders. The migration engine
charges it with the features (``FeatureExtractor.extract`` times the decision with the
scan), and so does a replay (:func:`~migcodec.selector.evaluation.replay.replay`), at the
price of the cost model the table was measured or modelled with, so that two replays of a
table charge alike wherever they run. Left out, a replay charged ``auto`` for the features
it read but not for deciding on them, and it came out up to 1 % better than a migration
sees it on windows where the encoders bind.

The price is a cost per call and per arm (its work is a few float operations per arm and
quadrature point), under the throughput objective and under another, timed under the CPU
objective (:func:`decision_prices`): ``auto`` decides in float operations under both (and
under every objective with loss rates, ``Objective.loss_rates``), at about two thirds of
the cost under the CPU objective, whose loss has one side; ``predictive`` masks its probes
under the throughput objective alone. A cost model keeps it as an ``ArmCost`` whose ``per_call`` is
the cost per call and whose ``per_page`` holds the cost per arm.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from migcodec.datasets import generate_pages

#: the content of the windows a decision is timed on, one window of each in turn
_KINDS = ("memcached", "text", "random", "zero", "seq")
#: pages per window: a sample's worth and more (what a decision reads does not grow with
#: the window)
_WINDOW_PAGES = 256
#: link of the throughput objective a decision is timed under
_LINK = 1.25e9
#: the arms a decision is timed among, by label: a few, then the default set (a fit per arm
#: between them), whatever arms a calibration was asked for (the decisions timed among
#: those alone priced a machine first calibrated with one arm at a quarter of what seven
#: cost)
_FEW_ARMS = ("raw", "lz4", "xbzrle")
#: windows a decision is timed on, the first tenth not counted
TIMED_WINDOWS = 200


def probe_decision_label(policy: str, throughput: bool = True) -> str:
    """The cost model's entry for policy ``policy``'s probe decision under the throughput
    objective, or (``throughput`` false) under any other."""
    return f"{policy}'s probe decision" + ("" if throughput else ", other objectives")


def decision_prices(model, n_arms: int) -> dict[str, list[float]]:
    """Per policy the model prices, the seconds of one probe decision among ``n_arms``
    arms: under the throughput objective, then under any other."""
    prices = {}
    for policy in probe_policies():
        costs = [model.arms.get(probe_decision_label(policy, t)) for t in (True, False)]
        if None not in costs:
            prices[policy] = [c.per_call + c.per_page[0] * n_arms for c in costs]
    return prices


def decision_price(prices: list[float], objective) -> float:
    """Of a policy's :func:`decision_prices`, the one for ``objective``."""
    from migcodec.selector.objectives import Throughput

    return float(prices[0] if isinstance(objective, Throughput) else prices[1])


def probe_policies() -> list[str]:
    """Names of the policies migcodec ships that buy probes (and so decide which): a
    calibration times these. A policy defined elsewhere has its decisions timed as a
    replay makes them (:meth:`~migcodec.selector.evaluation.table.Table.probe_decision_s`):
    a calibration cannot know what running it costs, nor that it runs at all."""
    from migcodec.selector.policies import POLICIES

    return sorted(
        name
        for name, cls in POLICIES.items()
        if cls.needs == "probe" and cls.__module__.startswith("migcodec.")
    )


def decision_windows(arms: list, page_size: int, batch_pages: int) -> list:
    """Features, every arm probed, of the windows a decision is timed on: one of each
    content of :data:`_KINDS`, held by the destination with a few words changed."""
    from migcodec.selector.features import FeatureExtractor

    extractor = FeatureExtractor([a.codec for a in arms], batch_pages=batch_pages)
    pool = []
    for kind in _KINDS:
        pages = generate_pages(kind, _WINDOW_PAGES, 1, page_size)
        previous = pages.copy()
        previous[:, :64] ^= 1
        pool.append(extractor.extract(pages, previous, probe=True))
    return pool


def time_probe_decision(
    policy: str,
    arms: list,
    costs: list,
    page_size: int,
    batch_pages: int,
    windows: int = TIMED_WINDOWS,
    objective=None,
    pool: list | None = None,
) -> float:
    """Median CPU seconds of ``policy``'s ``probe_mask`` over ``windows`` windows of varied
    content held by the destination with a few words changed, each chosen for and learnt
    from in turn as in a replay (the policy's estimates move as they would), after the
    first tenth: the calls before it warm the interpreter's caches. ``arms`` are
    :class:`~migcodec.selector.arms.Arm` and ``costs`` their
    :class:`~migcodec.selector.costmodel.ArmCost` (``None``: not calibrated);
    ``objective``: the throughput objective's by default; ``pool``: the windows'
    features (:func:`decision_windows`), made here by default."""
    from migcodec.selector.arms import fallback_arms
    from migcodec.selector.objectives import Outcome, Throughput
    from migcodec.selector.policies import parse_policy

    if pool is None:
        pool = decision_windows(arms, page_size, batch_pages)
    chooser = parse_policy(policy).bind(
        len(arms),
        objective or Throughput(_LINK, 2),
        [a.kind for a in arms],
        labels=[a.label for a in arms],
        costs=costs,
        page_size=page_size,
        fallbacks=fallback_arms(arms),
    )
    rng = np.random.default_rng(0)
    guest = _WINDOW_PAGES * page_size
    spent = []
    clock = time.thread_time
    for w in range(windows):
        full = pool[w % len(pool)]
        cheap = full.cheap()
        t0 = clock()
        mask = chooser.probe_mask(cheap)
        spent.append(clock() - t0)
        arm = chooser.choose(full.masked(mask))
        sent = guest / rng.uniform(1.0, 4.0)
        zero = _WINDOW_PAGES * float(full.context[1])
        chooser.update(arm, 0.0, full, Outcome(guest, sent, 1e-3, 1e-3, zero_pages=zero))
    return statistics.median(spent[windows // 10 :])


def fit_probe_decisions(fitted: dict, page_size: int, batch_pages: int) -> dict:
    """Each probe-buying policy's decision priced per call and per arm, under the
    throughput objective and under another (:data:`_FEW_ARMS`, then the default arms;
    an arm's cost from ``fitted`` where it was calibrated): cost model entries by
    :func:`probe_decision_label`."""
    from migcodec.selector.arms import DEFAULT_ARMS, DELTA_ARMS, parse_arms
    from migcodec.selector.costmodel import KNOTS, ArmCost
    from migcodec.selector.objectives import HostCpu

    few = parse_arms(";".join(_FEW_ARMS))
    every = parse_arms(";".join(DEFAULT_ARMS + DELTA_ARMS))
    # each arm set's windows made once, for every policy and objective timed on them
    pools = [decision_windows(arms, page_size, batch_pages) for arms in (few, every)]
    entries = {}
    for policy in probe_policies():
        for throughput in (True, False):
            objective = None if throughput else HostCpu()
            seconds = [
                time_probe_decision(
                    policy,
                    arms,
                    [fitted.get(a.label) for a in arms],
                    page_size,
                    batch_pages,
                    objective=objective,
                    pool=pool,
                )
                for arms, pool in zip((few, every), pools, strict=True)
            ]
            per_arm = max((seconds[1] - seconds[0]) / (len(every) - len(few)), 0.0)
            per_call = max(seconds[1] - per_arm * len(every), 0.0)
            label = probe_decision_label(policy, throughput)
            entries[label] = ArmCost(per_call, 0.0, [per_arm] * len(KNOTS))
    return entries
