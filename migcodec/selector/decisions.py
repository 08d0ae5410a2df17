"""What a policy's decision of which probes to buy costs, as a cost model prices it.

A policy that buys probes decides which to buy once it has read a window's cheap features
(``Policy.probe_mask``): for ``auto`` that is the window's whole prediction, some tens of
microseconds of Python on the thread that feeds the encoders. The migration engine
charges it with the features (``FeatureExtractor.extract`` times the decision with the
scan), and so does a replay (:func:`~migcodec.selector.evaluation.replay.replay`): timed
on a measured table, and at this machine's calibrated median on a calibrated one, so that
two replays of a calibrated table charge alike. Left out, a replay charged ``auto`` for
the features it read but not for deciding on them, and it came out up to 1 % better than
a migration sees it on windows where the encoders bind.
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
#: link of the objective the policy decides for (its values, not its cost, depend on it)
_LINK = 1.25e9


def probe_decision_label(policy: str) -> str:
    """The cost model's entry for policy ``policy``'s probe decision (a cost per call)."""
    return f"{policy}'s probe decision"


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


def time_probe_decision(
    policy: str, arms: list, costs: list, page_size: int, batch_pages: int, windows: int
) -> float:
    """Median CPU seconds of ``policy``'s ``probe_mask`` over ``windows`` windows of varied
    content held by the destination with a few words changed, each chosen for and learnt
    from in turn as in a replay (the policy's estimates move as they would), after the
    first tenth: the calls before it warm the interpreter's caches. ``arms`` are
    :class:`~migcodec.selector.arms.Arm` and ``costs`` their fitted
    :class:`~migcodec.selector.costmodel.ArmCost`."""
    from migcodec.selector.arms import fallback_arms
    from migcodec.selector.features import FeatureExtractor
    from migcodec.selector.objectives import Outcome, Throughput
    from migcodec.selector.policies import parse_policy

    extractor = FeatureExtractor([a.codec for a in arms], batch_pages=batch_pages)
    pool = []
    for kind in _KINDS:
        pages = generate_pages(kind, _WINDOW_PAGES, 1, page_size)
        previous = pages.copy()
        previous[:, :64] ^= 1
        pool.append(extractor.extract(pages, previous, probe=True))
    chooser = parse_policy(policy).bind(
        len(arms),
        Throughput(_LINK, 2),
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
