"""The ``migcodec`` command: what scripts can rely on in its output and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from migcodec.cli import main
from migcodec.codecs import available_codecs
from tests.plugin_dist import migcodec_command, subprocess_env

BUILTIN_KINDS = {"raw": "raw", "lz4": "compress", "zlib-ng": "compress", "zstd": "compress"}
STATUS_KEYS = {"name", "kind", "available", "path", "reason", "source"}
RESULT_KEYS = {
    "codec",
    "config",
    "path",
    "ratio",
    "encode_mb_s",
    "decode_mb_s",
    "cpu_s_per_gb",
    "modelled_device_mb_s",
    "verified",
}


def run_migcodec(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*migcodec_command(), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=subprocess_env(tmp_path / "cache"),
    )


def test_codecs_json(tmp_path):
    result = run_migcodec(tmp_path, "codecs", "--json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert isinstance(listed, list)
    assert [entry["name"] for entry in listed] == available_codecs()
    for entry in listed:
        assert set(entry) == STATUS_KEYS
    by_name = {entry["name"]: entry for entry in listed}
    for name, kind in BUILTIN_KINDS.items():
        assert by_name[name]["kind"] == kind
        assert by_name[name]["available"] is True
        assert by_name[name]["path"] == "software"
        assert by_name[name]["source"].startswith("migcodec.codecs.plugins.")


def test_python_dash_m_migcodec_is_the_command(tmp_path):
    """Where the scripts directory is not on the PATH, ``python -m migcodec`` runs the same
    command (it was "No module named migcodec.__main__"), its exit status included."""
    env = subprocess_env(tmp_path / "cache")
    version = subprocess.run(
        [sys.executable, "-m", "migcodec", "--version"], capture_output=True, text=True, env=env
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("migcodec ")
    wrong = subprocess.run(
        [sys.executable, "-m", "migcodec", "bogus"], capture_output=True, text=True, env=env
    )
    assert wrong.returncode == 2
    assert wrong.stderr.startswith("migcodec: error: argument command: invalid choice: 'bogus'")


def test_a_closed_standard_output_is_one_line_not_a_traceback(tmp_path):
    """`migcodec codecs >&-` ended in AttributeError: 'NoneType' object has no attribute
    'flush'."""
    # closed by the shell that execs it (a preexec_fn is unsafe in a process with threads)
    done = subprocess.run(
        ["sh", "-c", 'exec "$@" >&-', "sh", *migcodec_command(), "codecs"],
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        env=subprocess_env(tmp_path / "cache"),
    )
    assert (done.returncode, done.stderr) == (
        1,
        "migcodec: standard output is closed, so nothing could be reported; run it with "
        "standard output open (redirect it to /dev/null to discard it)\n",
    )


def test_ctrl_c_while_the_command_loads_is_one_line(monkeypatch, capsys):
    """Numpy and the codecs' libraries load before the command's own handling of Ctrl-C
    takes over: a Ctrl-C in that second printed the interpreter's traceback."""
    import migcodec.cli
    from migcodec.command import main as command

    def loading(argv=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(migcodec.cli, "main", loading)
    assert command(["codecs"]) == 130
    assert capsys.readouterr().err == "migcodec: interrupted\n"


def test_sigterm_while_the_command_loads_is_one_line(monkeypatch, capsys):
    """SIGTERM in the second before the command's own handler is set ended the process
    with nothing said; the caller's handler is back afterwards."""
    import signal

    import migcodec.cli
    from migcodec.command import main as command

    def loading(argv=None):
        signal.raise_signal(signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the load")

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(migcodec.cli, "main", loading)
    assert command(["codecs"]) == 143
    assert capsys.readouterr().err == "migcodec: terminated\n"
    assert signal.getsignal(signal.SIGTERM) is before


def test_the_console_script_runs_the_entry_point_that_loads_nothing_first():
    """``migcodec.command`` imports the standard library alone, so that the handling above
    is in place before anything slow loads."""
    import ast

    source = (Path(__file__).parents[1] / "migcodec" / "command.py").read_text()
    top = [n for n in ast.parse(source).body if isinstance(n, ast.Import | ast.ImportFrom)]
    assert {a.name for n in top for a in n.names} == {"annotations", "signal", "sys"}
    setup = (Path(__file__).parents[1] / "setup.py").read_text()
    assert '"migcodec = migcodec.command:main"' in setup


def test_version_names_the_package_and_the_formats_it_speaks(capsys):
    from migcodec import __version__
    from migcodec.datasets.trace.format import READ_VERSIONS, VERSION

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    reads = ", ".join(map(str, READ_VERSIONS))
    assert capsys.readouterr().out == (
        f"migcodec {__version__} (stream formats 1, 2; trace format {VERSION}, reads {reads})\n"
    )


def test_codecs_table(capsys):
    assert main(["codecs"]) == 0
    table, footer = capsys.readouterr().out.split("\n\n")
    header, *rows = table.splitlines()
    assert header.split() == ["codec", "kind", "available", "path", "reason"]
    assert footer == (
        "zero-page detection (every codec): C extension\n"
        "page-change counts (selector features): C extension\n"
        "sample scan (selector features): C extension\n"
        "DEFLATE history check (iaa decode in software): C extension\n"
        "Kalman filter update (auto's estimates): C extension\n"
        "probe valuation (auto's probe decisions): C extension\n"
    )
    assert [row.split()[0] for row in rows] == available_codecs()
    lz4 = next(row for row in rows if row.startswith("lz4 "))
    assert lz4.split()[:4] == ["lz4", "compress", "yes", "software"]


def test_bench_json(capsys):
    assert main(["bench", "--json", "--pages", "128", "--codecs", "lz4,zstd"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert set(document) == {"workload", "pages", "workers", "results"}
    assert (document["workload"], document["pages"], document["workers"]) == ("memcached", 128, 1)
    results = document["results"]
    assert [r["codec"] for r in results] == ["lz4", "zstd"]
    assert results[0]["config"] == {"name": "lz4", "acceleration": 1}
    assert results[1]["config"] == {"name": "zstd", "level": 1}
    for r in results:
        assert set(r) == RESULT_KEYS
        assert r["verified"] is True
        assert r["path"] == "software"
        assert r["ratio"] > 1.0  # memcached pages compress, if only a little
        assert r["encode_mb_s"] > 0 and r["decode_mb_s"] > 0 and r["cpu_s_per_gb"] >= 0
        assert r["modelled_device_mb_s"] is None  # CPU codecs have no device model


def test_bench_labels_the_modelled_device_rate_of_emulated_accelerators(tmp_path):
    done = run_migcodec(tmp_path, "bench", "--pages", "128", "--codecs", "lz4,qat")
    assert done.returncode == 0, done.stderr
    assert "device MB/s (modelled)" in done.stdout
    assert "not measured" in done.stdout
    qat_row = next(line for line in done.stdout.splitlines() if line.startswith("qat "))
    assert qat_row.split()[1] == "emulated"


def test_bench_unknown_codec_exits_2_naming_the_installed_codecs(tmp_path):
    result = run_migcodec(tmp_path, "bench", "--pages", "128", "--codecs", "lz4,qpl-deflate")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"migcodec bench: no codec named 'qpl-deflate' is installed (installed: "
        f"{', '.join(available_codecs())}); a third-party codec is installed as a package with "
        "a 'migcodec.codecs' entry point\n"
    )


@pytest.mark.parametrize("codecs", ["lz4;zstd", "lz4 zstd"])
def test_codecs_separated_as_evaluate_separates_arms_are_named_as_such(capsys, codecs):
    """`--arms` takes 'lz4;zstd'; here it read as one name that no plugin has, and the
    message listed the installed codecs without saying why."""
    assert main(["bench", "--codecs", codecs, "--pages", "4"]) == 2
    assert capsys.readouterr().err == (
        f"migcodec bench: --codecs {codecs!r}: {codecs!r} is no codec's name; separate "
        "codecs with ',' (e.g. lz4,zstd)\n"
    )


def test_bench_unknown_workload_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["bench", "--workload", "nope"])
    assert info.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err
