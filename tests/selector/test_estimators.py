"""Off-policy estimators on synthetic logs whose true value is known."""

import numpy as np
import pytest

from migcodec.selector.evaluation import doubly_robust, ips, snips
from migcodec.selector.evaluation.estimators import LogError

K = 3


def synthetic_log(n: int, seed: int):
    """Contexts x in [0,1]; reward of arm a = x * slope_a + base_a + noise. The logging
    policy is epsilon-greedy-like with known propensities; the target plays argmax."""
    rng = np.random.default_rng(seed)
    x = rng.random(n)
    base, slope = np.array([1.0, 0.5, 0.2]), np.array([0.0, 1.0, 2.0])
    means = base + x[:, None] * slope  # (n, K)
    logging = np.full((n, K), 0.1)
    logging[np.arange(n), (x * 3).astype(int).clip(0, 2)[::-1] % K] += 0.7  # skewed logger
    arms = np.array([rng.choice(K, p=p) for p in logging])
    rewards = means[np.arange(n), arms] + 0.3 * rng.standard_normal(n)
    target = np.zeros((n, K))
    target[np.arange(n), means.argmax(axis=1)] = 1.0
    truth = float(means.max(axis=1).mean())
    contexts = np.stack([np.ones(n), x], axis=1)
    return arms, logging[np.arange(n), arms], rewards, target, contexts, truth


@pytest.mark.parametrize("estimator", ["ips", "snips", "dr"])
def test_estimators_recover_the_true_value_within_tolerance(estimator):
    errors = []
    for seed in range(20):
        arms, p, r, target, ctx, truth = synthetic_log(1500, seed)
        if estimator == "ips":
            est = ips(arms, p, r, target)
        elif estimator == "snips":
            est = snips(arms, p, r, target)
        else:
            est = doubly_robust(arms, p, r, target, contexts=ctx)
        errors.append(est.value - truth)
        assert abs(est.value - truth) < 5 * est.stderr + 0.02
    # unbiased: the mean error over independent logs is near zero
    assert abs(np.mean(errors)) < 0.03


def test_doubly_robust_with_a_correct_model_has_lower_variance_than_ips():
    arms, p, r, target, ctx, _ = synthetic_log(2000, 7)
    assert doubly_robust(arms, p, r, target, contexts=ctx).stderr < ips(arms, p, r, target).stderr


def test_bad_logs_are_rejected_with_a_reason():
    with pytest.raises(LogError, match="propensities"):
        ips([0, 1], [0.5, 0.0], [1.0, 1.0], np.ones((2, 2)) / 2)
    with pytest.raises(LogError, match="one length"):
        snips([0], [0.5, 0.5], [1.0], np.ones((1, 2)))
