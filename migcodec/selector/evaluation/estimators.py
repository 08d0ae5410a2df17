"""Off-policy estimates from logged traces, where only the chosen arm was observed.

A log holds, per window, the arm the logging policy played, the probability it had of
playing it (its propensity) and the reward; a target policy is given as its probability of
each arm per window. Three estimators of the target's mean reward per window:

- **IPS** (inverse propensity scoring): unbiased when propensities are right and positive
  wherever the target plays, but high variance when they are small;
- **SNIPS** (self-normalised IPS): divides by the sum of weights instead of ``n``, a little
  biased, much steadier;
- **doubly robust** (Dudik, Langford & Li 2011): a reward model's prediction plus an IPS
  correction of its error; unbiased if either the model or the propensities are right.

Full-information tables need none of this (replay is exact); these are for logs of live
migrations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class LogError(ValueError):
    """Logged data or target probabilities are inconsistent."""


@dataclass(frozen=True)
class Estimate:
    """Estimated mean reward per window and its standard error."""

    value: float
    stderr: float


def _check(arms, propensities, rewards, target) -> tuple[np.ndarray, ...]:
    arms = np.asarray(arms, dtype=np.int64)
    p = np.asarray(propensities, dtype=float)
    r = np.asarray(rewards, dtype=float)
    pi = np.asarray(target, dtype=float)
    n = arms.shape[0]
    if p.shape != (n,) or r.shape != (n,) or pi.ndim != 2 or pi.shape[0] != n:
        raise LogError(
            f"need arms, propensities and rewards of one length and target probabilities "
            f"(n, arms); got {arms.shape}, {p.shape}, {r.shape}, {pi.shape}"
        )
    if n == 0:
        raise LogError("the log is empty")
    if (p <= 0).any() or (p > 1).any():
        raise LogError("propensities must lie in (0, 1]: a logged arm had zero probability?")
    if (arms < 0).any() or (arms >= pi.shape[1]).any():
        raise LogError(f"logged arm out of range for {pi.shape[1]} arms")
    return arms, p, r, pi


def _mean(x: np.ndarray) -> Estimate:
    return Estimate(float(x.mean()), float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else 0.0)


def ips(arms, propensities, rewards, target) -> Estimate:
    """Inverse propensity scoring: ``mean(pi(a|x) / p * r)``."""
    arms, p, r, pi = _check(arms, propensities, rewards, target)
    w = pi[np.arange(arms.size), arms] / p
    return _mean(w * r)


def snips(arms, propensities, rewards, target) -> Estimate:
    """Self-normalised IPS: ``sum(w r) / sum(w)``; stderr by the delta method."""
    arms, p, r, pi = _check(arms, propensities, rewards, target)
    w = pi[np.arange(arms.size), arms] / p
    total = w.sum()
    if total <= 0:
        raise LogError("the target policy never plays a logged arm: SNIPS is undefined")
    value = float((w * r).sum() / total)
    resid = w * (r - value) / w.mean()
    stderr = float(resid.std(ddof=1) / np.sqrt(r.size)) if r.size > 1 else 0.0
    return Estimate(value, stderr)


def fit_reward_model(
    arms, rewards, contexts: np.ndarray | None, n_arms: int, ridge: float = 1.0
) -> np.ndarray:
    """``(n, arms)`` predicted rewards: per-arm ridge regression on ``contexts`` (or the
    per-arm mean when there are none), fitted on the logged rewards."""
    arms = np.asarray(arms, dtype=np.int64)
    r = np.asarray(rewards, dtype=float)
    n = arms.size
    if contexts is None:
        means = np.array(
            [r[arms == a].mean() if (arms == a).any() else r.mean() for a in range(n_arms)]
        )
        return np.broadcast_to(means, (n, n_arms)).copy()
    x = np.asarray(contexts, dtype=float)
    q = np.empty((n, n_arms))
    for a in range(n_arms):  # one solve per arm
        rows = arms == a
        xa = x[rows]
        theta = np.linalg.solve(xa.T @ xa + ridge * np.eye(x.shape[1]), xa.T @ r[rows])
        q[:, a] = x @ theta
    return q


def doubly_robust(
    arms,
    propensities,
    rewards,
    target,
    reward_model: np.ndarray | None = None,
    contexts: np.ndarray | None = None,
) -> Estimate:
    """``mean(sum_a pi(a|x) q(x,a) + pi(a_i|x)/p_i * (r_i - q(x,a_i)))``.

    ``reward_model`` is ``(n, arms)`` predictions; by default one is fitted on the log."""
    arms, p, r, pi = _check(arms, propensities, rewards, target)
    q = (
        reward_model
        if reward_model is not None
        else fit_reward_model(arms, r, contexts, pi.shape[1])
    )
    q = np.asarray(q, dtype=float)
    if q.shape != pi.shape:
        raise LogError(f"reward model shape {q.shape} does not match target {pi.shape}")
    rows = np.arange(arms.size)
    w = pi[rows, arms] / p
    return _mean((pi * q).sum(axis=1) + w * (r - q[rows, arms]))
