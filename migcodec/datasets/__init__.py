"""Guest page contents, dirtying workloads, traces and capture, for tests, benchmarks and
policy evaluation. Everything yields or stores :class:`Window` objects."""

from migcodec.datasets.pages import GENERATORS, generate_pages
from migcodec.datasets.presets import get_workload, workload_names
from migcodec.datasets.sources import open_windows
from migcodec.datasets.trace import (
    Trace,
    TraceCorrupt,
    TraceError,
    TraceInfo,
    TraceReader,
    TraceWriter,
    open_trace,
)
from migcodec.datasets.window import Window
from migcodec.datasets.workload import Phase, Workload, WorkloadSpec

__all__ = [
    "GENERATORS",
    "Phase",
    "Trace",
    "TraceCorrupt",
    "TraceError",
    "TraceInfo",
    "TraceReader",
    "TraceWriter",
    "Window",
    "Workload",
    "WorkloadSpec",
    "generate_pages",
    "get_workload",
    "open_trace",
    "open_windows",
    "workload_names",
]
