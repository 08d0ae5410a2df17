"""Register codec plugins for a test without pip: a directory that looks like site-packages.

``importlib.metadata`` finds any ``<name>.dist-info/`` directory on ``sys.path``, and its
``entry_points.txt`` registers entry points exactly as an installed wheel's does. Two caches
stand between a new directory and the registry: stevedore's in-process entry point caches
(keyed by namespace, and by ``sys.path``), and its on-disk cache under ``XDG_CACHE_HOME``
(keyed by ``sys.path`` and mtimes). Tests clear the first and give subprocesses a fresh
``XDG_CACHE_HOME``, so no test sees another test's plugins.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from stevedore import ExtensionManager

from migcodec.codecs.registry import NAMESPACE

REPO = Path(__file__).resolve().parent.parent


def write_dist(
    site: Path,
    dist_name: str,
    entry_points: Mapping[str, str],
    modules: Mapping[str, str] | None = None,
    version: str = "0.1",
) -> Path:
    """Make ``site`` hold one "installed" distribution with ``migcodec.codecs`` entry points.

    ``modules`` maps a top-level module name to its source, written next to the metadata.
    Returns the ``.dist-info`` directory.
    """
    info = site / f"{dist_name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n", encoding="utf-8"
    )
    lines = [f"[{NAMESPACE}]", *(f"{name} = {target}" for name, target in entry_points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for module, source in (modules or {}).items():
        (site / f"{module}.py").write_text(source, encoding="utf-8")
    return info


def clear_entry_point_caches() -> None:
    """Forget every entry point list this process has cached."""
    ExtensionManager.ENTRY_POINT_CACHE.clear()
    # stevedore also memoises per sys.path tuple; a private detail, hence the guard
    cache = getattr(getattr(sys.modules.get("stevedore._cache"), "_c", None), "_internal", None)
    if isinstance(cache, dict):
        cache.clear()
    importlib.invalidate_caches()


def migcodec_command() -> list[str]:
    """The ``migcodec`` console script as a user runs it (the one next to this Python)."""
    script = Path(sys.executable).with_name("migcodec")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from migcodec.command import main; sys.exit(main())"]


def subprocess_env(cache_home: Path, *paths: Path) -> dict[str, str]:
    """Environment for a child ``python``/``migcodec`` that sees ``paths`` first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), str(REPO)])
    env["XDG_CACHE_HOME"] = str(cache_home)
    env.pop("PYTHONSTARTUP", None)
    return env


#: a guest that dirties faster than the link carries: pre-copy runs until it is cut
ENDLESS = ["--memory", "8MiB", "--link", "100Mbit", "--dirty-rate", "50MB/s"]


def migrating(tmp_path: Path, *argv: str) -> subprocess.Popen:
    """``migcodec *argv`` in a subprocess, returned once its first iteration is over (it is
    migrating); its stdout and stderr are pipes of text."""
    process = subprocess.Popen(
        [*migcodec_command(), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(tmp_path / "cache"),
    )
    first = process.stderr.readline()
    if not first.startswith("iteration 0: "):
        process.kill()
        raise AssertionError(f"not migrating: {first!r}")
    return process
