"""Policies on synthetic rewards: convergence, recovery after change, JSON configs."""

import json
from pathlib import Path

import numpy as np
import pytest

from migcodec.selector import POLICIES, PolicyError, parse_policy, policy_from_config
from migcodec.selector.features import WindowFeatures
from migcodec.selector.policies import (
    UCB1,
    DiscountedUCB,
    EpsilonGreedy,
    GaussianThompson,
    LinearRLS,
    ProbeThenCommit,
    SgdRegression,
    SlidingWindowUCB,
)

MEANS = np.array([1.0, 1.6, 1.3, 0.7])  # arm 1 is best


def _run(policy, means_at, n, seed=0, noise=0.15, context=None):
    """Play ``n`` windows; return the chosen arms."""
    rng = np.random.default_rng(seed)
    policy.bind(len(means_at(0)))
    chosen = np.zeros(n, dtype=int)
    for t in range(n):
        feats = None if context is None else WindowFeatures(context)
        arm = policy.choose(feats)
        reward = means_at(t)[arm] + noise * rng.standard_normal()
        policy.update(arm, reward, feats)
        chosen[t] = arm
    return chosen


@pytest.mark.parametrize(
    "policy",
    [
        EpsilonGreedy(epsilon=0.1, step=None),
        UCB1(),
        DiscountedUCB(),
        SlidingWindowUCB(),
        GaussianThompson(discount=1.0),
        ProbeThenCommit(k=3, every=100),
        LinearRLS(alpha=0.3),
        SgdRegression(refit_every=16),
    ],
    ids=lambda p: p.name,
)
def test_policies_converge_to_the_best_arm_on_stationary_rewards(policy):
    context = np.array([1.0, 0.0, 0.5, 1.0, 0.0])
    chosen = _run(policy, lambda t: MEANS, 400, context=context)
    assert np.mean(chosen[-150:] == 1) >= 0.8, np.bincount(chosen[-150:], minlength=4)


@pytest.mark.parametrize(
    "policy", [DiscountedUCB(gamma=0.95), SlidingWindowUCB(window=40)], ids=lambda p: p.name
)
def test_changing_bandits_recover_within_bounded_windows_after_abrupt_change(policy):
    change = 300
    after = np.array([1.0, 0.6, 1.3, 1.9])  # arm 3, the worst, becomes the best

    def means(t):
        return MEANS if t < change else after

    chosen = _run(policy, means, change + 150, seed=1)
    assert np.mean(chosen[change - 100 : change] == 1) >= 0.8
    # within 60 windows of the change the new best arm dominates
    assert np.mean(chosen[change + 60 :] == 3) >= 0.8, np.bincount(chosen[change + 60 :])


def test_plain_ucb1_is_slow_to_recover_which_is_why_the_changing_variants_exist():
    after = np.array([1.0, 0.6, 1.3, 1.9])
    chosen = _run(UCB1(), lambda t: MEANS if t < 300 else after, 450, seed=1)
    recovered = _run(DiscountedUCB(), lambda t: MEANS if t < 300 else after, 450, seed=1)
    assert np.mean(chosen[360:] == 3) < np.mean(recovered[360:] == 3)


def test_probe_then_commit_reprobes_on_drift():
    after = np.array([1.0, 0.2, 1.3, 0.7])  # the committed arm collapses
    chosen = _run(
        ProbeThenCommit(k=2, every=1000, drift=0.25),
        lambda t: MEANS if t < 100 else after,
        160,
        noise=0.01,
    )
    assert chosen[90] == 1
    assert np.all(chosen[-30:] == 2)


def test_epsilon_greedy_propensities_sum_to_one_and_favour_the_greedy_arm():
    policy = EpsilonGreedy(epsilon=0.2).bind(4)
    for arm, r in enumerate([1.0, 2.0, 0.5, 0.1]):
        policy.update(arm, r)
    p = policy.probabilities()
    assert p.sum() == pytest.approx(1.0)
    assert p.argmax() == 1 and p[1] == pytest.approx(0.8 + 0.05)


# the library's policies (test modules register stand-ins of their own, named "*-test")
@pytest.mark.parametrize("name", sorted(n for n in POLICIES if not n.endswith("-test")))
def test_every_policy_config_round_trips_through_json(name):
    policy = POLICIES[name]()
    config = json.loads(json.dumps(policy.get_config()))
    again = policy_from_config(config)
    assert again == policy and type(again) is type(policy)
    assert again.get_config() == policy.get_config()


def test_parse_policy_reads_parameters():
    policy = parse_policy("d-ucb:gamma=0.9,xi=0.5")
    assert isinstance(policy, DiscountedUCB) and policy.gamma == 0.9 and policy.xi == 0.5


def test_policy_errors_say_what_to_fix():
    with pytest.raises(PolicyError, match="known:"):
        parse_policy("greedy")
    with pytest.raises(PolicyError, match="gamma"):
        DiscountedUCB(gamma=1.5)
    with pytest.raises(PolicyError, match="out of range"):
        policy_from_config({"name": "fixed", "arm": 7}).bind(3)
    with pytest.raises(PolicyError, match="needs window features"):
        LinearRLS().bind(2).choose(None)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        # a colon where a comma belongs: the rest of the spec is one string value
        ("auto:upkeep=0:value=8", "policy 'auto': upkeep must be a number, got '0:value=8'"),
        ("ucb1:c=fast", "policy 'ucb1': c must be a number, got 'fast'"),
        ("fixed:arm=true", "policy 'fixed': arm must be a number, got True"),
        ("sgd:background=1", "policy 'sgd': background must be true or false, got 1"),
        (
            "epsilon-greedy:epsilom=0.1",
            "policy 'epsilon-greedy' has no parameter 'epsilom'; it takes: epsilon, step, seed",
        ),
    ],
)
def test_a_parameter_of_the_wrong_kind_or_name_is_refused_by_name(spec, message):
    """Without the check, ``c='fast'`` was accepted and failed mid-evaluation, and a word
    where a number belongs failed with Python's comparison error."""
    with pytest.raises(PolicyError) as info:
        parse_policy(spec)
    assert str(info.value) == message


def test_arm_and_policy_specs_share_one_parser_and_its_errors():
    from migcodec.selector.arms import ArmError, parse_arm

    assert parse_arm("zstd:level=-1,name_hint=x") == {"name": "zstd", "level": -1, "name_hint": "x"}
    assert parse_arm('{"name": "lz4", "acceleration": 2}') == {"name": "lz4", "acceleration": 2}
    with pytest.raises(ArmError, match=r"parameter 'level' needs key=value \(e.g. zstd:level=3\)"):
        parse_arm("zstd:level")
    with pytest.raises(PolicyError, match=r"parameter 'gamma' needs key=value$"):
        parse_policy("d-ucb:gamma")
    with pytest.raises(PolicyError, match=r"policy '\{bad' is not valid JSON"):
        parse_policy("{bad")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("sw-ucb:window=1.5", "policy 'sw-ucb': window must be a whole number, got 1.5"),
        ("probe-commit:every=2.5", "policy 'probe-commit': every must be a whole number, got 2.5"),
        ("fixed:arm=0.5", "policy 'fixed': arm must be a whole number, got 0.5"),
        (
            "ucb1:c=1e400",
            "policy 'ucb1': c must be a finite number, got inf (a number too large for a float "
            "reads as inf)",
        ),
        (
            "auto:value=1e400",
            "policy 'auto': value must be a finite number, got inf (a number too large for a "
            "float reads as inf)",
        ),
        (
            '{"name": "d-ucb", "gamma": NaN}',
            "policy 'd-ucb': gamma must be a finite number, got nan",
        ),
    ],
)
def test_a_fraction_where_a_count_belongs_or_an_infinite_value_is_refused(spec, message):
    """Without the check ``window=1.5`` failed inside numpy with a TypeError and
    ``c=1e400`` (JSON's float overflow) ran as c=inf."""
    with pytest.raises(PolicyError) as info:
        parse_policy(spec)
    assert str(info.value) == message


def test_a_whole_number_written_as_a_float_is_taken_as_an_int():
    policy = parse_policy("sw-ucb:window=1e3")
    assert policy.window == 1000 and type(policy.window) is int
    assert type(parse_policy("epsilon-greedy:seed=7.0").seed) is int


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ucb1:c=-1", "policy 'ucb1': c must be >= 0, got -1"),
        ("d-ucb:c=-1", "policy 'd-ucb': c must be >= 0, got -1"),
        ("d-ucb:xi=-0.5", "policy 'd-ucb': xi must be >= 0, got -0.5"),
        ("sw-ucb:c=-1", "policy 'sw-ucb': c must be >= 0, got -1"),
        ("linear:alpha=-1", "policy 'linear': alpha must be in [0, 1e+06], got -1"),
        ("linear:ridge=0", "policy 'linear': ridge must be in [1e-06, 1e+06], got 0"),
        ("predictive:refresh=-5", "policy 'predictive': refresh must be >= 0, got -5"),
        ("predictive:tolerance=-1", "policy 'predictive': tolerance must be >= 0, got -1"),
        ("probe-commit:drift=-1", "policy 'probe-commit': drift must be >= 0, got -1"),
        ("thompson:seed=-1", "policy 'thompson': seed must be >= 0, got -1"),
        ("epsilon-greedy:seed=-1", "policy 'epsilon-greedy': seed must be >= 0, got -1"),
        (  # scikit-learn's own words, of no policy
            "sgd:seed=4294967296",
            "policy 'sgd': seed must be in [0, 4294967295], got 4294967296",
        ),
        (  # 31 digits
            "sw-ucb:window=1e30",
            "policy 'sw-ucb': window must be in [1, 1000000], got 1e+30",
        ),
        ("epsilon-greedy:step=2", "policy 'epsilon-greedy': step must be in (0, 1], got 2"),
        ("sgd:refit_every=0", "policy 'sgd': refit_every must be in [1, 1000000], got 0"),
        ("sgd:epsilon=1.5", "policy 'sgd': epsilon must be in [0, 1], got 1.5"),
        ("auto:negligible=-1", "policy 'auto': negligible must be in [0, 1], got -1"),
        ("auto:learn=0", "policy 'auto': learn must be in (0, 1], got 0"),
        ("fixed:arm=-1", "policy 'fixed': arm must be >= 0, got -1"),
        # parameters whose arithmetic overflows, or turns nan, past what they can mean
        ("auto:drift=1e200", "policy 'auto': drift must be in [0, 5], got 1e+200"),
        ("auto:probe_noise=1e308", "policy 'auto': probe_noise must be in [0, 20], got 1e+308"),
        ("auto:batch_pages=8192", "policy 'auto': batch_pages must be in [1, 4096], got 8192"),
        ("linear:ridge=1e-320", "policy 'linear': ridge must be in [1e-06, 1e+06], got 1e-320"),
        ("linear:forget=0.1", "policy 'linear': forget must be in [0.5, 1], got 0.1"),
        # parameters that size what a policy holds are bounded
        (
            "probe-commit:k=99999999999999",
            "policy 'probe-commit': k must be in [1, 1000000], got 99999999999999",
        ),
        (
            "sw-ucb:window=100000000",
            "policy 'sw-ucb': window must be in [1, 1000000], got 100000000",
        ),
    ],
)
def test_an_out_of_range_parameter_is_refused_when_the_policy_is_built(spec, message):
    """These were accepted silently (``thompson:seed=-1`` failed only once tables were
    measured, naming no parameter; ``probe-commit:k=99999999999999`` grew to gigabytes)."""
    with pytest.raises(PolicyError) as info:
        parse_policy(spec)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (10**400, "must be a finite number, got an integer of 401 digits (too large for a"),
        (10**20, "must be in [0, 5], got 1e+20"),
    ],
    ids=["401 digits", "21 digits"],
)
def test_a_grid_s_integer_too_large_for_a_float_is_refused_in_words(value, said):
    """A grid file's JSON gives integers of any size: formatting 10**400 as a float for the
    message raised OverflowError, a traceback instead of the refusal."""
    with pytest.raises(PolicyError) as info:
        policy_from_config({"name": "auto", "drift": value})
    assert str(info.value).startswith(f"policy 'auto': drift {said}")


def test_a_fixed_arm_of_a_grid_s_hundreds_of_digits_is_named_shortly():
    with pytest.raises(PolicyError) as info:
        policy_from_config({"name": "fixed", "arm": 10**300}).bind(3)
    assert str(info.value) == (
        "fixed arm 1e+300 is out of range for 3 arms; arms are counted from 0"
    )


@pytest.mark.parametrize(
    "config", [{"name": "ucb1", "c": 10**200}, {"name": "d-ucb", "xi": 10**300}]
)
def test_a_huge_integer_for_a_float_parameter_replays_as_that_float(config):
    """Unbounded parameters took an integer of hundreds of digits, and the policy's float
    arithmetic on it (``c * c``) raised OverflowError mid-replay; it is the float it reads as."""
    from migcodec.selector import Throughput
    from migcodec.selector.evaluation import replay
    from tests.selector.tables import tiny_table

    policy = policy_from_config(config)
    (key,) = set(config) - {"name"}
    assert getattr(policy, key) == float(config[key])
    result = replay(policy, tiny_table(), Throughput(link=1e3, workers=1))
    assert len(result.chosen) == 3


@pytest.mark.parametrize(
    "spec",
    [
        "auto:drift=5,change=100,arm_drift=5,probe_noise=20,cost_drift=1,value=1000000",
        "auto:drift=0,change=0,arm_drift=0,probe_noise=0,cost_drift=0,value=0,negligible=0",
        "auto:negligible=1,balance=1,learn=1,upkeep=1,batch_pages=4096",
        "auto:balance=0,batch_pages=1",
        "linear:alpha=1000000,forget=0.5,ridge=0.000001",
        "linear:alpha=0,forget=1,ridge=1000000",
    ],
)
def test_a_policy_at_the_bounds_of_its_parameters_replays_without_a_warning(spec):
    """Every value a parameter's range lets through is one the policy's arithmetic holds:
    no overflow, no nan, no warning, on windows of every kind (zero, text, random and
    delta windows)."""
    import warnings

    from migcodec.selector import Throughput, parse_arms
    from migcodec.selector.costmodel import CostModel
    from migcodec.selector.evaluation import build_table, replay, workload_windows

    model = CostModel.load(Path(__file__).with_name("data") / "cost-model.json")
    arms = parse_arms("raw;lz4;zstd:level=3;xbzrle;dsa-delta")
    windows = workload_windows("zero,text,random", n_windows=12, pages=256, phase_windows=2)
    table = build_table(windows, arms, repeats=1, calibration=model).modelled(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for link in (125e6, 1.25e9):
            result = replay(parse_policy(spec), table, Throughput(link=link, workers=2))
            assert np.isfinite(result.rewards).all()


def test_a_linear_model_of_an_input_that_never_varies_stays_finite():
    """Along a feature constant on this memory the windows teach nothing, and each
    forgetting step grew the model's covariance by 1/forget: at forget 0.5 it passed the
    largest float within a few thousand windows, and every score turned nan."""
    policy = parse_policy("linear:forget=0.5").bind(3)
    f = WindowFeatures(np.array([1.0, 0.0, 0.5, 0.02, 1.0]))
    for i in range(3000):
        policy.update(policy.choose(f), 1.0 + i % 7, f)
    assert np.isfinite(policy.P).all() and np.isfinite(policy.theta).all()
    assert policy.choose(f) in range(3)


def test_the_largest_sliding_window_or_probe_holds_only_what_it_has_seen():
    import tracemalloc

    tracemalloc.start()
    try:
        for spec in ("sw-ucb:window=1000000", "probe-commit:k=1000000", "sgd:refit_every=1000000"):
            policy = parse_policy(spec).bind(8)
            for _ in range(50):
                policy.update(
                    policy.choose(WindowFeatures(np.ones(5))), 1.0, WindowFeatures(np.ones(5))
                )
        assert tracemalloc.get_traced_memory()[1] < 4 << 20
    finally:
        tracemalloc.stop()


def test_a_step_of_none_round_trips_through_a_config():
    policy = EpsilonGreedy(step=None)
    assert policy_from_config(policy.config_json()) == policy
    assert parse_policy("epsilon-greedy:step=null").step is None


def test_a_value_too_long_to_read_is_refused_by_name_in_one_line():
    """An integer of 5000 digits failed with Python's "Exceeds the limit (4300 digits)",
    and a value of nested brackets with a RecursionError."""
    for value in ("1" * 5000, "[" * 100_000):
        with pytest.raises(PolicyError) as info:
            parse_policy(f"ucb1:c={value}")
        assert str(info.value) == (
            f"policy 'ucb1': parameter 'c' has a value of {len(value)} characters that cannot "
            "be read; give a number, true, false or a word"
        )
    with pytest.raises(PolicyError) as info:
        parse_policy('{"name": "ucb1", "c": ' + "1" * 5000 + "}")
    message = str(info.value)
    assert message.startswith('policy \'{"name": "ucb1", "c": 111') and len(message) < 400
    assert "(5023 chars) is not valid JSON: Exceeds the limit" in message


@pytest.mark.parametrize("name", sorted(n for n in POLICIES if not n.endswith("-test")))
def test_a_policy_with_one_arm_reads_no_features_and_plays_it(name):
    """With one arm no feature can change the choice, so none is read (or charged)."""
    policy = parse_policy(name).bind(1)
    for _ in range(3):
        assert not policy.wants_features(10_000)
        assert policy.choose(None) == 0
        policy.update(0, 1.0)
    assert policy.charge_s(None) == 0.0
