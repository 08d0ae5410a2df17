"""Replaying policies against a full-information table, and scoring them.

Each policy sees, window by window, exactly what it would see online: the features it asks
for (and is charged for), then only the outcome of the arm it chose, as the objective's
additive utility. Scores compare the policy with the per-window oracle (the best arm of every
window, features free) and with the best fixed arm (the best single codec in hindsight).

Totals are the objective's own total over the trace (for throughput: guest bytes over total
time, the migration's throughput). The plain sum of per-window rewards is reported beside
it (``sum_vs_*``); for throughput that sum is dominated by all-zero windows, where every
codec is alike, so it flatters every policy.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from migcodec.selector.arms import Arm, fallback_arms
from migcodec.selector.evaluation.table import Table
from migcodec.selector.objectives import Objective
from migcodec.selector.policies import Fixed, Policy, parse_policy, policy_from_config


@dataclass
class ReplayResult:
    """One policy's run over a table: chosen arm, reward and feature charge per window."""

    label: str
    config: dict
    chosen: np.ndarray
    rewards: np.ndarray
    charge_s: np.ndarray

    @property
    def switches(self) -> int:
        return int(np.count_nonzero(np.diff(self.chosen)))


def replay(policy: Policy, table: Table, objective: Objective) -> ReplayResult:
    """Run ``policy`` over ``table`` with bandit feedback; rewards include feature costs
    and, for a policy that buys probes, its decision of which (:meth:`Table.probe_decision_s`).
    A window the policy splits (:meth:`Policy.split`) is scored on both arms' parts, each in
    proportion to its pages (as a table scales its stored sample), and the policy learns
    the outcome of its chosen arm's part."""
    # priced as the table's cost model prices reads, not as a machine that once ran the
    # policy live (a Selector's priors) does
    policy.probe_decision_prior_s = policy.features_prior = None
    policy.bind(
        table.n_arms,
        objective,
        table.kinds,
        labels=table.labels,
        costs=table.costs(),
        page_size=table.page_size,
        fallbacks=fallback_arms([Arm.of(a) for a in table.arms]),
    )
    # a probe decision's cost: the price of the model the table was measured or modelled
    # with, charged with the features as the engine charges it (migcodec.selector.decisions),
    # and told to the policy for as long as the replay lasts
    decision_s = table.probe_decision_s(policy.name, objective) if policy.needs == "probe" else None
    told = policy.probe_decision_s
    policy.probe_decision_s = decision_s
    try:
        return _replayed(policy, table, objective, decision_s)
    finally:
        policy.probe_decision_s = told


def _replayed(
    policy: Policy, table: Table, objective: Objective, decision_s: float | None
) -> ReplayResult:
    """:func:`replay`'s loop, once the policy is bound; ``decision_s``: a probe decision's
    price (``None``: the call is timed)."""
    n = table.n_windows
    chosen = np.zeros(n, dtype=np.int64)
    rewards = np.zeros(n)
    charges = np.zeros(n)
    needs = policy.needs
    pages = table.input_bytes[:, 0] / table.page_size
    clock = time.thread_time
    for w in range(n):  # one iteration per window: the policy's own loop, as online
        features = None
        decided = 0.0
        if needs != "none" and policy.wants_features(float(pages[w])):
            full = table.features(w)
            features = full.cheap()
            if needs == "probe":
                t0 = clock()
                mask = policy.probe_mask(features)
                decided = clock() - t0 if decision_s is None else decision_s
                features = full.masked(mask)
        arm = policy.choose(features)
        charge = policy.charge_s(features) + decided
        o = table.outcome(w, arm)
        split = policy.split()
        if split is not None and split[1] < pages[w]:  # the arm plays a part of the window
            rest, played = split
            share = played / pages[w]
            o = o.scaled(share)
            whole = o.joined(table.outcome(w, rest).scaled(1.0 - share))
            reward = objective.charged_reward(whole, charge)
        else:
            reward = objective.charged_reward(o, charge)
        # the table's outcomes were checked when it was made or loaded
        policy.update(arm, objective.utility(reward), features, o, checked=True)
        chosen[w], rewards[w], charges[w] = arm, reward, charge
    return ReplayResult(policy.label, policy.get_config(), chosen, rewards, charges)


def _ratio(value: float, reference: float) -> float:
    """How close ``value`` gets to ``reference`` (1 = as good), for gains and costs alike."""
    if reference == 0 or value == 0:
        return float("nan")
    return value / reference if reference > 0 else reference / value


@dataclass
class Score:
    """A policy's totals against the oracle and the best fixed arm."""

    label: str
    total: float
    vs_oracle: float
    vs_best_fixed: float
    switches: int
    feature_s: float
    sum_vs_oracle: float
    sum_vs_best_fixed: float
    regret: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    def as_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "regret"}
        d["final_regret"] = float(self.regret[-1]) if self.regret.size else 0.0
        return d


@dataclass
class Evaluation:
    """Scores of several policies on one table under one objective."""

    objective: Objective
    oracle_arms: np.ndarray
    oracle_rewards: np.ndarray
    best_fixed: int
    results: list[ReplayResult]
    scores: list[Score]
    labels: list[str]
    phases: list[str]

    def best_adaptive(self) -> Score:
        adaptive = [s for s in self.scores if not s.label.startswith("fixed")]
        return max(adaptive, key=lambda s: s.vs_oracle)

    def as_dict(self) -> dict:
        return {
            "objective": self.objective.get_config(),
            "unit": self.objective.unit,
            "arms": self.labels,
            "windows": int(self.oracle_arms.size),
            "best_fixed_arm": self.labels[self.best_fixed],
            "oracle_switches": int(np.count_nonzero(np.diff(self.oracle_arms))),
            "scores": [s.as_dict() for s in self.scores],
        }


def fixed_configs(n_arms: int) -> list[dict]:
    """The configurations of every fixed arm, in arm order: what every evaluation replays
    first (the best fixed arm is found among them)."""
    return [Fixed(arm=i).get_config() for i in range(n_arms)]


def replay_configs(
    configs: Sequence[dict | str], table: Table, objective: Objective
) -> list[ReplayResult]:
    """Replay each policy, named by its configuration (``policy_from_config``) or its
    specification (``parse_policy``, e.g. ``"d-ucb:gamma=0.9"``), a fresh instance each.
    What one replay task runs: plain data in, plain data out."""
    return [
        replay(parse_policy(c) if isinstance(c, str) else policy_from_config(c), table, objective)
        for c in configs
    ]


def evaluate(table: Table, policies: list[Policy], objective: Objective) -> Evaluation:
    """Replay every policy, plus every fixed arm, and score them all (:func:`score`)."""
    fixed = [Fixed(arm=i) for i in range(table.n_arms)]
    return score(table, objective, [replay(p, table, objective) for p in [*fixed, *policies]])


def score(table: Table, objective: Objective, results: list[ReplayResult]) -> Evaluation:
    """Score replays of ``table``: ``results`` starts with every fixed arm's, in arm order
    (:func:`fixed_configs`), then the policies'. Replays are deterministic given the
    table, so replays run anywhere (a cluster's workers) score as if run here.

    Regret over time is the cumulative utility lost against the oracle (for throughput:
    seconds per guest GB, summed over windows)."""
    k = table.n_arms
    if len(results) < k or any(
        r.config.get("name") != "fixed" or r.config.get("arm") != i
        for i, r in enumerate(results[:k])
    ):
        raise ValueError(f"score needs the {k} fixed arms' replays first, in arm order")
    base = table.rewards(objective)
    oracle_arms = np.argmax(base, axis=1)
    oracle = base[np.arange(table.n_windows), oracle_arms]
    nbytes = table.input_bytes[:, 0]
    totals = [objective.total(r.rewards, nbytes) for r in results]
    best_fixed = int(np.argmax(totals[:k]))
    oracle_total = objective.total(oracle, nbytes)
    oracle_sum = float(oracle.sum())
    fixed_sum = float(results[best_fixed].rewards.sum())
    oracle_utility = objective.utility_arrays(oracle)
    scores = []
    for r, total in zip(results, totals, strict=True):
        is_fixed = r.config["name"] == "fixed"
        label = f"fixed {table.labels[r.config['arm']]}" if is_fixed else r.label
        scores.append(
            Score(
                label=label,
                total=total,
                vs_oracle=_ratio(total, oracle_total),
                vs_best_fixed=_ratio(total, totals[best_fixed]),
                switches=r.switches,
                feature_s=float(r.charge_s.sum()),
                sum_vs_oracle=_ratio(float(r.rewards.sum()), oracle_sum),
                sum_vs_best_fixed=_ratio(float(r.rewards.sum()), fixed_sum),
                regret=np.cumsum(oracle_utility - objective.utility_arrays(r.rewards)),
            )
        )
    return Evaluation(
        objective, oracle_arms, oracle, best_fixed, results, scores, table.labels, table.phases
    )
