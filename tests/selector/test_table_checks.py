"""A table whose arrays disagree with each other, with its arms or with what any build
measures is refused with TableError naming the array and what it should be: when made,
when saved, and when a file written otherwise is loaded (a replay then indexes and divides
without checking)."""

import copy
import dataclasses
import functools
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migcodec.selector import Throughput, make_objective
from migcodec.selector.evaluation import Table, TableError, evaluate, replay
from migcodec.selector.evaluation import table as table_module
from migcodec.selector.policies import parse_policy
from tests.selector.tables import tiny_table


def _set(name, value):
    def change(t):
        setattr(t, name, value(getattr(t, name)) if callable(value) else value)

    return change


def _cell(name, value):
    def change(t):
        getattr(t, name)[1, 1] = value

    return change


def _meta(key, value):
    def change(t):
        t.meta[key] = value

    return change


CHANGES = [
    (
        _set("output_bytes", lambda a: a[:, :1].copy()),
        r"array 'output_bytes' has shape \(3, 1\); it should be \(3, 2\) \(windows x its 2 "
        r"arms\)",
    ),
    (
        _set("cpu_s", lambda a: np.vstack([a, a])),
        r"array 'cpu_s' has shape \(6, 2\); it should be \(3, 2\) \(windows x its 2 arms\)",
    ),
    (
        _set("context", lambda a: a[:, 0].copy()),
        r"array 'context' has shape \(3,\); it should be \(3, 5\) \(windows x context features\)",
    ),
    (
        _set("arms", lambda a: a[:1]),
        r"array 'input_bytes' has shape \(3, 2\); it should be \(3, 1\) \(windows x its 1 arms\)",
    ),
    (_set("cpu_s", lambda a: a.astype(np.int8)), "array 'cpu_s' is int8; it should be floating"),
    (_set("cpu_s", lambda a: a.astype(str)), "array 'cpu_s' is <U32; it should be floating"),
    (_set("cheap_s", [0.0, 0.0, 0.0]), "array 'cheap_s' is list; it should be floating point"),
    (
        _cell("output_bytes", np.nan),
        "array 'output_bytes' holds nan; its entries should be finite and at least 0",
    ),
    (_cell("cpu_s", np.inf), "array 'cpu_s' holds inf; its entries should be finite and at"),
    (_cell("wall_s", -1.0), "array 'wall_s' holds -1.0; its entries should be finite and at"),
    (_cell("device_s", -1.0), "array 'device_s' holds -1.0; its entries should be nan or at"),
    (_cell("context", np.inf), "array 'context' holds inf; its entries should be from 0 to 1"),
    # sent: a window's output of 1e308 bytes overflowed a replay's sums
    (
        _cell("output_bytes", 1e308),
        r"array 'output_bytes' holds 1e\+308 bytes sent for window 1 of \d+ bytes; no codec "
        "sends more than twice what it is given",
    ),
    # shares (entropy scaled): a forged 1e300 overflowed auto's drift between windows
    (_cell("context", 1e300), r"array 'context' holds 1e\+300; its entries should be from 0"),
    (_cell("context", -0.5), "array 'context' holds -0.5; its entries should be from 0 to 1"),
    (
        _set("words_var", np.array([1.0, -2.0, 0.0])),
        "array 'words_var' holds -2.0; its entries should be finite and at least 0",
    ),
    (
        _set("words_runs_cov", np.array([1.0, np.nan, -3.0])),
        "array 'words_runs_cov' holds nan; its entries should be finite",
    ),
    (_cell("output_bytes", 0.0), "array 'output_bytes' holds a window of no bytes"),
    # finite, but beyond any build: a replay's reward of such a window was -inf, refused
    # as the fault of the policy that got it
    (_cell("input_bytes", 5e-324), "array 'input_bytes' holds a window of no bytes"),
    (
        _cell("input_bytes", 1e300),
        "array 'input_bytes' holds a window of 1e\\+300 bytes, more than a guest of "
        "1099511627776 pages of 4096 bytes holds",
    ),
    (
        _cell("device_s", 1e308),
        "array 'device_s' holds 1e\\+308 s for window 1 of 1000 bytes; no build measures "
        "more than 1 s a byte",
    ),
    (
        _set("cheap_s", np.array([0.0, 0.0, 2000.0])),
        "array 'cheap_s' holds 2000.0 s for window 2 of 1000 bytes",
    ),
    (_cell("input_bytes", 0.0), "array 'input_bytes' holds a window of no bytes"),
    (
        _set("input_bytes", lambda a: a[:0].copy()),
        "it holds no windows",
    ),
    (_set("phases", ["a"]), "it holds 1 phases for 3 windows"),
    (_set("arms", [{"codec": "raw"}, {"name": "lz4"}]), r"its arms are \[\{'codec': 'raw'\}"),
    # a name no codec has: a replay hashed the arm, and stopped in a TypeError
    (_set("arms", [{"name": {"a": 1}}, {"name": "lz4"}]), r"its arms are \[\{'name': \{'a'"),
    (_set("arms", [{"name": "raw"}, {"name": [1]}]), r"its arms are \[\{'name': 'raw'\}, \{'name'"),
    (_meta("page_size", "x"), "its page_size is 'x', not a multiple of 8 from 8 to 2097152"),
    (_meta("page_size", 0), "its page_size is 0, not a multiple of 8 from 8 to 2097152"),
    (_meta("page_size", 4100), "its page_size is 4100, not a multiple of 8 from 8 to"),
    (_meta("page_size", 2**80), f"its page_size is {2**80}, not a multiple of 8 from 8 to"),
    (
        _meta("kinds", ["raw"]),
        r"its kinds are \['raw'\]; they should be one of compress, delta, raw per arm "
        r"\(2 arms\)",
    ),
    (
        _meta(
            "costs",
            {"lz4": {"per_call": 1e308, "per_zero_page": 0.0, "per_page": [1e-6] * 9}},
        ),
        "its cost model arm 'lz4' has coefficients no calibration writes",
    ),
]


@pytest.mark.parametrize(("change", "message"), CHANGES)
def test_a_table_no_build_makes_is_refused_when_made(change, message):
    fields = {f.name: getattr(tiny_table(), f.name) for f in dataclasses.fields(Table)}
    probe = dataclasses.replace(tiny_table())  # a table, changed, then made again
    change(probe)
    fields.update({f.name: getattr(probe, f.name) for f in dataclasses.fields(Table)})
    with pytest.raises(TableError, match=f"^{message}"):
        Table(**fields)


@pytest.mark.parametrize(("change", "message"), CHANGES)
def test_a_table_changed_since_it_was_made_is_refused_when_saved(tmp_path, change, message):
    table = tiny_table()
    change(table)
    path = tmp_path / "t.npz"
    with pytest.raises(TableError, match=f"^cannot save evaluation table to {path}: {message}"):
        table.save(path)
    assert not path.exists()


#: a file holds arrays only (a list is saved as one)
IN_FILES = [(change, message) for change, message in CHANGES if "is list" not in message]


@pytest.mark.parametrize(("change", "message"), IN_FILES)
def test_a_table_file_no_build_writes_is_refused_when_loaded(
    tmp_path, monkeypatch, change, message
):
    table = tiny_table()
    change(table)
    path = tmp_path / "t.npz"
    with monkeypatch.context() as m:  # written by another program, sealed as save seals
        m.setattr(table_module, "_check_table", lambda t: None)
        table.save(path)
    with pytest.raises(
        TableError, match=f"^cannot read evaluation table {path}: {message}.*; delete it"
    ):
        Table.load(path)


def test_a_table_of_measured_windows_round_trips_and_replays(tmp_path):
    table = tiny_table()
    table.device_s[0, 1] = 1e-3  # nan is "none", a time is taken
    table.predicted_ratio[2, 0] = np.inf  # a probe that wrote nothing
    path = tmp_path / "t.npz"
    table.save(path)
    loaded = Table.load(path)
    result = replay(parse_policy("ucb1"), loaded, Throughput(link=1e3, workers=1))
    assert len(result.chosen) == 3
    assert loaded.features(0).checked_arms == 2  # checked with the table


def _built_table():
    """Two windows of text measured by ``build_table``: a table holding work counts."""
    from migcodec.datasets import Window, generate_pages
    from migcodec.selector import parse_arms
    from migcodec.selector.evaluation import build_table

    pages = generate_pages("text", 8, 0)
    previous = pages.copy()
    for i in range(8):  # held versions, each page with more changed words than the last
        previous[i, : 64 * (i + 1) : 9] ^= 1
    windows = [
        Window(0, np.arange(8), pages, previous=previous),
        Window(1, np.arange(4), pages[:4]),
    ]
    return build_table(windows, parse_arms("raw;xbzrle"), repeats=1)


@pytest.mark.parametrize("name", ["words_var", "words_runs_cov"])
def test_a_table_with_one_of_the_changed_words_moments_is_refused(name):
    """The sample's variance of changed words and their covariance with the runs are read
    together (a policy prices the runs from both): a table with one is no build's."""
    table = _built_table()
    assert table.words_var[0] > 0.0  # measured, not left at 0
    fields = {f.name: getattr(table, f.name) for f in dataclasses.fields(Table)}
    fields[name] = None
    with pytest.raises(TableError, match=f"^it holds work counts but no {name}$"):
        Table(**fields)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("pages", 1e300, "array 'pages' holds 1e\\+300 pages in a window, more than the largest"),
        ("stored_words", 1e200, "array 'stored_words' holds more changed words than a window's"),
        ("stored_runs", 1e200, "array 'stored_runs' holds more runs of changed bytes than a"),
    ],
)
def test_a_table_with_work_counts_beyond_its_pages_is_refused(name, value, message):
    """A cost model prices a window's pages, changed words and runs: counts beyond what
    its pages hold made a modelled time of 1e300 s, refused in the words of an array the
    table does not hold (``wall_s`` of the modelled table)."""
    table = _built_table()
    fields = {f.name: getattr(table, f.name) for f in dataclasses.fields(Table)}
    fields[name] = fields[name].copy()
    fields[name][0] = value
    with pytest.raises(TableError, match=f"^{message}"):
        Table(**fields)


_ODD_NUMBERS = [0.0, 0.5, 1.0, 1e-300, 5e-324, 1e15, 1e300, 1e308, np.nan, np.inf, -1.0]
_ODD_JSON = [0, -1, 2**64, 10**400, 1e308, "x", "", None, True, [], {}, [1, 2], {"a": 1}]


@functools.cache
def _built_once() -> Table:
    return _built_table()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_forged_table_file_is_refused_or_replays_to_finite_scores(data):
    """A table file changed and sealed again (its meta's seal and the arrays' digests
    recomputed, as a hostile or buggy writer would) either fails to load with a
    :class:`TableError`, or every policy replays it to finite scores under every
    objective: no traceback, no reward of -inf blamed on a policy, no nan in a report."""
    table = copy.copy(_built_once())
    table.meta = dict(table.meta)
    arrays = [
        f.name for f in dataclasses.fields(Table) if isinstance(getattr(table, f.name), np.ndarray)
    ]
    if data.draw(st.booleans(), label="array"):
        name = data.draw(st.sampled_from(arrays), label="name")
        array = getattr(table, name).copy()
        value = data.draw(st.sampled_from(_ODD_NUMBERS), label="value")
        if data.draw(st.booleans(), label="whole"):
            array[...] = value
        else:
            array[tuple(data.draw(st.integers(0, n - 1)) for n in array.shape)] = value
        setattr(table, name, array)
    else:
        key = data.draw(st.sampled_from(["arms", "phases", "page_size", "kinds", "costs"]))
        value = data.draw(st.sampled_from(_ODD_JSON), label="value")
        if key == "arms":
            table.arms = [dict(table.arms[0], name=value), *table.arms[1:]]
        elif key == "phases":
            table.phases = [value, *table.phases[1:]]
        else:
            table.meta[key] = value
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as m:
        path = Path(tmp) / "t.npz"
        m.setattr(table_module, "_check_table", lambda t: None)
        try:
            table.save(path)
        except (TypeError, ValueError):  # not JSON at all: no file a writer can make
            return
        m.undo()
        try:
            loaded = Table.load(path)
        except TableError:
            return
    policies = [parse_policy(p) for p in ("auto", "ucb1", "predictive")]
    for objective in (
        Throughput(link=1e9, workers=2),
        make_objective("cpu"),
        make_objective("wire"),
    ):
        scores = evaluate(loaded, policies, objective).scores
        assert all(np.isfinite(s.total) for s in scores)
