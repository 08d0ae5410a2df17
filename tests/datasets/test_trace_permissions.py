"""Traces under directories this user may not search: pathlib's checks raise
``PermissionError`` there, which reached the user as a traceback. Run as root without its
capabilities (root reads every directory), in a directory of mode 000."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from migcodec.datasets import TraceWriter, Workload, get_workload

needs_setpriv = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv, to drop the capabilities that read every directory",
)


def _unprivileged(code: str, *args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    """``code`` run by root without capabilities: owner, group and other bits bind it.
    Its caches go to ``cache``."""
    drop = ["setpriv", "--bounding-set=-all", "--inh-caps=-all"]
    return subprocess.run(
        [*drop, sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "XDG_CACHE_HOME": str(cache)},
    )


@pytest.fixture
def hidden(tmp_path: Path):
    """A directory no one without capabilities may search or list."""
    path = tmp_path / "hidden"
    path.mkdir(mode=0o000)
    yield path
    path.chmod(0o700)


@needs_setpriv
def test_a_trace_written_where_its_directory_cannot_be_searched_is_refused_in_one_line(
    hidden: Path,
) -> None:
    code = (
        "import sys\n"
        "from migcodec.datasets.trace import TraceWriter, TraceWriteFailed\n"
        "try:\n"
        "    TraceWriter(sys.argv[1], memory_pages=4)\n"
        "except TraceWriteFailed as exc:\n"
        "    print(exc)\n"
        "    sys.exit(3)\n"
    )
    run = _unprivileged(code, str(hidden / "t"), cache=hidden.parent / "cache")
    assert run.returncode == 3, run.stderr
    assert run.stdout == (
        f"cannot create trace {hidden / 't'}: Permission denied (errno 13, {hidden / 't'}); "
        "choose another directory\n"
    )


@needs_setpriv
@pytest.mark.parametrize(
    ("command", "named"),
    [(["trace", "info"], "t/manifest.json"), (["evaluate", "--policies", "auto"], "t")],
)
def test_a_trace_whose_directory_cannot_be_searched_is_named_in_one_line(
    hidden: Path, command: list[str], named: str
) -> None:
    """``trace info`` printed pathlib's traceback; ``evaluate`` its bare errno."""
    with TraceWriter(hidden / "t", memory_pages=256) as writer:
        writer.write_all(Workload(get_workload("flip", n_pages=256, n_windows=2)))
    code = "import sys\nfrom migcodec.command import main\nsys.exit(main())\n"
    run = _unprivileged(code, *command, str(hidden / "t"), cache=hidden.parent / "cache")
    assert (run.returncode, run.stdout) == (2, ""), run.stderr
    name = " ".join(command[:2] if command[0] == "trace" else command[:1])
    assert run.stderr == (
        f"migcodec {name}: cannot read {hidden / named}: Permission denied (a directory on its "
        "way may not be searched by this user); read it as a user allowed to, or change that "
        "directory's permissions\n"
    )


@needs_setpriv
def test_a_corpus_with_a_trace_this_user_may_not_search_is_refused_not_evaluated_without_it(
    tmp_path: Path,
) -> None:
    """A glob passes over such a directory: the corpus was evaluated on its other traces,
    exit 0, as if it held no more."""
    for name in ("a", "b"):
        with TraceWriter(tmp_path / "corpus" / name, memory_pages=256) as writer:
            writer.write_all(Workload(get_workload("flip", n_pages=256, n_windows=2)))
    hidden = tmp_path / "corpus" / "b"
    hidden.chmod(0o000)
    code = "import sys\nfrom migcodec.command import main\nsys.exit(main())\n"
    try:
        run = _unprivileged(
            code,
            *("evaluate", "--corpus", str(tmp_path / "corpus"), "--policies", "auto"),
            cache=tmp_path / "cache",
        )
    finally:
        hidden.chmod(0o700)
    assert (run.returncode, run.stdout) == (2, ""), run.stderr
    assert run.stderr == (
        f"migcodec evaluate: cannot read {hidden / 'manifest.json'}: Permission denied (a "
        "directory on its way may not be searched by this user); read it as a user allowed "
        "to, or change that directory's permissions\n"
    )
