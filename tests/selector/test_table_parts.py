"""A table measured in parts (ranges of windows, one arm each, features apart) and joined
in window order is the table measured in one pass, and parts that do not make a table are
refused naming the range."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from migcodec.datasets.trace import TraceReader
from migcodec.selector import parse_arms
from migcodec.selector.costmodel import CostModel
from migcodec.selector.evaluation import TableError, build_table
from migcodec.selector.evaluation.table import join_parts, measure_windows

ROOT = Path(__file__).resolve().parents[2]
#: windows 3-6 and 12-15 of this trace dirtied no page
TRACE = ROOT / "corpus" / "traces" / "numpy"
MODEL = CostModel.load(Path(__file__).with_name("data") / "cost-model.json")
ARMS = parse_arms("raw;lz4;zstd:level=1;dsa-delta")
#: arrays computed from the windows alone: equal between any two measurements
EXACT = (
    "input_bytes",
    "output_bytes",
    "stored_out",
    "context",
    "predicted_ratio",
    "sample",
    "held_frac",
    "delta_bytes",
    "probe_pages",
    "probe_out",
    "pages",
    "stored",
    "zero_pages",
)
#: what a cost model replaces every measured time by
MODELLED = ("cpu_s", "wall_s", "probe_s", "cheap_s", "predicted_rate")


def _parts(start: int, stop: int, ranges: list[tuple[int, int]]):
    """Parts of windows ``start``-``stop``: per range, a features part and one per arm."""
    reader = TraceReader(TRACE)
    parts = []
    for a, b in ranges:
        parts.append(
            measure_windows(reader.windows(a, b), ARMS, [], True, repeats=1, start=a, stop=b)
        )
        for i in range(len(ARMS)):
            parts.append(
                measure_windows(reader.windows(a, b), ARMS, [i], False, repeats=1, start=a, stop=b)
            )
    return parts


def assert_same_table(a, b) -> None:
    for name in EXACT:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.phases == b.phases and a.arms == b.arms
    skip = ("built",)
    assert {k: v for k, v in a.meta.items() if k not in skip} == {
        k: v for k, v in b.meta.items() if k not in skip
    }
    ma, mb = a.modelled(MODEL), b.modelled(MODEL)
    for name in MODELLED:
        np.testing.assert_array_equal(getattr(ma, name), getattr(mb, name), err_msg=name)


def test_a_table_joined_from_parts_in_any_order_is_the_table_of_one_pass():
    ranges = [(1, 4), (4, 7), (7, 8), (8, 14)]  # 4-7: no window with pages; 7 alone
    parts = _parts(1, 14, ranges)
    random.Random(0).shuffle(parts)
    joined = join_parts(parts, MODEL)
    whole = build_table(TraceReader(TRACE).windows(1, 14), ARMS, repeats=1, calibration=MODEL)
    assert joined.n_windows == whole.n_windows == 7
    assert_same_table(joined, whole)
    assert joined.costs() == whole.costs() == [MODEL.arm(a.label) for a in ARMS]


def test_a_range_without_windows_with_pages_joins_as_nothing():
    reader = TraceReader(TRACE)
    assert list(reader.pages_per_window()[3:8]) == [0, 0, 0, 0, 64]
    parts = _parts(3, 8, [(3, 7), (7, 8)])
    assert [p.n_windows for p in parts] == [0] * (len(ARMS) + 1) + [1] * (len(ARMS) + 1)
    joined = join_parts(parts, MODEL)
    alone = build_table(reader.windows(7, 8), ARMS, repeats=1, calibration=MODEL)
    assert_same_table(joined, alone)
    with pytest.raises(TableError, match="no windows with pages to evaluate"):
        join_parts(_parts(3, 7, [(3, 7)]), MODEL)


def test_parts_that_do_not_make_a_table_are_refused_naming_the_range():
    parts = _parts(0, 4, [(0, 2), (2, 4)])
    per_range = len(ARMS) + 1
    first, second = parts[:per_range], parts[per_range:]
    with pytest.raises(TableError, match="windows 2-4: no table part measured lz4"):
        join_parts([p for p in parts if p.encoded != [1] or p.start != 2], MODEL)
    with pytest.raises(TableError, match="windows 0-2: arm raw is measured twice"):
        join_parts([*first, first[1], *second], MODEL)
    with pytest.raises(TableError, match="windows 0-2: 0 table parts hold features"):
        join_parts([*first[1:], *second], MODEL)
    with pytest.raises(TableError, match="0-2 and 3-4 do not follow each other"):
        late = _parts(3, 4, [(3, 4)])
        join_parts([*first, *late], MODEL)
    other = measure_windows(
        TraceReader(TRACE).windows(2, 4), ARMS, [0], False, repeats=2, start=2, stop=4
    )
    with pytest.raises(TableError, match="other arms or settings"):
        join_parts([*first, *second[1:], other], MODEL)
    with pytest.raises(TableError, match="no table parts to join"):
        join_parts([], MODEL)


def test_parts_of_different_windows_are_refused():
    parts = _parts(0, 4, [(0, 4)])
    moved = measure_windows(
        TraceReader(TRACE).windows(10, 14), ARMS, [2], False, repeats=1, start=0, stop=4
    )
    with pytest.raises(TableError, match="windows 0-4: table parts disagree on the windows"):
        join_parts([p for p in parts if p.encoded != [2]] + [moved], MODEL)


def test_build_table_stores_the_calibration_it_is_given():
    table = build_table(TraceReader(TRACE).windows(0, 3), ARMS, repeats=1, calibration=MODEL)
    assert table.costs() == [MODEL.arm(a.label) for a in ARMS]
