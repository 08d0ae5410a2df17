"""The predictive policy: estimate every arm's outcome on *this* window, play the best.

On real memory the best codec changes from one window to the next often (see the corpus
results in ``docs/results/selector.md``), so learning from past rewards alone trails the
per-window oracle. This policy reads
the window instead. A compressing arm's ratio and rate come from encoding a small sample of
the window's pages; a delta arm's from encoding the same sample against what the
destination holds for it, with a private instance of the arm (or, for a delta codec without
cache hooks, from the changed-word counts: a record spends a fixed number of bytes per
changed word). The objective turns each predicted (ratio, rate) into a predicted reward and
the best is played.

What it learns online is only the *bias* of each prediction: the log ratio of the outcome
seen to the probe's prediction, per arm, as a moving average (half of each error is shared
by all arms, compressors for ratios, every probed arm for rates, so an arm that is rarely
played inherits what the others learnt). Sample-sized batches compress a little worse
than full batches, a lone probe call runs slower than a stream of batches, a delta arm's
real size depends on its cache and fall-back codec; these biases are stable per codec, so
they generalise across workloads where a learnt reward model would not. Biases are learnt
only from mostly non-zero windows and clipped to a factor of 4.

Probes are paid for (the evaluation adds their time to the window's encode time), so the
policy buys only the ones it needs:

- none while the window's cheap features stay within ``tolerance`` of those of the last
  probed window, for at most ``refresh`` windows (the previous predictions are reused);
- none for an arm whose best case, ``workers x`` its recent rate, cannot beat the ``raw``
  arm's known reward (at 10 Gbit/s a slow strong compressor is CPU bound whatever its ratio),
  except on every ``4 x refresh``-th probing window, when every arm is probed again; a
  delta arm is always probed (its speed depends on how pages changed, not on the past).

``optimism`` > 1 multiplies the predicted reward of an arm never played yet (no bias known
to correct its probe with), so a competitive arm gets tried once; off by default, because
the shared biases already carry what played arms teach to the others.
"""

from __future__ import annotations

import math

import numpy as np

from migcodec.codecs import CodecKind
from migcodec.selector.features import WindowFeatures
from migcodec.selector.objectives import Outcome, Throughput
from migcodec.selector.policies.base import Policy, PolicyError

_MAX_BIAS = math.log(4.0)
_TIE = 0.98  # predicted rewards within 2% of the best count as tied


def _clip(bias: float) -> float:
    return -_MAX_BIAS if bias < -_MAX_BIAS else _MAX_BIAS if bias > _MAX_BIAS else bias


class Predictive(Policy):
    """Sample-probe prediction with learnt per-arm bias; see the module docstring."""

    name = "predictive"
    needs = "probe"

    def __init__(
        self,
        learn: float = 0.3,
        tolerance: float = 0.05,
        refresh: int = 4,
        optimism: float = 1.0,
    ) -> None:
        if not 0 < learn <= 1:
            raise PolicyError(f"learn must be in (0, 1], got {learn}")
        if optimism < 1:
            raise PolicyError(f"optimism must be >= 1, got {optimism}")
        self.learn, self.tolerance, self.refresh = learn, tolerance, refresh
        self.optimism = optimism

    def _reset(self) -> None:
        k = self.n_arms
        self.played = [0] * k  # windows that taught each arm's bias
        self.boost = np.full(k, self.optimism)  # optimism for arms whose bias is unknown
        self.ratio_bias = np.zeros(k)  # log(actual ratio / predicted ratio), per arm
        self.rate_bias = np.zeros(k)
        self.shared_ratio_bias = 0.0  # the part every compressing arm shares (sample size)
        self.shared_rate_bias = 0.0  # the part every probed arm shares (a lone call's speed)
        self.compressing = np.array(
            [kind not in (CodecKind.DELTA, CodecKind.RAW) for kind in self.kinds]
        )
        self._compressing_f = self.compressing.astype(float)
        self.recent_ratio = np.full(k, np.nan)  # observed when played
        self.nz_cost = np.full(k, np.nan)  # busy seconds per non-zero guest byte, when played
        self.clock = getattr(self.objective, "clock", "cpu")
        self.last_ratio = np.full(k, np.nan)  # last probe results, reused while stable
        self.last_rate = np.full(k, np.nan)
        self.last_context: np.ndarray | None = None
        self.age = 0
        self.since_full = 0
        self._confirm = False  # probing a second window in a row after the content changed
        self._changed = False
        self.raw_arm = self.kinds.index(CodecKind.RAW) if CodecKind.RAW in self.kinds else -1
        self._mask: np.ndarray | None = None
        self._rate_missing = np.ones(k, dtype=bool)
        self._ratio_missing = np.ones(k, dtype=bool)
        self._any_missing = True
        self._refresh_factors()

    # -- which probes to buy ---------------------------------------------------------
    def probe_mask(self, features: WindowFeatures) -> np.ndarray | None:
        self._mask = self.select_probes(features)
        return self._mask

    def select_probes(self, features: WindowFeatures) -> np.ndarray:
        """Arms to probe for this window, given its cheap features."""
        same = (
            self.last_context is not None
            and float(np.abs(features.context - self.last_context).max()) <= self.tolerance
        )
        self._confirm = same and self.age == 0 and self._changed
        self._changed = not same
        if same and self.age < self.refresh and not self._confirm:
            return np.zeros(self.n_arms, dtype=bool)
        mask = np.ones(self.n_arms, dtype=bool)
        objective = self.objective
        self.since_full += 1
        if self.since_full >= 4 * self.refresh:  # now and then every arm, so an arm judged
            self.since_full = 0  # hopeless on old content is seen again on new content
            return mask
        if isinstance(objective, Throughput) and self.raw_arm >= 0:
            rate = self._rate_estimate(features)
            zero = features.context[1]
            raw_ratio = 1.0 / max(1.0 - zero, 1e-3)
            raw_reward = min(objective.workers * rate[self.raw_arm], objective.link * raw_ratio)
            hopeless = objective.workers * rate < raw_reward
            # a delta arm's speed depends on how pages changed, not on past windows
            mask &= ~(hopeless & np.isfinite(rate) & self.compressing)
        if self.raw_arm >= 0:
            mask[self.raw_arm] = True  # cheap, and zero pages change its ratio
        return mask

    @staticmethod
    def _nonzero(features: WindowFeatures | None) -> float:
        """Share of the window's pages that cost encoding work (zero pages are markers)."""
        return 1.0 if features is None else max(1.0 - float(features.context[1]), 1 / 64)

    def _recent_rate(self, features: WindowFeatures | None) -> np.ndarray:
        """Rates from what playing each arm cost per non-zero byte: a delta arm's speed on a
        zero-fill phase says nothing about a phase of changed pages, its cost per non-zero
        page does."""
        return 1.0 / (self.nz_cost * self._nonzero(features))

    def _rate_estimate(self, features: WindowFeatures | None = None) -> np.ndarray:
        known = np.where(np.isfinite(self.nz_cost), self._recent_rate(features), self.last_rate)
        return np.where(np.isfinite(known), known, np.inf)

    # -- decision --------------------------------------------------------------------
    def choose(self, features: WindowFeatures | None = None) -> int:
        if features is None or features.predicted_ratio is None:
            self._mask = None
            return self._best(self.recent_ratio.copy(), self._recent_rate(features))
        mask = self._mask if self._mask is not None else self.select_probes(features)
        self._mask = None
        if mask.any():
            if self._confirm:  # the second look at new content: average out a probe's noise
                mask = mask & ~np.isnan(features.predicted_rate)
                both = mask & ~np.isnan(self.last_rate)
                np.copyto(
                    self.last_rate, 0.5 * (self.last_rate + features.predicted_rate), where=both
                )
                mask = mask & ~both
            np.copyto(self.last_ratio, features.predicted_ratio, where=mask)
            np.copyto(self.last_rate, features.predicted_rate, where=mask)
            self.last_context = features.context
            self.age = 0
            # arms no probe has covered (a delta arm without previous pages, say)
            self._rate_missing = np.isnan(self.last_rate)
            self._ratio_missing = np.isnan(self.last_ratio)
            self._any_missing = bool(self._rate_missing.any() or self._ratio_missing.any())
        else:
            self.age += 1
        ratio = self.last_ratio * self._ratio_factor
        rate = self.last_rate * self._rate_factor
        if self._any_missing:  # fall back on what playing them taught
            gap = self._rate_missing
            rate[gap] = self._recent_rate(features)[gap]
            gap = self._ratio_missing
            ratio[gap] = self.recent_ratio[gap]
        return self._best(ratio, rate)

    def _best(self, ratio: np.ndarray, rate: np.ndarray) -> int:
        """The arm with the best predicted reward; an arm with nothing known is tried
        optimistically, which is how it becomes known."""
        objective = self.objective
        if isinstance(objective, Throughput):  # the common case, in a few numpy calls:
            # fmin skips a nan bound (an unknown rate or ratio: optimistic)
            best = np.fmin(objective.workers * rate, objective.link * ratio)
            if self.optimism != 1.0:
                best *= self.boost
            most = best.max()
            if most != most:  # a nan: nothing known about an arm, optimistic so it becomes known
                best[np.isnan(best)] = np.inf
                most = np.inf
            top = best >= _TIE * most
            if np.count_nonzero(top) < 2:
                return int(best.argmax())
            # near-ties (typically several arms at the link bound) go to the arm with the
            # most CPU to spare: it is least hurt if its predicted speed is off
            return int(np.where(top, np.nan_to_num(rate, nan=0.0), -1.0).argmax())
        ratio[np.isnan(ratio)] = np.inf
        rate[np.isnan(rate)] = np.inf
        with np.errstate(divide="ignore"):
            ones = np.ones(self.n_arms)
            predicted = objective.reward_arrays(ones, ones / ratio, ones / rate, ones / rate)
        # costs are negative: optimism divides them
        predicted = np.where(predicted > 0, predicted * self.boost, predicted / self.boost)
        return int(predicted.argmax())

    def update(self, arm, reward, features=None, outcome: Outcome | None = None) -> None:
        if outcome is None or outcome.input_bytes <= 0:
            return
        if features is not None and features.context[1] > 0.5:
            # a mostly-zero window says little about an arm: its ratio and rate are set by
            # how many pages are zero, which a sample estimates only roughly
            return
        step = self.learn
        ratio = outcome.ratio
        busy = outcome.busy_s(self.clock)
        rate = outcome.input_bytes / busy if busy > 0 else math.inf
        cost = busy / (outcome.input_bytes * self._nonzero(features))
        old = float(self.recent_ratio[arm])
        self.recent_ratio[arm] = ratio if math.isnan(old) else old + step * (ratio - old)
        old = float(self.nz_cost[arm])
        self.nz_cost[arm] = cost if math.isnan(old) else old + step * (cost - old)
        probe_ratio, probe_rate = float(self.last_ratio[arm]), float(self.last_rate[arm])
        if self.played[arm] == 0:
            step = 1.0  # the first outcome replaces the prior of no bias outright
            self.boost[arm] = 1.0
        self.played[arm] += 1
        if math.isfinite(probe_ratio) and probe_ratio > 0 and math.isfinite(ratio):
            compressing = bool(self.compressing[arm])
            shared = self.shared_ratio_bias if compressing else 0.0
            error = math.log(ratio / probe_ratio) - float(self.ratio_bias[arm]) - shared
            if compressing:  # split the error: what one compressor's sample misses,
                self.shared_ratio_bias += step * error / 2  # the others' likely miss too
                error /= 2
            self.ratio_bias[arm] += step * error
        if math.isfinite(probe_rate) and probe_rate > 0 and math.isfinite(rate):
            # split as for ratios: a probe, one call on a few pages between other work, runs
            # slower than a stream of batches for every arm alike
            error = math.log(rate / probe_rate) - float(self.rate_bias[arm]) - self.shared_rate_bias
            self.shared_rate_bias += step * error / 2
            self.rate_bias[arm] += step * error / 2
        # a probe more than 4x off is an outlier window, not a bias to carry to the next
        self.ratio_bias[arm] = _clip(float(self.ratio_bias[arm]))
        self.rate_bias[arm] = _clip(float(self.rate_bias[arm]))
        self.shared_ratio_bias = _clip(self.shared_ratio_bias)
        self.shared_rate_bias = _clip(self.shared_rate_bias)
        self._refresh_factors()

    def _refresh_factors(self) -> None:
        """Multipliers applied to probe predictions, kept ready for the next decision."""
        self._ratio_factor = np.exp(self.ratio_bias + self._compressing_f * self.shared_ratio_bias)
        self._rate_factor = np.exp(self.rate_bias + self.shared_rate_bias)
