"""Which probes the ``auto`` policy buys on a window: each compressing arm's probe valued
against its CPU time (in C where the extension is built, else in Python).
"""

from __future__ import annotations

import math
import time

import numpy as np

from migcodec.codecs.base import RUN_BYTES
from migcodec.selector.features import WindowFeatures
from migcodec.selector.policies.auto.common import (
    _DECISION_OUTLIER,
    _DECISIONS_SEEDING,
    _GRID_SCALE,
    _NODE_WEIGHTS,
    _NODES,
    _NODES_THEN_WEIGHTS,
    _WEIGHTS,
    _grid_step,
    _native_values,
)


class ProbeBuying:
    """Probe valuation and purchase (mixed into ``Auto``)."""

    __slots__ = ()

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
