"""Grids of policy configurations and leave-one-trace-out choice."""

import json
import os
import threading

import pytest

from migcodec.selector import Throughput
from migcodec.selector.evaluation.grid import (
    CellScore,
    config_score,
    grid_configs,
    leave_one_trace_out,
    load_grid,
    score_grid,
)
from migcodec.selector.policies import POLICIES, PolicyError
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


def test_a_grid_of_too_many_configurations_is_refused_before_any_is_built():
    """7 parameters x 10 values made 10^7 configurations, each built to be checked."""
    grid = {"policy": "d-ucb", "params": {"c": list(range(10001))}}
    with pytest.raises(PolicyError) as info:
        grid_configs(grid)
    assert str(info.value) == (
        "the grid holds 10001 configurations (10001 values), more than the 10000 one "
        "evaluation replays; give fewer values"
    )
    values = [0.1 * i for i in range(1, 11)]
    huge = {"policy": "auto", "params": {k: values for k in ("drift", "change", "value", "learn")}}
    huge["params"]["upkeep"] = values
    with pytest.raises(PolicyError, match=r"holds 100000 configurations \(10 x 10 x 10 x 10 x 10"):
        grid_configs(huge)
    assert len(grid_configs({"policy": "d-ucb", "params": {"c": list(range(10000))}})) == 10000


def test_grid_params_that_are_not_an_object_are_refused():
    with pytest.raises(PolicyError, match=r"its params are list, not an object$"):
        grid_configs({"policy": "ucb1", "params": [1, 2]})


def test_a_grid_file_too_large_is_refused_unread(tmp_path):
    path = tmp_path / "grid.json"
    path.write_text(json.dumps({"policy": "ucb1", "params": {"c": [1]}}) + " " * (1 << 20))
    with pytest.raises(PolicyError) as info:
        load_grid(path)
    assert str(info.value) == f"grid {path} is larger than 1 MiB; give a JSON grid file"


def test_a_grid_path_that_is_not_a_regular_file_is_refused_without_reading_it(tmp_path):
    """A FIFO (or /dev/zero) was read to its end: it hung, or ate memory."""
    with pytest.raises(PolicyError, match=r"is a directory, not a regular file; give a JSON grid"):
        load_grid(tmp_path)
    fifo = tmp_path / "grid.fifo"
    os.mkfifo(fifo)
    outcome = []

    def load():
        try:
            load_grid(fifo)
        except PolicyError as exc:
            outcome.append(str(exc))

    reader = threading.Thread(target=load, daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # release a reader stuck on the FIFO: a writer that closes
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(10)
    assert outcome == [
        f"grid {fifo} is a named pipe (FIFO), not a regular file; give a JSON grid file"
    ]


@pytest.mark.parametrize("policy", [["ucb1"], {"name": "ucb1"}, 3, None])
def test_a_grid_whose_policy_is_not_a_name_is_refused_naming_it(tmp_path, policy):
    """A list or an object as the policy failed with TypeError: unhashable type."""
    path = tmp_path / "grid.json"
    path.write_text(json.dumps({"policy": policy, "params": {"c": [1]}}))
    with pytest.raises(PolicyError) as caught:
        load_grid(path)
    known = ", ".join(sorted(POLICIES))  # other tests may register policies of their own
    assert str(caught.value) == f"unknown policy {policy!r}; known: {known}"


def test_a_grid_file_giving_a_key_twice_is_refused_not_read_as_its_last(tmp_path):
    """``json.loads`` keeps the last of a key given twice: a grid that lists ``gamma``
    twice ranked the second list alone."""
    path = tmp_path / "grid.json"
    path.write_text('{"policy": "d-ucb", "params": {"gamma": [0.9], "c": [1], "gamma": [0.5]}}')
    with pytest.raises(PolicyError) as caught:
        load_grid(path)
    assert str(caught.value) == (
        f"cannot read grid {path}: its JSON gives the key 'gamma' more than once"
    )


def test_a_grid_file_that_is_not_json_is_named_with_what_a_grid_holds(tmp_path, capsys):
    """It was the decoder's words alone: "cannot read grid bad.json: Expecting property name
    enclosed in double quotes: line 1 column 2 (char 1)"."""
    from migcodec.cli import main

    path = tmp_path / "bad.json"
    path.write_text("{policy: d-ucb}")
    argv = ["evaluate", "--workload", "text", "--windows", "2", "--pages", "8"]
    assert main([*argv, "--grid", str(path)]) == 2
    assert capsys.readouterr() == (
        "",
        f"migcodec evaluate: grid {path} is not valid JSON (Expecting property name enclosed "
        'in double quotes: line 1 column 2 (char 1)); a grid is {"policy": NAME, "params": '
        '{"key": [values, ...]}}, e.g. {"policy": "d-ucb", "params": {"gamma": [0.9, 0.99]}}\n',
    )


def test_a_grid_file_nested_too_deeply_is_refused_in_one_line(tmp_path):
    path = tmp_path / "grid.json"
    path.write_text("[" * 100_000)
    with pytest.raises(PolicyError, match=r"its JSON is nested too deeply$"):
        load_grid(path)


def test_read_small_file_refuses_a_file_whose_bytes_do_not_come_without_waiting(
    monkeypatch, tmp_path
):
    """A /proc file such as kmsg is regular by its mode, yet a read without blocking
    returns nothing: say so, not "object of type 'NoneType' has no len()"."""
    import io

    from migcodec import files

    class Waiting(io.RawIOBase):
        def readable(self):
            return True

        def readinto(self, b):
            return None  # would block

    path = tmp_path / "kmsg"
    path.write_text("{}")
    opened = []

    def fdopen(fd, mode):
        opened.append(fd)
        return io.BufferedReader(Waiting())

    monkeypatch.setattr(files.os, "fdopen", fdopen)
    with pytest.raises(ValueError, match=r"grid .*kmsg cannot be read without waiting; give a"):
        files.read_small_file(path, "grid", 1 << 20, "give a JSON grid file")
    os.close(opened[0])


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        (  # ranked the policy's defaults alone, as if the grid listed nothing
            {"policy": "d-ucb", "param": {"gamma": [0.5, 0.9]}},
            'a grid is {"policy": NAME, "params": {"key": [values, ...]}}, and nothing else; '
            "it also holds 'param': correct or remove it",
        ),
        (  # the same configuration, replayed and ranked twice
            {"policy": "d-ucb", "params": {"c": [1, 2], "gamma": [0.9, 0.5, 0.9]}},
            "grid parameter 'gamma' lists 0.9 more than once; list each value once",
        ),
        (  # written apart, and the same configuration, ranked twice with one score
            {"policy": "sw-ucb", "params": {"window": [5, 5.0]}},
            'grid configurations {"window": 5} and {"window": 5.0} are the same configuration '
            "of sw-ucb; list each value once",
        ),
        (  # replaced the grid's policy: two policies ranked under one, labelled (defaults)
            {"policy": "auto", "params": {"name": ["ucb1", "thompson"]}},
            'a grid is {"policy": NAME, "params": {"key": [values, ...]}}: a grid is one '
            "policy's configurations, and 'name' in its params would name others; give one "
            "grid per policy",
        ),
        (  # taken for the defaults
            {"policy": "ucb1", "params": None},
            'a grid is {"policy": NAME, "params": {"key": [values, ...]}}; its params are '
            "NoneType, not an object",
        ),
    ],
)
def test_a_grid_key_besides_policy_and_params_or_a_value_listed_twice_is_refused(grid, message):
    with pytest.raises(PolicyError) as caught:
        grid_configs(grid)
    assert str(caught.value) == message


def test_a_missing_grid_file_is_named_with_what_a_grid_holds(tmp_path):
    """It was "cannot read grid nope.json: [Errno 2] No such file or directory:
    'nope.json'", the path twice and no fix."""
    path = tmp_path / "nope.json"
    with pytest.raises(PolicyError) as caught:
        load_grid(path)
    assert str(caught.value) == (
        f"cannot read grid {path} (No such file or directory); give a JSON grid file, a grid "
        'is {"policy": NAME, "params": {"key": [values, ...]}}'
    )
