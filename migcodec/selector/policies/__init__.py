"""Policies: one interface (``choose``/``update``), JSON configs, a registry by name."""

from migcodec.selector.policies.auto import Auto
from migcodec.selector.policies.bandits import (
    UCB1,
    DiscountedUCB,
    EpsilonGreedy,
    Fixed,
    GaussianThompson,
    ProbeThenCommit,
    SlidingWindowUCB,
)
from migcodec.selector.policies.base import (
    POLICIES,
    Policy,
    PolicyError,
    parse_policy,
    policy_from_config,
)
from migcodec.selector.policies.contextual import LinearRLS, SgdRegression
from migcodec.selector.policies.predictive import Predictive

#: the policies an evaluation runs when none are named (fixed arms are always added)
DEFAULT_POLICIES = (
    "auto",
    "epsilon-greedy",
    "ucb1",
    "d-ucb",
    "sw-ucb",
    "thompson",
    "probe-commit",
    "linear",
    "predictive",
)

__all__ = [
    "DEFAULT_POLICIES",
    "POLICIES",
    "UCB1",
    "Auto",
    "DiscountedUCB",
    "EpsilonGreedy",
    "Fixed",
    "GaussianThompson",
    "LinearRLS",
    "Policy",
    "PolicyError",
    "Predictive",
    "ProbeThenCommit",
    "SgdRegression",
    "SlidingWindowUCB",
    "parse_policy",
    "policy_from_config",
]
