"""Policy configurations chosen on traces they were not scored on.

A grid names a policy and lists of values for some of its parameters; every combination is
replayed on every (trace, link) table. Picking the configuration that scores best on the
same traces it is reported on flatters it, so :func:`leave_one_trace_out` picks, for each
trace, the configuration best on all the *other* traces and reports it on the one left out.

The score of a configuration over some (trace, link) cells is its mean total/oracle, minus
twice its mean shortfall below the best fixed arm: a policy that trails a codec picked by
hand somewhere pays for it more than it gains near the oracle elsewhere.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from migcodec.files import parse_json, read_small_file
from migcodec.selector.evaluation.replay import ReplayResult, fixed_configs, replay_configs, score
from migcodec.selector.evaluation.table import Table
from migcodec.selector.objectives import Objective
from migcodec.selector.policies import PolicyError, policy_from_config

#: weight of the shortfall below the best fixed arm in a configuration's score
SHORTFALL_WEIGHT = 2.0
#: configurations one replay job holds: a job of several replays outweighs what a cluster
#: spends to schedule it, and a grid of hundreds still makes many jobs per worker
GRID_CHUNK = 8
#: the most configurations a grid may hold: each is replayed on every (trace, link) table
MAX_GRID_CONFIGS = 10_000
#: the largest grid file read: a grid is a few lists of values
MAX_GRID_BYTES = 1 << 20
#: what a grid file holds, for messages about one that holds something else
GRID_SHAPE = 'a grid is {"policy": NAME, "params": {"key": [values, ...]}}'

#: a grid's cell: (trace name, link)
Cell = tuple[str, str]
#: runs replay jobs ``(configurations, cell)`` and returns each job's replays, in order
ReplayMap = Callable[[list[tuple[list[dict[str, Any]], Cell]]], list[list[ReplayResult]]]


def grid_configs(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every configuration of a grid ``{"policy": NAME, "params": {key: [values]}}``; at
    most :data:`MAX_GRID_CONFIGS` of them (counted before any is built). A key besides
    these two is refused, not ignored (``"param"`` ranked the defaults alone), and so is a
    value listed twice (the same configuration, replayed and ranked twice)."""
    if not isinstance(spec, dict) or "policy" not in spec:
        raise PolicyError(GRID_SHAPE)
    other = sorted(set(spec) - {"policy", "params"})
    if other:
        raise PolicyError(
            f"{GRID_SHAPE}, and nothing else; it also holds {', '.join(map(repr, other))}: correct "
            "or remove it"
        )
    params = spec.get("params", {})  # not "or {}": null, 0, "" and [] were the defaults
    if not isinstance(params, dict):
        raise PolicyError(f"{GRID_SHAPE}; its params are {type(params).__name__}, not an object")
    if "name" in params:  # it replaced the grid's policy, and rows were labelled (defaults)
        raise PolicyError(
            f"{GRID_SHAPE}: a grid is one policy's configurations, and 'name' in its params "
            "would name others; give one grid per policy"
        )
    if not all(isinstance(v, list) and v for v in params.values()):
        raise PolicyError("every grid parameter needs a non-empty list of values")
    for key, values in params.items():
        written = Counter(json.dumps(v, sort_keys=True) for v in values)
        twice = sorted(w for w, n in written.items() if n > 1)
        if twice:
            raise PolicyError(
                f"grid parameter {key!r} lists {', '.join(twice)} more than once; list each "
                "value once"
            )
    count = math.prod(len(v) for v in params.values())
    if count > MAX_GRID_CONFIGS:
        sizes = " x ".join(str(len(v)) for v in params.values())
        raise PolicyError(
            f"the grid holds {count} configurations ({sizes} values), more than the "
            f"{MAX_GRID_CONFIGS} one evaluation replays; give fewer values"
        )
    keys = list(params)
    configs = [
        {"name": spec["policy"], **dict(zip(keys, values, strict=True))}
        for values in itertools.product(*(params[k] for k in keys))
    ]
    built: dict[str, dict[str, Any]] = {}
    for config in configs:
        # refused here, not after tables are measured; and told apart as built: 5 and 5.0
        # were written apart, and the same configuration replayed and ranked twice
        made = json.dumps(policy_from_config(config).get_config(), sort_keys=True)
        first = built.setdefault(made, config)
        if first is not config:
            raise PolicyError(
                f"grid configurations {_written(first)} and {_written(config)} are the same "
                f"configuration of {spec['policy']}; list each value once"
            )
    return configs


def _written(config: dict[str, Any]) -> str:
    """A grid configuration's parameters as its file writes them."""
    return json.dumps({k: v for k, v in config.items() if k != "name"}, sort_keys=True)


def load_grid(path: str | Path) -> list[dict[str, Any]]:
    """The configurations of the grid file at ``path``: a regular file of at most
    :data:`MAX_GRID_BYTES` (a device or a pipe is refused without being read)."""
    try:
        data = read_small_file(path, "grid", MAX_GRID_BYTES, "give a JSON grid file")
    except ValueError as exc:  # a pipe, a device, a file larger than any grid
        raise PolicyError(str(exc)) from None
    except OSError as exc:  # the system's words, without "[Errno N]" and the path again
        raise PolicyError(
            f"cannot read grid {path} ({exc.strerror or exc}); give a JSON grid file, {GRID_SHAPE}"
        ) from exc
    try:
        spec = parse_json(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:  # the decoder's words alone
        raise PolicyError(
            f"grid {path} is not valid JSON ({exc}); {GRID_SHAPE}, e.g. "
            '{"policy": "d-ucb", "params": {"gamma": [0.9, 0.99]}}'
        ) from None
    except ValueError as exc:  # valid JSON, yet no grid: a key given twice, nested deep
        raise PolicyError(f"cannot read grid {path}: {exc}") from None
    return grid_configs(spec)


@dataclass
class CellScore:
    vs_oracle: float
    vs_best_fixed: float


def grid_jobs(
    configs: list[dict[str, Any]],
    cells: dict[Cell, tuple[Table, Objective]],
    chunk: int = GRID_CHUNK,
) -> list[tuple[list[dict[str, Any]], Cell]]:
    """The replays a grid needs, as jobs ``(configurations, cell)``: first every cell's
    fixed arms (once per cell: they score every configuration there), then the
    configurations in chunks of ``chunk``, cell by cell."""
    jobs = [(fixed_configs(table.n_arms), cell) for cell, (table, _) in cells.items()]
    jobs += [
        (configs[i : i + chunk], cell) for cell in cells for i in range(0, len(configs), chunk)
    ]
    return jobs


def score_grid(
    configs: list[dict[str, Any]],
    cells: dict[Cell, tuple[Table, Objective]],
    replay_map: ReplayMap | None = None,
) -> list[dict[Cell, CellScore]]:
    """Each configuration's scores on each (trace, link) cell.

    ``replay_map`` runs the replays of :func:`grid_jobs` (default: here, one after the
    other); a cluster runs them as tasks. Either way they are scored here by
    :func:`~migcodec.selector.evaluation.replay.score`, so the scores are the same."""
    jobs = grid_jobs(configs, cells)
    if replay_map is None:
        results = [replay_configs(chunk, *cells[cell]) for chunk, cell in jobs]
    else:
        results = replay_map(jobs)
    n = len(cells)
    fixed = {cell: results[i] for i, (_, cell) in enumerate(jobs[:n])}
    replays: dict[Cell, list[ReplayResult]] = {cell: [] for cell in cells}
    for (_, cell), done in zip(jobs[n:], results[n:], strict=True):
        replays[cell] += done
    out: list[dict[Cell, CellScore]] = [{} for _ in configs]
    for cell, (table, objective) in cells.items():  # one scoring per cell, of every config
        scored = score(table, objective, [*fixed[cell], *replays[cell]]).scores[table.n_arms :]
        for i, s in enumerate(scored):
            out[i][cell] = CellScore(s.vs_oracle, s.vs_best_fixed)
    return out


def rank_configs(
    configs: list[dict[str, Any]], scores: list[dict[Cell, CellScore]]
) -> list[dict[str, Any]]:
    """Every configuration with its score over all cells (:func:`config_score`) and the
    mean and minimum of its total/oracle and total/best fixed arm, best first (ties keep
    the grid's order)."""
    rows = []
    for config, cell_scores in zip(configs, scores, strict=True):
        oracle = [s.vs_oracle for s in cell_scores.values()]
        fixed = [s.vs_best_fixed for s in cell_scores.values()]
        rows.append(
            {
                "config": config,
                "score": config_score(cell_scores, cell_scores),
                "vs_oracle_mean": float(np.mean(oracle)),
                "vs_oracle_min": float(np.min(oracle)),
                "vs_best_fixed_mean": float(np.mean(fixed)),
                "vs_best_fixed_min": float(np.min(fixed)),
            }
        )
    return sorted(rows, key=lambda r: -r["score"])


def config_score(scores: dict[tuple[str, str], CellScore], cells: Iterable) -> float:
    cells = list(cells)
    oracle = np.mean([scores[c].vs_oracle for c in cells])
    shortfall = np.mean([max(0.0, 1.0 - scores[c].vs_best_fixed) for c in cells])
    return float(oracle - SHORTFALL_WEIGHT * shortfall)


def leave_one_trace_out(
    configs: list[dict[str, Any]], scores: list[dict[tuple[str, str], CellScore]]
) -> dict[str, tuple[dict[str, Any], dict[str, CellScore]]]:
    """Per trace: the configuration best on the other traces, and its scores on this one."""
    cells = list(scores[0]) if scores else []
    traces = list(dict.fromkeys(trace for trace, _ in cells))
    out = {}
    for held in traces:
        train = [c for c in cells if c[0] != held]
        best = max(range(len(configs)), key=lambda i: config_score(scores[i], train))
        out[held] = (
            configs[best],
            {link: scores[best][(t, link)] for t, link in cells if t == held},
        )
    return out
