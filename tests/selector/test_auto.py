"""The ``auto`` policy's parts: its filter, what it buys, what it plays and learns."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migcodec.codecs.base import RUN_BYTES
from migcodec.selector import Throughput, WindowFeatures, parse_policy
from migcodec.selector.costmodel import KNOTS, ArmCost
from migcodec.selector.objectives import HostCpu, Outcome, WireBytes
from migcodec.selector.policies.auto import Auto
from migcodec.selector.policies.auto import common as auto_module
from migcodec.selector.policies.auto.common import _CPU_DRIFT_VAR
from migcodec.selector.policies.kalman import RatioFilter

PAGE = 4096
LABELS = ["raw", "lz4", "zstd level=3", "dsa-delta"]
KINDS = ["raw", "compress", "compress", "delta"]
#: per-page CPU seconds by ratio: raw a copy, lz4 fast, zstd 4x slower, delta in between
COSTS = [
    ArmCost(10e-6, 0.0, [0.5e-6] * len(KNOTS)),
    ArmCost(20e-6, 0.0, [2e-6] * len(KNOTS)),
    ArmCost(20e-6, 0.0, [8e-6] * len(KNOTS)),
    ArmCost(60e-6, 0.0, [4e-6] * len(KNOTS)),
]


@pytest.fixture(autouse=True)
def _decisions_priced_at_nothing(monkeypatch):
    """Each ``auto`` here decides which probes to buy at no price, as a replay of a table
    priced so would tell it: what its features cost is then the features' alone, and the
    reads a test expects do not move with how fast this machine runs its Python (the
    decision's own timing is tested where it is the point)."""
    monkeypatch.setattr(Auto, "probe_decision_s", 0.0)


def _auto(link: float, clock: str = "cpu", costs: list[ArmCost] = COSTS, **params):
    policy = parse_policy(
        "auto" if not params else "auto:" + ",".join(f"{k}={v}" for k, v in params.items())
    )
    return policy.bind(
        len(LABELS),
        Throughput(link=link, workers=2, clock=clock),
        KINDS,
        labels=LABELS,
        costs=costs,
        fallbacks=[-1, -1, -1, 1],  # dsa-delta's fall-back is the lz4 arm
    )


def _auto_two_deltas():
    """``_auto`` at 1 Gbit/s with a second delta arm, xbzrle, priced as dsa-delta."""
    return parse_policy("auto").bind(
        len(LABELS) + 1,
        Throughput(link=125e6, workers=2),
        [*KINDS, "delta"],
        labels=[*LABELS, "xbzrle"],
        costs=[*COSTS, COSTS[3]],
        fallbacks=[-1, -1, -1, 1, 1],
    )


def _features(pages: float, delta_bytes: float | None = None, probe_pages: int = 16):
    delta = None if delta_bytes is None else np.array([np.nan, np.nan, np.nan, delta_bytes])
    return WindowFeatures(
        np.array([1.0, 0.0, 0.5, 0.02, 1.0]),
        cheap_s=40e-6,
        pages=pages,
        sample=32,
        held_frac=1.0 if delta is not None else 0.0,
        delta_bytes=delta,
        probe_pages=probe_pages,
    )


def _probed(f: WindowFeatures, ratios: dict[int, float]) -> WindowFeatures:
    out = np.full(len(LABELS), np.nan)
    for arm, ratio in ratios.items():
        out[arm] = f.probe_pages * PAGE / ratio
    f.probe_out = out
    f.probe_s = np.where(np.isfinite(out), 1e-4, 0.0)
    return f


@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.floats(-1, 3)),
        min_size=1,
        max_size=4,
        unique_by=lambda t: t[0],
    )
)
def test_probes_observed_together_equal_probes_observed_one_by_one(observations):
    arms = np.array([a for a, _ in observations])
    y = np.array([v for _, v in observations])
    joint, one_by_one = RatioFilter(4), RatioFilter(4)
    joint.observe_probes(arms, y, 0.03)
    for arm, value in observations:
        one_by_one.observe_probes(np.array([arm]), np.array([value]), 0.03)
    np.testing.assert_allclose(joint.x, one_by_one.x)
    np.testing.assert_allclose(joint.p, one_by_one.p, atol=1e-12)


def test_probes_of_one_sample_agreeing_weigh_less_and_their_differences_more():
    """Probes of one window encode the same sampled pages, so their errors are partly one
    error: a shift they share is weaker evidence than as many independent probes, and the
    difference between two arms is sharper."""
    moved, spread = {}, {}
    for shared in (0.0, 0.5):
        f = RatioFilter(3)
        f.observe_probes(np.array([0, 1, 2]), np.full(3, np.log(4.0)), 0.03)  # settle
        before = f.mean().copy()
        f.drift(0.04, 0.0)
        f.observe_probes(np.array([0, 1]), np.log([2.0, 1.5]), 0.05, shared)
        moved[shared] = before - f.mean()
        h = np.zeros(f.x.size)
        h[2], h[3] = 1.0, -1.0  # the offset of arm 0 from arm 1
        spread[shared] = h @ f.p @ h
    assert (moved[0.0] > 0).all() and (moved[0.5] > 0).all()
    assert (moved[0.5] < moved[0.0]).all()
    assert spread[0.5] < spread[0.0]


def test_a_delta_arm_played_on_the_last_features_read_learns_no_format_bias():
    """The format's bias is learnt against the window's own estimate only: a window
    played blind compares its payload with another window's sample, which says nothing
    of the format."""
    policy = _auto(125e6)
    f = _features(1000, delta_bytes=40.0)
    policy.probe_mask(f)  # features read
    arm = policy.choose(f)
    assert KINDS[arm] == "delta"
    policy.update(arm, 1e8, f, Outcome(1000 * PAGE, 1000 * 44 + 200, 1e-3, 1e-3))
    learnt = policy.delta_bias.copy()
    assert learnt[3] != 0  # its own window's error: learnt
    for _ in range(5):  # the delta arm played blind, on the features above
        policy.choose(None)
        policy.update(3, 1e8, None, Outcome(1000 * PAGE, 1000 * 400, 1e-3, 1e-3))
    np.testing.assert_array_equal(policy.delta_bias, learnt)


def test_a_window_played_without_features_predicts_as_if_nothing_were_kept():
    """What the policy keeps of a window's prediction serves the windows played on its
    features; a delta arm's bias learnt meanwhile moves that arm's entries, which are
    priced again: the kept prediction equals one computed afresh."""
    policy = _auto_two_deltas()
    f = _features(1000, delta_bytes=40.0)
    f.delta_bytes = np.array([np.nan, np.nan, np.nan, 40.0, 60.0])
    policy.probe_mask(f)
    arm = policy.choose(f)
    assert arm in (3, 4)
    policy.update(arm, 1e8, f, Outcome(1000 * PAGE, 1000 * 90 + 200, 1e-3, 1e-3))
    assert policy.delta_bias[arm] > 0  # it sent more than its estimate
    kept = policy._predict(policy._read, 800.0)  # the copy of f kept as the last read
    policy._prediction = None
    assert kept == policy._predict(policy._read, 800.0)


def test_a_played_compressor_moves_the_estimates_of_the_others():
    f = RatioFilter(2)
    before = f.mean().copy()
    f.observe(0, np.log(8.0), 0.01)
    after = f.mean()
    assert after[0] == pytest.approx(np.log(8.0), abs=0.05)
    assert after[1] > before[1] + 0.5  # the shared level rose with it


def test_sparse_changes_play_the_delta_arm_and_rewrites_a_compressor():
    policy = _auto(125e6)
    sparse = _features(10_000, delta_bytes=40.0)
    assert KINDS[policy.choose(sparse)] == "delta"
    rewritten = _probed(_features(10_000, delta_bytes=PAGE), {1: 3.0, 2: 5.0})
    policy.probe_mask(rewritten)
    assert LABELS[policy.choose(rewritten)] in ("lz4", "zstd level=3")


def _play_delta_windows(policy, samples: list[float], sent_each: float, pages: int = 1000):
    """Windows of ``pages`` pages whose samples estimate the delta arm's payload at each
    of ``samples`` bytes per page, every one read and played by the delta arm, which sends
    ``sent_each`` bytes per page; the estimate each window was priced on."""
    priced = []
    for each in samples:
        f = _features(pages, delta_bytes=each)
        assert policy.wants_features(pages)
        policy.probe_mask(f)
        priced.append(policy._delta_estimates(f)[3])
        sent = pages + math.ceil(pages / 64) * RUN_BYTES + sent_each * pages
        policy.update(3, 1e9, f, Outcome(pages * PAGE, sent, 1e-4, 1e-4))
    return priced


def test_a_delta_arm_s_sample_is_weighed_by_how_far_samples_have_missed():
    """Samples that missed what the delta arm then sent, window after window, are noisy:
    the next one moves the estimate towards the level played windows showed, not all the
    way. The first window of a size, with nothing else known, is taken as sampled."""
    policy = _auto(125e6, upkeep=0.9)  # rereads every window
    priced = _play_delta_windows(policy, [20.0, 80.0] * 4, sent_each=40.0)
    assert priced[0] == pytest.approx(20.0)  # the first: its sample alone
    (outlier,) = _play_delta_windows(policy, [400.0], sent_each=40.0)
    assert 40.0 < outlier < 130.0  # a tenfold sample, after samples that missed by 2x
    # samples that hit what was sent are worth more: the same outlier moves further
    exact = _auto(125e6, upkeep=0.9)
    _play_delta_windows(exact, [40.0] * 8, sent_each=40.0)
    (trusted,) = _play_delta_windows(exact, [400.0], sent_each=40.0)
    assert trusted > 2 * outlier


def _auto_pricing_changes():
    """``_auto`` at 1 Gbit/s whose delta arm also costs 1 ns per changed word and 20 ns
    per run of changed bytes (as a calibration of an encoder of runs fits it)."""
    delta = ArmCost(60e-6, 0.0, [4e-6] * len(KNOTS), per_word=1e-9, per_run=20e-9)
    return parse_policy("auto:upkeep=0.9").bind(
        len(LABELS),
        Throughput(link=125e6, workers=2),
        KINDS,
        labels=LABELS,
        costs=[*COSTS[:3], delta],
        fallbacks=[-1, -1, -1, 1],
    )


def test_a_delta_arm_is_priced_by_the_changes_its_sample_shows():
    """Its records cost its flat part plus its costs per changed word (the context's
    share of a page's words) and per run; a compressor pays neither."""
    policy = _auto_pricing_changes()
    f = _features(6400, delta_bytes=40.0)
    f.change_runs = 100.0
    cpu = policy._predict(f)[2]
    words = 0.02 * (PAGE // 8)
    calls = 6400 // 64
    assert cpu[3] == pytest.approx(60e-6 * calls + (4e-6 + words * 1e-9 + 100 * 20e-9) * 6400)
    assert cpu[1] == pytest.approx(20e-6 * calls + 2e-6 * 6400)
    runs = _features(6400, delta_bytes=40.0)
    runs.change_runs = 1000.0
    assert policy._predict(runs)[2][3] - cpu[3] == pytest.approx(900 * 20e-9 * 6400)


def test_the_changes_a_sample_shows_move_with_the_level_filter():
    """A sample the filter puts at a fraction of its payload (samples of this size have
    missed) shows its changes with the same error: they are scaled alike."""
    policy = _auto_pricing_changes()
    _play_delta_windows(policy, [20.0, 80.0] * 4, sent_each=40.0)
    f = _features(1000, delta_bytes=400.0)
    f.change_runs = 100.0
    assert policy.wants_features(1000)
    policy.probe_mask(f)
    estimate = policy._delta_estimates(f)[3]
    assert 40.0 < estimate < 130.0
    words = 0.02 * (PAGE // 8)
    policy._prediction = None  # f's own (probe_mask also priced the last read's)
    policy._payloads(f)
    changes = policy._prediction.changes[3]
    assert changes == pytest.approx((words * 1e-9 + 100 * 20e-9) * estimate / 400.0)


def test_a_delta_window_is_learnt_from_when_the_next_window_was_read_first():
    """An engine reads the next window's features while the last one is still encoding,
    so it learns from the last window after that read: the last window's sample is still
    at hand, and it teaches what it would have taught in order."""
    samples = [20.0, 80.0] * 4

    def outcome():
        return Outcome(1000 * PAGE, 1000 + 16 * RUN_BYTES + 40.0 * 1000, 1e-4, 1e-4)

    in_order = _auto(125e6, upkeep=0.9)
    _play_delta_windows(in_order, samples, sent_each=40.0)
    ahead = _auto(125e6, upkeep=0.9)
    previous = None
    for each in samples:  # as _play_delta_windows, each window read before the last learnt
        f = _features(1000, delta_bytes=each)
        assert ahead.wants_features(1000)
        ahead.probe_mask(f)
        if previous is not None:
            ahead.update(3, 1e9, previous, outcome())
        previous = f
    ahead.update(3, 1e9, previous, outcome())
    assert in_order._delta_noise != pytest.approx(1.0)  # the samples' misses were learnt
    # the same draws, each with the bias as it stood when it was learnt
    assert ahead._delta_noise == pytest.approx(in_order._delta_noise, rel=0.05)


def test_the_delta_level_of_one_window_size_is_not_carried_to_another():
    policy = _auto(125e6, upkeep=0.9)
    _play_delta_windows(policy, [20.0, 80.0] * 4, sent_each=40.0)
    (small,) = _play_delta_windows(policy, [400.0], sent_each=40.0, pages=200)
    assert small == pytest.approx(400.0)  # housekeeping windows: their own sample


def test_one_window_a_sample_missed_by_far_at_most_doubles_the_sample_s_noise():
    policy = _auto(125e6, upkeep=0.9)
    _play_delta_windows(policy, [40.0] * 4, sent_each=40.0)
    before = policy._delta_noise
    _play_delta_windows(policy, [40.0], sent_each=4000.0)
    assert before < policy._delta_noise <= before * (1 + policy.learn * 3) + 1e-12


def test_the_delta_level_s_misses_are_learnt_in_units_of_the_variance_it_was_priced_with():
    """Samples that hit what was sent make the spread smaller than the level's variance
    says; samples that keep missing by 2x make it larger."""
    exact = _auto(125e6, upkeep=0.9)
    _play_delta_windows(exact, [40.0] * 8, sent_each=40.0)
    assert exact._level_calib == pytest.approx(0.9**8)  # every squared miss 0
    missing = _auto(125e6, upkeep=0.9)
    _play_delta_windows(missing, [20.0, 80.0] * 4, sent_each=40.0)
    assert missing._level_calib > 1.0


def _play_delta_levels(policy, windows: list[tuple[float, float]], pages: int = 1000):
    """``_play_delta_windows`` with each window's own (sampled, sent) bytes per page."""
    return [
        _play_delta_windows(policy, [sample], sent_each=sent, pages=pages)[0]
        for sample, sent in windows
    ]


def test_a_delta_level_that_jumps_between_windows_is_learnt_and_samples_outweigh_it():
    """Two programs whose samples miss what was sent by 2x either way: one sends 40 bytes
    per page every window, the other 40 and 160 in turn. The second's played windows show
    its level jumping further than ``drift`` allows, so its next window's tenfold sample
    moves the estimate most of the way; the first's stays near the level it has shown."""
    misses = [0.5, 2.0, 2.0, 0.5] * 2
    last = {}
    for name, sent in (("steady", [40.0, 40.0]), ("jumping", [40.0, 160.0])):
        policy = _auto(125e6, upkeep=0.9, drift=0.05)  # rereads every window
        _play_delta_levels(policy, [(s * m, s) for s, m in zip(sent * 4, misses, strict=True)])
        (last[name],) = _play_delta_levels(policy, [(400.0, 400.0)])
    assert last["steady"] < 50.0
    assert last["jumping"] > 150.0  # 91 with the level's drift alone


def _runs_priced(windows: list[tuple[float, int]], runs: float = 8.0):
    """A delta arm whose time follows its runs of changed bytes (1 us each), on windows
    whose samples show ``runs`` runs and 4 words a held page, where 4x the sample's
    payload was sent, window after window. Per window, ``(words_runs_cov, sample)``: its
    pages' words vary by 100 (a variance) and their runs by the covariance with them, over
    ``sample`` held pages. Returns the runs a held page of the last window is priced at,
    the part of its time that moves with the level (seconds per held page), and how far
    the level puts that window's payload above its sample's."""
    costs = [*COSTS[:3], ArmCost(60e-6, 0.0, [4e-6] * len(KNOTS), per_run=1e-6)]
    policy = _auto(125e6, costs=costs, upkeep=0.9)  # rereads every window
    for cov, sample in windows:
        f = _features(1000, delta_bytes=10.0)
        f.context[3], f.change_runs, f.sample = 4.0 / (PAGE // 8), runs, sample
        f.words_var, f.words_runs_cov = 100.0, cov
        assert policy.wants_features(1000)
        policy.probe_mask(f)
        sent = 1000 + math.ceil(1000 / 64) * RUN_BYTES + 40.0 * 1000
        policy.update(3, 1e9, f, Outcome(1000 * PAGE, sent, 1e-4, 1e-4))
    sample = policy._delta_sample(f.delta_bytes)
    kept = policy._prediction
    return kept.changes[3] / 1e-6, kept.moving[3], math.exp(sample.level - sample.sampled)


def test_a_sample_s_runs_move_with_its_payload_as_far_as_they_move_with_its_words():
    """Where the level filter puts a window's payload above its sample's, the runs a delta
    arm's time follows move with it as far as a page's runs move with its words: a page's
    runs rise by one per changed word more (a covariance equal to the words' variance),
    and with 4 words and 8 runs a page, half of them move (the other half are runs
    without the extra words); where the runs do not rise with the words, none move.
    Before, every run was scaled with the payload."""
    together, moving, scale = _runs_priced([(100.0, 32)] * 9)
    apart, still, same_scale = _runs_priced([(0.0, 32)] * 9)
    assert scale == pytest.approx(same_scale) and scale > 2.0
    assert together == pytest.approx(8.0 * (0.5 + 0.5 * scale))
    assert moving == pytest.approx(1e-6 * 8.0 * 0.5 * scale)  # what the level's spread moves
    assert apart == pytest.approx(8.0)
    assert still == 0.0
    # pooled over windows by the pages they sampled: windows of 96 pages whose runs do not
    # rise with the words, between windows of 32 whose runs do, leave a quarter of the
    # slope (a half, were windows counted alike)
    mixed, _, scale = _runs_priced([(100.0, 32), (0.0, 96)] * 4 + [(100.0, 32)])
    share = (mixed / 8.0 - 1.0) / (scale - 1.0) / 0.5  # the slope, runs per word
    assert 0.15 < share < 0.4


def _auto_small_dear_records(level_calib: float, link: float = 200e6, plays: int = 1):
    """At 1.6 Gbit/s (``link`` bytes/s), two delta arms: dsa-delta's records cheap and
    large, xbzrle's 5 % dearer per page and a quarter smaller; both played ``plays``
    times on windows of 10 000 pages of records of 400 and 300 bytes, as estimated, and
    the level's misses then put at ``level_calib`` times its variance."""
    xbzrle = ArmCost(60e-6, 0.0, [4.2e-6] * len(KNOTS))
    # the level's variance from a drift of 0.2 between the two windows: at a smaller
    # one, misses 4x as far as it says still leave the link idle
    policy = parse_policy("auto:drift=0.2").bind(
        len(LABELS) + 1,
        Throughput(link=link, workers=2),
        [*KINDS, "delta"],
        labels=[*LABELS, "xbzrle"],
        costs=[*COSTS, xbzrle],
        fallbacks=[-1, -1, -1, 1, 1],
    )
    for arm in (3, 4) * plays:
        f = _records(10_000, 400.0, 300.0)
        assert policy.wants_features(10_000)
        policy.probe_mask(f)
        policy.choose(f)
        _, out, cpu, _ = policy._predict(f)
        policy.update(arm, 0.0, f, Outcome(10_000 * PAGE, out[arm], cpu[arm], cpu[arm]))
    policy._level_calib = level_calib
    return policy


def _records(pages: float, dsa: float, xbzrle: float) -> WindowFeatures:
    f = _features(pages, delta_bytes=dsa)
    f.delta_bytes = np.array([np.nan, np.nan, np.nan, dsa, xbzrle])
    return f


def test_a_window_whose_records_may_fill_the_link_gets_the_smaller_records():
    """10 000 pages of records: at the estimate the encoders bind, and dsa-delta's cheaper
    records win; where the level's misses say records may come out 2x their estimate,
    the link binds on those windows, the smaller records' expected time is the lesser,
    and xbzrle plays. A delta arm's loss is the expectation over three levels at the
    same expected records' bytes."""
    choices = []
    for calib in (1.0, 16.0):  # misses as the variance says; 4x as far
        policy = _auto_small_dear_records(calib)
        f = _records(10_000, 400.0, 300.0)
        assert policy.wants_features(10_000)
        policy.probe_mask(f)
        choices.append(policy.labels[policy.choose(f)])
    assert choices == ["dsa-delta", "xbzrle"]
    # dsa-delta's loss by hand, against its time at the estimate
    _, out, cpu, loss = policy._predict(f)
    var = policy._prediction.level_var * 16.0
    records = policy._prediction.records[3] * 10_000
    expected = 0.0
    for z, weight in ((0.0, 2 / 3), (-math.sqrt(3), 1 / 6), (math.sqrt(3), 1 / 6)):
        sent = out[3] + records * (math.exp(-var / 2 + z * math.sqrt(var)) - 1.0)
        expected += weight * policy._loss(10_000 * PAGE, np.array([sent]), np.array([cpu[3]]))[0]
    assert loss[3] == pytest.approx(expected)
    assert loss[3] > policy._loss(10_000 * PAGE, np.array([out[3]]), np.array([cpu[3]]))[0]


def _shared_window(link: float, level_calib: float, balance: float = 0.05):
    """``_auto_small_dear_records`` at ``link``, its CPU factors learnt (six plays of each
    delta arm), and a window of the same records read and chosen with ``balance``."""
    policy = _auto_small_dear_records(level_calib, link=link, plays=6)
    policy.balance = balance
    f = _records(10_000, 400.0, 300.0)
    assert policy.wants_features(10_000)
    policy.probe_mask(f)
    return policy, policy.choose(f), f


def test_a_window_is_shared_when_it_saves_balance_over_the_records_spread():
    """At 2 Gbit/s, dsa-delta's records keep the encoders a quarter busier than the link:
    lz4 on a tenth of the window balances the two, 6 % faster at the estimates. Where the
    records' level is known that split is played; where the level's misses say the
    records may come out far larger, the link the split fills would take them all, and
    the expected saving, over that spread, is under ``balance``: dsa-delta plays alone."""
    policy, arm, f = _shared_window(250e6, level_calib=1.0)
    assert (policy.labels[arm], policy.split()) == ("lz4", (3, 1088.0))
    policy, arm, f = _shared_window(250e6, level_calib=16.0)
    assert (policy.labels[arm], policy.split()) == ("dsa-delta", None)
    # by hand: the split's and dsa-delta's times over three levels of the records
    _, out, cpu, loss = policy._predict(f)
    var = policy._prediction.level_var * 16.0
    records = policy._prediction.records[3] * 10_000
    share = 1088 / 10_000

    def expected(share: float) -> float:
        total = 0.0
        for z, weight in ((0.0, 2 / 3), (-math.sqrt(3), 1 / 6), (math.sqrt(3), 1 / 6)):
            sent = out[3] + records * (math.exp(-var / 2 + z * math.sqrt(var)) - 1.0)
            busy = ((1 - share) * cpu[3] + share * cpu[1]) / 2
            total += weight * max(busy, ((1 - share) * sent + share * out[1]) / 250e6)
        return total

    alone = expected(0.0)
    assert alone == pytest.approx(loss[3])
    assert expected(share) > 0.95 * alone  # saves less than balance, 0.05
    # what it does save passes a smaller balance: the split is played, at that time
    assert expected(share) < 0.98 * alone
    policy, arm, f = _shared_window(250e6, level_calib=16.0, balance=0.02)
    assert (policy.labels[arm], policy.split()) == ("lz4", (3, 1088.0))
    assert policy._expected == pytest.approx(expected(share))
    at_estimates = max(
        ((1 - share) * cpu[3] + share * cpu[1]) / 2, ((1 - share) * out[3] + share * out[1]) / 250e6
    )
    assert at_estimates < 0.95 * max(cpu[3] / 2, out[3] / 250e6)  # which it saved there


def test_records_near_a_page_are_spread_no_further_than_raw_pages():
    """Records estimated at 58 % of a page, on a level whose misses are ten times its
    standard deviation: a spread that wide would put its highest level at several pages
    per page, where a record larger than its page goes raw. Narrowed to end at raw
    pages, it leaves the window bound by the link at every level, and its expected time
    is its time at the estimate."""
    policy = _auto_small_dear_records(100.0)
    f = _records(10_000, 3900.0, 3800.0)
    assert policy.wants_features(10_000)
    policy.probe_mask(f)
    _, out, _, loss = policy._predict(f)
    assert out[3] / 10_000 == pytest.approx(0.58 * PAGE, rel=0.01)
    assert loss[3] == pytest.approx(out[3] / policy.objective.link, rel=1e-4)


def _played_ratios(policy, ratios):
    """Windows of 1000 pages, each read and probed (lz4 at its true ratio), and played
    by lz4 at it; the lz4 estimate before each window's probe, as a ratio."""
    before = []
    for ratio in ratios:
        f = _probed(_features(1000), {1: ratio})
        policy.probe_mask(f.cheap())
        before.append(math.exp(policy.ratios.mean()[0]))
        policy.choose(f)
        guest = 1000 * PAGE
        policy.update(1, 0.0, f, Outcome(guest, guest / ratio, 1e-3, 1e-3, None, 0))
    return before


def test_content_that_jumps_between_windows_teaches_the_level_to_follow_each_probe():
    """A guest whose windows alternate between content lz4 compresses 16x and 1.5x: the
    played windows teach a jump of the level far beyond ``drift``, after which a window's
    own probe, not the last window, sets its estimate. Content that holds still teaches
    none."""
    jumping = _auto(125e6)
    _played_ratios(jumping, [1.5, 16.0] * 10)
    steady = _auto(125e6)
    _played_ratios(steady, [3.0] * 20)
    assert steady._level_jump < 0.01 < jumping.drift**2 * 4 < jumping._level_jump
    # the next window compresses 1.5x, after one that compressed 16x: its probe says so
    f = _probed(_features(1000), {1: 1.5})
    for policy in (jumping, steady):
        policy.probe_mask(f.cheap())
        policy.choose(f)
    assert math.exp(jumping.ratios.mean()[0]) < 2.0  # near the probe's 1.5, not 16


def test_probes_are_bought_for_a_large_window_and_not_for_a_tiny_one():
    policy = _auto(125e6)
    assert policy.probe_mask(_features(50_000)).any()  # nothing known: worth a probe
    tiny = _auto(1.25e9)  # a fast link leaves no idle CPU to hide a probe in
    assert not tiny.probe_mask(_features(2, probe_pages=2)).any()  # costs more than it saves


def test_a_probe_is_worth_what_its_pages_can_reveal():
    """A probe moves the estimate by what its pages say over their noise: four pages whose
    log ratios spread by 10 each (a standard deviation of 5 for the four) reveal little of
    a ratio known to a factor of e, and on a 100-page window at 10 Gbit/s are not worth
    their time, where four pages as sharp as ``probe_noise``'s default are."""
    bought = {
        noise: _auto(1.25e9, probe_noise=noise).probe_mask(_features(100, probe_pages=4)).any()
        for noise in (0.6, 10.0)
    }
    assert bought == {0.6: True, 10.0: False}


def test_a_window_that_takes_less_than_reading_its_features_is_played_without_them():
    """A window of a size never read is read, unless the read costs more than the window
    is predicted to take (on the newest features read): then it is played on those. The
    read is priced as the newest's, its scan in proportion to the pages it samples."""
    policy = _auto(1.25e9)
    policy.probe_decision_s = 2e-5
    assert policy.wants_features(1)  # nothing read yet: nothing to predict it on
    big = _features(10_000)
    policy.probe_mask(big)
    arm = policy.choose(big)
    policy.update(arm, 1e9, big, Outcome(10_000 * PAGE, 4_000 * PAGE, 2e-3, 2e-3))
    for pages, read in ((1, False), (2, False), (300, True)):
        # the scan and the decision, CPU time over the 2 workers
        cost = (big.cheap_s * min(pages, big.sample) / big.sample + 2e-5) / 2
        predicted = min(policy._predict(big, pages)[3])
        assert (predicted < cost) is not read, (pages, predicted, cost)
        assert policy.wants_features(pages) is read, pages
        if not read:
            assert policy._read.pages == big.pages
            assert policy.choose(None) == arm  # played on the big window's features


def test_an_estimate_known_exactly_leaves_a_probe_nothing_to_reveal():
    """With no probe noise and an estimate of no variance, the spread after a probe was
    0 / 0 (a ZeroDivisionError where numpy had made it nan): it is 0."""
    policy = _auto(1.25e9, probe_noise=0.0)
    policy.ratios.p[:] = 0.0
    assert policy._probe_spreads(8)[1] == [0.0, 0.0]


def test_a_read_is_priced_with_the_decision_of_which_probes_to_buy(monkeypatch):
    """Deciding which probes to buy costs a read window several times what its cheap
    features do: a policy told the price (a replay of a calibrated table) prices every
    later read with it, and one not told times its own decisions."""
    f = _features(1000)
    told = _auto(1.25e9)
    told.probe_decision_s = 2e-3
    told.probe_mask(f)
    assert told._read_s(f.cheap_s) == pytest.approx((f.cheap_s + 2e-3) / 2)  # over 2 workers
    monkeypatch.setattr(Auto, "probe_decision_s", None)
    timing = _auto(1.25e9)
    assert timing._read_s(f.cheap_s) == f.cheap_s / 2  # nothing decided yet
    timing.probe_mask(f)
    assert 0.0 < timing._decision_s < 1.0
    assert timing._read_s(f.cheap_s) == pytest.approx((f.cheap_s + timing._decision_s) / 2)


def test_features_are_skipped_when_they_stopped_changing_the_choice_and_read_on_a_jump():
    """Rereads only to keep the estimates fresh (``upkeep``) are made while reading has
    changed a choice: here no read ever did, and past the first few windows none is made
    (with ``upkeep`` at 0.05 every third window was reread, for nothing). The first few
    are the first two windows' and one after the trial of zstd, which its probe put at 4x
    and which sent 3x: a window that sent more than predicted is read. Once reading has
    paid, they are made again, at least every few windows."""
    for paid in (False, True):
        read = _rereads(paid)
        assert read[0] and not all(read)  # skipped once they stopped paying...
        if paid:
            runs = "".join("r" if r else "." for r in read).split("r")
            assert max(len(run) for run in runs) <= 3
        else:
            assert sum(read[:5]) == 3 and not any(read[5:])


def _rereads(paid: bool) -> list[bool]:
    """Which of 12 windows of one size, whose reads never change the choice, read their
    features under ``upkeep`` 0.05; ``paid``: as if a read long before had changed one
    (a learnt value above 0, too small to buy a read by itself)."""
    policy = _auto(1.25e9, upkeep=0.05)
    small = _probed(_features(300, delta_bytes=PAGE, probe_pages=8), {1: 3.0, 2: 4.0})
    read = []
    for _ in range(12):
        if paid and policy._feature_value < 1e-30:
            policy._feature_value = 1e-30
        wants = policy.wants_features(300)
        read.append(wants)
        f = small if wants else None
        if f is not None:
            policy.probe_mask(f)
        arm = policy.choose(f)
        policy.update(arm, 1e9, f, Outcome(300 * PAGE, 100 * PAGE, 1e-4, 1e-4))
    assert policy.wants_features(300 * 10)  # ...and read again for a window 10x larger
    return read


def _reads_on_a_host(clock: str, stretch: float, pages: int = 1000, windows: int = 12) -> str:
    """Which of ``windows`` windows of ``pages`` pages read their features ("r"), each
    played as calibrated but for its time by ``clock``, ``stretch`` times its CPU time."""
    f = _features(pages)
    calibrated = _auto(1.25e9)
    calibrated.probe_mask(f)
    _, out, cpu, _ = calibrated._predict(f)
    policy = _auto(1.25e9, clock=clock, upkeep=1e-6)  # no rereads for freshness
    read = ""
    for _ in range(windows):
        g = f if policy.wants_features(pages) else None
        read += "." if g is None else "r"
        if g is not None:
            policy.probe_mask(g)
        arm = policy.choose(g)
        policy.update(arm, 0.0, g, Outcome(pages * PAGE, out[arm], cpu[arm] * stretch, cpu[arm]))
    return read


def test_a_read_is_priced_in_the_objective_s_clock_as_the_window_is():
    """Encoders whose wall time is 4x their CPU time (a crowded host, by the wall clock)
    make every window's predicted time 4x as long; the features' cost is CPU time, which
    the same host stretches as much. Priced unstretched against a stretched window, a read
    looked 4x cheaper than it is, fell under ``negligible`` and was made every window."""
    assert _reads_on_a_host("cpu", 1.0) == "rr.........."
    assert _reads_on_a_host("wall", 4.0) == "rr.........."  # was "rrrrrrrrrrrr"


@pytest.mark.parametrize(("negligible", "burst_reads"), [(0.003, range(10)), (0.01, [15])])
def test_windows_of_two_sizes_in_turn_are_each_played_on_their_own_size_s_features(
    negligible, burst_reads
):
    """A program that alternates bursts with a few pages of housekeeping: each size's
    features, once read, describe its next windows better than the other size's do, so a
    change of size alone does not cost a read; a window played without features is priced
    on the last read of its own size, and rereads for freshness are bounded by the time
    played on each size's features (a burst's time does not buy the small windows reads).
    A read that costs less than ``negligible`` of its window is made every time: the
    burst's cheap features cost 0.6 % of it, and the small windows' far more of theirs,
    whatever the burst before them took."""
    policy = _auto(125e6, negligible=negligible)
    sizes = {10_000: 40.0, 20: float(PAGE)}  # sparse bursts, small windows rewritten whole
    features = {n: _features(n, delta_bytes=each) for n, each in sizes.items()}
    reads = {n: 0 for n in sizes}
    played = {n: set() for n in sizes}
    for window in range(30):
        n = 10_000 if window % 2 else 20
        wants = policy.wants_features(n)
        reads[n] += wants
        f = features[n] if wants else None
        if f is not None:
            policy.probe_mask(f)
        arm = policy.choose(f)
        played[n].add(KINDS[arm])
        sent = policy._expected_out  # as predicted: no sign that the content moved
        policy.update(arm, 1e9, f, Outcome(n * PAGE, sent, 1e-4, 1e-4))
    assert played == {10_000: {"delta"}, 20: {"compress"}}
    assert reads[20] <= 5  # of 15: the first, then upkeep of the small windows' own time
    assert reads[10_000] in burst_reads  # upkeep: about every other burst, at 2 % of its time


@pytest.mark.parametrize(("cheap_s", "fewest", "most"), [(40e-6, 10, 60), (4e-3, 1, 2)])
def test_rereading_features_costs_at_most_upkeep_of_the_time_played_without_them(
    cheap_s, fewest, most
):
    policy = _auto(1.25e9, upkeep=0.1)
    f = _probed(_features(300, delta_bytes=PAGE, probe_pages=8), {1: 3.0, 2: 4.0})
    f.cheap_s = cheap_s
    reads, blind_s = 0, 0.0
    for _ in range(60):
        # as if reading had changed a choice once (see _rereads): upkeep may reread
        if policy._feature_value < 1e-30:
            policy._feature_value = 1e-30
        wants = policy.wants_features(300)
        if wants:
            reads += 1
            policy.probe_mask(f)
        arm = policy.choose(f if wants else None)
        if not wants:
            blind_s += policy._expected
        # sending what was predicted: nothing but upkeep asks for a reread
        sent = policy._expected_out
        policy.update(arm, 1e15, f if wants else None, Outcome(300 * PAGE, sent, 1e-4, 1e-4))
    assert fewest <= reads <= most
    assert (reads - 1) * cheap_s / 2 <= 0.1 * blind_s + cheap_s / 2


def test_the_default_configuration_is_reported_as_plain_auto():
    assert parse_policy("auto").label == "auto"
    assert parse_policy("auto:drift=0.3").label == "auto(drift=0.3)"


@given(
    pages=st.floats(0, 1e6),
    zero=st.floats(0, 1),
    delta=st.one_of(st.none(), st.floats(0, 5000), st.just(float("nan"))),
    probe_pages=st.integers(0, 32),
    probe_out=st.one_of(st.none(), st.floats(0, 1e6), st.just(float("nan"))),
    out_ratio=st.floats(0.5, 500),
)
def test_any_window_gives_an_arm_and_a_finite_state(
    pages, zero, delta, probe_pages, probe_out, out_ratio
):
    """All-zero windows, windows with nothing held, probes of nothing: the policy still
    chooses one of its arms and learns nothing it cannot represent."""
    policy = _auto(125e6)
    for _ in range(3):
        f = _features(pages, delta_bytes=delta, probe_pages=probe_pages)
        f.context = np.array([1.0, zero, 0.5, 0.02, 1.0])
        if probe_out is not None:
            _probed(f, {1: 3.0})
            f.probe_out[1] = probe_out
        mask = policy.probe_mask(f)
        assert mask.shape == (len(LABELS),)
        arm = policy.choose(f)
        assert 0 <= arm < len(LABELS)
        guest = max(pages, 1.0) * PAGE
        policy.update(arm, 1e8, f, Outcome(guest, guest / out_ratio, 1e-3, 1e-3))
    assert np.isfinite(policy.ratios.x).all() and np.isfinite(policy.cpu_arm).all()


def test_a_replayed_window_without_delta_estimates_is_one_without_them():
    """A table stores a window with nothing held as estimates of nan: the policy reads
    them as no estimate (every page through the fall-back), not as nan payloads."""
    from migcodec.selector import make_objective, parse_arms
    from migcodec.selector.evaluation import build_table, evaluate, workload_windows

    windows = workload_windows("zero,text,random", 8, 64, 0, 2)  # starts all-zero
    table = build_table(windows, parse_arms("raw;lz4;dsa-delta"), repeats=1)
    assert table.features(0).delta_bytes is None
    score = evaluate(table, [parse_policy("auto")], make_objective("throughput")).scores[-1]
    assert np.isfinite(score.total) and score.total > 0


def test_each_delta_arm_sends_pages_not_held_as_its_own_fall_back_arm_would():
    """Arms name the arm their fall-back is configured like; with half the pages held, the
    delta arm's predicted payload is half its delta, half that arm's payload."""
    from migcodec.selector import parse_arms
    from migcodec.selector.arms import Arm, fallback_arms

    arms = parse_arms(
        "raw;lz4;zstd:level=3;dsa-delta;xbzrle:fallback=zstd;dsa-delta:fallback=zlib-ng"
    )
    assert fallback_arms(arms) == [-1, -1, -1, 1, -1, -1]
    arms = parse_arms("raw;lz4;zstd;dsa-delta:fallback=zstd")
    assert fallback_arms(arms) == [-1, -1, -1, 2]
    # a table replayed where one of its plugins is not installed: that arm has none
    assert fallback_arms(parse_arms("lz4;no-such-codec;dsa-delta")) == [-1, -1, 0]
    # a fall-back given as a codec config (the API's arms, a table's): hashed, not a
    # TypeError out of the cache of fall-backs
    nested = Arm.of({"name": "xbzrle", "fallback": {"name": "zstd", "level": 3}})
    assert fallback_arms([*parse_arms("lz4;zstd:level=3"), nested]) == [-1, -1, 1]
    for fallbacks, expected in (([-1, -1, -1, 1], 3.0), ([-1, -1, -1, 2], 5.0)):
        policy = parse_policy("auto").bind(
            len(LABELS),
            Throughput(125e6, 2),
            KINDS,
            labels=LABELS,
            costs=COSTS,
            fallbacks=fallbacks,
        )
        f = _probed(_features(10_000, delta_bytes=40.0), {1: 3.0, 2: 5.0})
        f.held_frac = 0.5
        policy.choose(f)  # the probes sharpen both compressors' estimates
        payload = policy._predict(f)[0]
        fallback = payload[fallbacks[3]]
        assert fallback == pytest.approx(PAGE / expected, rel=0.2)
        assert payload[3] == pytest.approx(0.5 * 40.0 + 0.5 * fallback)
        # and their CPU: half at the delta arm's own (record) cost, half at that arm's,
        # and that arm's call once a batch (of 64 pages, half of them not held)
        fb_cost = COSTS[fallbacks[3]]
        per_page = policy._payloads(f)[2][3]
        expected = 0.5 * 4e-6 + 0.5 * fb_cost.per_page[0] + fb_cost.per_call / 64
        assert per_page == pytest.approx(expected)


def _first_pass_policy(lz4_factor: float):
    """A delta arm whose own call is cheaper than its fall-back arm's (lz4), as a calibrated
    XBZRLE's is, on a fast link (CPU-bound), with lz4 measured at ``lz4_factor`` times its
    calibration, and a window of 10 000 pages the destination holds none of."""
    policy = _auto(12.5e9, costs=[*COSTS[:3], ArmCost(5e-6, 0.0, [4e-6] * len(KNOTS))])
    policy._arm_factor[1] = lz4_factor
    f = _probed(_features(10_000), {1: 3.0, 2: 3.1})
    assert f.held_frac == 0.0
    return policy, f


@pytest.mark.parametrize("lz4_factor", [1.0, 1.5])
def test_a_delta_arm_on_pages_not_held_costs_more_than_its_fall_back_arm(lz4_factor):
    """On a first pass the destination holds nothing, and a delta arm sends every page
    through its fall-back: it does the fall-back arm's work, its calls included, at the
    fall-back arm's factor, and its own calls besides. Priced as the fall-back's pages
    plus only its own call (a calibrated XBZRLE's costs 6 us, lz4's 10), at its own
    factor, it won first passes from the arm it then ran."""
    policy, f = _first_pass_policy(lz4_factor)
    _, out, cpu, loss = policy._predict(f)
    assert out[3] == pytest.approx(out[1])
    calls = -(-10_000 // 64)
    assert cpu[3] == pytest.approx(cpu[1] + 5e-6 * calls, rel=0.01)  # lz4's, and its own call
    assert loss[3] > loss[1]


def test_a_delta_arm_played_where_nothing_is_held_learns_nothing_of_its_records():
    """Its window's time is lz4's at lz4's factor and its own calls at its model: its own
    factor stays, and the window does not count as a measurement of its records."""
    policy, f = _first_pass_policy(1.5)
    policy._predict(f)
    calls = -(-10_000 // 64)
    busy = 1.5 * (20e-6 * calls + 2e-6 * 10_000) + 5e-6 * calls  # lz4's work, and its calls
    out = 10_000 * PAGE / 3
    policy.update(3, 0.0, f, Outcome(10_000 * PAGE, out, busy, busy, None, 0))
    assert policy._arm_factor[3] * policy._shared_factor == pytest.approx(1.0, abs=0.02)
    assert 3 in policy._untried


def test_a_delta_window_that_cost_what_its_split_predicts_teaches_no_cpu_error():
    """Half the pages held: a window whose CPU time is half records at the delta arm's
    cost and half lz4 pages at lz4's leaves every CPU factor where it was."""
    policy = _auto(125e6)
    f = _probed(_features(6400, delta_bytes=40.0), {1: 3.0})
    f.held_frac = 0.5
    policy.choose(f)
    each = policy._payloads(f)[0][3]
    pages = 6400
    out = pages + 100 * 8 + each * pages
    busy = 100 * (60e-6 + 20e-6) + pages * (0.5 * 4e-6 + 0.5 * 2e-6)  # lz4 called per batch
    policy.update(3, 0.0, f, Outcome(pages * PAGE, out, busy, busy, None, 0))
    assert policy.cpu_shared == pytest.approx(0.0, abs=0.02)
    assert policy.cpu_arm[3] == pytest.approx(0.0, abs=0.02)


def test_an_arms_first_play_sets_its_cpu_factor_to_what_it_measured():
    """A host busier than the calibration's (a migration's guest and stream share its
    cores) shows on the first window an arm is played: its CPU correction starts at what
    that window measured, then averages, rather than creeping up a step at a time while
    the first pass of memory goes out on a model that is off."""
    policy = _auto(125e6)
    f = _features(10_000, delta_bytes=PAGE)
    calls = -(-10_000 // 64)
    model = 20e-6 * calls + 2e-6 * 10_000  # lz4's calibrated cost of the window
    outcome = Outcome(10_000 * PAGE, 10_000 * PAGE / 3, 3 * model, 3 * model)
    policy.update(1, 1e8, f, outcome)
    assert policy._shared_factor * policy._arm_factor[1] == pytest.approx(3.0)
    policy.update(1, 1e8, f, Outcome(10_000 * PAGE, 10_000 * PAGE / 3, model, model))
    assert policy._shared_factor * policy._arm_factor[1] == pytest.approx(3.0**0.5)


def test_an_arm_played_alone_puts_most_of_its_cpu_error_on_the_host():
    """lz4 measured at 3x its model says the host is slow, not that lz4 alone is: zstd,
    never played, is predicted slower too, by most of that (an even split would leave it
    looking cheaper against lz4 than it is, and get it played on a tie)."""
    for clock in ("cpu", "wall"):
        policy = _auto(125e6, clock)
        f = _features(10_000)
        model = 20e-6 * -(-10_000 // 64) + 2e-6 * 10_000
        policy.update(1, 1e8, f, Outcome(10_000 * PAGE, 10_000 * PAGE / 3, 3 * model, 3 * model))
        assert policy._shared_factor * policy._arm_factor[1] == pytest.approx(3.0)
        zstd = policy._shared_factor * policy._arm_factor[2]
        assert 3.0**0.5 < zstd < 3.0, clock


def _play_delta(policy, arm: int, times: float) -> None:
    """Play delta ``arm`` on a window of 10 000 held pages whose records took ``times``
    the model's CPU time."""
    f = _features(10_000, delta_bytes=40.0)
    f.delta_bytes = np.array([np.nan, np.nan, np.nan, 40.0, 40.0])
    policy.choose(f)
    each = policy._payloads(f)[0][arm]
    calls = -(-10_000 // 64)
    model = 60e-6 * calls + 4e-6 * 10_000
    out = 10_000 + calls * 8 + each * 10_000
    busy = times * model
    policy.update(arm, 0.0, f, Outcome(10_000 * PAGE, out, busy, busy, None, 0))


def test_a_delta_arm_played_alone_moves_the_delta_arms_and_not_the_host():
    """dsa-delta's records measured at 3x their model: delta work meeting this memory, not
    the host, so lz4 and zstd are predicted at their models still (a shared error made
    every compressor look 3x slower, and the best of them never got tried), while xbzrle,
    never played, is predicted slower by the part the delta arms share: what the
    calibration missed of one delta format it missed of the other about as much as it
    missed of its own. The split is the Kalman filter's, in proportion to the shared
    part's prior variance and the played arm's own (grown by one play's drift)."""
    policy = _auto_two_deltas()
    _play_delta(policy, 3, 3.0)
    shared, own = 0.04, 0.04 + policy._delta_drift
    total = shared + own
    moved = total / (total + 0.04)  # against one whole window's variance
    assert policy._arm_factor[3] == pytest.approx(3.0**moved)
    assert policy._arm_factor[4] == pytest.approx(3.0 ** (moved * shared / total))
    assert 3.0**0.5 < policy._arm_factor[3] < 3.0
    assert policy._shared_factor == 1.0
    assert policy._arm_factor[1] == policy._arm_factor[2] == 1.0


def test_a_delta_arm_measured_before_keeps_its_factor_while_another_is_played():
    """xbzrle measured at its model on a few windows, then dsa-delta played on many at 2x
    its own (a key-value cache's measured tables: DSA records at 1.2-1.5x their model,
    XBZRLE at 0.95x). dsa-delta's factor goes to 2; xbzrle's stays near 1, since its own
    windows pinned it: learnt apart, each dsa-delta window moved xbzrle by the shared
    part's share of the error, and forty of them put it at 1.15 (1.04 here)."""
    policy = _auto_two_deltas()
    for _ in range(3):
        _play_delta(policy, 4, 1.0)
    for _ in range(40):
        _play_delta(policy, 3, 2.0)
    assert policy._arm_factor[3] == pytest.approx(2.0, rel=0.02)
    assert policy._arm_factor[4] < 1.1
    assert policy._shared_factor == 1.0


def test_a_play_of_a_few_pages_does_not_end_an_arms_trials():
    """One page measures an arm's fixed cost and the clock's noise: the arm is tried again
    on a larger window, and counts as tried once it has measured a window's worth."""
    policy = _auto(125e6)
    model = 20e-6 + 2e-6
    policy.update(1, 1e8, _features(1), Outcome(PAGE, PAGE / 3, model, model))
    assert 1 in policy._untried
    calls = -(-10_000 // 64)
    model = 20e-6 * calls + 2e-6 * 10_000
    policy.update(
        1, 1e8, _features(10_000), Outcome(10_000 * PAGE, 10_000 * PAGE / 3, model, model)
    )
    assert 1 not in policy._untried


def test_an_arm_not_measured_for_long_is_tried_again_and_measured_anew():
    """An arm is played again only while its CPU factor says it is the best: measured once
    on a slow window, it would stay off the stream for good. Each second of stream that
    plays other arms makes its factor less known (here each window sends for 0.11 s), and
    once that is back at its prior it counts as untried: its next play sets its factor to
    what that window measured, as a first play does, where a moving average would keep
    half the slow window's."""
    calls = -(-10_000 // 64)
    lz4_model = 20e-6 * calls + 2e-6 * 10_000
    zstd_model = 20e-6 * calls + 8e-6 * 10_000
    f = _features(10_000)

    def play(policy, arm, model, times):
        outcome = Outcome(10_000 * PAGE, 10_000 * PAGE / 3, times * model, times * model)
        policy.update(arm, 1e8, f, outcome)

    for cost_drift, retried in ((0.02, True), (0.0, False)):  # back at its prior in 1 s
        policy = _auto(125e6, cost_drift=cost_drift)
        play(policy, 1, lz4_model, 2.0)  # lz4's first window, at twice its model
        assert 1 not in policy._untried
        for _ in range(5):
            play(policy, 2, zstd_model, 1.0)
        assert 1 not in policy._untried
        for _ in range(10):
            play(policy, 2, zstd_model, 1.0)
        assert (1 in policy._untried) is retried
        play(policy, 1, lz4_model, 1.0)  # lz4 again, at its model
        factor = policy._shared_factor * policy._arm_factor[1]
        if retried:
            assert factor == pytest.approx(1.0)
        else:
            assert 1.1 < factor < 2.0


def test_a_host_speed_not_yet_measured_is_not_bet_a_window_on_a_better_ratio():
    """Probes say zstd compresses 2.6x and lz4 2x; at the calibration's speed zstd stays
    link-bound and wins. Timed in wall time on a host shared with a guest, the calibration
    may be several times off, and at 4x zstd would be CPU-bound: before any window has
    measured the host, lz4 is the safe bet there (not with CPU time, whose calibration
    holds). Once windows show the host runs as calibrated, zstd is played."""
    link = 350e6
    chosen = {}
    for clock in ("cpu", "wall"):
        policy = _auto(link, clock)
        chosen[clock] = LABELS[policy.choose(_probed(_features(10_000), {1: 2.0, 2: 2.6}))]
    assert chosen == {"cpu": "zstd level=3", "wall": "lz4"}
    policy = _auto(link, "wall")
    model = 20e-6 * -(-10_000 // 64) + 2e-6 * 10_000
    for _ in range(4):
        f = _probed(_features(10_000), {1: 2.0, 2: 2.6})
        policy.choose(f)
        policy.update(1, 1e8, f, Outcome(10_000 * PAGE, 10_000 * PAGE / 2, model, model))
    assert LABELS[policy.choose(_probed(_features(10_000), {1: 2.0, 2: 2.6}))] == "zstd level=3"
    assert policy._cpu_scales is None  # measured: predictions are point estimates again


@pytest.mark.parametrize(("scale", "reads"), [(1.0, False), (3.0, True), (1 / 3, True)])
def test_a_window_that_went_otherwise_than_predicted_gets_the_next_one_read(scale, reads):
    """Learnt through the objective's utility, as a Selector feeds it: once reading features
    stopped changing the choice they are skipped, unless the last window sent more or less
    than predicted (its content moves faster than the estimates follow)."""
    policy = _auto(125e6)
    objective = policy.objective
    f = _features(10_000)
    f.cheap_s = 0.01  # dear enough that only their value or a surprise pays for a read

    def play(scale: float) -> None:
        policy.probe_mask(f)
        arm = policy.choose(f)
        _, out, cpu, _ = policy._predict(f)
        outcome = Outcome(10_000 * PAGE, out[arm] * scale, cpu[arm] * scale, cpu[arm] * scale)
        policy.update(arm, objective.utility(objective.reward(outcome)), f, outcome)

    play(1.0)
    play(1.0)  # the second read changed nothing: reading is worth nothing lately
    play(scale)
    assert policy.wants_features(10_000) is reads


def test_an_arm_not_yet_played_is_tried_on_a_part_of_a_window_when_its_prior_says_it_may_pay():
    """A delta arm predicted a tenth dearer than the best may be half its cost (a
    calibration prices content by ratio alone): it is tried on the window's first
    batches, the rest of the window played by the best arm, as soon as knowing it is worth
    what that part may lose, and then judged on what it measured. On a window a trial
    would take most of, it waits for the stream to have run long enough. An arm out of
    its prior's reach is never tried."""
    policy = _auto(1.25e10)  # CPU-bound: a window's loss is its CPU time over 2 workers
    loss = [10e-3, 5e-3, 20e-3, 5.5e-3]
    cpu = [2 * x for x in loss]
    out = [1.0] * 4
    small = _features(300, delta_bytes=400.0)
    assert policy._pick(small, loss, out, cpu) == 1 and policy.split() is None
    f = _features(10_000, delta_bytes=400.0)
    f.held_frac = 0.2  # most pages would go through lz4: a trial would measure lz4
    assert policy._pick(f, loss, out, cpu) == 1 and policy.split() is None
    f.held_frac = 1.0
    assert policy._pick(f, loss, out, cpu) == 3
    assert policy.split() == (1, 4 * 64)  # dsa-delta on the first 4 batches, lz4 after
    policy._window_pages = 10_000
    share = 256 / 10_000
    policy.update(
        3, 0.0, f, Outcome(10_000 * PAGE, 10_000 * 100, 11e-3, 11e-3, None, 0).scaled(share)
    )
    assert 3 not in policy._untried
    assert policy._played_bytes == pytest.approx(10_000 * PAGE)  # the whole window played
    assert policy._pick(f, loss, out, cpu) == 1  # measured now: on its prediction alone
    assert policy.split() is None
    assert 2 in policy._untried  # zstd at 4x lz4's cost: never worth a window


def test_a_switch_of_kind_to_a_compressor_known_from_little_needs_a_wider_margin():
    """After a window of DSA records played whole, lz4, whose ratio nothing has shown yet (a
    standard deviation of 1.1 in its log), replaces them only when predicted more than
    13 % faster (the margin and a tenth of that): on a recorded database's second window,
    lz4 predicted 2.7 % ahead of XBZRLE took 19 % longer. Before, 2 % sufficed."""
    f = _features(10_000, delta_bytes=400.0)
    policy = _auto(1.25e10)
    policy._untried = []  # every arm measured: nothing to try
    policy._window_pages = 10_000
    policy.update(3, 0.0, f, Outcome(10_000 * PAGE, 10_000 * 100, 10e-3, 10e-3, None, 0))
    out = [1.0] * 4  # CPU-bound: a window's loss is its CPU time over 2 workers

    def pick(lz4):
        loss = [20e-3, lz4, 20e-3, 10e-3]
        return policy._pick(f, loss, out, [2 * x for x in loss])

    assert pick(9.0e-3) == 3
    assert pick(8.6e-3) == 1


def test_an_arm_of_the_other_kind_replaces_the_arm_played_last_only_past_a_margin():
    """A delta arm predicted 1 % below the compressor that played the last window whole
    does not replace it (the two kinds are predicted by models whose errors owe nothing
    to each other), 3 % below it does, and with no margin any gain past a tenth of the
    compressor's log-ratio standard deviation (0.1 after one window) does. Between arms of
    one kind the least predicted loss plays. A window played in part (a trial) leaves the
    arm played last as it was."""
    f = _features(10_000, delta_bytes=400.0)
    out = [1.0] * 4  # CPU-bound: a window's loss is its CPU time over 2 workers
    whole = Outcome(10_000 * PAGE, 10_000 * 100, 10e-3, 10e-3, None, 0)

    def played_lz4(**params):
        policy = _auto(1.25e10, **params)
        policy._untried = []  # every arm measured: nothing to try
        policy._window_pages = 10_000
        policy.update(1, 0.0, f, whole)
        return policy

    def pick(policy, loss):
        return policy._pick(f, loss, out, [2 * x for x in loss])

    policy = played_lz4()
    assert pick(policy, [20e-3, 10e-3, 20e-3, 9.9e-3]) == 1
    assert pick(policy, [20e-3, 10e-3, 20e-3, 9.7e-3]) == 3
    assert pick(policy, [20e-3, 10e-3, 9.99e-3, 20e-3]) == 2  # zstd, a compressor too
    assert pick(played_lz4(cross_margin=0), [20e-3, 10e-3, 20e-3, 9.85e-3]) == 3
    assert pick(played_lz4(cross_margin=0), [20e-3, 10e-3, 20e-3, 9.95e-3]) == 1
    policy.update(3, 0.0, f, whole.scaled(256 / 10_000))  # dsa-delta on a part
    assert pick(policy, [20e-3, 10e-3, 20e-3, 9.9e-3]) == 1
    policy.update(3, 0.0, f, whole)  # and on a whole window
    assert pick(policy, [20e-3, 9.9e-3, 20e-3, 10e-3]) == 3


def _host_known(policy):
    """``policy`` as after its first windows measured the host: losses are predicted at
    the CPU factor's estimate, no longer as an expectation over its prior."""
    policy._cpu_var = _CPU_DRIFT_VAR  # the least the update keeps
    policy._cpu_scales = policy._factor_scales()
    assert policy._cpu_scales is None
    return policy


#: a 10 000-page window at 10 Gbit/s over 2 workers: lz4 keeps the encoders busy 10 ms
#: and the link 5 ms; raw the encoders 2.5 ms and the link 32.8 ms; dsa-delta is bound
#: by the link at 16 ms; zstd by its CPU at 40 ms
BALANCE_CPU = [5e-3, 20e-3, 80e-3, 30e-3]
BALANCE_OUT = [41e6, 6.25e6, 4e6, 20e6]


def _balance_loss(link: float = 1.25e9) -> list[float]:
    return [max(c / 2, o / link) for c, o in zip(BALANCE_CPU, BALANCE_OUT, strict=True)]


def test_a_window_is_shared_by_an_arm_that_keeps_the_encoders_busy_and_one_that_fills_the_link():
    """lz4 is the best arm, bound by the encoders; raw on 1408 pages of the window (22
    batches, where encoders and link are about equally busy) and lz4 on the rest take
    8.94 ms against lz4's 10. The arm learnt from longest ago plays the first part, the one
    the update learns from: raw, then lz4."""
    policy = _host_known(_auto(1.25e9))
    policy._window_pages = 10_000
    f = _features(10_000)
    loss = _balance_loss()
    assert policy._pick(f, loss, BALANCE_OUT, BALANCE_CPU) == 0
    assert policy.split() == (1, 1408.0)
    share = 1408 / 10_000
    # the window's predicted time, and raw's bytes for the whole window (the update scales
    # them to the part it learns from)
    assert policy._expected == pytest.approx(max(10e-3 - share * 7.5e-3, 5e-3 + share * 27.8e-3))
    assert policy._expected == pytest.approx(8.94e-3, abs=0.01e-3)
    assert policy._expected_out == BALANCE_OUT[0]
    played = Outcome(10_000 * PAGE, 41e6, 5e-3, 5e-3, None, 0).scaled(share)
    policy.update(0, 0.0, f, played)
    assert policy._pick(f, loss, BALANCE_OUT, BALANCE_CPU) == 1
    assert policy.split() == (0, 10_000 - 1408.0)


@pytest.mark.parametrize(
    ("link", "pages", "balance"),
    [
        (1.25e9, 10_000, 0.2),  # it saves 10.6 %, less than the margin asked for
        (1.25e9, 100, 0.05),  # a window of less than two batches is not split
        (1.25e11, 10_000, 0.0),  # every arm keeps the encoders busier than the link: raw
    ],
)
def test_a_window_is_played_whole_when_sharing_it_saves_too_little_or_cannot(link, pages, balance):
    policy = _host_known(_auto(link, balance=balance))
    policy._window_pages = pages
    loss = _balance_loss(link)
    assert policy._pick(_features(pages), loss, BALANCE_OUT, BALANCE_CPU) == loss.index(min(loss))
    assert policy.split() is None


def test_no_window_is_shared_on_a_host_whose_encoders_run_slower_than_calibrated():
    """Encoders at twice their calibrated time wait for cores other threads hold: the
    model's idle encoders and link are not free there."""
    policy = _host_known(_auto(1.25e9))
    policy._window_pages = 10_000
    policy.cpu_shared = math.log(2.0)
    policy._shared_factor = 2.0
    assert policy._pick(_features(10_000), _balance_loss(), BALANCE_OUT, BALANCE_CPU) == 1
    assert policy.split() is None
    policy.cpu_shared, policy._shared_factor = math.log(1.4), 1.4  # about as calibrated
    assert policy._pick(_features(10_000), _balance_loss(), BALANCE_OUT, BALANCE_CPU) == 0


@given(  # ranges where encoders bind some arms and the link others: a split in 1 of 4
    cpu=st.lists(st.floats(1e-5, 0.1), min_size=4, max_size=4),
    out=st.lists(st.floats(1e3, 1e8), min_size=4, max_size=4),
    pages=st.floats(1, 1e5),
    link=st.floats(1e8, 1e10),
    balance=st.floats(0, 0.2),
)
def test_a_shared_window_saves_at_least_balance_in_whole_batches(cpu, out, pages, link, balance):
    """Whatever the predictions: the best arm plays the whole window, or it and one other
    arm play parts of it, cut at a whole batch, predicted to save at least ``balance`` of
    the best arm's time (every arm measured: no trial splits a window)."""
    policy = _host_known(_auto(link, balance=balance))
    policy._untried = []
    policy._window_pages = pages
    loss = [max(c / 2, o / link) for c, o in zip(cpu, out, strict=True)]
    best = loss.index(min(loss))
    arm = policy._pick(_features(pages), loss, out, cpu)
    split = policy.split()
    if split is None:
        assert arm == best and policy._expected == loss[best]
        return
    rest, first = split
    assert best in (arm, rest) and arm != rest
    assert 0 < first < pages
    partner_pages = first if arm != best else pages - first
    assert partner_pages % 64 == 0
    assert policy._expected <= loss[best] * (1 - balance)
    share = partner_pages / pages
    partner = arm if arm != best else rest
    busy = (cpu[best] + share * (cpu[partner] - cpu[best])) / 2
    sending = (out[best] + share * (out[partner] - out[best])) / link
    assert policy._expected == pytest.approx(max(busy, sending))


def test_no_window_is_shared_while_the_host_s_speed_is_unknown():
    """Before any window measured the host, the encoders' time is a guess; which resource
    binds is part of it."""
    policy = _auto(1.25e9)
    policy._window_pages = 10_000
    assert policy._pick(_features(10_000), _balance_loss(), BALANCE_OUT, BALANCE_CPU) == 1
    assert policy.split() is None


def test_a_trial_waits_until_knowing_the_arm_is_worth_what_its_part_may_lose():
    """The value of knowing an arm is in the bytes the stream will send, taken as many as
    it has sent; a trial's cost is the part of the window it plays. On a window a trial
    would take most of, one window played does not pay for it and ten do; on a large one
    the trial bets only its first batches, and goes ahead at once."""
    policy = _auto(1.25e10)
    loss = [10e-3, 5e-3, 20e-3, 5.5e-3]
    cpu, out = [2 * x for x in loss], [1.0] * 4
    policy._played_bytes = 300 * PAGE
    assert policy._pick(_features(300, delta_bytes=400.0), loss, out, cpu) == 1
    assert policy._pick(_features(100_000, delta_bytes=400.0), loss, out, cpu) == 3
    policy._played_bytes = 10 * 300 * PAGE
    assert policy._pick(_features(300, delta_bytes=400.0), loss, out, cpu) == 3
    assert policy.split() == (1, 4 * 64)  # 256 of its 300 pages


@pytest.mark.parametrize(("scale", "reads"), [(1.5, False), (10.0, True)])
def test_a_window_that_sent_more_gets_the_next_one_read_only_if_another_arm_would_win(scale, reads):
    """More bytes than predicted, but not enough that the runner-up would have lost less:
    the choice stands and the features are not reread; enough more that it would have:
    they are."""
    policy = _auto(125e6)
    objective = policy.objective
    f = _probed(_features(10_000), {1: 2.0, 2: 4.0})  # zstd well ahead of lz4
    f.cheap_s = 0.01  # dear enough that only their value or a surprise pays for a read

    def play(scale: float) -> None:
        policy.probe_mask(f)
        arm = policy.choose(f)
        _, out, cpu, _ = policy._predict(f)
        outcome = Outcome(10_000 * PAGE, out[arm] * scale, cpu[arm], cpu[arm])
        policy.update(arm, objective.utility(objective.reward(outcome)), f, outcome)

    play(1.0)
    play(1.0)
    policy.probe_mask(f)
    arm = policy.choose(f)
    loss = policy._predict(f)[3]
    margin = min(x for i, x in enumerate(loss) if i != arm) / policy._expected
    assert (scale > margin) is reads  # the scales straddle the margin
    _, out, cpu, _ = policy._predict(f)
    outcome = Outcome(10_000 * PAGE, out[arm] * scale, cpu[arm], cpu[arm])
    policy.update(arm, objective.utility(objective.reward(outcome)), f, outcome)
    assert policy.wants_features(10_000) is reads


def test_each_window_read_counts_once_in_the_pooled_delta_offsets():
    """Reading a window's features prices the last window read again beside it (what
    reading them avoided); that must not pool the last window's sample a second time:
    the offsets come out as pooling each window once."""

    def window(dsa: float, xbzrle: float):
        f = _features(1000, delta_bytes=dsa)
        f.delta_bytes = np.array([np.nan, np.nan, np.nan, dsa, xbzrle])
        return f

    samples = [(400.0, 300.0), (400.0, 500.0), (300.0, 600.0), (500.0, 200.0)]
    policy, once = _auto_two_deltas(), _auto_two_deltas()
    for dsa, xbzrle in samples:
        f = window(dsa, xbzrle)
        policy.probe_mask(f)
        policy.choose(f)
        once._delta_estimates(window(dsa, xbzrle))
    assert policy._delta_offsets[3:] == pytest.approx(once._delta_offsets[3:])
    assert once._delta_offsets[4] != pytest.approx(math.log(200.0 / 500.0) / 2)  # pooled


def test_a_delta_arms_offset_from_the_others_is_pooled_over_windows():
    """One window whose sample puts xbzrle above dsa-delta, after several that put it
    below, moves both with the sample's level but keeps their order; the same offset window
    after window turns it."""
    policy = _auto_two_deltas()

    def estimates(dsa: float, xbzrle: float) -> list[float]:
        f = _features(1000, delta_bytes=dsa)
        f.delta_bytes = np.array([np.nan, np.nan, np.nan, dsa, xbzrle])
        return policy._delta_estimates(f)

    for _ in range(5):
        estimates(400.0, 300.0)
    once = estimates(400.0, 500.0)
    assert once[4] < once[3]
    assert once[3] * once[4] == pytest.approx(400.0 * 500.0)  # the window's level is kept
    for _ in range(10):
        later = estimates(400.0, 500.0)
    assert later[4] > later[3]


def test_a_trial_by_wall_clock_takes_more_batches_than_by_cpu_time():
    """Wall time on a host the guest and the stream share is noisier per batch: a trial
    measured by it plays 16 batches, one by CPU time 4."""
    loss = [10e-3, 5e-3, 20e-3, 5.5e-3]
    cpu, out = [2 * x for x in loss], [1.0] * 4
    for clock, batches in (("cpu", 4), ("wall", 16)):
        policy = _auto(1.25e10, clock)
        policy._cpu_scales = None  # the host's factor known: the trial rule alone decides
        policy._played_bytes = 100 * 10_000 * PAGE
        assert policy._pick(_features(10_000, delta_bytes=400.0), loss, out, cpu) == 3
        assert policy.split() == (1, batches * 64), clock


def test_a_bound_policy_pickles_and_goes_on_as_the_original_does():
    """A copy (pickled, or deep-copied) holds its own filter state, and decides as the
    original does."""
    import copy
    import pickle

    outcome = Outcome(1000 * PAGE, 60 * 1000, 1e-3, 1e-3)

    def play(policy, samples):
        for each in samples:
            f = _features(1000, delta_bytes=each)
            policy.probe_mask(f)
            policy.update(policy.choose(f), 1e9, f, outcome)
        return policy

    for duplicate in (lambda p: pickle.loads(pickle.dumps(p)), copy.deepcopy):
        original = play(_auto(125e6), (40.0, 80.0))
        copied = duplicate(original)
        assert copied._delta_state is not original._delta_state
        play(copied, (20.0, 400.0, 40.0))
        play(original, (20.0, 400.0, 40.0))
        np.testing.assert_array_equal(copied._delta_state, original._delta_state)
        assert copied.cpu_arm == original.cpu_arm and copied.delta_bias == original.delta_bias


@settings(max_examples=150, deadline=None)
@given(
    pages=st.floats(1.0, 1e5),
    m=st.integers(1, 32),
    shift=st.floats(-3.0, 8.0),
    spread=st.floats(0.0, 4.0),
    link=st.sampled_from([1.25e8, 1.25e9, 1e12]),
)
def test_probe_values_in_float_operations_are_those_on_arrays(pages, m, shift, spread, link):
    """The throughput objective's probe values with the CPU factor known (from the first
    windows measured on), in float operations per arm and point, are the array version's
    (kept for every other case), to rounding."""
    policy = _auto(link)
    f = _features(pages, probe_pages=m)
    policy.probe_mask(f)
    policy._cpu_scales = None  # as once windows were measured
    policy.ratios.x[0] += shift
    policy.ratios.p[0, 0] *= spread
    payload, _, _, loss = policy._predict(f)
    order = sorted(range(len(loss)), key=loss.__getitem__)
    args = (m, payload, loss, order[0], loss[order[1]], *policy._window(f, None))
    floats, arrays = policy._probe_values_loop(*args), policy._probe_values_priced(*args)
    for a, b in zip(floats, arrays, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-18)
    # the C extension's, where built, is the loop's to the bit
    assert policy._probe_values(*args) == floats


def test_the_c_probe_valuation_runs_and_refuses_what_it_cannot_read():
    """Built, the extension values the probes (``migcodec codecs`` says so); arrays of the
    wrong shapes are refused in words, not read past their ends."""
    assert auto_module.PROBE_VALUES == "C extension"
    policy = _auto(1.25e9)
    assert policy._c_table is not None
    values = auto_module._native_values
    k = policy.n_arms
    window = (4.0, 0.36, 1.0, 2.0, 0.0, 100.0, 0.0, 100.0, 2.0, 1.0, 0.5, 1e-9)
    window += (4096.0, math.log(4096.0), 5.0, 1.0)
    state = policy.ratios.state
    args = [state, policy._cost_flat, policy._c_table, auto_module._NODES_THEN_WEIGHTS]
    gains, costs = values(*args, [1.0] * k, [4096.0] * k, window)
    assert len(gains) == len(costs) == len(policy._c_list)
    with pytest.raises(ValueError, match="probe_values needs a filter state of 2c \\+ 2 rows"):
        values(state[:-1].copy(), *args[1:], [1.0] * k, [4096.0] * k, window)
    with pytest.raises(ValueError, match="probe_values needs payload as a list of"):
        values(*args, [1.0] * k, [4096.0] * (k - 1), window)
    table = policy._c_table.copy()
    table[0, 0] = k
    with pytest.raises(
        ValueError, match=f"compressor 0 names arm {float(k)}, not one of 0 to {k - 1}"
    ):
        values(*args[:2], table, args[3], [1.0] * k, [4096.0] * k, window)


def _read_once():
    """``_auto`` at 1 Gbit/s after one window of 1000 held pages, read and played."""
    policy = _auto(125e6)
    read = _features(1000, delta_bytes=40.0)
    policy.probe_mask(read)
    policy.update(policy.choose(read), 1e9, read, Outcome(1000 * PAGE, 40.0 * 1000, 1e-3, 1e-3))
    return policy, read


def test_windows_played_on_older_features_teach_the_delta_arms_what_they_sent():
    """A delta arm played on features read on another window learns what its records came
    to over their estimate (the compressors learn that from every play, through their
    filter): windows of the size played on those features, and on the next read of the
    size, price its records that much higher; the window read itself is priced from its
    own sample."""
    policy, read = _read_once()
    delta = 3
    entry = policy._read_entry
    assert entry.stale_bias == 0.0
    before = policy._predict(read, 1000.0, entry.stale_bias)[1][delta]
    # windows played on it sent twice the records it estimated: the bias moves towards
    # log 2 at the policy's step
    for step in range(1, 4):
        policy.wants_features(1000.0)
        policy.choose(None)
        records = policy._prediction.records[delta]
        sent = 1000 * (2.0 * records) + RUN_BYTES * 16 + 1000
        policy.update(delta, 1e9, None, Outcome(1000 * PAGE, sent, 1e-3, 1e-3))
        assert entry.stale_bias == pytest.approx(math.log(2.0) * (1 - 0.7**step), rel=1e-6)
    after = policy._predict(read, 1000.0, entry.stale_bias)[1][delta]
    grown = policy._prediction.records[delta] * 1000 * (math.exp(entry.stale_bias) - 1.0)
    assert after == pytest.approx(before + grown)
    # a new read of the size carries the lesson; its own window is priced without it
    fresh = _features(1100, delta_bytes=40.0)
    policy.probe_mask(fresh)
    assert policy._read_entry is not entry
    assert policy._read_entry.stale_bias == entry.stale_bias
    policy.update(policy.choose(fresh), 1e9, fresh, Outcome(1100 * PAGE, 80.0 * 1100, 1e-3, 1e-3))
    assert policy._read_entry.stale_bias == entry.stale_bias


def test_a_window_played_on_older_features_teaches_them_after_the_next_read():
    """An engine reads the next window's features before it learns from the last: the
    lesson of a window played on older features goes to those, not to the newest read."""
    policy, _ = _read_once()
    delta = 3
    played_on = policy._read_entry
    policy.wants_features(1000.0)
    policy.choose(None)
    records = policy._prediction.records[delta]
    policy.probe_mask(_features(1200, delta_bytes=40.0))  # the next window's, read first
    newest = policy._read_entry
    assert newest is not played_on and newest.stale_bias == 0.0
    sent = 1000 * (2.0 * records) + RUN_BYTES * 16 + 1000
    policy.update(delta, 1e9, None, Outcome(1000 * PAGE, sent, 1e-3, 1e-3))
    assert played_on.stale_bias == pytest.approx(0.3 * math.log(2.0), rel=1e-6)
    assert newest.stale_bias == 0.0


class _UnratedCpu(HostCpu):
    """The CPU objective without its loss rates: a loss only its reward arrays give."""

    @property
    def loss_rates(self):
        return None


class _UnratedWire(WireBytes):
    @property
    def loss_rates(self):
        return None


@pytest.mark.parametrize(
    ("rated", "unrated"), [(HostCpu(), _UnratedCpu()), (WireBytes(), _UnratedWire())]
)
def test_an_objective_with_loss_rates_is_decided_for_as_on_arrays(rated, unrated):
    """Under the CPU and wire objectives ``auto`` predicts in float operations from their
    loss rates (as under the throughput objective): over windows of compressed and delta
    content, probed and played, it buys the probes, chooses the arms and predicts the
    losses that its array path does, to rounding. Priced so that each objective's choice
    moves with the window (under the CPU objective: lz4 on small windows, raw on larger
    ones)."""
    costs = [
        ArmCost(10e-6, 0.0, [0.5e-6] * len(KNOTS)),
        ArmCost(1e-6, 0.0, [0.6e-6] * len(KNOTS)),
        ArmCost(20e-6, 0.0, [8e-6] * len(KNOTS)),
        ArmCost(60e-6, 0.0, [0.1e-6] * len(KNOTS)),
    ]
    policies = [
        parse_policy("auto").bind(
            len(LABELS), objective, KINDS, labels=LABELS, costs=costs, fallbacks=[-1, -1, -1, 1]
        )
        for objective in (rated, unrated)
    ]
    assert policies[0]._fast and not policies[1]._fast
    # what the rates say beyond the loss, which an objective without them cannot: what a
    # read costs, and whether the bytes sent do (test_under_the_wire_objective_reads_...)
    policies[1]._read_rate, policies[1]._bytes_cost = (
        policies[0]._read_rate,
        policies[0]._bytes_cost,
    )
    rng = np.random.default_rng(3)
    for w in range(60):
        pages = float(rng.choice([3.0, 200.0, 5000.0]))
        held = w % 3 == 0
        each = float(rng.uniform(30.0, 900.0))
        ratios = {1: float(rng.uniform(1.2, 3.0)), 2: float(rng.uniform(1.5, 4.0))}
        masks, arms, losses = [], [], []
        for policy in policies:
            f = _features(pages, delta_bytes=each if held else None)
            if policy.wants_features(pages):
                mask = policy.probe_mask(f.cheap())
                masks.append(mask.tolist())
                f = _probed(f, {a: r for a, r in ratios.items() if mask[a]})
            else:
                masks.append(None)
                f = None
            arm = policy.choose(f)
            arms.append(arm)
            losses.append(policy._chosen[0] if policy._chosen is not None else None)
            guest = pages * PAGE
            sent = guest / (ratios.get(arm, 1.0) if not held else PAGE / each)
            outcome = Outcome(guest, sent, 1e-6 * pages, 1e-6 * pages * (1 + arm), zero_pages=0)
            policy.update(arm, rated.reward(outcome), f, outcome)
        assert masks[0] == masks[1] and arms[0] == arms[1], f"window {w}"
        if losses[0] is not None:
            np.testing.assert_allclose(losses[0], losses[1], rtol=1e-9)


def _auto_under(objective):
    return parse_policy("auto").bind(
        len(LABELS), objective, KINDS, labels=LABELS, costs=COSTS, fallbacks=[-1, -1, -1, 1]
    )


def _play_as_predicted(policy, f, pages: float, bytes_scale: float = 1.0) -> None:
    """A window read on ``f`` and played, sending ``bytes_scale`` times the bytes predicted
    for the arm chosen, in the CPU time predicted."""
    policy.probe_mask(f)
    arm = policy.choose(f)
    _, out, cpu, _ = policy._predict(f)
    outcome = Outcome(pages * PAGE, out[arm] * bytes_scale, cpu[arm], cpu[arm])
    objective = policy.objective
    policy.update(arm, objective.utility(objective.reward(outcome)), f, outcome)


@pytest.mark.parametrize("scale", [3.0, 1 / 3])
def test_under_the_cpu_objective_a_window_that_sent_other_bytes_gets_no_read(scale):
    """The bytes a window sends do not enter the CPU objective's loss: one that sent 3x or
    a third of what was predicted, in the CPU time predicted, says nothing a read could
    change the choice on (under the throughput objective it gets the next window read:
    ``test_a_window_that_went_otherwise_than_predicted_gets_the_next_one_read``). Such
    reads cost a recorded QEMU guest 5 % of its CPU time against raw pages alone."""
    policy = _auto_under(HostCpu())
    f = _features(10_000)
    f.cheap_s = 1e-3  # a sixth of the window's CPU time: read only for its value
    _play_as_predicted(policy, f, 10_000)
    _play_as_predicted(policy, f, 10_000)  # nothing changed: reading is worth nothing lately
    _play_as_predicted(policy, f, 10_000, scale)
    assert not policy.wants_features(10_000)


def test_under_the_wire_objective_reads_cost_nothing():
    """CPU time does not enter the wire objective's loss, so neither does a read's: every
    window is read, however its scan's CPU seconds compare with its loss in GB sent.
    Priced as seconds, a read looked a third of a window's loss: a recorded database's
    windows after its first few were played on stale features, on zstd where XBZRLE sent
    a third less, 0.86 of XBZRLE alone."""
    policy = _auto_under(WireBytes())
    f = _features(10_000)
    f.cheap_s = 1e-3
    reads = ""
    for _ in range(6):
        read = policy.wants_features(10_000)
        reads += "r" if read else "."
        if read:
            _play_as_predicted(policy, f, 10_000)
        else:
            arm = policy.choose(None)
            policy.update(arm, 0.0, None, Outcome(10_000 * PAGE, 10_000 * PAGE, 1e-3, 1e-3))
    assert policy._read_s(f.cheap_s) == 0.0
    assert reads == "rrrrrr"


def test_without_a_calibrated_price_a_paused_first_decision_is_not_the_price(monkeypatch):
    """Bound without the machine's price of a decision (a library caller's policy), the
    average starts at the least of the first few decisions timed: a pause in the first
    (0.2 s of this thread's CPU) priced every later read out, and no read timed again."""
    calls = []
    real = Auto._probe_mask

    def paused(self, features):
        calls.append(1)
        if len(calls) == 1:
            start = time.thread_time()
            while time.thread_time() - start < 0.2:
                pass
        return real(self, features)

    monkeypatch.setattr(Auto, "_probe_mask", paused)
    policy = _auto(1.25e9)
    policy.probe_decision_s = None  # timed, not priced
    assert policy.probe_decision_prior_s is None
    f = _features(1000)
    for _ in range(3):
        policy.probe_mask(f)
    assert policy._decision_s < 0.01
    policy.probe_mask(f)  # a fourth, timed normally, moves the average from there
    assert policy._decision_s < 0.01


#: 10 000 pages at 10 Gbit/s: lz4 (ratio 3) sends them in 10.9 ms and keeps the encoders
#: busy 10 ms, raw sends them in 32.8 ms, zstd (ratio 3.3) keeps the encoders busy 40 ms
PACED_LINK = 1.25e9
PACED_RATIOS = {1: 3.0, 2: 3.3}
LZ4_WINDOW = Outcome(10_000 * PAGE, 10_000 * PAGE / 3.0, 20e-3, 20e-3, None, 0)
LZ4_LINK_S = LZ4_WINDOW.output_bytes / PACED_LINK


def _paced_windows(stream: list[float], learn: bool = True) -> tuple[list[str], Auto]:
    """Windows of 10 000 pages played by ``auto`` over raw and the two compressors (every
    arm measured, no window shared between two), each going out in the time its encoders
    and the link take, lz4's encoders' time times ``stream[w]``; ``learn``: whether the
    policy is told (``learn_elapsed``)."""
    policy = parse_policy("auto:balance=1").bind(
        3,
        Throughput(link=PACED_LINK, workers=2),
        KINDS[:3],
        labels=LABELS[:3],
        costs=COSTS[:3],
        fallbacks=[-1] * 3,
    )
    policy = _host_known(policy)
    policy._untried = []
    played = []
    for factor in stream:
        f = _probed(_features(10_000), PACED_RATIOS)
        f.probe_out, f.probe_s = f.probe_out[:3], f.probe_s[:3]
        arm = policy.choose(f)
        played.append(LABELS[arm])
        sent = 10_000 * PAGE / PACED_RATIOS.get(arm, 1.0)
        cpu = 10_000 * COSTS[arm].per_page[0]
        outcome = Outcome(10_000 * PAGE, sent, cpu, cpu, None, 0)
        policy.update(arm, 0.0, f, outcome)
        busy = cpu / 2 * (factor if arm == 1 else 1.0)
        if learn:
            policy.learn_elapsed(arm, max(busy, sent / PACED_LINK), outcome)
    return played, policy


def test_an_arm_whose_stream_waits_on_more_than_its_encoders_and_link_is_left():
    """lz4 is predicted the best arm; its windows go out eight times slower than its
    encoders (a destination that decodes it slowly), and after two of them raw plays,
    bound by the link as predicted: while lz4 is the only arm paced, raw is thought to wait
    as long as its encoders twice at most, not eight times. zstd, never paced, then goes
    at raw's pace, the least shown. Not told, the policy keeps lz4."""
    played, policy = _paced_windows([8.0] * 6)
    assert played == ["lz4", "lz4", "raw", "raw", "raw", "raw"]
    # the first window taken at half, the second at learn (0.3) of the rest
    assert policy._pace[1] == pytest.approx(8.0 ** (0.5 + 0.3 * 0.5))
    assert policy._pace[0] == policy._pace[2] == 1.0  # raw's windows were the link's
    assert _paced_windows([8.0] * 6, learn=False)[0] == ["lz4"] * 6
    lz4_only = _paced_windows([8.0])[1]
    assert lz4_only._pace == pytest.approx([2.0, 8.0**0.5, 2.0])


def test_one_window_slowed_by_a_pause_leaves_the_arm_its_pace():
    """A window eight times its encoders' time among windows the link accounts for (a
    pause of the host's) moves no pace: the median of an arm's last three windows is
    learnt."""
    played, policy = _paced_windows([1.0, 1.0, 8.0, 1.0, 1.0, 1.0])
    assert played == ["lz4"] * 6
    assert policy._pace == [1.0] * 3


def test_a_window_faster_than_its_encoders_teaches_no_pace_below_one():
    """A window that seems to go out faster than its encoders let it went into the
    sockets' buffers."""
    policy = _auto(PACED_LINK)
    policy.learn_elapsed(1, 0.5 * LZ4_WINDOW.cpu_s, LZ4_WINDOW._replace(output_bytes=PAGE))
    assert policy._pace == [1.0] * 4


def test_a_delta_arm_not_yet_paced_goes_at_its_fall_backs_pace():
    """dsa-delta sends pages the destination does not hold through lz4 (its fall-back):
    until a window of its own is timed, it is predicted at lz4's pace; the arms with no
    fall-back at the least pace shown."""
    policy = _auto(PACED_LINK)
    policy.learn_elapsed(1, LZ4_WINDOW.cpu_s * 2.0, LZ4_WINDOW)  # 4x its encoders' time
    assert policy._pace == pytest.approx([2.0, 2.0, 2.0, 2.0])
    policy.learn_elapsed(3, LZ4_LINK_S, LZ4_WINDOW)  # dsa-delta's own: the link's time
    assert policy._pace == pytest.approx([1.0, 2.0, 1.0, 1.0])


def test_an_arm_counted_untried_again_forgets_its_pace():
    policy = _auto(PACED_LINK, cost_drift=0.01)
    policy.learn_elapsed(1, LZ4_WINDOW.cpu_s * 2.0, LZ4_WINDOW)
    assert policy._pace[1] == pytest.approx(2.0)
    policy._retry_due[1] = 0.0  # due again: as unknown as before its first play
    policy._stream_s = 1.0
    policy._retry_stale()
    assert policy._pace == [1.0] * 4


def test_only_the_throughput_objective_learns_a_pace():
    """The CPU and wire objectives' losses are not a window's time."""
    for objective in (HostCpu(), WireBytes()):
        policy = parse_policy("auto").bind(
            len(LABELS), objective, KINDS, labels=LABELS, costs=COSTS, fallbacks=[-1] * 4
        )
        policy.learn_elapsed(1, 10.0, Outcome(PAGE, PAGE, 1e-3, 1e-3, None, 0))
        assert policy._pace == [1.0] * 4


def test_a_read_on_the_thread_that_feeds_the_encoders_costs_its_whole_time():
    """Beside the encoders (a replay's model) a read's CPU seconds cost the window over the
    2 workers; where it holds up the stream (the engine's chooser) it costs them whole; the
    wire objective's loss takes no CPU time either way."""
    policy = _auto(PACED_LINK)
    beside = policy._read_s(40e-6)
    policy.reads_stall_encoders = True
    assert policy._read_s(40e-6) == pytest.approx(2 * beside)
    wire = parse_policy("auto").bind(
        len(LABELS), WireBytes(), KINDS, labels=LABELS, costs=COSTS, fallbacks=[-1] * 4
    )
    wire.reads_stall_encoders = True
    assert wire._read_s(40e-6) == 0.0
