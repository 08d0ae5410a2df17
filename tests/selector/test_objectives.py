import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from migcodec.selector import (
    HostCpu,
    ObjectiveError,
    Outcome,
    Throughput,
    WireBytes,
    make_objective,
    objective_from_config,
    parse_rate,
)
from migcodec.selector.objectives import Objective


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10Gbit", 1.25e9), ("1gbit", 1.25e8), ("125MB", 1.25e8), ("2.5e8", 2.5e8), (3.0, 3.0)],
)
def test_parse_rate_reads_link_speeds(text, expected):
    assert parse_rate(text) == pytest.approx(expected)


def test_parse_rate_error_says_how_to_write_it():
    with pytest.raises(ObjectiveError, match="10Gbit"):
        parse_rate("fast")


@pytest.mark.parametrize("text", ["1G", " 10G ", "5k", "1Gi"])
def test_a_rate_with_a_prefix_and_no_unit_is_refused_as_bits_or_bytes(text):
    """``1G`` is 1 Gbit/s to whoever sizes links and 1 GB/s to whoever copies memory, 8x
    apart: refused, with both spellings."""
    prefixed = text.strip()
    with pytest.raises(ObjectiveError) as error:
        parse_rate(text)
    assert str(error.value) == (
        f"rate {text!r} has a prefix but no unit, and bits and bytes are 8x apart: "
        f"write {prefixed}bit for bits per second or {prefixed}B/s for bytes per second"
    )
    assert parse_rate(f"{prefixed}bit") * 8 == parse_rate(f"{prefixed}B/s")


_seconds = st.floats(0.0, 10.0)


@given(
    st.floats(0.0, 1e9),
    st.floats(0.0, 1e9),
    _seconds,
    _seconds,
    st.none() | _seconds,
    _seconds,
    st.sampled_from(["cpu", "wall"]),
    st.sampled_from([Throughput, HostCpu, WireBytes]),
)
def test_a_charged_reward_is_the_reward_of_the_charged_outcome(
    guest, out, wall, cpu, device, charge, clock, kind
):
    """The selector's one-call form (the throughput objective computes it inline) agrees
    with charging the outcome and taking its reward, device time or not, either clock."""
    objective = Throughput(link=1e8, workers=2, clock=clock) if kind is Throughput else kind()
    outcome = Outcome(guest, out, wall, cpu, device)
    expected = objective.reward(outcome.charged(charge))
    assert objective.charged_reward(outcome, charge) == expected
    assert objective.charged_reward(outcome, 0.0) == objective.reward(outcome)


@given(
    st.floats(1.0, 1e12),
    st.floats(0.0, 1e12),
    _seconds,
    st.sampled_from([Throughput(link=1.25e8, workers=3), HostCpu(), WireBytes()]),
)
def test_loss_rates_give_the_loss_the_utility_sums(guest, out, cpu, objective):
    """A window's loss from its objective's loss rates, ``max(cpu / a, out / b)``, is
    minus its utility per guest GB times its guest GB (what a policy predicting from the
    rates in float operations stands for), to rounding; an objective without them says so."""
    cpu_rate, byte_rate = objective.loss_rates
    utility = objective.utility(objective.reward(Outcome(guest, out, cpu, cpu)))
    expected = -utility * guest / 1e9
    assert max(cpu / cpu_rate, out / byte_rate) == pytest.approx(expected, rel=1e-12, abs=1e-300)
    assert Objective.loss_rates.fget(objective) is None


def test_throughput_is_link_bound_or_cpu_bound():
    obj = Throughput(link=100.0, workers=2)
    # ratio 4 over a 100 B/s link: 400 B/s; 2 workers at 1000 B/s of CPU: 2000 -> link bound
    assert obj.reward(Outcome(1000, 250, wall_s=9.0, cpu_s=1.0)) == pytest.approx(400)
    # CPU bound: 2 x 1000 / 10 s = 200 < link x ratio
    assert obj.reward(Outcome(1000, 250, wall_s=10.0, cpu_s=10.0)) == pytest.approx(200)
    assert Throughput(link=100.0, workers=2, clock="wall").reward(
        Outcome(1000, 250, wall_s=9.0, cpu_s=1.0)
    ) == pytest.approx(2000 / 9)


def test_modelled_device_time_replaces_host_time():
    obj = Throughput(link=1e12, workers=1)
    assert obj.reward(Outcome(1000, 500, 1.0, 1.0, device_s=0.5)) == pytest.approx(2000)


def test_vectorised_rewards_match_scalar():
    rng = np.random.default_rng(0)
    inp = rng.uniform(1e5, 1e6, 20)
    out = inp / rng.uniform(1, 5, 20)
    wall, cpu = rng.uniform(1e-4, 1e-2, 20), rng.uniform(1e-4, 1e-2, 20)
    dev = np.where(rng.random(20) < 0.5, np.nan, rng.uniform(1e-4, 1e-2, 20))
    for obj in (Throughput(1e8, 2), HostCpu(), WireBytes()):
        vec = obj.reward_arrays(inp, out, wall, cpu, dev)
        for i in range(20):
            o = Outcome(inp[i], out[i], wall[i], cpu[i], None if np.isnan(dev[i]) else dev[i])
            if isinstance(obj, Throughput) or math.isnan(dev[i]):
                assert vec[i] == pytest.approx(obj.reward(o))


def test_throughput_total_is_bytes_over_time_and_utility_sums_to_minus_time():
    obj = Throughput(link=1e9, workers=1)
    rewards = np.array([1e9, 1e8])  # B/s
    nbytes = np.array([1e9, 1e9])  # 1 s + 10 s
    assert obj.total(rewards, nbytes) == pytest.approx(2e9 / 11)
    assert obj.utility_arrays(rewards).sum() == pytest.approx(-11.0)


def test_objective_config_round_trips_through_json():
    import json

    for obj in (make_objective("throughput", link="1Gbit", workers=4), HostCpu(), WireBytes()):
        assert objective_from_config(json.loads(json.dumps(obj.get_config()))) == obj


def test_bad_objective_parameters_are_clear():
    with pytest.raises(ObjectiveError, match="positive link"):
        Throughput(link=0)
    with pytest.raises(ObjectiveError, match="choose one of"):
        make_objective("latency")


@pytest.mark.parametrize(
    ("params", "shown"),
    [
        ({"link": math.nan}, "link=nan bytes/s, workers=2.0"),
        ({"workers": math.nan}, "link=1250000000.0 bytes/s, workers=nan"),
        ({"workers": True}, "link=1250000000.0 bytes/s, workers=True"),
        ({"workers": "2"}, "link=1250000000.0 bytes/s, workers=2"),
        ({"workers": -1}, "link=1250000000.0 bytes/s, workers=-1"),
    ],
)
def test_a_throughput_of_no_positive_number_is_refused_where_it_is_made(params, shown):
    """NaN passed the check; every window's reward was then refused as the policy's
    mistake."""
    with pytest.raises(ObjectiveError) as error:
        Throughput(**params)
    assert str(error.value) == (
        f"throughput needs a positive link rate and worker count, got {shown}"
    )


def test_an_outcome_scales_and_joins_by_its_parts():
    """A split window's outcome: each part in proportion to its pages, added; device time
    stays only when both parts had one (a window a device and a CPU codec shared is judged
    by its CPU time)."""
    device = Outcome(4096.0, 1024.0, 2.0, 1.0, 0.5, 0.0)
    cpu = Outcome(4096.0, 2048.0, 1.0, 1.0, None, 1.0)
    assert device.scaled(0.25) == Outcome(1024.0, 256.0, 0.5, 0.25, 0.125, 0.0)
    assert device.scaled(0.5).joined(device.scaled(0.5)) == device
    assert device.joined(cpu) == Outcome(8192.0, 3072.0, 3.0, 2.0, None, 1.0)
    assert cpu.joined(Outcome(1.0, 1.0, 1.0, 1.0)).zero_pages is None
