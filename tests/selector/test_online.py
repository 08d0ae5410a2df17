"""The online API as an engine uses it, with real codecs and a delta arm."""

import time

import numpy as np
import pytest

import migcodec.selector.features as features_module
from migcodec.codecs import Batch, DestinationMirror
from migcodec.selector import Selector, SelectorError, Throughput, parse_policy
from migcodec.selector.evaluation import workload_windows
from migcodec.selector.policies.auto import Auto


def run_engine(selector: Selector, windows) -> list[int]:
    chosen = []
    for w in windows:
        decision = selector.choose(w.pages, w.previous)
        codec = decision.codec
        held = None
        if w.previous is not None:
            held = DestinationMirror.holding(np.arange(w.n_pages), w.previous)
        for first in range(0, w.n_pages, 64):
            decision.add(codec.encode(Batch(w.pages, [(first, 64)]), destination=held).stats)
        reward = selector.finish(decision)
        assert reward > 0
        chosen.append(decision.arm)
    return chosen


def _phases_played(policy: str) -> tuple[Selector, np.ndarray, np.ndarray]:
    arms = ["raw", "lz4", "zstd:level=1", "dsa-delta"]
    selector = Selector(parse_policy(policy), arms, Throughput(link=1.25e8, workers=2))
    windows = list(workload_windows("phases", n_windows=32, pages=512, seed=3))
    chosen = np.array(run_engine(selector, windows))
    phases = np.array([w.phase for w in windows])
    assert set(phases) >= {"counters", "memcached"}
    return selector, chosen, phases


@pytest.mark.parametrize("policy", ["auto", "predictive"])
def test_the_selector_plays_deltas_on_sparse_updates_and_compression_on_rewrites(policy):
    selector, chosen, phases = _phases_played(policy)
    assert np.mean(chosen[phases == "counters"] == 3) >= 0.75
    assert np.mean(np.isin(chosen[phases == "memcached"], [1, 2])) >= 0.75
    assert selector.windows == 32
    played = np.unique(chosen)
    assert (selector.recent_ratio[played] > 0).all() and (selector.recent_rate[played] > 0).all()


def _paused(fn, at: int, counts: list[int]):
    """``fn``, whose call number ``at`` first spends 0.2 s of this thread's CPU time (a
    pause it did not cause: a collection of the interpreter's garbage in a large
    process), counted in ``counts``."""

    def paused(*args, **kwargs):
        counts.append(1)
        if len(counts) == at:
            start = time.thread_time()
            while time.thread_time() - start < 0.2:
                pass
        return fn(*args, **kwargs)

    return paused


@pytest.mark.parametrize(
    ("timed", "at"),
    [("decision", 1), ("decision", 6), ("scan", 1), ("scan", 4)],
)
def test_a_pause_in_a_timed_read_does_not_blind_auto(monkeypatch, timed, at):
    """``auto`` times its reads (the sample's scan, its decision of which probes to buy)
    and prices later reads with them. One 0.2 s pause in one of them priced every later
    read out: every window of the counters phase was played on the last features read,
    with zstd, where DSA records were a fiftieth of its output (as the full test suite's
    process, whose garbage takes that long to collect, once had it). Counted as a few
    times what such a read costs, it leaves the phases played as without it."""
    counts: list[int] = []
    if timed == "decision":
        monkeypatch.setattr(Auto, "_probe_mask", _paused(Auto._probe_mask, at, counts))
    else:
        scan = _paused(features_module.scan_sample, at, counts)
        monkeypatch.setattr(features_module, "scan_sample", scan)
    _, chosen, phases = _phases_played("auto")
    assert len(counts) > at  # read again after the pause
    assert np.mean(chosen[phases == "counters"] == 3) >= 0.75


def test_context_free_policy_needs_no_pages():
    selector = Selector(parse_policy("ucb1"), ["raw", "lz4"])
    decision = selector.choose()
    assert decision.features is None and decision.charge_s == 0
    decision.add(decision.codec.encode(Batch(np.ones((64, 4096), np.uint8), [(0, 64)])).stats)
    selector.finish(decision)
    with pytest.raises(SelectorError, match="already finished"):
        selector.finish(decision)


def test_features_cost_is_charged_in_the_reward():
    selector = Selector(parse_policy("linear"), ["raw", "lz4"], Throughput(link=1e12, workers=1))
    pages = np.ones((64, 4096), np.uint8)
    decision = selector.choose(pages)
    assert decision.charge_s == pytest.approx(decision.features.cheap_s)
    decision.add(decision.codec.encode(Batch(pages, [(0, 64)])).stats)
    reward = selector.finish(decision)
    busy = decision.cpu_s + decision.charge_s
    assert reward == pytest.approx(decision.input_bytes / busy)
