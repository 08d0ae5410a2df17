"""Replay and scoring against tables small enough to compute by hand."""

import re
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migcodec.selector import HostCpu, Throughput, WireBytes, parse_policy
from migcodec.selector.evaluation import Table, TableError, evaluate, replay
from migcodec.selector.policies import Fixed, Policy
from tests.damage import flipped_bits
from tests.selector.tables import tiny_table


class Script(Policy):
    """Plays a fixed sequence of arms, recording the rewards it is shown."""

    name = "script-test"

    def __init__(self, plan: tuple = (1, 0, 0)) -> None:
        self.plan = plan

    def _reset(self) -> None:
        self.t, self.seen = 0, []

    def choose(self, features=None) -> int:
        return self.plan[self.t]

    def _learn(self, arm, reward, features, outcome) -> None:
        self.seen.append((arm, reward, outcome.output_bytes))
        self.t += 1


def test_replay_equals_the_hand_computed_value():
    # link 100 B/s, 2 workers: reward = min(2 x 1000 / cpu, 100 x ratio)
    # arm 0: ratio 2 -> min(2000, 200) = 200 in every window
    # arm 1: ratio 4 -> min(2000, 400) = 400; window 1: ratio 1, cpu 4 -> min(500, 100) = 100
    obj = Throughput(link=100.0, workers=2)
    table = tiny_table()
    policy = Script()
    result = replay(policy, table, obj)
    assert result.chosen.tolist() == [1, 0, 0]
    assert result.rewards.tolist() == pytest.approx([400, 200, 200])
    # the policy is shown only its own arm's outcome, as utility (-1e9 / reward)
    assert [(a, o) for a, _, o in policy.seen] == [(1, 250.0), (0, 500.0), (0, 500.0)]
    assert policy.seen[0][1] == pytest.approx(-1e9 / 400)
    ev = evaluate(table, [Script()], obj)
    assert ev.oracle_arms.tolist() == [1, 0, 1]
    assert ev.oracle_rewards.tolist() == pytest.approx([400, 200, 400])
    script = ev.scores[-1]
    # totals are bytes over time: 3000 B / (1000/400 + 1000/200 + 1000/200) s
    assert script.total == pytest.approx(3000 / 12.5)
    assert script.vs_oracle == pytest.approx((3000 / 12.5) / (3000 / 10.0))
    # either fixed arm takes 15 s (arm 1: 2.5 + 10 + 2.5), so switching gains 15 / 12.5
    assert script.vs_best_fixed == pytest.approx(15 / 12.5)
    assert script.sum_vs_oracle == pytest.approx(800 / 1000)
    assert ev.scores[1].sum_vs_oracle == pytest.approx(900 / 1000)  # fixed lz4
    assert script.switches == 1
    assert script.regret[-1] == pytest.approx(-1e9 / 400 + 1e9 / 200)


class SplitScript(Script):
    """Plays arm 1 on a quarter of window 1 and arm 0 on the rest of it."""

    name = "split-script-test"

    def split(self):
        return (0, 1000 / 4096 / 4) if self.t == 1 else None


def test_a_split_window_is_scored_on_both_parts_and_teaches_the_chosen_arms_part():
    # window 1, a quarter by arm 1 (1000 B in 4 s, scaled: 250 B, 1 s) and three by arm 0
    # (500 B in 1 s, scaled: 375 B, 0.75 s): min(2 x 1000 / 1.75, 100 x 1000 / 625) = 160
    obj = Throughput(link=100.0, workers=2)
    policy = SplitScript(plan=(1, 1, 0))
    result = replay(policy, tiny_table(), obj)
    assert result.rewards.tolist() == pytest.approx([400, 160, 200])
    assert [(a, o) for a, _, o in policy.seen] == [(1, 250.0), (1, 250.0), (0, 500.0)]
    assert policy.seen[1][1] == pytest.approx(-1e9 / 160)


def test_feature_costs_are_charged_to_policies_that_read_them():
    table = tiny_table()
    table.cheap_s[:] = 1.0  # a second of features per window

    class Cheap(Fixed):
        name = "fixed-cheap-test"
        needs = "cheap"

    obj = Throughput(link=100.0, workers=2)
    free = replay(Fixed(arm=0), table, obj)
    charged = replay(Cheap(arm=0), table, obj)
    assert free.rewards.tolist() == pytest.approx([200, 200, 200])
    # 2 workers x 1000 B / (1 s encode + 1 s features) = 1000 > 200: still link bound
    assert charged.rewards.tolist() == pytest.approx([200, 200, 200])
    table.cpu_s[:] = 10.0
    assert replay(Cheap(arm=0), table, obj).rewards[0] == pytest.approx(2000 / 11)
    assert charged.charge_s.tolist() == [1.0, 1.0, 1.0]


class Deciding(Fixed):
    """Buys no probe, after spending ``busy`` seconds of CPU deciding so."""

    name = "deciding-test"
    needs = "probe"
    busy = 0.02

    def probe_mask(self, features):
        end = time.thread_time() + self.busy
        while time.thread_time() < end:
            pass
        return np.zeros(self.n_arms, dtype=bool)


def test_a_probe_decision_is_charged_at_the_table_s_price_or_as_timed_without_one():
    """Deciding which probes to buy is part of reading the features: the engine charges
    it with them, and so does a replay, at the price of the cost model its table was
    measured or modelled with (by objective: the same on every replay), or as the call
    took where that model prices no such policy. The policy is told the price while the
    replay lasts, and only then."""
    table = tiny_table()
    obj = Throughput(link=100.0, workers=2)
    timed = replay(Deciding(arm=0), table, obj).charge_s
    assert (timed >= Deciding.busy).all() and (timed < 10 * Deciding.busy).all()
    table.meta["probe_decisions"] = {"deciding-test": [0.5, 0.75], "other": [0.0, 0.0]}
    policy = Deciding(arm=0)
    priced = [replay(policy, table, obj).charge_s for _ in range(2)]
    assert priced[0].tolist() == priced[1].tolist() == [0.5, 0.5, 0.5]
    assert policy.probe_decision_s is None  # not carried out of the replay
    assert replay(policy, table, HostCpu()).charge_s.tolist() == [0.75, 0.75, 0.75]
    table.cpu_s[:] = 10.0  # encoder-bound: 2 workers x 1000 B / (10 s + 0.5 s)
    assert replay(Deciding(arm=0), table, obj).rewards[0] == pytest.approx(2000 / 10.5)
    assert replay(Fixed(arm=0), table, obj).charge_s.tolist() == [0.0, 0.0, 0.0]


def test_a_replay_prices_reads_as_its_table_not_as_a_machine_the_policy_ran_on():
    """A policy that chose for a :class:`Selector` was given that machine's prices of a
    scan and a decision, against which it judges its own timings; replayed, it is priced
    as the table's cost model prices reads, as a policy never run live is."""
    table = _work_table()
    obj = Throughput(link=1e8, workers=2)
    ran_live = parse_policy("auto")
    ran_live.features_prior, ran_live.probe_decision_prior_s = (1e-9, 1e-12), 1e-9
    fresh = replay(parse_policy("auto"), table, obj)
    replayed = replay(ran_live, table, obj)
    assert replayed.chosen.tolist() == fresh.chosen.tolist()
    assert replayed.charge_s.tolist() == fresh.charge_s.tolist()
    assert ran_live.features_prior is None and ran_live.probe_decision_prior_s is None


@pytest.mark.parametrize(
    "prices", [[float("nan"), 0.0], [-1.0, 0.0], [0.5], "0.5", [0.5, float("inf")], [2.0, 0.0]]
)
def test_probe_decision_prices_no_cost_model_writes_are_refused(prices):
    """A price that is no number of seconds from 0 to 1 (nan stopped auto reading, a
    negative one paid it for reading) is refused with the table."""
    table = tiny_table()
    meta = {**table.meta, "probe_decisions": {"auto": prices}}
    with pytest.raises(TableError, match=r"its probe decisions' prices for 'auto' are "):
        Table(**{**table.__dict__, "meta": meta})


def test_cost_objectives_score_closeness_the_same_way():
    ev = evaluate(tiny_table(), [], WireBytes())
    raw = ev.scores[0]
    # raw sends 0.5 B per guest B everywhere; the oracle 0.25, 0.5, 0.25 (mean 1/3)
    assert raw.vs_oracle == pytest.approx((1 / 3) / 0.5)


def test_table_round_trips_through_a_file(tmp_path):
    table = tiny_table()
    table.save(tmp_path / "t.npz")
    again = Table.load(tmp_path / "t.npz")
    assert again.arms == table.arms and again.phases == table.phases
    np.testing.assert_array_equal(again.output_bytes, table.output_bytes)


def test_unreadable_table_names_the_fix(tmp_path):
    from migcodec.selector.evaluation import TableError

    (tmp_path / "t.npz").write_bytes(b"not a table")
    with pytest.raises(TableError, match="delete it to rebuild"):
        Table.load(tmp_path / "t.npz")


def test_a_table_file_of_zeros_is_damaged_and_never_to_be_loaded_unsafely(tmp_path):
    from migcodec.selector.evaluation import TableError

    path = tmp_path / "t.npz"
    path.write_bytes(bytes(1 << 20))  # as `truncate -s 1M` leaves it
    with pytest.raises(TableError) as info:
        Table.load(path)
    assert str(info.value) == (
        f"cannot read evaluation table {path}: it is neither an .npz archive nor a numpy "
        "array file; delete it to rebuild"
    )


def _work_table() -> Table:
    """A small table with every array a built table has (the optional work counts too)."""
    from migcodec.datasets import Window, generate_pages
    from migcodec.selector import parse_arms
    from migcodec.selector.evaluation import build_table

    pages = generate_pages("text", 16, 0)
    windows = [Window(0, np.arange(16), pages, dirty_pages=32), Window(1, np.arange(8), pages[:8])]
    return build_table(windows, parse_arms("raw;lz4"), repeats=1)


def _same_table(a: Table, b: Table) -> bool:
    from migcodec.selector.evaluation.table import _ARRAYS, _WORK_ARRAYS

    if (a.arms, a.phases, a.meta) != (b.arms, b.phases, b.meta):
        return False
    for name in (*_ARRAYS, *_WORK_ARRAYS):
        x, y = getattr(a, name), getattr(b, name)
        if (x is None) != (y is None):
            return False
        if x is not None and not (
            x.dtype == y.dtype and np.array_equal(x, y, equal_nan=x.dtype.kind == "f")
        ):
            return False
    return True


def test_a_renamed_array_is_refused_not_read_as_a_table_without_it(tmp_path):
    """A zip member's CRC covers its bytes, not its name: a table whose optional array
    lost its name would read back as a valid table without that array."""
    from migcodec.selector.evaluation import TableError

    path = tmp_path / "t.npz"
    _work_table().save(path)
    data = path.read_bytes()
    assert data.count(b"sample.npy") == 2  # local header and central directory
    path.write_bytes(data.replace(b"sample.npy", b"simple.npy"))
    with pytest.raises(TableError, match=r"it holds arrays .*'simple'.* written with .*'sample'"):
        Table.load(path)


def test_a_named_pipe_in_a_table_s_place_is_refused_not_waited_on(tmp_path):
    """Its open would block until a writer came: `evaluate` hung on one left in a trace's
    cached table's place."""
    import os

    from migcodec.selector.evaluation import TableError

    path = tmp_path / "t.npz"
    os.mkfifo(path)
    errors = []

    def load() -> None:
        try:
            Table.load(path)
        except TableError as exc:
            errors.append(exc)

    # in a thread, so that a load that waits on the pipe fails this test, not the suite
    waiter = threading.Thread(target=load, daemon=True)
    waiter.start()
    waiter.join(30)
    assert not waiter.is_alive(), "Table.load waited on a named pipe"
    (err,) = errors
    assert str(err) == (
        f"cannot read evaluation table {path}: {path} is a named pipe (FIFO), not a regular "
        "file; delete it to rebuild"
    )


def _forged(path: Path, edit) -> Path:
    """The table at ``path`` written again with ``edit(meta, arrays)`` applied and its meta
    sealed again (what a hand that knows the format can make): a file whose checks all
    pass, holding what no build makes."""
    import io
    import json

    from migcodec.hashing import seal, unseal

    with np.load(path) as data:
        meta = unseal(json.loads(str(data["meta"])))
        arrays = {k: data[k] for k in data.files if k != "meta"}
    edit(meta, arrays)
    buf = io.BytesIO()
    np.savez_compressed(buf, meta=np.array(json.dumps(seal(meta))), **arrays)
    forged = path.with_name("forged.npz")
    forged.write_bytes(buf.getvalue())
    return forged


def _drop_arms(meta, arrays):
    del meta["arms"]


def _arrays_as_a_list(meta, arrays):
    meta["arrays"] = sorted(meta["arrays"])


def _an_array_no_table_has(meta, arrays):
    from migcodec.selector.evaluation.table import _array_digest

    arrays["foo"] = np.zeros(2)
    meta["arrays"]["foo"] = _array_digest(arrays["foo"])


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (_drop_arms, "its meta lacks the arrays, arms or phases a table names"),
        (_arrays_as_a_list, "its meta lacks the arrays, arms or phases a table names"),
        (_an_array_no_table_has, "it holds arrays no table has: ['foo']"),
    ],
)
def test_a_forged_table_is_refused_by_what_is_wrong_not_with_a_traceback(tmp_path, edit, why):
    """Sealed again by hand, these passed every checksum and failed in the constructor with
    a KeyError or a TypeError."""
    from migcodec.selector.evaluation import TableError

    _work_table().save(tmp_path / "t.npz")
    forged = _forged(tmp_path / "t.npz", edit)
    with pytest.raises(TableError) as err:
        Table.load(forged)
    assert str(err.value) == f"cannot read evaluation table {forged}: {why}; delete it to rebuild"


def _inflated(meta, arrays):
    """``input_bytes`` swapped for 16 MiB of zeros (a few kilobytes compressed), its
    digest left as written."""
    arrays["input_bytes"] = np.zeros(2 << 20)


def _claims_a_terabyte(meta, arrays):
    from migcodec.selector.evaluation.table import _array_digest

    digest = _array_digest(arrays["cpu_s"])
    # 2**60 bytes: more than any machine has available
    meta["arrays"]["cpu_s"] = "<f8[1073741824, 134217728]:" + digest.split(":")[1]


def test_arrays_are_sized_by_their_digests_before_any_is_read(tmp_path):
    """A 2 MB file forged to unpack to 2 GiB took 4 GB of memory before its checksum
    refused it: each member's unpacked size is checked against what its digest says, and
    the digests' sum against the memory available, before numpy reads a byte of them."""
    from migcodec.selector.evaluation import TableError

    table = _work_table()
    table.save(tmp_path / "t.npz")
    expected = table.input_bytes.nbytes + 4096
    inflated = _forged(tmp_path / "t.npz", _inflated)
    assert inflated.stat().st_size < 1 << 20
    with pytest.raises(
        TableError, match=rf"member 'input_bytes' unpacks to \d+ bytes, more than {expected};"
    ):
        Table.load(inflated)
    claims = _forged(tmp_path / "t.npz", _claims_a_terabyte)
    with pytest.raises(
        TableError, match=r"its arrays claim \d+ bytes, more memory than is available;"
    ):
        Table.load(claims)


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("zero_pages", lambda t: t.stored * 2, "array 'zero_pages' holds more zero pages than"),
        ("held_frac", lambda t: t.held_frac + 2, "array 'held_frac' holds a share above 1"),
        ("stored", lambda t: t.stored * 0, "array 'stored' holds a window of no stored page"),
    ],
)
def test_work_counts_no_build_makes_are_refused(tmp_path, name, value, why):
    """More zero pages than a window stored reached the cost model, which priced a negative
    time: "array 'wall_s' holds -9e-05", of no file."""
    from migcodec.selector.evaluation import TableError

    table = _work_table()
    setattr(table, name, value(table))
    with pytest.raises(TableError, match=re.escape(why)):
        table.save(tmp_path / "t.npz")


def test_every_flipped_bit_of_a_table_file_is_an_error_or_changes_nothing(tmp_path):
    from migcodec.selector.evaluation import TableError

    table = _work_table()
    path = tmp_path / "t.npz"
    table.save(path)
    assert _same_table(Table.load(path), table)
    data = path.read_bytes()
    changed = 0
    for offset, damaged in flipped_bits(data, 3):  # every third byte
        path.write_bytes(damaged)
        try:
            again = Table.load(path)
        except TableError as exc:
            assert "delete it to rebuild" in str(exc)
            changed += 1
            continue
        assert _same_table(again, table), f"bit {offset % 8} of byte {offset} read back changed"
    assert changed > len(data) // 3 // 2  # most flips are caught, not ignored


_JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.text(max_size=3)
_META = st.recursive(
    _JSON_LEAVES | st.floats(allow_nan=False) | st.just(np.int64(1)) | st.just(np.float64(0.5)),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner)
        | st.dictionaries(st.text(max_size=3) | st.integers(0, 3), inner, max_size=3)
    ),
    max_leaves=6,
)


@given(meta=st.dictionaries(st.text(max_size=3), _META, max_size=3))
@settings(max_examples=60, deadline=None)
def test_a_saved_table_loads_equal_or_is_refused_when_saved(meta):
    """A table's meta goes into its file as JSON, which reads a tuple back as a list and
    an integer key as a string: such a table is refused when saved, naming the part, never
    loaded back different from what was saved."""
    from migcodec.selector.evaluation import TableError

    table = tiny_table()
    table.meta.update(meta)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "t.npz"
        try:
            table.save(path)
        except TableError as exc:
            assert str(exc).startswith(f"cannot save evaluation table to {path}: its meta")
            assert not path.exists()
            return
        assert _same_table(Table.load(path), table)


def test_auto_replays_a_measured_table_alike_every_time():
    """A measured table's timings are fixed once measured, and a probe decision is priced
    by the measuring host's model: timed as each replay ran, it made auto read and choose
    otherwise from one replay to the next (and on each host of a cluster)."""
    from migcodec.selector import make_objective, parse_arms, parse_policy
    from migcodec.selector.costmodel import CostModel
    from migcodec.selector.evaluation import build_table, workload_windows

    model = CostModel.load(Path(__file__).with_name("data") / "cost-model.json")
    windows = workload_windows("phases", n_windows=16, pages=256, seed=1)
    table = build_table(windows, parse_arms("raw;lz4;zstd:level=3;xbzrle"), 1, calibration=model)
    objective = make_objective("throughput", link="10Gbit", workers=2)
    runs = [replay(parse_policy("auto"), table, objective) for _ in range(3)]
    for run in runs[1:]:
        np.testing.assert_array_equal(run.chosen, runs[0].chosen)
        np.testing.assert_array_equal(run.rewards, runs[0].rewards)
        np.testing.assert_array_equal(run.charge_s, runs[0].charge_s)
