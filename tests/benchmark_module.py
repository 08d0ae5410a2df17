"""Import a benchmark script as a module: ``benchmarks/`` holds scripts, not a package, and
its tests call the scripts' functions as well as running them."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from tests.plugin_dist import REPO


def benchmark_module(name: str) -> ModuleType:
    """``benchmarks/NAME.py``, imported under ``NAME``, with ``benchmarks/`` on
    ``sys.path`` as running the script puts it there (the scripts share helpers such as
    ``timing.py`` and ``provenance.py``)."""
    scripts = str(REPO / "benchmarks")
    if scripts not in sys.path:
        sys.path.append(scripts)
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
