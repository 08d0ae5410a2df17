"""What the selector and its policies refuse from a caller: outcomes that are no window's
measurements, features of another shape or not finite, and a policy shared by two
selectors. Each is refused before a policy learns from it."""

import dataclasses
import math

import numpy as np
import pytest

from migcodec.selector import (
    POLICIES,
    Outcome,
    PolicyError,
    Selector,
    SelectorError,
    Throughput,
    parse_policy,
)
from migcodec.selector.policies.base import check_features, check_outcome

ARMS = ["raw", "lz4", "zstd:level=1"]
PAGES = np.random.default_rng(0).integers(0, 4, (64, 4096), dtype=np.uint8)
GOOD = Outcome(262144, 30000, 1e-4, 1e-4, None, 0)
#: the policies migcodec has (tests register policies of their own)
BUILT_IN = sorted(n for n, cls in POLICIES.items() if cls.__module__.startswith("migcodec."))


def _selector(policy: str = "ucb1") -> Selector:
    return Selector(parse_policy(policy), ARMS, Throughput(link=1.25e8, workers=2))


def _outcome(arm: int) -> Outcome:
    """Arm 2 sends 13 times fewer bytes than raw in the same time: clearly the best."""
    return Outcome(262144, {0: 262144, 1: 131072, 2: 20000}[arm], 1e-4, 1e-4, None, 0)


@pytest.mark.parametrize(
    ("outcome", "message"),
    [
        (GOOD._replace(wall_s=math.inf, cpu_s=math.inf), "outcome wall_s .* got inf"),
        (GOOD._replace(input_bytes=math.nan), "outcome input_bytes .* got nan"),
        (GOOD._replace(output_bytes=-10), "outcome output_bytes .* got -10"),
        (GOOD._replace(cpu_s=-1.0), "outcome cpu_s .* got -1.0"),
        (GOOD._replace(device_s=math.nan), "outcome device_s .* got nan"),
        (GOOD._replace(zero_pages=-1), "outcome zero_pages .* got -1"),
        (GOOD._replace(input_bytes=10**400), "outcome input_bytes .* got 10000*"),
        (GOOD._replace(output_bytes="30000"), "outcome output_bytes .* got '30000'"),
    ],
)
def test_finish_refuses_an_outcome_that_is_no_measurement_and_leaves_the_decision_open(
    outcome, message
):
    selector = _selector()
    decision = selector.choose()
    with pytest.raises(PolicyError, match=f"^{message}; report what the window's encoding"):
        selector.finish(decision, outcome)
    assert selector.windows == 0 and not decision.done
    assert selector.policy.t == 0  # nothing learnt
    selector.finish(decision, GOOD)  # the right outcome is taken
    assert selector.windows == 1


@pytest.mark.parametrize("policy", BUILT_IN)
def test_every_policy_refuses_a_bad_outcome_given_directly_and_learns_on(policy):
    selector = _selector(policy)
    decision = selector.choose(PAGES, PAGES)
    with pytest.raises(PolicyError, match=r"^outcome wall_s must be a finite number"):
        selector.policy.update(decision.arm, 1.0, decision.features, GOOD._replace(wall_s=-1.0))
    with pytest.raises(PolicyError, match="reward must be a finite number, got nan"):
        selector.policy.update(decision.arm, math.nan, decision.features, GOOD)


@pytest.mark.parametrize("policy", BUILT_IN)
@pytest.mark.parametrize("arm", [-1, 3, 99])
def test_every_policy_refuses_an_arm_it_does_not_have(policy, arm):
    """Arm -1 was learnt for the last arm without a word, and others failed in numpy's
    words or were taken."""
    selector = _selector(policy)
    decision = selector.choose(PAGES, PAGES)
    with pytest.raises(PolicyError) as info:
        selector.policy.update(arm, 1.0, decision.features, GOOD)
    assert str(info.value) == (
        f"policy {selector.policy.name!r}: arm {arm} is not one of its 3 arms (0..2); give "
        "the arm choose() returned"
    )


@pytest.mark.parametrize(
    ("policy", "objective", "message"),
    [
        ("ucb1", None, "policy must be a Policy, got 'ucb1'; make one with parse_policy('ucb1')"),
        (None, None, "policy must be a Policy, got NoneType; make one with parse_policy('auto')"),
        (
            parse_policy("ucb1"),
            "throughput",
            "objective must be an Objective, got 'throughput'; make one with "
            "make_objective('throughput')",
        ),
        (
            parse_policy("ucb1"),
            2,
            "objective must be an Objective, got int; make one with "
            "make_objective('throughput', link='10Gbit')",
        ),
    ],
)
def test_a_selector_names_a_policy_or_objective_that_is_not_one(policy, objective, message):
    """A policy's name failed on a missing attribute; an objective's name was taken, and
    the first window's reward failed."""
    with pytest.raises(SelectorError) as info:
        Selector(policy, ARMS, objective)
    assert str(info.value) == message


def test_a_policy_or_codec_named_by_no_string_is_named():
    from migcodec.codecs import CodecNotFound, get_codec

    with pytest.raises(PolicyError) as info:
        parse_policy(None)
    assert str(info.value) == (
        "a policy is written as a string (e.g. 'auto', 'd-ucb:gamma=0.95'), got NoneType "
        "None; a config dict goes to policy_from_config"
    )
    with pytest.raises(CodecNotFound) as info:
        get_codec(None)
    assert str(info.value) == (
        "a codec is named by a string (e.g. 'lz4') or a config dict (e.g. {'name': 'zstd', "
        "'level': 3}), got NoneType None"
    )


@pytest.mark.parametrize("policy", ["ucb1", "d-ucb", "sw-ucb", "thompson", "linear"])
def test_a_refused_outcome_does_not_stop_a_policy_learning(policy):
    selector = _selector(policy)
    decision = selector.choose(PAGES, PAGES)
    with pytest.raises(PolicyError):
        selector.finish(decision, Outcome(262144, 1000, math.inf, math.inf, None, 0))
    selector.finish(decision, _outcome(decision.arm))
    picks = []
    for _ in range(60):
        decision = selector.choose(PAGES, PAGES)
        picks.append(decision.arm)
        selector.finish(decision, _outcome(decision.arm))
    assert picks[-10:].count(2) >= 8


@pytest.mark.parametrize("policy", BUILT_IN)
def test_a_window_of_no_guest_bytes_teaches_no_policy_anything(policy):
    """Nothing was encoded: its reward, infinite throughput, says nothing of any arm (sgd
    used to fail at its next refit, bandits to take the arm for free)."""
    selector = _selector(policy)
    first = selector.choose(PAGES, PAGES)
    before = {k: repr(v) for k, v in vars(selector.policy).items() if not k.startswith("_")}
    selector.finish(first, Outcome(0, 0, 0.0, 0.0, None, 0))
    after = {k: repr(v) for k, v in vars(selector.policy).items() if not k.startswith("_")}
    assert after == before
    for _ in range(40):  # and it goes on learning (sgd refits every 16 windows)
        decision = selector.choose(PAGES, PAGES)
        selector.finish(decision, _outcome(decision.arm))


def test_check_outcome_takes_a_window_of_measurements():
    check_outcome(GOOD)
    check_outcome(Outcome(4096, 10, 0.0, 0.0, 1e-5, 1.0))
    check_outcome(Outcome(0, 0, 0.0, 0.0))


def _features(**changes):
    real = _selector("linear").features(PAGES, PAGES)
    return dataclasses.replace(real, **changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"context": np.full(5, np.nan)},
            r"features context must be 5 numbers from 0 to 1 \(bias, zero_frac, entropy, "
            r"changed_frac, delta_known\), got array\(\[nan",
        ),
        ({"context": np.full(5, np.inf)}, "features context must be 5 numbers from 0 to 1"),
        ({"context": np.zeros(2)}, "features context must be 5 numbers from 0 to 1"),
        ({"context": np.zeros((2, 5))}, "features context must be 5 numbers from 0 to 1"),
        ({"context": [1.0, 0.0, 0.5, 0.5, 1.0]}, "features context must be 5 numbers from 0 to 1"),
        # shares: a zero share of 1e300 overflowed auto's drift between windows
        (
            {"context": np.array([1.0, 1e300, 0.5, 0.5, 1.0])},
            "features context must be 5 numbers from 0 to 1",
        ),
        (
            {"context": np.array([1.0, 0.0, -0.5, 0.5, 1.0])},
            "features context must be 5 numbers from 0 to 1",
        ),
        ({"pages": math.nan}, r"features pages must be a number finite, at least 0, got nan"),
        ({"pages": -5.0}, "features pages must be a number finite, at least 0, got -5.0"),
        ({"pages": math.inf}, "features pages must be a number finite, at least 0, got inf"),
        ({"held_frac": 5.0}, r"features held_frac must be a number in \[0, 1\], got 5.0"),
        ({"cheap_s": -1.0}, "features cheap_s must be a number finite, at least 0"),
        ({"change_runs": math.inf}, "features change_runs must be a number finite"),
        ({"words_var": -1.0}, "features words_var must be a number finite, at least 0"),
        ({"words_runs_cov": math.nan}, "features words_runs_cov must be a finite number, got nan"),
        ({"sample": "32"}, "features sample must be a number finite, at least 0, got '32'"),
        (
            {"delta_bytes": np.ones(1)},
            r"features delta_bytes must hold one entry per arm, shape \(3,\), got \(1,\)",
        ),
        (
            {"probe_out": np.ones(1), "probe_pages": 8},
            r"features probe_out must hold one entry per arm, shape \(3,\), got \(1,\)",
        ),
        (
            {"predicted_ratio": [1.0, 2.0, 3.0]},
            r"features predicted_ratio must hold one entry per arm, shape \(3,\), got list",
        ),
        ({"probe_s": np.array([1e-5, -1.0, 0.0])}, "features probe_s must be each arm's probe"),
        ({"probe_s": np.array([1e-5, np.nan, 0.0])}, "features probe_s must be each arm's"),
    ],
)
@pytest.mark.parametrize("policy", ["auto", "linear", "sgd", "predictive", "ucb1"])
def test_choose_refuses_features_no_policy_can_read(policy, changes, message):
    selector = _selector(policy)
    with pytest.raises(PolicyError, match=f"^{message}"):
        selector.choose(features=_features(**changes))
    assert selector.windows == 0


def test_features_a_caller_made_right_are_taken_and_checked_once():
    selector = _selector("linear")
    made = _features(context=np.array([1.0, 0.25, 0.5, 0.125, 1.0]))
    assert made.checked_arms == 0  # replace() makes features to check again
    selector.finish(selector.choose(features=made), GOOD)
    assert made.checked_arms == len(ARMS)
    assert np.isfinite(selector.policy.theta).all()
    # features are checked for the arms of the selector they are given to
    with pytest.raises(PolicyError, match=r"shape \(2,\)"):
        Selector(parse_policy("linear"), ARMS[:2]).choose(features=made)


def test_features_the_extractor_made_are_known_right():
    selector = _selector("auto")
    features = selector.features(PAGES, PAGES)
    assert features.checked_arms == len(ARMS)
    assert features.cheap().checked_arms == len(ARMS)


def test_check_features_takes_what_the_extractor_makes_and_sums_past_the_largest_float():
    features = _selector("auto").extractor.extract(PAGES, PAGES, probe=True)
    check_features(features, len(ARMS))
    check_features(dataclasses.replace(features, pages=1.7e308, cheap_s=1.7e308), len(ARMS))
    # runs that fall as a page's changed words rise: a covariance below 0 is a reading
    check_features(dataclasses.replace(features, words_runs_cov=-5.0), len(ARMS))


def test_a_policy_serves_one_selector():
    policy = parse_policy("ucb1")
    first = Selector(policy, ["raw", "lz4"])
    with pytest.raises(
        SelectorError,
        match=r"^this 'ucb1' policy already chooses for another Selector, whose arms it "
        r"learns; give each Selector a policy of its own \(parse_policy again",
    ):
        Selector(policy, ARMS)
    for _ in range(4):  # the first is not re-bound
        first.finish(first.choose(), GOOD)
    assert first.policy.n_arms == 2


def test_a_policy_whose_selector_is_gone_serves_another():
    policy = parse_policy("ucb1")
    Selector(policy, ["raw", "lz4"])  # dropped at once
    assert Selector(policy, ARMS).policy.n_arms == len(ARMS)


@pytest.mark.parametrize("window_pages", [math.nan, math.inf, -5.0, 63])
def test_a_window_size_that_is_not_one_of_the_pages_given_is_refused(window_pages):
    """A sample's window holds at least the sampled pages; nan and inf reached the
    extractor's integer conversions as ValueError and OverflowError."""
    selector = _selector("auto")
    with pytest.raises(SelectorError) as err:
        selector.choose(PAGES, window_pages=window_pages)
    assert str(err.value) == (
        f"window_pages {window_pages!r} must be the window's size in pages, a finite number "
        "of at least the 64 pages given"
    )
    decision = selector.choose(PAGES, window_pages=64)
    assert decision.arm in range(3)
