"""Context-free policies: they learn each arm's reward from the rewards of past windows.

They are the baselines: probe-then-commit (the "smart selection" planned in Intel's *Live
Migration With Hardware Acceleration*, KVM Forum 2020) and the standard answers to changing
rewards (discounted and sliding-window UCB, Garivier & Moulines 2011). On real memory they
trail the per-window oracle by far (``docs/results/selector.md``), because the best codec
changes faster than past rewards reveal; see ``auto`` for the policy that reads the window.

Rewards come in the objective's units, so exploration bonuses are scaled by each arm's own
spread of rewards (floored at a small share of the range of all rewards seen, so an arm
seen once, or a constant one, still gets explored): the policies need no tuning per link
speed or objective, and an arm whose reward is steady is not explored for nothing.
"""

from __future__ import annotations

import math
import random
from collections import deque

import numpy as np

from migcodec.selector.features import WindowFeatures
from migcodec.selector.policies.base import MAX_WINDOWS, Policy, PolicyError
from migcodec.units import format_number


class _Counting(Policy):
    """Shared state: per-arm (possibly discounted) counts and reward sums."""

    def _reset(self) -> None:
        self.counts = np.zeros(self.n_arms)
        self.sums = np.zeros(self.n_arms)
        self.sq = np.zeros(self.n_arms)
        self.low, self.high = np.inf, -np.inf
        self.t = 0

    def _observe(self, reward: float) -> None:
        self.t += 1
        if reward < self.low:
            self.low = reward
        if reward > self.high:
            self.high = reward

    def _add(self, arm: int, reward: float, weight: float = 1.0) -> None:
        self.counts[arm] += weight
        self.sums[arm] += weight * reward
        self.sq[arm] += weight * reward * reward

    def _mean_spread(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-arm mean and standard deviation of rewards, the latter floored at 5% of the
        observed range (numerically a negative variance is clipped by the floor too)."""
        mean = self.sums / self.counts
        floor = 0.05 * max(self.high - self.low, 1e-12)
        var = np.fmax(self.sq / self.counts - mean * mean, floor * floor)
        return mean, np.sqrt(var)

    def _untried(self) -> int:
        """First arm never (or no longer) observed, or -1."""
        i = int(self.counts.argmin())
        return i if self.counts[i] <= 0 else -1


class Fixed(Policy):
    """Always the same arm: the baseline every adaptive policy must beat."""

    name = "fixed"

    def __init__(self, arm: int = 0) -> None:
        self._require("arm", arm, 0)
        self.arm = arm

    def _reset(self) -> None:
        if not 0 <= self.arm < self.n_arms:
            raise PolicyError(
                f"fixed arm {format_number(self.arm)} is out of range for {self.n_arms} arms; "
                f"arms are counted from 0"
            )

    def choose(self, features: WindowFeatures | None = None) -> int:
        return self.arm

    def _learn(self, arm, reward, features, outcome) -> None:
        pass


class EpsilonGreedy(_Counting):
    """The best arm so far, a random one with probability ``epsilon``.

    ``step`` is ``None`` for sample averages, or a constant step size (a recency-weighted
    average that keeps up with change).
    """

    name = "epsilon-greedy"

    def __init__(self, epsilon: float = 0.1, step: float | None = 0.2, seed: int = 0) -> None:
        self._require("epsilon", epsilon, 0, 1)
        if step is not None:
            self._require("step", step, 0, 1, open_low=True)
        self._require("seed", seed, 0)
        self.epsilon, self.step, self.seed = epsilon, step, seed

    def _reset(self) -> None:
        super()._reset()
        self.means = np.zeros(self.n_arms)
        self.rng = random.Random(self.seed)

    def probabilities(self) -> np.ndarray:
        """Probability of each arm at the next choice (the propensity a log records)."""
        p = np.full(self.n_arms, self.epsilon / self.n_arms)
        untried = self._untried()
        p[untried if untried >= 0 else int(np.argmax(self.means))] += 1 - self.epsilon
        return p

    def choose(self, features=None) -> int:
        if self.rng.random() < self.epsilon:
            return self.rng.randrange(self.n_arms)
        untried = self._untried()
        return untried if untried >= 0 else int(np.argmax(self.means))

    def _learn(self, arm, reward, features, outcome) -> None:
        self._observe(reward)
        self.counts[arm] += 1
        alpha = self.step if self.step is not None else 1.0 / self.counts[arm]
        if self.counts[arm] == 1:
            alpha = 1.0
        self.means[arm] += alpha * (reward - self.means[arm])


class UCB1(_Counting):
    """Upper confidence bound (Auer et al. 2002): mean + c * spread * sqrt(2 ln t / n)."""

    name = "ucb1"

    def __init__(self, c: float = 1.0) -> None:
        self._require("c", c, 0)
        self.c = c

    def choose(self, features=None) -> int:
        untried = self._untried()
        if untried >= 0:
            return untried
        mean, spread = self._mean_spread()
        bonus = spread * np.sqrt((2 * self.c * self.c * math.log(self.t)) / self.counts)
        return int((mean + bonus).argmax())

    def _learn(self, arm, reward, features, outcome) -> None:
        self._observe(reward)
        self._add(arm, reward)


class DiscountedUCB(_Counting):
    """Discounted UCB (Garivier & Moulines 2011): counts and sums decay by ``gamma`` per
    window, so old rewards fade and an arm left alone regains its exploration bonus.

    Index: ``S_i/N_i + 2 c B_i sqrt(xi ln n / N_i)`` with ``n = sum N_i``; ``B_i`` is the
    arm's reward spread where the paper has a known bound on rewards.
    """

    name = "d-ucb"

    def __init__(self, gamma: float = 0.95, xi: float = 0.6, c: float = 1.0) -> None:
        self._require("gamma", gamma, 0, 1, open_low=True)
        self._require("xi", xi, 0)
        self._require("c", c, 0)
        self.gamma, self.xi, self.c = gamma, xi, c

    def choose(self, features=None) -> int:
        untried = self._untried()
        if untried >= 0:
            return untried
        n = max(float(self.counts.sum()), 1.0 + 1e-9)
        mean, spread = self._mean_spread()
        bonus = spread * np.sqrt((4 * self.c * self.c * self.xi * math.log(n)) / self.counts)
        return int((mean + bonus).argmax())

    def _learn(self, arm, reward, features, outcome) -> None:
        self._observe(reward)
        self.counts *= self.gamma
        self.sums *= self.gamma
        self.sq *= self.gamma
        self._add(arm, reward)


class SlidingWindowUCB(_Counting):
    """Sliding-window UCB (Garivier & Moulines 2011): statistics of the last ``window``
    windows only (at most :data:`~migcodec.selector.policies.base.MAX_WINDOWS`); an arm
    absent from the window is tried again. What it holds grows with the windows seen, up
    to ``window`` of them."""

    name = "sw-ucb"

    def __init__(self, window: int = 50, xi: float = 0.6, c: float = 1.0) -> None:
        self._require("window", window, 1, MAX_WINDOWS)
        self._require("xi", xi, 0)
        self._require("c", c, 0)
        self.window, self.xi, self.c = window, xi, c

    def _reset(self) -> None:
        super()._reset()
        self.history: deque[tuple[int, float]] = deque()  # (arm, reward), oldest first

    def choose(self, features=None) -> int:
        untried = self._untried()
        if untried >= 0:
            return untried
        n = min(self.t, self.window)
        mean, spread = self._mean_spread()
        scale = 4 * self.c * self.c * self.xi * math.log(max(n, 2))
        return int((mean + spread * np.sqrt(scale / self.counts)).argmax())

    def _learn(self, arm, reward, features, outcome) -> None:
        if len(self.history) == self.window:
            old, old_reward = self.history.popleft()
            self._add(old, old_reward, -1.0)
            if self.counts[old] <= 0:  # no float residue
                self.counts[old] = self.sums[old] = self.sq[old] = 0.0
        self.history.append((arm, float(reward)))
        self._add(arm, reward)
        self._observe(reward)


class GaussianThompson(_Counting):
    """Gaussian Thompson sampling: draw each arm's mean from N(mean, var/n), play the best.

    The variance is each arm's own sample variance (floored at 5% of the observed reward
    range, so a constant arm still gets explored). ``discount`` < 1 forgets old windows.
    """

    name = "thompson"

    def __init__(self, discount: float = 0.97, seed: int = 0) -> None:
        self._require("discount", discount, 0, 1, open_low=True)
        self._require("seed", seed, 0)
        self.discount, self.seed = discount, seed

    def _reset(self) -> None:
        super()._reset()
        self.rng = np.random.default_rng(self.seed)

    def choose(self, features=None) -> int:
        untried = self._untried()
        if untried >= 0:
            return untried
        mean, spread = self._mean_spread()
        draw = mean + spread / np.sqrt(self.counts) * self.rng.standard_normal(self.n_arms)
        return int(np.argmax(draw))

    def _learn(self, arm, reward, features, outcome) -> None:
        self._observe(reward)
        if self.discount < 1:
            self.counts *= self.discount
            self.sums *= self.discount
            self.sq *= self.discount
        self._add(arm, reward)


class ProbeThenCommit(_Counting):
    """Probe then commit: try every arm on ``k`` windows, commit to the best, and probe
    again every ``every`` windows or when the committed arm's recent reward drifts more
    than ``drift`` (relative) from what it earned when chosen. ``k`` is at most
    :data:`~migcodec.selector.policies.base.MAX_WINDOWS`."""

    name = "probe-commit"

    def __init__(self, k: int = 1, every: int = 50, drift: float = 0.25) -> None:
        self._require("k", k, 1, MAX_WINDOWS)
        self._require("every", every, 1)
        self._require("drift", drift, 0)
        self.k, self.every, self.drift = k, every, drift

    def _reset(self) -> None:
        super()._reset()
        self._start_probe()

    def _start_probe(self) -> None:
        self.probes_left = self.n_arms * self.k  # arm after arm, k windows each
        self.probe_sums = np.zeros(self.n_arms)
        self.committed = -1
        self.committed_for = 0
        self.reference = 0.0
        self.recent = 0.0

    def choose(self, features=None) -> int:
        if self.probes_left:
            return self.n_arms - 1 - (self.probes_left - 1) // self.k
        return self.committed

    def _learn(self, arm, reward, features, outcome) -> None:
        self._observe(reward)
        if self.probes_left:
            self.probes_left -= 1
            self.probe_sums[arm] += reward
            if not self.probes_left:
                self.committed = int(np.argmax(self.probe_sums))
                self.reference = self.recent = self.probe_sums[self.committed] / self.k
            return
        self.committed_for += 1
        self.recent += 0.3 * (reward - self.recent)
        drifted = abs(self.recent - self.reference) > self.drift * max(abs(self.reference), 1e-12)
        # (relative to the reward's size: for utilities such as minus seconds per GB too)
        if drifted or self.committed_for >= self.every:
            self._start_probe()
