"""Offline evaluation: full-information tables, replay, scores, off-policy estimators."""

from migcodec.selector.evaluation.estimators import Estimate, doubly_robust, ips, snips
from migcodec.selector.evaluation.replay import Evaluation, ReplayResult, Score, evaluate, replay
from migcodec.selector.evaluation.table import Table, TableError, build_table
from migcodec.selector.evaluation.windows import (
    WindowSourceError,
    check_windows,
    phase_generators,
    read_trace,
    workload_windows,
)

__all__ = [
    "Estimate",
    "Evaluation",
    "ReplayResult",
    "Score",
    "Table",
    "TableError",
    "WindowSourceError",
    "build_table",
    "check_windows",
    "doubly_robust",
    "evaluate",
    "ips",
    "phase_generators",
    "read_trace",
    "replay",
    "snips",
    "workload_windows",
]
