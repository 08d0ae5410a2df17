"""Import a benchmark script as a module: ``benchmarks/`` holds scripts, not a package, and
its tests call the scripts' functions as well as running them."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from tests.plugin_dist import REPO


def benchmark_module(name: str) -> ModuleType:
    """``benchmarks/NAME.py``, imported under ``NAME``."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
