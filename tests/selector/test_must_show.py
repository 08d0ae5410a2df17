"""What ``--codec auto`` must show: on the memory of real programs and on synthetic phases,
at 1 and 10 Gbit/s with 2 workers, the ``auto`` policy, its feature and probe costs and its
decisions of which probes to buy charged, reaches the best fixed arm (to within what reading
costs where one arm is best throughout) and most of the per-window oracle.

Everything a policy sees is recomputed here from the stored pages: every arm's output bytes,
every cheap feature, every probe. Only timings are replayed, from a cost model recorded on a
quiet machine (``tests/selector/data/cost-model.json``, made by ``migcodec evaluate
--cost-model calibrated``'s calibration): measured times move with machine load, a recorded
model gives the same numbers on every run. A feature or prediction that breaks changes what
``auto`` chooses, and these scores with it (the last test shows they would notice).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from migcodec.selector import make_objective, parse_arms, parse_policy
from migcodec.selector.arms import DEFAULT_ARMS, DELTA_ARMS
from migcodec.selector.costmodel import CostModel
from migcodec.selector.evaluation import build_table, evaluate, read_trace, workload_windows

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "corpus" / "traces"
MODEL = CostModel.load(Path(__file__).with_name("data") / "cost-model.json")
ARMS = parse_arms(";".join(DEFAULT_ARMS + DELTA_ARMS))
LINKS = ("1Gbit", "10Gbit")
TRACES = sorted(p.name for p in CORPUS.iterdir() if (p / "manifest.json").exists())
#: the least share of the best fixed arm's throughput auto reaches on any trace and link,
#: and on average. On most traces one arm is within a percent of the oracle: there auto,
#: which pays for every feature it reads and for deciding which probes to buy on them
#: (45 us a read among 7 arms in this model, more than the features cost), can only trail
#: it by what they cost: memcached, XBZRLE's on nearly every window, at 0.9995 at 1 Gbit/s
#: (1.0009 at 10 Gbit/s, where the encoders bind and every read costs its window about
#: 1 %). On
#: average, sharing windows at 10 Gbit/s between an arm that keeps the encoders busy and
#: one that fills the link (``balance``) puts it several percent above the best fixed arm
#: (1.035 with this model)
LEAST_CELL, LEAST_MEAN = 0.998, 1.03
#: captures of the same programs taken with the same commands after every default above was chosen,
#: and of a seventh program nothing was developed on (a JVM service: 0.9999 of XBZRLE alone at 1
#: Gbit/s, 1.083 of DSA records at 10 Gbit/s with this model; corpus/README.md): what auto reaches
#: on them is the evidence it was not tuned for. They chose no parameter, and two changes of the
#: model. Their least cell, qemu at 1 Gbit/s (0.987 with this model), showed one probe bias for all
#: arms carrying lz4's misses onto zstd level 3's probes, and each arm now has its own part of it
#: (``kalman.RatioFilter``, with the shared part's prior). Once the probe decision cost less, node
#: at 1 Gbit/s fell to 0.985: windows played on the last read sent XBZRLE records up to 3 times
#: their estimate and taught the delta arms nothing, and now they do (``Auto._learn_stale``; on this
#: host's calibrated tables it also moved the development traces' node at 1 Gbit/s from 1.00 to
#: 1.02-1.03). With both, the least cell is postgres at 10 Gbit/s (0.993) and the mean 1.036 (1.037
#: with the JVM service). These bounds hold auto to what the held-out captures showed, not to the
#: traces it was developed on
HELDOUT = ROOT / "corpus" / "heldout"
HELDOUT_TRACES = sorted(p.name for p in HELDOUT.iterdir() if (p / "manifest.json").exists())
HELDOUT_LEAST_CELL, HELDOUT_LEAST_MEAN = 0.99, 1.03


def _table(windows):
    """A table of the windows whose timings come from the recorded cost model; the policy's
    cost prior is that model too, so nothing depends on this machine's speed."""
    return build_table(windows, ARMS, repeats=1, calibration=MODEL).modelled(MODEL)


@pytest.fixture(scope="module")
def corpus_tables():
    return {name: _table(read_trace(CORPUS / name)) for name in TRACES}


@pytest.fixture(scope="module")
def heldout_tables():
    return {name: _table(read_trace(HELDOUT / name)) for name in HELDOUT_TRACES}


def _scores(table, policies=("auto",)):
    out = {}
    for link in LINKS:
        objective = make_objective("throughput", link=link, workers=2)
        ev = evaluate(table, [parse_policy(p) for p in policies], objective)
        out[link] = ev.scores[-len(policies) :]
    return out


def test_the_corpus_has_five_real_programs_or_more():
    assert len(TRACES) >= 5, TRACES
    assert len(HELDOUT_TRACES) >= 5, HELDOUT_TRACES


def _check_auto(tables, least_cell: float, least_mean: float) -> None:
    """auto reaches 0.90 of the per-window oracle on every trace and link, 0.95 on
    average, and the given shares of the best fixed arm's throughput."""
    rows = {
        (name, link): scores[0]
        for name, table in tables.items()
        for link, scores in _scores(table).items()
    }
    for (name, link), score in rows.items():
        assert score.label == "auto"
        assert score.vs_oracle >= 0.90, (name, link, score)
        assert score.vs_best_fixed >= least_cell, (name, link, score)
    assert np.mean([s.vs_oracle for s in rows.values()]) >= 0.95
    assert np.mean([s.vs_best_fixed for s in rows.values()]) >= least_mean


def test_auto_on_real_programs_is_near_the_oracle_and_as_good_as_the_best_fixed_arm(
    corpus_tables,
):
    _check_auto(corpus_tables, LEAST_CELL, LEAST_MEAN)


def test_auto_on_held_out_captures_is_near_the_oracle_and_the_best_fixed_arm(heldout_tables):
    _check_auto(heldout_tables, HELDOUT_LEAST_CELL, HELDOUT_LEAST_MEAN)


def test_sharing_windows_between_two_arms_beats_single_arms_at_10_gbit(corpus_tables):
    """At 10 Gbit/s the best single arm of a window often keeps either the encoders or the
    link idle; sharing the window with an arm bound by the other finishes it sooner. On
    the traces where that pays most, auto goes past the per-window oracle of single arms,
    and over all traces it beats auto that never shares a window."""
    objective = make_objective("throughput", link="10Gbit", workers=2)
    shared, whole = [], []
    for table in corpus_tables.values():
        ev = evaluate(table, [parse_policy("auto"), parse_policy("auto:balance=1")], objective)
        auto, alone = ev.scores[-2:]
        assert auto.label == "auto" and alone.label == "auto(balance=1)"
        shared.append(auto.vs_oracle)
        whole.append(alone.vs_oracle)
    assert max(shared) > 1.05, shared
    assert np.mean(shared) > np.mean(whole) + 0.02, (shared, whole)


def test_auto_on_synthetic_phases_beats_every_fixed_arm():
    """Phases of 8 windows of unrelated content. At 1 Gbit/s auto beats every fixed arm on
    every trace. At 10 Gbit/s a window takes a few milliseconds and reading features costs
    auto about a percent of it, so while nothing changes it reads them on every other
    window at most: a change of phase that falls on a window played without them costs
    that window (the next one, its outcome off the prediction, reads them), up to 5 % of
    a 32-window trace (1 of 4 seeds here, 4 of 12 in all). Over traces auto stays within
    1.5 % of the best fixed arm."""
    ten_gbit = []
    for seed in range(4):
        windows = workload_windows("phases", n_windows=32, pages=1024, seed=seed)
        scores = _scores(_table(windows))
        (one,) = scores["1Gbit"]
        assert one.vs_oracle >= 0.95, (seed, one)
        assert one.vs_best_fixed >= 1.0, (seed, one)
        (ten,) = scores["10Gbit"]
        assert ten.vs_oracle >= 0.93, (seed, ten)
        assert ten.vs_best_fixed >= 0.95, (seed, ten)  # at most one window lost
        ten_gbit.append(ten.vs_best_fixed)
    assert np.mean(ten_gbit) >= 0.985


def test_context_free_bandits_trail_auto_on_real_programs(corpus_tables):
    for name, table in corpus_tables.items():
        for link, (auto, ducb) in _scores(table, ("auto", "d-ucb")).items():
            assert auto.vs_oracle > ducb.vs_oracle, (name, link)


def test_broken_delta_predictions_would_fail_these_checks(monkeypatch, corpus_tables):
    """Features are recomputed, not replayed: if every delta arm's size estimate were off by
    a random factor of up to 8 either way (a learnt bias cannot correct that), auto would
    fall below these bounds."""
    from migcodec.codecs.plugins.dsa_delta import DsaDeltaCodec
    from migcodec.codecs.plugins.xbzrle import XbzrleCodec

    rng = np.random.default_rng(0)
    for cls in (DsaDeltaCodec, XbzrleCodec):
        real = cls.estimate_sizes

        def noisy(self, changes, page_size, real=real):
            return real(self, changes, page_size) * 8.0 ** rng.uniform(-1, 1)

        monkeypatch.setattr(cls, "estimate_sizes", noisy)
    broken = [s[0] for name in TRACES for s in _scores(_table(read_trace(CORPUS / name))).values()]
    assert min(s.vs_best_fixed for s in broken) < LEAST_CELL or (
        np.mean([s.vs_best_fixed for s in broken]) < LEAST_MEAN
    )
