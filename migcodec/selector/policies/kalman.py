"""The ``auto`` policy's Kalman filters: the compressors' log ratios (:class:`RatioFilter`)
and the delta arms' CPU factors (``Auto._learn_delta_cpu``), and their update for one
observation (:func:`kalman_update`).

Every played window updates one of them, on the hot path of every window; the C extension
(``_filters.c``, ``observe``) does that update in one call, where numpy needs four calls
whose fixed costs are the whole of it. Without a C compiler at install time the numpy
version runs the same operations in the same order (the same bits); :data:`FILTER_UPDATE`
says which.
"""

from __future__ import annotations

import math

import numpy as np

from migcodec.extensions import optional_extension

_filters, FILTER_UPDATE = optional_extension("migcodec.selector._filters")
_native_observe = None if _filters is None else _filters.observe
#: the most rows of a state the C update takes (``MAX_ROWS`` in ``_filters.c``): a larger
#: one (a ratio filter of 128 compressing arms or more) is numpy's
_NATIVE_MAX_ROWS = 256

#: prior of the shared log-ratio level (a ratio of 2, give or take a factor of e), of each
#: arm's offset from it, and of a probe's bias against a whole window (the part all arms
#: share, and each arm's own)
_LEVEL_PRIOR = (math.log(2.0), 1.0)
_OFFSET_VAR = 0.25
_PROBE_BIAS_VAR = 0.02
#: the prior correlation of two arms' own parts of the probes' bias where both are one codec
#: at two settings (zstd at levels 1 and 3): over the development traces their biases per
#: trace (a probe's log ratio over its window's) lay within 0.01 of each other, against
#: 0.02 to 0.08 between codecs, and the replays of those traces scored correlations of 0.7
#: to 0.9 alike (``RatioFilter``)
_FAMILY_BIAS_CORR = 0.8


def kalman_update(state: np.ndarray, j: int, y: float, noise: float) -> None:
    """One observation's update of a filter's ``state``, in place: a C-contiguous float64
    array of ``n`` rows of ``n + 1``, the covariance ``p`` and then the mean ``x`` as its
    last column. The observation, ``y`` with variance ``noise``, sees the sum of entries 0
    and ``j`` of the state: ``p @ h`` and ``h @ x`` are sums of those columns and entries,
    not products with a vector of zeros. The mean moves by the gain times the error and the
    covariance by the gain times ``p @ h``: one rank-one update of both, with the scalars
    as Python floats (numpy's cost several times as much each). Each numpy call costs
    about a microsecond here, most of the update's time: the C extension does the same
    operations in one call (:data:`FILTER_UPDATE`)."""
    if _native_observe is not None and state.shape[0] <= _NATIVE_MAX_ROWS:
        _native_observe(state, j, y, noise)
        return
    n = state.shape[0]
    p, x = state[:, :n], state[:, n]
    ph = p[:, 0] + p[:, j]
    predicted = x.item(0) + x.item(j)
    scale = ph.item(0) + ph.item(j)
    # x - gain * (predicted - y) is x + gain * (y - predicted)
    row = np.append(ph, predicted - y)
    gain = ph[:, None] / (scale + noise)
    state -= gain * row


class RatioFilter:
    """Kalman filter over ``[L, b, d_1..d_m, e_1..e_m]``: the shared log-ratio level, the
    probes' bias, each compressing arm's offset, and each arm's own part of the probes'
    bias; arm ``i`` has log ratio ``L + d_i``, a probe of it sees ``L + b + d_i + e_i``.

    A probe encodes a few sampled pages; an arm's plays encode whole batches of a window,
    or its first batches where the window is shared or the arm tried. How the two compare
    differs by arm: a codec finds more across a batch's pages than across a few, and an
    arm played mostly on first batches sees their content, not the sample's. One bias for
    all arms is the mean of theirs. On the recorded VM guest under ``corpus/heldout``,
    lz4's plays of the first batches of two windows came out 0.7-0.9 (log) below its
    probes, the shared bias rose to 0.24, and zstd level 3's probes were read that much
    low: XBZRLE was played on a window that zstd level 3 sent in 30 % less time, and
    ``auto`` took 1.6 % longer than zstd level 3 alone at 1 Gbit/s. With each arm's part
    (there lz4's rose to 0.28 over a shared 0.21, and zstd level 3's fell to -0.15), 0.2 %
    longer; on the development traces the mean moved by less than 0.1 % and the least
    cell not at all. Each arm's part has the shared part's prior.

    Two settings of one codec (``families``: each arm's codec name) compare their probes
    with their plays alike, and their own parts start correlated
    (:data:`_FAMILY_BIAS_CORR`): independent, an arm never played kept the shared part
    alone, which the other codecs' plays had set. On the recorded VM guest under
    ``corpus/heldout`` at 1 Gbit/s, priced with this host's calibration, zstd level 1 played
    every window, its own part fell to -0.11 while level 3's rose to +0.09, and level 3
    was predicted to send 8-21 % more than level 1 where it sent 3-10 % less: never played
    (its CPU time priced 1.7 times level 1's), and 2.5 % behind level 3 alone. With the
    correlation level 3 plays 14 of the last 17 windows, and 1.6 % behind."""

    def __init__(self, m: int, families: list[str] | None = None) -> None:
        self._m = m
        size = 2 * m + 2
        # the covariance and the mean side by side, views of one array, as kalman_update
        # takes them; every update is in place, so the views stay the filter's
        self._state = np.zeros((size, size + 1))
        self.p, self.x = self._state[:, :size], self._state[:, size]
        self.x[0] = _LEVEL_PRIOR[0]
        self._diagonal = np.einsum("ii->i", self.p)
        offsets, biases = [_OFFSET_VAR] * m, [_PROBE_BIAS_VAR] * m
        self._diagonal[:] = [_LEVEL_PRIOR[1], _PROBE_BIAS_VAR, *offsets, *biases]
        self._offsets = slice(2, 2 + m)
        if families is not None:
            shared = _FAMILY_BIAS_CORR * _PROBE_BIAS_VAR
            for i, a in enumerate(families):
                for j, b in enumerate(families):
                    if i != j and a == b:
                        self.p[2 + m + i, 2 + m + j] = shared

    @property
    def state(self) -> np.ndarray:
        """The covariance and then the mean as its last column, one C-contiguous array (as
        :func:`kalman_update` takes it): what auto's C probe valuation reads."""
        return self._state

    def mean(self) -> np.ndarray:
        return self.x[0] + self.x[self._offsets]

    @staticmethod
    def arm_moments(state: np.ndarray, arm: int) -> tuple[float, float]:
        """Arm ``arm``'s log ratio and its variance in ``state`` (this filter's
        :attr:`state` or a copy of it), as :meth:`mean` and :meth:`var` have them, for one
        arm in Python floats: a copy of the state kept for one arm's lesson costs a
        fraction of both arrays made on every window read."""
        n, j = state.shape[0], 2 + arm
        mean = state.item(0, n) + state.item(j, n)
        return mean, state.item(0, 0) + state.item(j, j) + 2 * state.item(0, j)

    def var(self) -> np.ndarray:
        offsets = self._offsets
        return self._diagonal[0] + self._diagonal[offsets] + 2 * self.p[0, offsets]

    def drift(self, level: float, offset: float) -> None:
        self.p[0, 0] += level
        self._diagonal[self._offsets] += offset

    def observe(self, arm: int, y: float, noise: float) -> None:
        """A played window's log ratio ``y`` of one arm, with variance ``noise``: it sees
        the level and the arm's offset."""
        kalman_update(self._state, 2 + arm, y, noise)

    def observe_probes(
        self, arms: np.ndarray, y: np.ndarray, noise: float, shared: float = 0.0
    ) -> None:
        """Probes of several arms of one window at once, in one joint update. Each has
        variance ``noise``, of which the share ``shared`` is common to all of them: the
        probes encode the same sampled pages, and a sample that compresses better or worse
        than its window moves every probe alike. Probes that agree are then weaker evidence
        of the window's level than as many independent ones (their common error does not
        average out), and their differences, the arms' offsets, are sharper."""
        h = np.zeros((arms.size, self.x.size))
        h[:, 0] = 1.0
        h[:, 1] = 1.0
        rows = np.arange(arms.size)
        h[rows, 2 + arms] = 1.0
        h[rows, 2 + self._m + arms] = 1.0
        ph = self.p @ h.T
        s = h @ ph
        s += noise * shared
        s[np.diag_indices_from(s)] += noise * (1.0 - shared)
        gain = np.linalg.solve(s, ph.T).T
        self.x += gain @ (y - h @ self.x)
        self.p -= gain @ ph.T
