"""Shared test settings: hypothesis profiles sized for a 2-core CI machine, a cache
directory of the test run's own (the selector's per-machine cost model is calibrated there,
not in the user's), and a throw-away site directory for registering codec plugins without
pip."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.plugin_dist import clear_entry_point_caches

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=30, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True, scope="session")
def _own_cache_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """``$XDG_CACHE_HOME`` for the whole run: what the library keeps per machine (the cost
    model) is calibrated once per run and never touches the user's cache.

    Calibrated here, before any test, for every arm ``--codec auto`` plays: calibrated by
    the first test to need it, the model timed the codecs beside whatever that test ran
    (in one run its arms held a test's codec made to hang in an engine's pool), priced raw
    and lz4 six and seven times what a quiet process measures, and a test of auto's
    choices in a migration saw lz4 ahead where it was far behind."""
    from migcodec.selector import parse_arms
    from migcodec.selector.adaptive_chooser import AUTO_ARMS
    from migcodec.selector.costmodel import machine_cost_model

    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    machine_cost_model(parse_arms(AUTO_ARMS))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture
def plugin_site(tmp_path: Path) -> Iterator[Path]:
    """A fresh directory on ``sys.path``; write distributions into it with ``write_dist``.

    On teardown the directory leaves ``sys.path``, modules imported from it leave
    ``sys.modules`` and the entry point caches are cleared, so later tests see only the
    real installation.
    """
    site = tmp_path / "site"
    site.mkdir()
    sys.path.insert(0, str(site))
    clear_entry_point_caches()
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        for name, module in list(sys.modules.items()):
            if str(getattr(module, "__file__", None) or "").startswith(str(site)):
                del sys.modules[name]
        clear_entry_point_caches()


SHM_DIR = Path("/dev/shm")


@pytest.fixture
def shm_name() -> Iterator[str]:
    """A shared-memory region name nobody uses; removed afterwards if a test left it."""
    name = f"migcodec-test-{uuid.uuid4().hex[:12]}"
    yield name
    (SHM_DIR / name).unlink(missing_ok=True)


@pytest.fixture
def foreign_shm(shm_name: str) -> Callable[[int], str]:
    """Makes region ``shm_name`` of a given size as another program would: without Python's
    resource tracker, which would count this test process as its owner."""

    def make(size: int) -> str:
        if not SHM_DIR.is_dir():
            pytest.skip("no /dev/shm")
        fd = os.open(SHM_DIR / shm_name, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            os.ftruncate(fd, size)
        finally:
            os.close(fd)
        return shm_name

    return make
