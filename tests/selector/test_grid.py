"""Grids of policy configurations and leave-one-trace-out choice."""

import pytest

from migcodec.selector import Throughput
from migcodec.selector.evaluation.grid import (
    CellScore,
    config_score,
    grid_configs,
    leave_one_trace_out,
    score_grid,
)
from migcodec.selector.policies import PolicyError
from tests.selector.tables import tiny_table


def test_a_grid_is_every_combination_and_bad_values_are_refused_up_front():
    configs = grid_configs({"policy": "d-ucb", "params": {"gamma": [0.9, 0.99], "c": [1, 2]}})
    assert configs == [
        {"name": "d-ucb", "gamma": 0.9, "c": 1},
        {"name": "d-ucb", "gamma": 0.9, "c": 2},
        {"name": "d-ucb", "gamma": 0.99, "c": 1},
        {"name": "d-ucb", "gamma": 0.99, "c": 2},
    ]
    with pytest.raises(PolicyError, match="non-empty list"):
        grid_configs({"policy": "d-ucb", "params": {"gamma": 0.9}})
    with pytest.raises(PolicyError, match=r"^policy 'd-ucb' has no parameter 'nope'; it takes: "):
        grid_configs({"policy": "d-ucb", "params": {"nope": [1]}})


def test_the_held_out_trace_is_scored_with_what_the_others_chose():
    configs = [{"name": "fixed", "arm": 0}, {"name": "fixed", "arm": 1}]
    cells = {
        (trace, "1Gbit"): (tiny_table(), Throughput(link=1e12, workers=1))
        for trace in ("a", "b", "c")
    }
    scores = score_grid(configs, cells)
    assert len(scores) == 2 and set(scores[0]) == set(cells)
    chosen = leave_one_trace_out(configs, scores)
    assert set(chosen) == {"a", "b", "c"}
    for config, cell in chosen.values():
        best = max(range(2), key=lambda i: config_score(scores[i], cells))
        assert config == configs[best] and set(cell) == {"1Gbit"}


def test_a_shortfall_below_the_best_fixed_arm_costs_twice_what_the_oracle_gains():
    cells = [("a", "l"), ("b", "l")]
    near = {c: CellScore(0.99, 0.98) for c in cells}
    safe = {c: CellScore(0.97, 1.0) for c in cells}
    assert config_score(safe, cells) > config_score(near, cells)
