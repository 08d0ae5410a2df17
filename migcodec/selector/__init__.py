"""Adaptive codec selection: objectives, features, arms, policies, the online selector.

Offline evaluation lives in :mod:`migcodec.selector.evaluation`.
"""

from migcodec.selector.arms import DEFAULT_ARMS, Arm, ArmError, parse_arms
from migcodec.selector.features import CONTEXT_NAMES, FeatureExtractor, WindowFeatures
from migcodec.selector.objectives import (
    HostCpu,
    Objective,
    ObjectiveError,
    Outcome,
    Throughput,
    WireBytes,
    make_objective,
    objective_from_config,
    parse_rate,
)
from migcodec.selector.online import Decision, Selector, SelectorError
from migcodec.selector.policies import (
    DEFAULT_POLICIES,
    POLICIES,
    Policy,
    PolicyError,
    parse_policy,
    policy_from_config,
)

__all__ = [
    "CONTEXT_NAMES",
    "DEFAULT_ARMS",
    "DEFAULT_POLICIES",
    "POLICIES",
    "Arm",
    "ArmError",
    "Decision",
    "FeatureExtractor",
    "HostCpu",
    "Objective",
    "ObjectiveError",
    "Outcome",
    "Policy",
    "PolicyError",
    "Selector",
    "SelectorError",
    "Throughput",
    "WindowFeatures",
    "WireBytes",
    "make_objective",
    "objective_from_config",
    "parse_arms",
    "parse_policy",
    "parse_rate",
    "policy_from_config",
]
