"""``migcodec migrate``, ``send`` and ``receive``: plots, guest memory from a file or a
shared-memory region, and what reaches stdout and stderr."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from migcodec.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = ["--memory", "8MiB", "--codec", "lz4", "--link", "1Gbit"]


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 10_000


def test_migrate_plot_writes_a_png_and_json_lists_the_iterations(tmp_path, capsys):
    png = tmp_path / "run.png"
    code = main(["migrate", *TINY, "--dirty-rate", "20MB/s", "--json", "--plot", str(png)])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["succeeded"] and report["workload"] == "memcached"
    log = report["iteration_log"]
    assert sum(r["pages_sent"] for r in log) == report["pages_sent"]
    assert log[-1]["stop_and_copy"] and log[-1]["dirty_pages_left"] == 0
    assert_png(png)


def test_sweep_plot_writes_a_png(tmp_path, capsys):
    png = tmp_path / "sweep.png"
    # a 1 ms downtime limit and three iterations make each failing rate fail fast
    fast = ["--downtime-ms", "1", "--max-iterations", "3", "--workload", "random"]
    code = main(["migrate", *TINY, *fast, "--sweep-dirty-rate", "--json", "--plot", str(png)])
    assert code == 0
    sweep = json.loads(capsys.readouterr().out)
    assert sweep["runs"] and all("iteration_log" in r for r in sweep["runs"])
    assert_png(png)


def test_plot_without_matplotlib_fails_before_migrating(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    png = tmp_path / "run.png"
    assert main(["migrate", *TINY, "--plot", str(png)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("migcodec migrate: --plot needs matplotlib")
    assert "pip install matplotlib" in err
    assert not png.exists()
