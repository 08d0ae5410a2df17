"""One entry point for "give me windows": a trace directory, a workload name or a spec.

Evaluators and benchmarks take a ``source`` string from the user; this resolves it so each
of them does not repeat the lookup (and its error message).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from migcodec.datasets.presets import get_workload, workload_names
from migcodec.datasets.trace import TraceReader
from migcodec.datasets.trace.format import MANIFEST
from migcodec.datasets.window import Window
from migcodec.datasets.workload import Workload, WorkloadSpec
from migcodec.storage import is_url


def open_windows(
    source: str | os.PathLike | WorkloadSpec,
    *,
    n_pages: int | None = None,
    n_windows: int | None = None,
    seed: int | None = None,
) -> Iterable[Window]:
    """A :class:`TraceReader` for a trace directory or URL, else a :class:`Workload`.

    ``n_pages``, ``n_windows`` and ``seed`` size a named workload; they are refused for a
    trace, whose size is fixed.
    """
    if isinstance(source, WorkloadSpec):
        return Workload(source)
    if is_url(source):  # a trace on an fsspec filesystem (a workload is never a URL)
        if n_pages is not None or n_windows is not None or seed is not None:
            raise ValueError(f"{source} is a trace; n_pages, n_windows and seed apply to workloads")
        return TraceReader(source)
    path = Path(source)
    # a directory is a trace, read as one (a damaged or missing manifest is its error): a
    # trace directory named like a workload whose manifest was not a regular file was
    # otherwise read as that workload, without a word
    if path.is_dir() or (path / MANIFEST).is_file():
        if n_pages is not None or n_windows is not None or seed is not None:
            raise ValueError(f"{path} is a trace; n_pages, n_windows and seed apply to workloads")
        return TraceReader(path)
    if str(source) in workload_names():
        return Workload(get_workload(str(source), n_pages=n_pages, n_windows=n_windows, seed=seed))
    raise ValueError(
        f"{source!s} is neither a trace directory nor a workload; workloads: "
        f"{', '.join(workload_names())}"
    )
