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
from operator import mul, sub

import numpy as np

from migcodec.codecs import CodecKind
from migcodec.selector.features import WindowFeatures
from migcodec.selector.objectives import Outcome, Throughput
from migcodec.selector.policies.base import Policy

_MAX_BIAS = math.log(4.0)
_TIE = 0.98  # predicted rewards within 2% of the best count as tied
_NAN = math.nan


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
        self._require("learn", learn, 0, 1, open_low=True)
        self._require("tolerance", tolerance, 0)
        self._require("refresh", refresh, 0)
        self._require("optimism", optimism, 1)
        self.learn, self.tolerance, self.refresh = learn, tolerance, refresh
        self.optimism = optimism

    def _reset(self) -> None:
        # Per-arm state is kept in Python lists: a decision reads and writes a handful of
        # numbers per arm, which plain floats do in a fraction of numpy's per-call cost
        k = self.n_arms
        self.played = [0] * k  # windows that taught each arm's bias
        self.boost = [self.optimism] * k  # optimism for arms whose bias is unknown
        self.ratio_bias = [0.0] * k  # log(actual ratio / predicted ratio), per arm
        self.rate_bias = [0.0] * k
        self.shared_ratio_bias = 0.0  # the part every compressing arm shares (sample size)
        self.shared_rate_bias = 0.0  # the part every probed arm shares (a lone call's speed)
        self.compressing = [kind not in (CodecKind.DELTA, CodecKind.RAW) for kind in self.kinds]
        self.recent_ratio = [_NAN] * k  # observed when played
        self.nz_cost = [_NAN] * k  # busy seconds per non-zero guest byte, when played
        self.clock = getattr(self.objective, "clock", "cpu")
        self.last_ratio = [_NAN] * k  # last probe results, reused while stable
        self.last_rate = [_NAN] * k
        self.last_context: list[float] | None = None
        self.age = 0
        self.since_full = 0
        self._confirm = False  # probing a second window in a row after the content changed
        self._changed = False
        self.raw_arm = self.kinds.index(CodecKind.RAW) if CodecKind.RAW in self.kinds else -1
        self._mask: np.ndarray | None = None
        self._rate_missing = [True] * k
        self._ratio_missing = [True] * k
        self._any_missing = True
        self._refresh_factors()

    # -- which probes to buy ---------------------------------------------------------
    def probe_mask(self, features: WindowFeatures) -> np.ndarray | None:
        self._mask = self.select_probes(features)
        return self._mask

    def select_probes(self, features: WindowFeatures) -> np.ndarray:
        """Arms to probe for this window, given its cheap features."""
        context = features.context.tolist()
        last = self.last_context
        same = last is not None and max(map(abs, map(sub, context, last))) <= self.tolerance
        self._confirm = same and self.age == 0 and self._changed
        self._changed = not same
        if same and self.age < self.refresh and not self._confirm:
            return np.zeros(self.n_arms, dtype=bool)
        mask = [True] * self.n_arms
        objective = self.objective
        self.since_full += 1
        if self.since_full >= 4 * self.refresh:  # now and then every arm, so an arm judged
            self.since_full = 0  # hopeless on old content is seen again on new content
            return np.array(mask)
        if isinstance(objective, Throughput) and self.raw_arm >= 0:
            rate = self._rate_estimate(features)
            raw_ratio = 1.0 / max(1.0 - context[1], 1e-3)
            workers = objective.workers
            raw_reward = min(workers * rate[self.raw_arm], objective.link * raw_ratio)
            # a delta arm's speed depends on how pages changed, not on past windows
            mask = [
                not (workers * r < raw_reward and r < math.inf and compressing)
                for r, compressing in zip(rate, self.compressing, strict=True)
            ]
        if self.raw_arm >= 0:
            mask[self.raw_arm] = True  # cheap, and zero pages change its ratio
        return np.array(mask)

    @staticmethod
    def _nonzero(features: WindowFeatures | None) -> float:
        """Share of the window's pages that cost encoding work (zero pages are markers)."""
        return 1.0 if features is None else max(1.0 - float(features.context[1]), 1 / 64)

    def _recent_rate(self, features: WindowFeatures | None) -> list[float]:
        """Rates from what playing each arm cost per non-zero byte: a delta arm's speed on a
        zero-fill phase says nothing about a phase of changed pages, its cost per non-zero
        page does."""
        nonzero = self._nonzero(features)
        return [1.0 / (c * nonzero) if c else math.inf for c in self.nz_cost]

    def _rate_estimate(self, features: WindowFeatures | None = None) -> list[float]:
        """Each arm's rate as last known (played, else probed); unknown: unbounded."""
        recent = self._recent_rate(features)
        known = [
            r if math.isfinite(c) else p
            for r, c, p in zip(recent, self.nz_cost, self.last_rate, strict=True)
        ]
        return [math.inf if r != r else r for r in known]

    # -- decision --------------------------------------------------------------------
    def choose(self, features: WindowFeatures | None = None) -> int:
        if features is None or features.predicted_ratio is None:
            self._mask = None
            return self._best(self.recent_ratio, self._recent_rate(features))
        mask = self._mask if self._mask is not None else self.select_probes(features)
        self._mask = None
        take = mask.tolist()  # a list's search costs a fraction of numpy's any()
        if True in take:
            probe_ratio = features.predicted_ratio.tolist()
            probe_rate = features.predicted_rate.tolist()
            last_ratio, last_rate = self.last_ratio, self.last_rate
            for a, probed in enumerate(take):
                if not probed:
                    continue
                if self._confirm:  # the second look at new content: average a probe's noise
                    if probe_rate[a] != probe_rate[a]:
                        continue
                    if last_rate[a] == last_rate[a]:
                        last_rate[a] = 0.5 * (last_rate[a] + probe_rate[a])
                        continue
                last_ratio[a] = probe_ratio[a]
                last_rate[a] = probe_rate[a]
            self.last_context = features.context.tolist()
            self.age = 0
            # arms no probe has covered (a delta arm without previous pages, say)
            self._rate_missing = [r != r for r in last_rate]
            self._ratio_missing = [r != r for r in last_ratio]
            self._any_missing = any(self._rate_missing) or any(self._ratio_missing)
        else:
            self.age += 1
        ratio_factor, rate_factor = self._factors()
        ratio = list(map(mul, self.last_ratio, ratio_factor))
        rate = list(map(mul, self.last_rate, rate_factor))
        if self._any_missing:  # fall back on what playing them taught
            recent = self._recent_rate(features)
            rate = [
                n if gap else r for r, n, gap in zip(rate, recent, self._rate_missing, strict=True)
            ]
            ratio = [
                n if gap else r
                for r, n, gap in zip(ratio, self.recent_ratio, self._ratio_missing, strict=True)
            ]
        return self._best(ratio, rate)

    def _best(self, ratio: list[float], rate: list[float]) -> int:
        """The arm with the best predicted reward; an arm with nothing known is tried
        optimistically, which is how it becomes known."""
        objective = self.objective
        if isinstance(objective, Throughput):  # the common case, on plain floats
            workers, link = objective.workers, objective.link
            # the lesser bound; a nan bound (an unknown rate or ratio) is skipped, and an
            # arm with both unknown is optimistic, so that it becomes known
            best = []
            for r, q in zip(rate, ratio, strict=True):
                bound, by_link = workers * r, link * q
                if bound != bound:  # nan: the link's bound, or unbounded if that is nan too
                    bound = by_link if by_link == by_link else math.inf
                elif by_link < bound:  # False for a nan link bound: skipped
                    bound = by_link
                best.append(bound)
            if self.optimism != 1.0:
                best = list(map(mul, best, self.boost))
            most = max(best)
            tied = _TIE * most
            if len(best) < 2 or sorted(best)[-2] < tied:  # one arm ahead of the others
                return best.index(most)
            top = [b >= tied for b in best]
            # near-ties (typically several arms at the link bound) go to the arm with the
            # most CPU to spare: it is least hurt if its predicted speed is off
            spare = [(0.0 if r != r else r) if t else -1.0 for r, t in zip(rate, top, strict=True)]
            return spare.index(max(spare))
        ratio = np.array(ratio)
        rate = np.array(rate)
        ratio[np.isnan(ratio)] = np.inf
        rate[np.isnan(rate)] = np.inf
        # a ratio or rate of 0 or next to it is an output or time too large for a float:
        # infinite, as the objective reads it
        with np.errstate(divide="ignore", over="ignore"):
            ones = np.ones(self.n_arms)
            predicted = objective.reward_arrays(ones, ones / ratio, ones / rate, ones / rate)
        # costs are negative: optimism divides them
        boost = np.array(self.boost)
        predicted = np.where(predicted > 0, predicted * boost, predicted / boost)
        return int(predicted.argmax())

    def _learn(self, arm, reward, features, outcome: Outcome | None) -> None:
        if outcome is None:
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
        old = self.recent_ratio[arm]
        self.recent_ratio[arm] = ratio if old != old else old + step * (ratio - old)
        old = self.nz_cost[arm]
        self.nz_cost[arm] = cost if old != old else old + step * (cost - old)
        probe_ratio, probe_rate = self.last_ratio[arm], self.last_rate[arm]
        if self.played[arm] == 0:
            step = 1.0  # the first outcome replaces the prior of no bias outright
            self.boost[arm] = 1.0
        self.played[arm] += 1
        # the bias of one arm and the shared one, as floats (the lists hold only floats)
        ratio_bias, rate_bias = self.ratio_bias[arm], self.rate_bias[arm]
        shared_ratio, shared_rate = self.shared_ratio_bias, self.shared_rate_bias
        compressing = self.compressing[arm]
        if 0.0 < probe_ratio < math.inf and ratio < math.inf:  # False for nan
            error = (
                math.log(ratio / probe_ratio) - ratio_bias - (shared_ratio if compressing else 0.0)
            )
            if compressing:  # split the error: what one compressor's sample misses,
                shared_ratio = _clip(shared_ratio + step * error / 2)  # the others' likely
                error /= 2  # miss too
            ratio_bias = _clip(ratio_bias + step * error)
        if 0.0 < probe_rate < math.inf and rate < math.inf:
            # split as for ratios: a probe, one call on a few pages between other work, runs
            # slower than a stream of batches for every arm alike
            error = math.log(rate / probe_rate) - rate_bias - shared_rate
            shared_rate = _clip(shared_rate + step * error / 2)
            rate_bias = _clip(rate_bias + step * error / 2)
        # a probe more than 4x off is an outlier window, not a bias to carry to the next
        # (clipped above: each bias only moves there)
        self.ratio_bias[arm], self.rate_bias[arm] = ratio_bias, rate_bias
        self.shared_ratio_bias, self.shared_rate_bias = shared_ratio, shared_rate
        self._refresh_factors()

    def _refresh_factors(self) -> None:
        """Mark the multipliers applied to probe predictions stale: they are rebuilt by
        :meth:`_factors` when a decision next reads probes (a window decided on what
        playing the arms taught reads none, and most updates are followed by one)."""
        self._stale_factors = True

    def _factors(self) -> tuple[list[float], list[float]]:
        """Multipliers applied to probe predictions, per arm: ratio and rate."""
        if self._stale_factors:
            shared_ratio, shared_rate = self.shared_ratio_bias, self.shared_rate_bias
            self._ratio_factor = [
                math.exp(bias + shared_ratio) if compressing else math.exp(bias)
                for bias, compressing in zip(self.ratio_bias, self.compressing, strict=True)
            ]
            self._rate_factor = [math.exp(bias + shared_rate) for bias in self.rate_bias]
            self._stale_factors = False
        return self._ratio_factor, self._rate_factor
