"""Contextual regression policies: predict each arm's reward from the window's cheap features.

``linear`` keeps one linear model per arm, updated by recursive least squares with a
forgetting factor on the hot path (a rank-one Sherman-Morrison update, O(d^2) numpy on a
d of about 8), and explores with a LinUCB bonus (Li et al. 2010): the model's own
uncertainty about this window. ``sgd`` fits scikit-learn's ``SGDRegressor`` per arm in
batches off the hot path and predicts with the fitted coefficients in numpy, because a
scikit-learn call's fixed overhead is large against a per-window decision.

The features are the window's cheap context plus a few products of it: a codec's reward is
far from linear in entropy or in the changed-word fraction (it is a minimum of a CPU bound
and a link bound), and squares and products let a linear model bend.
"""

from __future__ import annotations

import random
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from migcodec.selector.features import WindowFeatures
from migcodec.selector.policies.base import MAX_WINDOWS, Policy, PolicyError


def design(context: np.ndarray) -> np.ndarray:
    """Regression inputs from a context vector: the context, then entropy^2, changed^2,
    entropy*changed and zero*entropy (in Python floats, then one array: on five entries,
    each numpy call costs more than the arithmetic, and this runs every window)."""
    bias, zero, entropy, changed, known = context.tolist()
    return np.array(
        (
            bias,
            zero,
            entropy,
            changed,
            known,
            entropy * entropy,
            changed * changed,
            entropy * changed,
            zero * entropy,
        )
    )


N_DESIGN = 9


#: the largest seed ``sgd`` takes: what scikit-learn's SGDRegressor takes
SGD_MAX_SEED = 2**32 - 1


class LinearRLS(Policy):
    """Per-arm linear reward model by recursive least squares, LinUCB exploration.

    ``forget`` < 1 discounts old windows (tracks drift); ``alpha`` scales the exploration
    bonus ``sqrt(x' P x)`` in units of the first reward seen; ``ridge`` is the prior.
    """

    name = "linear"
    needs = "cheap"

    def __init__(self, alpha: float = 0.3, forget: float = 0.99, ridge: float = 1.0) -> None:
        # within what the model's arithmetic holds: a ridge of 1e-320 made its prior
        # covariance inf, and its scores nan
        self._require("alpha", alpha, 0, 1e6)
        self._require("forget", forget, 0.5, 1)
        self._require("ridge", ridge, 1e-6, 1e6)
        self.alpha, self.forget, self.ridge = alpha, forget, ridge

    def _reset(self) -> None:
        k, d = self.n_arms, N_DESIGN
        self.P = np.repeat((np.eye(d) / self.ridge)[None], k, axis=0)
        self._most = 1e12 / self.ridge  # see _learn
        self.theta = np.zeros((k, d))
        self.unit = 0.0
        self.seen = [0] * k  # windows played per arm (a list: read every window)
        self._x: np.ndarray | None = None
        self._px: np.ndarray | None = None
        self._context: np.ndarray | None = None

    def _inputs(self, features: WindowFeatures | None) -> np.ndarray:
        if features is None:
            raise PolicyError("the linear policy needs window features: pass pages or features")
        return design(features.context)

    def choose(self, features: WindowFeatures | None = None) -> int:
        if self.n_arms == 1:
            return 0  # nothing to choose, so no features were read (wants_features)
        x = self._inputs(features)
        self._x, self._context = x, features.context
        if 0 in self.seen:  # a model of an arm never played predicts nothing
            return self.seen.index(0)
        px = self.P @ x
        predicted, spread = self.theta @ x, px @ x
        # the chosen arm's rows serve the update (one product per arm here, none there)
        self._px, self._predicted, self._spread = px, predicted, spread
        score = predicted + self.alpha * np.sqrt(np.fmax(spread, 0.0))
        return int(score.argmax())

    def _learn(self, arm, reward, features, outcome) -> None:
        if self.n_arms == 1:
            return  # its one model is never consulted
        x, px = self._x, None  # the inputs of the decision this reward answers
        if x is None or (features is not None and features.context is not self._context):
            x = self._inputs(features)
        elif self._px is not None:
            px, predicted, spread = self._px[arm], self._predicted[arm], self._spread[arm]
        self._px = None
        if self.unit == 0.0:
            self.unit = abs(reward) or 1.0
        y = reward / self.unit
        self.seen[arm] += 1
        P = self.P[arm]  # a view: updated in place
        theta = self.theta[arm]
        if px is None:
            px = P @ x
            predicted, spread = theta @ x, x @ px
        gain = px / (self.forget + spread)
        theta += gain * (y - predicted)
        P -= gain[:, None] * px  # the rank-one update (np.outer's wrapper costs 5x this)
        if self.forget < 1.0:
            P *= 1.0 / self.forget
            # along an input that never varies (a feature constant on this memory) the
            # windows teach nothing, and each step grows P by 1/forget there: unheld, it
            # passes the largest float after about 70,000 plays of an arm at the default
            # forget (1.01 ** 70,000), and the model turns nan. Held at a bound a trillion
            # times the prior's, P is scaled back as a whole (it stays positive definite)
            top = P.diagonal().max()
            if top > self._most:
                P *= self._most / top


class SgdRegression(Policy):
    """Per-arm scikit-learn ``SGDRegressor`` refitted every ``refit_every`` windows on the
    windows seen since, off the hot path when ``background`` is set (a worker thread; the
    hot path only swaps in finished coefficients). Explores with ``epsilon``.

    ``background=False`` refits inline, which keeps offline replays deterministic.
    ``refit_every`` is at most :data:`~migcodec.selector.policies.base.MAX_WINDOWS`: the
    windows waiting for a refit are held.
    """

    name = "sgd"
    needs = "cheap"

    def __init__(
        self, epsilon: float = 0.05, refit_every: int = 16, background: bool = False, seed: int = 0
    ) -> None:
        self._require("epsilon", epsilon, 0, 1)
        self._require("refit_every", refit_every, 1, MAX_WINDOWS)
        # scikit-learn's generator takes at most 2**32 - 1, and refused more in its own
        # words, naming no policy
        self._require("seed", seed, 0, SGD_MAX_SEED)
        self.epsilon, self.refit_every, self.background, self.seed = (
            epsilon,
            refit_every,
            background,
            seed,
        )

    def _reset(self) -> None:
        self.coef = np.zeros((self.n_arms, N_DESIGN))
        self.seen = np.zeros(self.n_arms, dtype=np.int64)
        self.buffer: list[tuple[int, np.ndarray, float]] = []
        self.models: list = [None] * self.n_arms
        self.rng = random.Random(self.seed)
        self.unit = 0.0
        self._pending: Future | None = None
        self._executor = ThreadPoolExecutor(1) if self.background else None

    def choose(self, features: WindowFeatures | None = None) -> int:
        if self._pending is not None and self._pending.done():
            self.coef = self._pending.result()
            self._pending = None
        for arm in range(self.n_arms):
            if self.seen[arm] == 0:
                return arm
        if features is None or self.rng.random() < self.epsilon:
            return self.rng.randrange(self.n_arms)
        return int(np.argmax(self.coef @ design(features.context)))

    def _learn(self, arm, reward, features, outcome) -> None:
        if features is None:
            return
        if self.unit == 0.0:
            self.unit = abs(reward) or 1.0
        self.seen[arm] += 1
        self.buffer.append((arm, design(features.context), reward / self.unit))
        if len(self.buffer) >= self.refit_every and self._pending is None:
            batch, self.buffer = self.buffer, []
            if self._executor is not None:
                self._pending = self._executor.submit(self._refit, batch)
            else:
                self.coef = self._refit(batch)

    def _refit(self, batch: list[tuple[int, np.ndarray, float]]) -> np.ndarray:
        from sklearn.linear_model import SGDRegressor

        coef = self.coef.copy()
        arms = np.array([a for a, _, _ in batch])
        xs = np.stack([x for _, x, _ in batch])
        ys = np.array([y for _, _, y in batch])
        for arm in np.unique(arms):
            if self.models[arm] is None:
                self.models[arm] = SGDRegressor(
                    learning_rate="constant",
                    eta0=0.05,
                    fit_intercept=False,
                    random_state=self.seed,
                )
            rows = arms == arm
            for _ in range(5):
                self.models[arm].partial_fit(xs[rows], ys[rows])
            coef[arm] = self.models[arm].coef_
        return coef
