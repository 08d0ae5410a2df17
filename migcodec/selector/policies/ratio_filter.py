"""The compressors' ratio filter of the ``auto`` policy: a Kalman filter over their log
ratios, which every played window and every probe updates.

A compressor's played window updates it once, on the hot path of every such window; the
C extension (``_filters.c``, ``observe``) does that update in one call, where numpy needs
four calls whose fixed costs are the whole of it. Without a C compiler at install time the
numpy version runs the same operations in the same order (the same bits);
:data:`FILTER_UPDATE` says which.
"""

from __future__ import annotations

import math

import numpy as np

try:
    from migcodec.selector._filters import observe as _native_observe
except ImportError as exc:  # built without a C compiler: numpy does the same job
    _native_observe = None
    FILTER_UPDATE = f"numpy (C extension not built: {exc}; reinstall with a C compiler)"
else:
    FILTER_UPDATE = "C extension"

#: prior of the shared log-ratio level (a ratio of 2, give or take a factor of e), of each
#: arm's offset from it, and of a probe's bias against a whole window
_LEVEL_PRIOR = (math.log(2.0), 1.0)
_OFFSET_VAR = 0.25
_PROBE_BIAS_VAR = 0.02


class RatioFilter:
    """Kalman filter over ``[L, b, d_1..d_m]``: the shared log-ratio level, the probes'
    bias, and each compressing arm's offset; arm ``i`` has log ratio ``L + d_i``, a probe of
    it sees ``L + b + d_i``."""

    def __init__(self, m: int) -> None:
        size = m + 2
        # the covariance and the mean side by side, views of one array, so that a played
        # window's update of both is one rank-one update (observe); every update is in
        # place, so the views stay the filter's
        self._state = np.zeros((size, size + 1))
        self.p, self.x = self._state[:, :size], self._state[:, size]
        self.x[0] = _LEVEL_PRIOR[0]
        self._diagonal = np.einsum("ii->i", self.p)
        self._diagonal[:] = [_LEVEL_PRIOR[1], _PROBE_BIAS_VAR] + [_OFFSET_VAR] * m
        self._columns = [self.p[:, k] for k in range(size)]
        # observe's row of the update: p @ h, then the prediction's error
        self._row = np.empty(size + 1)
        self._ph = self._row[:size]
        self._ph_column = self._ph[:, None]  # the same, as a column: the gain's shape
        self._gain = np.empty((size, 1))
        self._update = np.empty((size, size + 1))

    def mean(self) -> np.ndarray:
        return self.x[0] + self.x[2:]

    def var(self) -> np.ndarray:
        d = np.diagonal(self.p)
        return d[0] + d[2:] + 2 * self.p[0, 2:]

    def drift(self, level: float, offset: float) -> None:
        self.p[0, 0] += level
        self._diagonal[2:] += offset

    def observe(self, arm: int, y: float, noise: float, probe: bool) -> None:
        """One arm's log ratio ``y`` with variance ``noise`` (a probe's, or a window's own).

        The observation vector ``h`` picks the level, the arm's offset and, for a probe, the
        bias: ``p @ h`` and ``h @ x`` are sums of those columns and entries (once per
        window, on the hot path, so not a product with a vector of zeros). The mean moves
        by ``gain`` times the error and the covariance by ``gain`` times ``p @ h``: one
        rank-one update of both (np.outer's wrapper costs 5x it), into kept buffers,
        with the scalars as Python floats (numpy's cost several times as much each). Each
        numpy call costs about a microsecond here, most of this update's time: the C
        extension does the same operations in one call (:data:`FILTER_UPDATE`)."""
        j = 2 + arm
        if _native_observe is not None:
            _native_observe(self._state, j, probe, y, noise)
            return
        x, columns, ph = self.x, self._columns, self._ph
        np.add(columns[0], columns[j], ph)  # outputs positional: keywords cost more
        predicted = x.item(0) + x.item(j)
        scale = ph.item(0) + ph.item(j)
        if probe:
            ph += columns[1]
            predicted += x.item(1)
            scale = ph.item(0) + ph.item(j) + ph.item(1)
        self._row[-1] = predicted - y  # x - gain * (predicted - y) is x + gain * (y - ...)
        gain, update = self._gain, self._update
        np.divide(self._ph_column, scale + noise, gain)
        np.multiply(gain, self._row, update)
        np.subtract(self._state, update, self._state)

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
        h[np.arange(arms.size), 2 + arms] = 1.0
        ph = self.p @ h.T
        s = h @ ph
        s += noise * shared
        s[np.diag_indices_from(s)] += noise * (1.0 - shared)
        gain = np.linalg.solve(s, ph.T).T
        self.x += gain @ (y - h @ self.x)
        self.p -= gain @ ph.T
