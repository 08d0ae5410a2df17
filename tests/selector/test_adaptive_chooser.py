"""The selector drives a real pre-copy migration through the engine's chooser protocol."""

import threading
import time

import numpy as np
import pytest

from migcodec.codecs import Batch, DestinationMirror, get_codec
from migcodec.codecs.plugins.dsa_delta import DsaDeltaCodec
from migcodec.engine import MigrationConfig, parse_rate, run_loopback
from migcodec.engine import source as source_module
from migcodec.selector import Selector, adaptive_chooser, make_objective, parse_arms, parse_policy
from migcodec.selector.adaptive_chooser import SampleHistory, SelectorChooser, window_runs
from migcodec.selector.features import sample_rows
from migcodec.selector.policies.auto import Auto

MiB = 1 << 20


def test_a_migration_chosen_by_the_predictive_selector_verifies_and_learns():
    link = parse_rate("2Gbit")
    objective = make_objective("throughput", link=link, workers=2)
    selector = Selector(parse_policy("predictive"), ["raw", "lz4", "dsa-delta"], objective)
    chooser = SelectorChooser(selector)
    config = MigrationConfig(workers=2, link_rate=link, max_time_s=30)
    report = run_loopback(8 * MiB, chooser, config, 20e6, "mixed")
    chooser.close()
    assert report.succeeded, report.error
    assert report.verified
    assert selector.windows >= 1 and len(chooser.rewards) == selector.windows
    assert all(r > 0 for r in chooser.rewards)


def _window_whose_first_batch_is_zero():
    memory = np.zeros((64 * 64, 4096), dtype=np.uint8)
    memory[64:] = np.random.default_rng(0).integers(0, 256, memory[64:].shape, dtype=np.uint8)
    return [Batch(memory, [(first, 64)]) for first in range(0, memory.shape[0], 64)]


def test_the_sample_is_spread_over_the_whole_window_not_its_first_batch():
    window = _window_whose_first_batch_is_zero()
    objective = make_objective("throughput", link=parse_rate("1Gbit"), workers=2)
    chooser = SelectorChooser(Selector(parse_policy("predictive"), ["raw", "lz4"], objective))
    runs = window_runs(window)
    indices = chooser._sample(runs, 4096)
    assert indices.size == 32  # the extractor's sample size
    assert indices.min() < 64 and indices.max() >= 64 * 63  # both ends of the window
    assert len(set((indices // 64).tolist())) == 32  # single pages, one in each 2 batches
    assert np.diff(indices).min() > 64


def test_random_pages_after_a_zero_batch_go_raw():
    """A first-batch sample (all zero) would see nothing to decide on; the window's sample
    sees random pages, which no compressor shrinks: raw (ties at the link go to the arm
    with the most CPU to spare)."""
    window = _window_whose_first_batch_is_zero()
    objective = make_objective("throughput", link=parse_rate("1Gbit"), workers=2)
    selector = Selector(parse_policy("predictive"), ["raw", "zstd"], objective)
    chooser = SelectorChooser(selector)
    assert chooser.codecs[chooser.choose(window)].name == "raw"
    features = chooser._open.features
    assert features.context[1] < 0.3  # the zero share the sample saw


def _passes(change, n_pages=4096, passes=3, seed=0):
    """Windows of every page of a guest, pass after pass, its pages changed by ``change``
    between passes."""
    rng = np.random.default_rng(seed)
    memory = rng.integers(0, 256, (n_pages, 4096), dtype=np.uint8)
    for _ in range(passes):
        yield memory, [Batch(memory, [(first, 64)]) for first in range(0, n_pages, 64)]
        change(memory, rng)


def _rewrite(memory, rng):
    memory[:] = rng.integers(0, 256, memory.shape, dtype=np.uint8)


def _touch_words(memory, rng):
    memory.view(np.uint64)[:, ::64] += np.uint64(1)  # 8 of 512 words per page


def test_history_sees_sparse_changes_as_cheap_deltas_and_rewrites_as_whole_pages():
    seen = {}
    for name, change in (("rewrite", _rewrite), ("words", _touch_words)):
        history = SampleHistory()
        verdicts = [history.watch(memory, window_runs(w)) for memory, w in _passes(change)]
        assert verdicts[0] is None  # nothing seen before
        seen[name] = [v for v in verdicts if v is not None]
    # 8 changed words: 8 x 10 bytes + 1 mode byte of 4096
    assert seen["words"] and all(v == pytest.approx(81 / 4096) for v in seen["words"])
    assert seen["rewrite"] and all(v > 1.0 for v in seen["rewrite"])  # capped + mode byte


def test_history_watches_one_page_per_block_so_any_window_meets_pages_seen_before():
    history = SampleHistory(pages=256, evidence=1)
    memory = np.ones((1 << 13, 4096), dtype=np.uint8)
    everything = [Batch(memory, [(first, 64)]) for first in range(0, memory.shape[0], 64)]
    for start in range(0, len(everything), 64):
        history.watch(memory, window_runs(everything[start : start + 64]))
    assert history.known == 256  # one page per 32-page block, none evicting another
    memory.view(np.uint64)[:, 1] = 7
    # a window of 1000 scattered pages dirtied again: about 1000/32 watched pages in it
    again = np.sort(np.random.default_rng(1).choice(memory.shape[0], 1000, replace=False))
    window = [Batch(memory, [(int(p), 1) for p in again[i : i + 64]]) for i in range(0, 1000, 64)]
    assert history.watch(memory, window_runs(window)) == pytest.approx(11 / 4096)


def _auto(arms="raw;lz4;zstd:level=1;dsa-delta", policy="auto"):
    objective = make_objective("throughput", link=parse_rate("1Gbit"), workers=2)
    return SelectorChooser(Selector(parse_policy(policy), parse_arms(arms), objective))


@pytest.mark.parametrize(("change", "teaches"), [(_rewrite, False), (_touch_words, True)])
def test_the_chooser_asks_for_cache_teaching_only_where_deltas_would_pay(change, teaches):
    chooser = _auto()
    asked = []
    for _, window in _passes(change, passes=4):
        for start in range(0, len(window), 16):
            chooser.choose(window[start : start + 16])
            asked.append(chooser.wants_teaching)
    assert not any(asked[:4])  # the first pass: nothing seen before
    assert asked[-1] is teaches
    assert asked == sorted(asked)  # once asked, for good: a taught cache must hear of every page


def test_choosing_a_delta_arm_asks_for_teaching_at_once():
    chooser = _auto("raw;dsa-delta", policy="fixed:arm=1")
    _, window = next(_passes(_rewrite))
    assert chooser.choose(window) == 1
    assert chooser.wants_teaching


def test_a_chooser_without_delta_arms_never_asks_for_teaching():
    chooser = _auto("raw;lz4")
    for _, window in _passes(_touch_words):
        chooser.choose(window)
    assert not chooser.wants_teaching


class _CountingMirror(DestinationMirror):
    """Counts the pages it records from codecs that do not read the destination."""

    recorded = 0

    def sent(self, indices, pages, zero, copy, lent=None):
        if copy and self.recording:
            type(self).recorded += len(indices)
        super().sent(indices, pages, zero, copy, lent)


def test_auto_records_pages_on_a_guest_changing_a_few_words_and_plays_deltas(monkeypatch):
    """Recording starts mid-migration (nothing is recorded until the watched pages show
    sparse changes), the delta arm is then played, and the destination still ends equal."""
    monkeypatch.setattr(source_module, "DestinationMirror", _CountingMirror)
    delta = DsaDeltaCodec()
    link = parse_rate("100Mbit")
    objective = make_objective("throughput", link=link, workers=2)
    selector = Selector(parse_policy("predictive"), ["lz4", "zstd", delta], objective)
    chooser = SelectorChooser(selector)
    config = MigrationConfig(
        workers=2,
        link_rate=link,
        window_batches=4,
        downtime_limit_s=0.005,
        max_time_s=60,
        stall_iterations=8,
    )
    report = run_loopback(16 * MiB, chooser, config, 60e6, "seq", style="words")
    assert report.succeeded, report.error
    assert chooser.wants_teaching
    assert 0 < _CountingMirror.recorded <= report.pages_sent - report.iteration_log[0].pages_sent
    assert report.pages_by_codec.get("dsa-delta", 0) > 0


def test_a_window_runs_are_its_batches_runs_in_order():
    memory = np.zeros((256, 4096), dtype=np.uint8)
    window = [Batch(memory, [(9, 3), (1, 2)]), Batch(memory, [(100, 1)]), Batch(memory, [(40, 4)])]
    assert window_runs(window).tolist() == [[9, 3], [1, 2], [100, 1], [40, 4]]


def _runs_from(lengths, seed):
    """Runs of the given lengths at random, non-overlapping places, in random order."""
    rng = np.random.default_rng(seed)
    starts = np.cumsum(lengths + rng.integers(0, 40, lengths.size)) - lengths
    order = rng.permutation(lengths.size)
    return np.column_stack((starts[order], lengths[order])).astype(np.int64)


@pytest.mark.parametrize("seed", range(20))
def test_the_sample_and_the_watched_pages_are_those_of_the_expanded_window(seed):
    """Found from the runs without expanding them: the same pages, in the same order, as
    sampling and testing the window's pages one by one."""
    rng = np.random.default_rng(seed)
    lengths = rng.choice([1, 3, 16, 64, 200], size=int(rng.integers(1, 60)))
    runs = _runs_from(lengths, seed)
    memory = np.zeros((int((runs[:, 0] + runs[:, 1]).max()) + 17, 64), dtype=np.uint8)
    window = [Batch(memory, runs[i : i + 5], 64, 4096) for i in range(0, len(runs), 5)]
    pages = np.concatenate([batch.page_indices for batch in window])
    chooser = _auto()
    total = pages.size
    size = chooser.selector.extractor.sample_size(total)
    sampled = chooser._sample(window_runs(window), total)
    assert np.array_equal(sampled, pages[sample_rows(total, size)])
    history = SampleHistory(pages=int(rng.integers(1, 300)))
    history.watch(memory, window_runs(window))  # builds the table of watched pages
    watched = history._watched_page[pages // history._block] == pages
    assert np.array_equal(history._watched_in(window_runs(window)), pages[watched])


def test_the_features_are_charged_what_gathering_their_sample_cost():
    chooser = _auto()
    window = _window_whose_first_batch_is_zero()
    memory, runs = window[0].memory, window_runs(window)
    seen = {}

    def extract(*args, **kwargs):
        seen["gather_s"] = args[-1] if len(args) == 7 else kwargs.get("gather_s")
        return real(*args, **kwargs)

    real = chooser.selector.extractor.extract
    chooser.selector.extractor.extract = extract
    features = chooser._features(memory, runs, 4096)
    assert seen["gather_s"] > 0
    assert features.cheap_s >= seen["gather_s"]


def test_a_report_never_waits_for_a_choice_and_counts_towards_the_open_window():
    """The engine's sender reports each batch; while the migration thread reads a window's
    features (holding the chooser), a report that waited would leave the link idle."""
    chooser = _auto("raw;lz4")
    window = _window_whose_first_batch_is_zero()
    arm = chooser.choose(window)
    stats = chooser.codecs[arm].encode(window[1]).stats
    with chooser._lock:  # as while a choice is being made
        done = threading.Event()
        worker = threading.Thread(target=lambda: (chooser.report(arm, stats), done.set()))
        worker.start()
        assert done.wait(5.0)
        worker.join()
    chooser.close()
    assert chooser.selector.windows == 1
    assert len(chooser.rewards) == 1 and chooser.rewards[0] > 0


def test_a_window_read_ahead_is_chosen_on_what_was_read_after_learning_the_one_before():
    chooser = _auto("raw;lz4;zstd:level=1")
    reads = []
    extract = chooser.selector.extractor.extract

    def counting(*args, **kwargs):
        reads.append(extract(*args, **kwargs))
        return reads[-1]

    chooser.selector.extractor.extract = counting
    _, window = next(_passes(_touch_words, n_pages=8 * 64))
    first, second = window[:4], window[4:]
    arm = chooser.choose(first)
    for batch in first:
        chooser.report(arm, chooser.codecs[arm].encode(batch).stats)
    chooser.prepare(second)  # while the first window is in flight
    assert len(reads) == 2 and chooser.selector.windows == 0
    chooser.choose(second)
    assert len(reads) == 2  # not read again
    assert chooser._open.features is reads[1]
    assert chooser.selector.windows == 1  # the first window was learnt before deciding


def test_a_policys_split_by_pages_becomes_the_engines_by_batches():
    """A trial of 256 pages is the first batches holding 256 pages; a split that would
    cover the whole window is none."""
    from migcodec.selector.adaptive_chooser import _batches_split

    memory = np.zeros((64 * 64, 4096), dtype=np.uint8)

    def window(sizes):
        runs, first = [], 0
        for n in sizes:
            runs.append([(first, n)])
            first += n
        return [Batch(memory, r, 4096, 64) for r in runs]

    assert _batches_split(window([64] * 64), (2, 256.0)) == (2, 4)
    assert _batches_split(window([64, 64, 100 - 64, 64, 64]), (0, 150.0)) == (0, 3)
    assert _batches_split(window([64] * 4), (2, 256.0)) is None
    assert _batches_split(window([64] * 64), None) is None


def test_the_auto_chooser_runs_another_configuration_under_its_own_label():
    from migcodec.selector.adaptive_chooser import auto_chooser

    default = auto_chooser(125e6, 2)
    other = auto_chooser(125e6, 2, policy="auto:balance=1")
    assert default.label == "auto" and default.selector.policy.balance == 0.05
    assert other.label == "auto(balance=1)" and other.selector.policy.balance == 1


def _timed_window(monkeypatch, reported: int, split: bool = False) -> list[tuple]:
    """One window chosen, ``reported`` of its 64 batches reported 2 ms apart on a clock the
    test sets, and the next window chosen: what the policy was told of the stream's time."""
    ticks = iter(range(1000))
    monkeypatch.setattr(adaptive_chooser, "_clock", lambda: next(ticks) * 2e-3)
    chooser = _auto("raw;lz4")
    told = []
    policy = chooser.selector.policy
    monkeypatch.setattr(policy, "learn_elapsed", lambda *args: told.append(args))
    _, window = next(_passes(_touch_words))
    arm = chooser.choose(window)
    if split:
        chooser._open.split = (1 - arm, 32.0)
    for batch in window[:reported]:
        chooser.report(arm, chooser.codecs[arm].encode(batch).stats)
    chooser.choose(window)
    return told


def test_a_window_s_stream_time_is_the_span_of_its_batches_going_out(monkeypatch):
    """64 batches framed 2 ms apart took the stream 128 ms: 63 intervals between the first
    and the last, one per batch; told with the outcome of those batches."""
    told = _timed_window(monkeypatch, 64)
    assert len(told) == 1
    _, elapsed, outcome = told[0]
    assert elapsed == pytest.approx(64 * 2e-3)
    assert outcome.input_bytes == 64 * 64 * 4096


def test_too_few_batches_or_a_shared_window_tell_no_stream_time(monkeypatch):
    assert _timed_window(monkeypatch, adaptive_chooser.PACED_BATCHES - 1) == []
    assert len(_timed_window(monkeypatch, adaptive_chooser.PACED_BATCHES)) == 1
    assert _timed_window(monkeypatch, 64, split=True) == []


def _migrated_with_lz4_decoded_slowly(monkeypatch, mib: int) -> dict[str, int]:
    """Pages by codec of a text guest of ``mib`` MiB migrated once over 1 Gbit/s by
    ``auto`` over raw and lz4, where the destination takes 10 ms to decode each lz4 frame
    (a destination decoding in software what the source's accelerator compresses), in
    windows of 8 batches (the fewest a stream time is learnt from). The first windows go
    out into the sockets' buffers (4 MiB of lz4 frames hold about six windows' pages) and
    the next four teach lz4's pace: a 64 MiB guest's 32 windows sent 10 to 19 with lz4
    (the most in a process's first migration, or beside other work), 128 MiB's 64 leave
    the rest a margin."""
    codec = get_codec("lz4")
    real = type(codec).decode_checked

    def slow(self, *args, **kwargs):
        time.sleep(0.01)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(codec), "decode_checked", slow)
    link = parse_rate("1Gbit")
    objective = make_objective("throughput", link=link, workers=2, clock="wall")
    chooser = SelectorChooser(Selector(parse_policy("auto"), parse_arms("raw;lz4"), objective))
    config = MigrationConfig(workers=2, link_rate=link, max_time_s=60, window_batches=8)
    report = run_loopback(mib * MiB, chooser, config, 0.0, "text")
    assert report.succeeded, report.error
    return report.pages_by_codec


def test_auto_leaves_a_codec_whose_frames_the_destination_decodes_slowly(monkeypatch):
    """lz4 sends a third of raw's bytes and its encoders are fast: the model's encoders and
    link put it far ahead. Its windows go out at the destination's pace, several times
    what the model gives them; the stream's own time shows it, and raw sends most pages.
    Timing only its encoders (no stream time learnt), ``auto`` sends every page with lz4."""
    paced = _migrated_with_lz4_decoded_slowly(monkeypatch, 128)
    assert paced.get("raw", 0) > paced.get("lz4", 0)
    monkeypatch.setattr(Auto, "learn_elapsed", lambda self, *args: None)
    assert _migrated_with_lz4_decoded_slowly(monkeypatch, 64) == {"lz4": 64 * MiB // 4096}


def test_the_engine_s_chooser_reads_features_as_holding_up_the_stream():
    chooser = _auto("raw;lz4")
    assert chooser.selector.policy.reads_stall_encoders
    assert not parse_policy("auto").reads_stall_encoders  # a replay's, beside the encoders
