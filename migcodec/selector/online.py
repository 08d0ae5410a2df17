"""The online API a migration engine uses: one decision per window, results reported back.

    selector = Selector(Predictive(), ["raw", "lz4", "zstd:level=1"], Throughput(link, 2))
    decision = selector.choose(pages, previous)      # or choose(features=...)
    for batch in window: decision.add(decision.codec.encode(batch).stats)
    selector.finish(decision)                        # reward -> policy.update

The decision and the update are plain numpy on a few arms; feature extraction (which reads
pages) is timed separately and charged to the window's encode time, because a policy that
probes must pay for its probes (``benchmarks/selector.py`` measures both).
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from migcodec.codecs import Codec, Measurements
from migcodec.selector.arms import Arm, fallback_arms
from migcodec.selector.costmodel import FEATURES_LABEL, machine_cost_model
from migcodec.selector.decisions import decision_price, decision_prices
from migcodec.selector.features import FeatureExtractor, WindowFeatures
from migcodec.selector.objectives import Objective, Outcome, Throughput
from migcodec.selector.policies import Policy
from migcodec.selector.policies.base import check_features, check_outcome

#: the step of each arm's moving averages of ratio and rate (recent_ratio, recent_rate)
_RECENT_STEP = 0.3


class SelectorError(RuntimeError):
    """The selector was used out of order (e.g. a decision finished twice)."""


@dataclass(slots=True)
class Decision:
    """One window's choice; accumulates the measurements of the batches encoded with it."""

    arm: int
    codec: Codec
    features: WindowFeatures | None
    charge_s: float
    input_bytes: int = 0
    output_bytes: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    device_s: float | None = None
    zero_pages: int = 0
    #: ``(rest, pages)`` when the policy plays ``arm`` on the window's first ``pages`` pages
    #: only and arm ``rest`` on the others (:meth:`Policy.split`); only the batches of
    #: ``arm`` are counted here, and they are what the policy learns
    split: tuple[int, float] | None = None
    #: the stream's seconds for the batches counted here, when the caller timed them going
    #: out (the engine's chooser: :class:`~migcodec.selector.adaptive_chooser.SelectorChooser`)
    elapsed_s: float | None = None
    done: bool = field(default=False, repr=False)

    def add(self, stats: Measurements) -> None:
        """Count one encoded batch (``Encoded.stats``) towards this window."""
        self.input_bytes += stats.input_bytes
        self.output_bytes += stats.output_bytes
        self.wall_s += stats.wall_s
        self.cpu_s += stats.cpu_s
        self.zero_pages += stats.zero_pages
        if stats.device_s is not None:
            self.device_s = (self.device_s or 0.0) + stats.device_s

    def outcome(self) -> Outcome:
        return Outcome(
            self.input_bytes,
            self.output_bytes,
            self.wall_s,
            self.cpu_s,
            self.device_s,
            self.zero_pages,
        )


class Selector:
    """Chooses an arm per window with ``policy`` and feeds rewards from ``objective`` back.

    ``arms`` are :class:`Arm`, codec instances, config dicts or ``"zstd:level=1"`` strings.
    """

    def __init__(
        self,
        policy: Policy,
        arms: Sequence[Arm | Codec | dict[str, Any] | str],
        objective: Objective | None = None,
        sample_pages: int = 32,
        page_size: int = 4096,
    ) -> None:
        # named by the types they must be: a policy's name failed on a missing attribute,
        # and an objective's name was taken, to fail at the first window's reward
        if not isinstance(policy, Policy):
            raise SelectorError(
                f"policy must be a Policy, got {policy!r}; make one with parse_policy({policy!r})"
                if isinstance(policy, str)
                else f"policy must be a Policy, got {type(policy).__name__}; make one with "
                "parse_policy('auto')"
            )
        if objective is not None and not isinstance(objective, Objective):
            raise SelectorError(
                f"objective must be an Objective, got {objective!r}; make one with "
                f"make_objective({objective!r})"
                if isinstance(objective, str)
                else f"objective must be an Objective, got {type(objective).__name__}; make "
                "one with make_objective('throughput', link='10Gbit')"
            )
        self.arms = [a if isinstance(a, Arm) else Arm.of(a) for a in arms]
        self.codecs = [a.codec for a in self.arms]
        self.objective = objective or Throughput()
        self._clock = getattr(self.objective, "clock", "cpu")
        bound = getattr(policy, "_selector", None)
        if bound is not None and bound() is not None:
            raise SelectorError(
                f"this {policy.name!r} policy already chooses for another Selector, whose "
                "arms it learns; give each Selector a policy of its own "
                "(parse_policy again, or policy_from_config(policy.get_config()))"
            )
        costs = None
        #: why this machine's saved calibration was not used or kept, if it was not (a
        #: command says so: an unused cache makes every run calibrate for seconds)
        self.calibration_note: str | None = None
        if policy.wants_costs:
            model = machine_cost_model(self.arms, page_size)
            self.calibration_note = model.note
            costs = [model.arm(a.label) for a in self.arms]
            # what its decisions and features cost on this machine: against them its own
            # timings are judged
            features = model.arms.get(FEATURES_LABEL)
            if features is not None:
                policy.features_prior = (features.per_call, features.per_page[0])
            prices = decision_prices(model, len(self.arms)).get(policy.name)
            if prices is not None:
                policy.probe_decision_prior_s = decision_price(prices, self.objective)
        self.policy = policy.bind(
            len(self.arms),
            self.objective,
            [c.kind for c in self.codecs],
            labels=[a.label for a in self.arms],
            costs=costs,
            page_size=page_size,
            fallbacks=fallback_arms(self.arms),
        )
        # weakly: a Selector dropped frees its policy for another
        policy._selector = weakref.ref(self)
        self.extractor = FeatureExtractor(self.codecs, sample_pages=sample_pages)
        self.windows = 0
        # recent ratio and encode rate per arm (see the properties), kept as floats: each
        # window updates one of each, which plain floats do for a fraction of numpy's cost
        self._recent_ratio = [math.nan] * len(self.arms)
        self._recent_rate = [math.nan] * len(self.arms)

    @property
    def recent_ratio(self) -> np.ndarray:
        """Each arm's compression ratio, a moving average over the windows it was played
        (nan: never played): a free feature for any policy."""
        return np.array(self._recent_ratio)

    @property
    def recent_rate(self) -> np.ndarray:
        """Each arm's encode rate, guest bytes per busy second, as :attr:`recent_ratio`."""
        return np.array(self._recent_rate)

    def features(
        self,
        pages: np.ndarray,
        previous: np.ndarray | None = None,
        sampled: bool = False,
        window_pages: float | None = None,
        held: np.ndarray | None = None,
        gather_s: float = 0.0,
    ) -> WindowFeatures:
        """Features of a window, with only the probes the policy asks for (see
        :meth:`FeatureExtractor.extract` for the arguments)."""
        probe = self.policy.probe_mask if self.policy.needs == "probe" else False
        return self.extractor.extract(pages, previous, probe, sampled, window_pages, held, gather_s)

    def choose(
        self,
        pages: np.ndarray | None = None,
        previous: np.ndarray | None = None,
        features: WindowFeatures | None = None,
        sampled: bool = False,
        window_pages: float | None = None,
        held: np.ndarray | None = None,
        gather_s: float = 0.0,
    ) -> Decision:
        """The arm for the next window, from its pages (and what the destination holds) or
        from precomputed ``features``; context-free policies need neither. ``sampled``,
        ``window_pages``, ``held`` and ``gather_s``: see ``FeatureExtractor.extract``
        (``window_pages``, the window's size when ``pages`` is a sample of it, must be a
        finite number of at least ``len(pages)``: :class:`SelectorError`).

        ``features`` given are checked once (:func:`~migcodec.selector.policies.base.
        check_features`, :class:`PolicyError` naming what is wrong) unless known right
        (:attr:`WindowFeatures.checked_arms`: a ``FeatureExtractor``'s are by construction).
        """
        if features is not None:
            if features.checked_arms != len(self.codecs):
                check_features(features, len(self.codecs))
                features.checked_arms = len(self.codecs)
        elif pages is not None and self.policy.needs != "none":
            total = float(len(pages) if window_pages is None else window_pages)
            if not len(pages) <= total < math.inf:  # False for nan
                raise SelectorError(
                    f"window_pages {window_pages!r} must be the window's size in pages, a "
                    f"finite number of at least the {len(pages)} pages given"
                )
            if self.policy.wants_features(total):
                features = self.features(pages, previous, sampled, window_pages, held, gather_s)
        policy = self.policy
        arm = policy.choose(features)
        decision = Decision(arm, self.codecs[arm], features, policy.charge_s(features))
        split = policy.split()
        if split is not None:  # set, not passed: a keyword costs a third of the constructor
            decision.split = split
        return decision

    def finish(self, decision: Decision, outcome: Outcome | None = None) -> float:
        """Close a window: compute its reward (feature cost charged to encode time) and
        update the policy with the objective's additive utility of it. Returns the reward.

        An outcome with a count or time that is not a finite number of at least 0 is
        refused (:func:`~migcodec.selector.policies.base.check_outcome`, :class:`PolicyError`)
        before anything is computed or learnt, and the decision stays open for the right
        outcome; a window of no guest bytes teaches the policy nothing."""
        if decision.done:
            raise SelectorError("this decision was already finished; choose() a new one")
        outcome = outcome or decision.outcome()
        check_outcome(outcome)
        objective = self.objective
        reward = objective.charged_reward(outcome, decision.charge_s)
        self.policy.update(
            decision.arm, objective.utility(reward), decision.features, outcome, checked=True
        )
        elapsed = decision.elapsed_s
        if elapsed is not None and decision.split is None and outcome.input_bytes:
            # a window played whole by one arm: what the stream took for it
            self.policy.learn_elapsed(decision.arm, elapsed, outcome)
        decision.done = True
        self.windows += 1
        # the arm's recent ratio and rate, moving averages (nan: its first window), inline:
        # Outcome.ratio, a property, costs more than its division, per window
        guest, sent = outcome.input_bytes, outcome.output_bytes
        busy = outcome.busy_s(self._clock)
        if guest > 0 and busy > 0:
            arm, step = decision.arm, _RECENT_STEP
            ratio, rate = guest / sent if sent > 0 else math.inf, guest / busy
            old = self._recent_ratio[arm]
            self._recent_ratio[arm] = ratio if old != old else old + step * (ratio - old)
            old = self._recent_rate[arm]
            self._recent_rate[arm] = rate if old != old else old + step * (rate - old)
        return reward

    def timed_step(self, features: WindowFeatures | None, outcome: Outcome) -> float:
        """One decision plus update on precomputed features; returns its seconds (benchmark)."""
        t0 = time.perf_counter()
        self.finish(self.choose(features=features), outcome)
        return time.perf_counter() - t0
