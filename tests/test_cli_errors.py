"""Whatever a user types ends in a clear result: one line on stderr and an exit status
(2: change the command line; 1: the work failed; 130: interrupted; 141: stdout closed),
never a traceback, and never a wrong value taken silently."""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from migcodec.cli import build_parser, main
from migcodec.cli.args import HelpFormatter, Parser
from migcodec.engine import MigrationReport
from tests.plugin_dist import ENDLESS, REPO, migcodec_command, migrating, subprocess_env

MiB = 1 << 20
TINY = ["--memory", "8MiB", "--codec", "lz4", "--quiet"]


def refusal(command: str, option: str, reason: str) -> str:
    return (
        f"migcodec {command}: error: argument {option}: {reason} (see migcodec {command} --help)\n"
    )


@pytest.mark.parametrize(
    ("argv", "option", "reason"),
    [
        (
            ["migrate", "--memory", "12XB"],
            "--memory",
            "unknown size unit 'XB' in '12XB'; use B, KiB, MiB, GiB, TiB (or kB, MB, GB, TB), "
            "e.g. 64MiB",
        ),
        (
            ["migrate", "--memory", "-5MiB"],
            "--memory",
            "a size cannot be negative ('-5MiB'); write e.g. 4096, 64MiB, 1GiB",
        ),
        (
            ["migrate", "--memory", "10000"],
            "--memory",
            "'10000' is 10000 bytes, not a whole number of 4096-byte pages; write a whole "
            "number of pages, e.g. 8192 or 12288 (or 64MiB, 1GiB)",
        ),
        (
            ["migrate", "--memory", "1000"],
            "--memory",
            "'1000' is less than one 4096-byte page; guest memory is at least a page, e.g. 64MiB",
        ),
        (
            ["send", "--connect", "h:1", "--link", "fast"],
            "--link",
            "cannot read rate 'fast'; write e.g. 1Gbit, 10Gbit, 200MB/s",
        ),
        (
            ["migrate", "--link", "0"],
            "--link",
            "a link of '0' carries nothing; write a rate such as 1Gbit, or 'unlimited' for no "
            "limit",
        ),
        (
            ["migrate", "--dirty-rate", "-5MB/s"],
            "--dirty-rate",
            "a rate cannot be negative ('-5MB/s'); write e.g. 1Gbit, 10Gbit, 200MB/s",
        ),
        (["migrate", "--workers", "0"], "--workers", "'0' is not a whole number >= 1"),
        (["migrate", "--workers", "two"], "--workers", "'two' is not a whole number >= 1"),
        (
            ["migrate", "--downtime-ms", "-5"],
            "--downtime-ms",
            "'-5' is not a positive, finite number of milliseconds (e.g. 300 or 50)",
        ),
        (
            ["migrate", "--max-time", "-1"],
            "--max-time",
            "'-1' is not a positive, finite number of seconds (e.g. 30 or 0.5)",
        ),
        (
            ["migrate", "--max-iterations", "0"],
            "--max-iterations",
            "'0' is not a whole number >= 1",
        ),
        (["migrate", "--seed", "-1"], "--seed", "'-1' is not a whole number >= 0"),
        (
            ["migrate", "--sweep-dirty-rate", "--repeats", "0"],
            "--repeats",
            "'0' is not a whole number >= 1",
        ),
        (["bench", "--pages", "0"], "--pages", "'0' is not a whole number >= 1"),
        (["bench", "--workers", "0"], "--workers", "'0' is not a whole number >= 1"),
        (
            ["trace", "synth", "--workload", "phases", "--out", "t", "--pages", "0"],
            "--pages",
            "'0' is not a whole number >= 1",
        ),
        (
            ["trace", "synth", "--workload", "phases", "--out", "t", "--dirty-rate", "fast"],
            "--dirty-rate",
            "cannot read rate 'fast'; write e.g. 1Gbit, 10Gbit, 200MB/s",
        ),
        (
            ["trace", "capture", "--pid", "1", "--windows", "2", "--out", "t", "--interval", "-5"],
            "--interval",
            "'-5' is not a positive, finite number of milliseconds (e.g. 300 or 50)",
        ),
        (
            ["evaluate", "--workload", "phases", "--pages", "0"],
            "--pages",
            "'0' is not a whole number >= 1",
        ),
        (
            ["evaluate", "--workload", "phases", "--link", "1Gbit,0"],
            "--link",
            "a link of '0' carries nothing; write a rate such as 1Gbit",
        ),
        # values no run could meet: refused here, not by an overflow or an allocation later
        (
            ["migrate", "--workers", "30000"],
            "--workers",
            "'30000' is more than 256, the most this option takes",
        ),
        (  # every repeat's timings were held: numpy was asked for 112 GB
            ["evaluate", "--workload", "text", "--repeats", "1000000000"],
            "--repeats",
            "'1000000000' is more than 1000, the most this option takes",
        ),
        (
            ["bench", "--pages", "99999999999999"],
            "--pages",
            "'99999999999999' is more than 1000000000, the most this option takes",
        ),
        (
            ["receive", "--timeout", "1e30"],
            "--timeout",
            "'1e30' is more than 1e+07 seconds, the most this option takes",
        ),
        (
            ["migrate", "--link", "1e-300"],
            "--link",
            "a link of '1e-300' is slower than 1 byte/s; write a rate such as 1Mbit or 1Gbit",
        ),
        (
            ["evaluate", "--workload", "phases", "--workers", "1e-300"],
            "--workers",
            "'1e-300' is less than 0.01 units, the least this option takes",
        ),
        (  # a billion migrations per rate tried: the sweep never ended
            ["migrate", "--sweep-dirty-rate", "--repeats", "1000000000"],
            "--repeats",
            "'1000000000' is more than 100, the most this option takes",
        ),
        (  # the resolver's UnicodeError was a traceback
            ["send", "--connect", "a..b:4444"],
            "--connect",
            "'a..b' in 'a..b:4444' is not a host name (label empty or too long); give a name "
            "or address such as 127.0.0.1:4444",
        ),
        (
            ["receive", "--listen", "a..b:0"],
            "--listen",
            "'a..b' in 'a..b:0' is not a host name (label empty or too long); give a name "
            "or address such as 127.0.0.1:4444",
        ),
        (  # a row of the table per window: it grew until the machine ran out of memory
            ["evaluate", "--workload", "text", "--pages", "1", "--windows", "1000000000"],
            "--windows",
            "'1000000000' is more than 1000000, the most this option takes",
        ),
        # a batch no stream carries: its calibration windows asked for 24 GiB
        (
            ["evaluate", "--workload", "phases", "--batch-pages", "100000"],
            "--batch-pages",
            "'100000' is more than 4096, the most this option takes",
        ),
        # int() and float() read any script's digits: these were 8 workers, a 3 s timeout
        (["migrate", "--workers", "\u0668"], "--workers", "'\u0668' is not a whole number >= 1"),
        (
            ["receive", "--listen", "h:1", "--timeout", "\u0663"],
            "--timeout",
            "'\u0663' is not a positive, finite number of seconds (e.g. 30 or 0.5)",
        ),
        # an empty item was dropped ("1Gbit,,10Gbit" scored two links)
        (
            ["evaluate", "--workload", "text", "--link", "1Gbit,,10Gbit"],
            "--link",
            "'1Gbit,,10Gbit' has an empty item (two commas in a row, or one at an end); write "
            "e.g. 1Gbit,10Gbit",
        ),
    ],
)
def test_wrong_values_are_refused_while_parsing_with_one_line(capsys, argv, option, reason):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    out, err = capsys.readouterr()
    command = " ".join(argv[: 2 if argv[0] == "trace" else 1])
    assert (out, err) == ("", refusal(command, option, reason))


def test_repeats_without_a_sweep_is_refused_not_ignored(capsys):
    assert main(["migrate", *TINY, "--repeats", "3"]) == 2
    assert capsys.readouterr() == (
        "",
        "migcodec migrate: --repeats applies to --sweep-dirty-rate (migrations per rate "
        "tried); drop --repeats, or add --sweep-dirty-rate\n",
    )


def test_a_plot_into_a_directory_that_takes_no_file_is_refused_before_the_work(tmp_path, capsys):
    """Root passes every permission bit, so /sys (where no file can be made) passed the
    check and the plot failed after the migration. A file is made there and removed."""
    pytest.importorskip("matplotlib")
    if not os.path.isdir("/sys/kernel"):
        pytest.skip("no sysfs here")
    assert main(["migrate", *TINY, "--plot", "/sys/run.png"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(
        "migcodec migrate: --plot /sys/run.png: directory /sys is not writable ("
    )
    assert err.endswith("); write elsewhere\n")
    assert main(["migrate", *TINY, "--plot", str(tmp_path / "run.png"), "--quiet"]) == 0
    assert (tmp_path / "run.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.png"]  # no probe left


def test_every_command_reads_sizes_and_rates_with_the_same_parsers():
    parser = build_parser()
    synth = parser.parse_args(
        ["trace", "synth", "--workload", "phases", "--out", "t", "--dirty-rate", "200MB/s"]
    )
    migrate = parser.parse_args(["migrate", "--dirty-rate", "200MB/s", "--link", "unlimited"])
    assert synth.dirty_rate == migrate.dirty_rate == 200e6
    assert migrate.link is None  # `unlimited` says so explicitly
    assert parser.parse_args(["migrate", "--memory", "1GiB"]).memory == 1 << 30


def test_a_link_speed_without_a_unit_is_refused_before_any_work(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["migrate", *TINY, "--link", "1G"])
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and err.endswith(
        "migcodec migrate: error: argument --link: rate '1G' has a prefix but no unit, and "
        "bits and bytes are 8x apart: write 1Gbit for bits per second or 1GB/s for bytes "
        "per second (see migcodec migrate --help)\n"
    )


def test_migrate_dirties_the_guest_by_default_and_a_kept_image_only_when_asked():
    from migcodec.cli.migrate_cmd import _dirty_rate

    parser = build_parser()
    assert _dirty_rate(parser.parse_args(["migrate"])) == 5e6
    kept = parser.parse_args(["migrate", "--memory-file", "m", "--keep-contents"])
    assert _dirty_rate(kept) == 0
    asked = parser.parse_args(
        ["migrate", "--memory-file", "m", "--keep-contents", "--dirty-rate", "1MB/s"]
    )
    assert _dirty_rate(asked) == 1e6


def test_a_default_migration_chases_dirty_pages_and_converges(capsys):
    code = main(["migrate", "--memory", "32MiB", "--codec", "lz4", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["dirty_rate"] == 5e6
    assert report["converged"] and report["verified"]
    assert code == (0 if report["succeeded"] else 1)
    assert report["succeeded"] == (not report["downtime_exceeded"])
    # pages dirtied during the first pass are sent again: pre-copy had work to do
    assert report["pages_sent"] > 32 * MiB // 4096


def _options_with_defaults(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from _options_with_defaults(sub)
        elif action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            yield parser, action


def _help_entry(parser: argparse.ArgumentParser, flag: str) -> str:
    """An option's entry in ``--help``: its first line and the deeper-indented ones after."""
    lines = parser.format_help().splitlines()
    first = next(i for i, line in enumerate(lines) if line.lstrip().startswith(flag + " "))
    entry = [lines[first]]
    for line in lines[first + 1 :]:
        if not line.startswith(" " * 6):  # the next option, or the end of the section
            break
        entry.append(line)
    return " ".join(" ".join(entry).split())


def test_every_option_with_a_default_shows_it_in_help():
    seen = 0
    for parser, action in _options_with_defaults(build_parser()):
        assert isinstance(parser, Parser) and parser.formatter_class is HelpFormatter
        entry = _help_entry(parser, action.option_strings[-1])
        assert re.search(r"\(default:? [^)]+\)", entry), (parser.prog, entry)
        seen += 1
    assert seen > 30


def test_help_explains_options_that_default_to_nothing(capsys):
    with pytest.raises(SystemExit):
        main(["migrate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 5MB/s, and 0 with --keep-contents" in text
    assert "else 256MiB)" in text and "(default: None)" not in text


# -- runtime checks: one line, exit status 2 --------------------------------------------
def test_more_memory_than_the_machine_has_is_refused_before_allocating(capsys, monkeypatch):
    monkeypatch.setattr("migcodec.ram.available_memory", lambda: 8 << 30)
    assert main(["migrate", *TINY, "--memory", "100TiB"]) == 2
    assert capsys.readouterr() == (
        "",
        "migcodec migrate: --memory 100 TiB (the guest and the destination's copy of it) "
        "needs 200 TiB of RAM, but this machine has 8 GiB available; use a smaller --memory\n",
    )


def test_workload_phases_its_windows_do_not_reach_are_refused(capsys):
    """Four phases of 16 windows in 4 windows were scored as the first phase alone, and
    reported under all four names."""
    argv = ["evaluate", "--workload", "zero,memcached,text,random", "--pages", "4"]
    assert main([*argv, "--windows", "4", "--policies", "auto"]) == 2
    assert capsys.readouterr() == (
        "",
        "migcodec evaluate: --workload 'zero,memcached,text,random' names 4 phases of "
        "--phase-windows 16 windows each, and --windows 4 reaches 1 of them; give --windows "
        "49 or more, or fewer --phase-windows\n",
    )
    assert main([*argv, "--windows", "4", "--phase-windows", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["windows"] == 4


def test_workload_windows_larger_than_the_machine_has_are_refused_before_making_them(
    capsys, monkeypatch
):
    monkeypatch.setattr("migcodec.ram.available_memory", lambda: 8 << 30)
    argv = ["evaluate", "--workload", "zero,text", "--windows", "2", "--repeats", "1"]
    argv += ["--phase-windows", "1"]
    assert main([*argv, "--pages", "999999999"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("migcodec evaluate: --pages 999999999 (windows of 3.73 TiB and the ")
    assert err.endswith(" of RAM, but this machine has 8 GiB available; use a smaller --pages\n")
    assert main([*argv, "--pages", "1048577"]) == 2  # a page more than 4 GiB windows
    assert capsys.readouterr().err.endswith(
        "needs 8 GiB of RAM, but this machine has 8 GiB available; use a smaller --pages\n"
    )
    monkeypatch.setattr("migcodec.ram.available_memory", lambda: None)
    assert main([*argv, "--pages", "999999999"]) == 2
    assert capsys.readouterr() == (
        "",
        "migcodec evaluate: cannot allocate the windows of zero,text; use a smaller --pages\n",
    )


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (  # the checks before large allocations read the machine's free memory; a limit on
            # the process (ulimit -v, a container's) can refuse one they let through
            MemoryError("Unable to allocate 23.8 MiB for an array"),
            "out of memory (Unable to allocate 23.8 MiB for an array): this command needs "
            "more memory than this process may use; give it fewer --pages or raise the "
            "process's memory limit",
        ),
        (  # a thread's stack counts against ulimit -v as a buffer does: `bench --workers
            # 256` under a limit ended in RuntimeError: can't start new thread
            RuntimeError("can't start new thread"),
            "cannot start another thread (can't start new thread): this process may not use "
            "that many threads or that much memory; give it fewer --workers, or raise the "
            "process's limits",
        ),
    ],
)
def test_what_a_process_limit_refuses_past_the_checks_is_one_line(capsys, monkeypatch, error, said):
    def refused(*args, **kwargs):
        raise error

    monkeypatch.setattr("migcodec.bench.run_bench", refused)
    assert main(["bench", "--pages", "64", "--codecs", "raw"]) == 1
    assert capsys.readouterr() == ("", f"migcodec bench: {said}\n")


def test_a_thread_refused_to_a_codec_s_engines_is_not_blamed_on_the_codec(capsys, monkeypatch):
    """`bench --workers 256` under a process limit: the engines' threads were refused
    while the codec was benchmarked, and the codec was named as failing ("use another
    codec")."""

    def refused(*args, **kwargs):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr("migcodec.bench._encode_all", refused)
    assert main(["bench", "--pages", "64", "--codecs", "zstd", "--workers", "256"]) == 1
    assert capsys.readouterr() == (
        "",
        "migcodec bench: cannot start another thread (can't start new thread): this process "
        "may not use that many threads or that much memory; give it fewer --workers, or "
        "raise the process's limits\n",
    )


def test_a_refused_thread_names_workers_only_where_the_command_has_them(
    tmp_path, capsys, monkeypatch
):
    """`trace synth` starts a thread pool of its own (its writer's), and has no --workers
    to give."""

    def refused(*args, **kwargs):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr("migcodec.cli.trace_cmd.TraceWriter", refused)
    out = str(tmp_path / "t")
    assert main(["trace", "synth", "--workload", "text", "--out", out]) == 1
    assert capsys.readouterr().err == (
        "migcodec trace synth: cannot start another thread (can't start new thread): this "
        "process may not use that many threads or that much memory; raise the process's "
        "limits\n"
    )


def test_another_runtime_error_is_not_taken_for_a_refused_thread(monkeypatch):
    def other(*args, **kwargs):
        raise RuntimeError("something else")

    monkeypatch.setattr("migcodec.bench.run_bench", other)
    with pytest.raises(RuntimeError, match="something else"):
        main(["bench", "--pages", "64", "--codecs", "raw"])


def test_out_of_memory_names_options_of_the_command_that_ran():
    """`trace info` out of memory was told to give smaller --memory, --pages and
    --batch-pages, options it does not have."""
    from migcodec.cli import _SMALLER, build_parser

    parser = build_parser()
    for name, smaller in _SMALLER.items():
        options = {
            option
            for action in _subparser(parser, name)._actions
            for option in action.option_strings
        }
        named = {word.strip("(),") for word in smaller.split() if word.startswith(("--", "(--"))}
        # receive's guest is sized by the source's --memory
        allowed = options | ({"--memory"} if name == "receive" else set())
        assert named <= allowed, (name, named - allowed)
    commands = {
        f"{name} {sub}" if sub else name
        for name, command in _subparser(parser, "").items()
        for sub in (_subcommands(command) or [""])
    }
    assert set(_SMALLER) == commands - {"codecs"}  # listing the plugins allocates nothing


@pytest.mark.parametrize("command", ["migrate", "evaluate"])
def test_a_plot_onto_a_named_pipe_or_a_device_is_refused_before_the_work(tmp_path, capsys, command):
    """Both ran to the end and then lost the plot, `evaluate` its report too ("File or
    stream is not seekable", of no path)."""
    fifo = tmp_path / "run.png"
    os.mkfifo(fifo)
    work = [*TINY] if command == "migrate" else ["--workload", "phases"]
    for target, kind in ((fifo, "a named pipe (FIFO)"), ("/dev/null", "a character device")):
        assert main([command, *work, "--plot", str(target)]) == 2
        assert capsys.readouterr() == (
            "",
            f"migcodec {command}: --plot {target}: is {kind}, not a file; give a file name, "
            "e.g. run.png\n",
        )


def test_evaluate_prints_its_report_before_a_plot_that_fails_to_write(
    tmp_path, capsys, monkeypatch
):
    """The plot was drawn first: a full disk there took the report with it."""

    def full(evaluation, path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("migcodec.plots.evaluation.plot_evaluation", full)
    png = tmp_path / "run.png"
    argv = ["evaluate", "--workload", "zero", "--windows", "2", "--pages", "16"]
    assert main([*argv, "--policies", "auto", "--json", "--plot", str(png)]) == 2
    out, err = capsys.readouterr()
    assert json.loads(out)["windows"] == 2
    assert err == (
        f"migcodec evaluate: --plot {png}: cannot write it (No space left on device); the "
        "report above is complete\n"
    )


def test_a_plot_into_a_missing_directory_is_refused_before_migrating(tmp_path, capsys):
    png = tmp_path / "missing" / "run.png"
    assert main(["migrate", *TINY, "--plot", str(png)]) == 2
    assert capsys.readouterr() == (
        "",
        f"migcodec migrate: --plot {png}: directory {png.parent} does not exist; create it "
        "first or write elsewhere\n",
    )
    assert main(["evaluate", "--workload", "phases", "--plot", str(png)]) == 2
    assert capsys.readouterr().err == (
        f"migcodec evaluate: --plot {png}: directory {png.parent} does not exist; create it "
        "first or write elsewhere\n"
    )


def test_an_unknown_host_is_one_line(capsys):
    assert main(["send", "--connect", "no-such-host.invalid:4444", *TINY]) == 2
    err = capsys.readouterr().err
    assert err.startswith("migcodec send: cannot find host 'no-such-host.invalid' (")
    assert err.endswith("); check the name in --connect\n") and err.count("\n") == 1
    assert main(["receive", "--listen", "no-such-host.invalid:0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("migcodec receive: cannot listen on no-such-host.invalid:0 (")
    assert err.endswith("); give --listen an address of this host and a free port\n")


def test_receive_listens_on_an_ipv6_address_as_its_help_writes_it(capsys):
    """``[::1]:PORT`` was refused: the listening socket was always of IPv4."""
    import socket

    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    assert main(["receive", "--listen", "[::1]:0", "--connect-timeout", "0.1"]) == 1
    out, err = capsys.readouterr()
    port = out.removeprefix("listening on ::1:").strip()
    assert port.isdigit() and out == f"listening on ::1:{port}\n"
    assert err == (
        f"migcodec receive: no source connected to ::1:{port} within 0.1 s "
        "(--connect-timeout); start `migcodec send --connect` sooner, or wait longer\n"
    )


def test_keep_contents_refuses_a_missing_file_or_region(tmp_path, capsys, shm_name):
    missing = tmp_path / "ram.img"
    assert main(["migrate", "--memory-file", str(missing), "--keep-contents", "--quiet"]) == 2
    assert capsys.readouterr().err == (
        f"migcodec migrate: --memory-file {missing} does not exist: --keep-contents migrates "
        "what a file holds; give an existing memory image, or drop --keep-contents to fill a "
        "new one\n"
    )
    assert not missing.exists()
    assert main(["send", "--connect", "127.0.0.1:9", "--shm", shm_name, "--keep-contents"]) == 2
    assert capsys.readouterr().err == (
        f"migcodec send: --shm {shm_name}: no such shared-memory region: --keep-contents "
        "migrates what a region holds; start the program that creates it first, or drop "
        "--keep-contents to fill a new one\n"
    )
    assert not (Path("/dev/shm") / shm_name).exists()


def test_one_trace_named_twice_in_evaluate_is_refused_not_counted_twice(
    tmp_path, capsys, monkeypatch
):
    trace = tmp_path / "t"
    argv = ["trace", "synth", "--workload", "phases", "--pages", "64", "--windows", "2"]
    assert main([*argv, "--out", str(trace)]) == 0
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "t", "./t", "--link", "10Gbit"]) == 2
    assert capsys.readouterr() == (
        "",
        "migcodec evaluate: trace t is named more than once; name each trace once\n",
    )


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (
            ["--workers", "64"],
            "--workers sets the throughput objective; the cpu objective has neither: drop it",
        ),
        (
            ["--link", "1Gbit,10Gbit", "--workers", "8"],
            "--link and --workers set the throughput "
            "objective; the cpu objective has neither: drop them",
        ),
    ],
)
def test_the_throughput_objective_s_options_are_refused_for_another(
    tmp_path, capsys, options, said
):
    """Ignored: two links reported one result twice, as two."""
    trace = tmp_path / "t"
    argv = ["trace", "synth", "--workload", "phases", "--pages", "64", "--windows", "2"]
    assert main([*argv, "--out", str(trace)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(trace), "--objective", "cpu", *options]) == 2
    assert capsys.readouterr() == (
        "",
        f"migcodec evaluate: {said}, or score --objective throughput\n",
    )


def test_a_corpus_with_two_links_to_one_trace_names_both(tmp_path, capsys):
    """It said "trace corpus/b is named more than once", where the user named nothing."""
    trace = tmp_path / "t"
    argv = ["trace", "synth", "--workload", "phases", "--pages", "64", "--windows", "2"]
    assert main([*argv, "--out", str(trace)]) == 0
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a").symlink_to(trace)
    (corpus / "b").symlink_to(trace)
    capsys.readouterr()
    assert main(["evaluate", "--corpus", str(corpus), "--link", "10Gbit"]) == 2
    assert capsys.readouterr() == (
        "",
        f"migcodec evaluate: {corpus / 'a'} and {corpus / 'b'} are the same trace; remove one "
        f"of them from {corpus}\n",
    )


def test_a_damaged_trace_in_evaluate_is_one_line(tmp_path, capsys):
    trace = tmp_path / "t"
    argv = ["trace", "synth", "--workload", "phases", "--pages", "256", "--windows", "4"]
    assert main([*argv, "--out", str(trace)]) == 0
    chunk = next(trace.glob("chunk-*.mct"))
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["evaluate", str(trace), "--repeats", "1"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert re.fullmatch(
        rf"migcodec evaluate: trace {re.escape(str(trace))}: window \d+: record body fails its "
        r"checksum; the chunk file is damaged \(record at chunk-000000\.mct offset \d+\): "
        r"restore the trace from a copy, or re-create or re-capture it\n",
        err,
    ), err


def test_a_cached_table_of_zeros_is_one_line_that_never_advises_loading_it_unsafely(
    tmp_path, capsys
):
    trace = tmp_path / "t"
    argv = ["trace", "synth", "--workload", "phases", "--pages", "256", "--windows", "2"]
    assert main([*argv, "--out", str(trace)]) == 0
    assert main(["evaluate", str(trace), "--repeats", "1"]) == 0
    (table,) = trace.glob("selector-table-*.npz")
    table.write_bytes(bytes(1 << 20))
    capsys.readouterr()
    assert main(["evaluate", str(trace), "--repeats", "1"]) == 2
    assert capsys.readouterr() == (
        "",
        f"migcodec evaluate: cannot read evaluation table {table}: it is neither an .npz "
        "archive nor a numpy array file; delete it to rebuild\n",
    )


def test_table_options_that_cannot_be_used_are_refused_before_measuring(
    tmp_path, capsys, monkeypatch
):
    from migcodec.cli import evaluate_cmd

    def measured(*args, **kwargs):
        raise AssertionError("a table was measured")

    monkeypatch.setattr(evaluate_cmd, "build_table", measured)
    trace = tmp_path / "t"
    argv = ["trace", "synth", "--workload", "phases", "--pages", "256", "--windows", "2"]
    assert main([*argv, "--out", str(trace)]) == 0
    afile = tmp_path / "afile"
    afile.write_text("mine")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    missing = tmp_path / "missing"
    cases = [
        (
            ["--table-dir", str(afile)],
            f"--table-dir {afile} is not a directory; give a directory for the cached tables "
            "(a missing one is created)",
        ),
        (
            ["--table", str(missing / "t.npz")],
            f"--table {missing / 't.npz'}: directory {missing} does not exist; create it "
            "first or write elsewhere",
        ),
        (
            ["--table", str(tmp_path)],
            f"--table {tmp_path} is a directory; give a file name (e.g. t.npz), or --table-dir DIR",
        ),
        (
            ["--table", str(fifo)],
            f"--table {fifo} is a named pipe (FIFO), not a regular file; give a file",
        ),
        (
            ["--grid", str(fifo)],
            f"--grid {fifo} is a named pipe (FIFO), not a regular file; give a file",
        ),
    ]
    capsys.readouterr()
    for options, reason in cases:
        assert main(["evaluate", str(trace), "--repeats", "1", *options]) == 2
        assert capsys.readouterr() == ("", f"migcodec evaluate: {reason}\n")
    assert not missing.exists()


@pytest.mark.parametrize("name", ["manifest.json", "windows.idx", "chunk-000000.mct"])
def test_a_table_file_that_is_a_file_of_the_trace_is_refused_not_written_over(
    tmp_path, capsys, name
):
    """``--table T/manifest.json`` was "damaged; delete it to rebuild", and with
    ``--rebuild`` the table was written over the trace's manifest."""
    trace = tmp_path / "t"
    argv = ["trace", "synth", "--workload", "phases", "--pages", "256", "--windows", "2"]
    assert main([*argv, "--out", str(trace)]) == 0
    kept = (trace / name).read_bytes()
    capsys.readouterr()
    argv = ["evaluate", str(trace), "--repeats", "1", "--table", str(trace / name)]
    assert main([*argv, "--rebuild"]) == 2
    assert capsys.readouterr() == (
        "",
        f"migcodec evaluate: --table {trace / name} is a file of the trace in {trace}; give a "
        f"file of its own for the table, e.g. {trace / 'table.npz'}\n",
    )
    assert (trace / name).read_bytes() == kept


def test_a_table_link_to_a_file_of_a_trace_is_refused_not_written_through(tmp_path, capsys):
    """``--rebuild`` wrote the table through the link, over the other trace's manifest."""
    trace = tmp_path / "t"
    argv = ["trace", "synth", "--workload", "phases", "--pages", "256", "--windows", "2"]
    assert main([*argv, "--out", str(trace)]) == 0
    link = tmp_path / "table.npz"
    link.symlink_to(trace / "manifest.json")
    kept = (trace / "manifest.json").read_bytes()
    capsys.readouterr()
    argv = ["evaluate", str(trace), "--repeats", "1", "--table", str(link), "--rebuild"]
    assert main(argv) == 2
    assert capsys.readouterr() == (
        "",
        f"migcodec evaluate: --table {trace / 'manifest.json'} is a file of the trace in "
        f"{trace}; give a file of its own for the table, e.g. {trace / 'table.npz'}\n",
    )
    assert (trace / "manifest.json").read_bytes() == kept


def test_rebuild_replaces_a_table_and_nothing_else(tmp_path, capsys):
    """A saved migration stream named by ``--table`` was replaced by a table without a
    word; a table, even a damaged one, is rebuilt."""
    trace = tmp_path / "t"
    argv = ["trace", "synth", "--workload", "phases", "--pages", "256", "--windows", "2"]
    assert main([*argv, "--out", str(trace)]) == 0
    precious = tmp_path / "precious.bin"
    precious.write_bytes(b"QEVM" + bytes(60))
    capsys.readouterr()
    argv = ["evaluate", str(trace), "--repeats", "1", "--policies", "ucb1", "--rebuild"]
    assert main([*argv, "--table", str(precious)]) == 2
    assert capsys.readouterr() == (
        "",
        f"migcodec evaluate: --table {precious} holds something other than a table, which "
        "--rebuild would replace; give a file of its own for the table, or delete that file "
        "first\n",
    )
    assert precious.read_bytes() == b"QEVM" + bytes(60)
    table = tmp_path / "table.npz"
    assert main([*argv, "--table", str(table)]) == 0
    damaged = bytearray(table.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    table.write_bytes(bytes(damaged))
    assert main([*argv, "--table", str(table)]) == 0


def test_a_table_cache_that_cannot_be_written_is_refused_before_measuring(
    tmp_path, capsys, monkeypatch
):
    """It was found once the table had been measured, and a corpus's minutes of work were
    thrown away."""
    from migcodec.cli import evaluate_cmd

    trace = tmp_path / "t"
    argv = ["trace", "synth", "--workload", "phases", "--pages", "256", "--windows", "2"]
    assert main([*argv, "--out", str(trace)]) == 0
    (tmp_path / "file").write_text("not a directory")

    def measured(*args):
        raise AssertionError("measured before the cache was checked")

    monkeypatch.setattr(evaluate_cmd, "_build", measured)
    capsys.readouterr()
    cache = tmp_path / "file" / "cache"
    assert main(["evaluate", str(trace), "--repeats", "1", "--table-dir", str(cache)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"migcodec evaluate: cannot cache the table of t at {cache}/")
    assert err.endswith(
        f".npz ({tmp_path / 'file'} is not a directory); give a writable --table-dir DIR\n"
    )


def test_a_missing_table_dir_is_created_only_when_a_table_is_written(tmp_path, capsys):
    trace = tmp_path / "t"
    argv = ["trace", "synth", "--workload", "phases", "--pages", "256", "--windows", "2"]
    assert main([*argv, "--out", str(trace)]) == 0
    cache = tmp_path / "cache"
    assert main(["evaluate", str(trace), "--repeats", "1", "--table-dir", str(cache)]) == 0
    assert len(list(cache.glob("selector-table-t-*.npz"))) == 1


def test_a_damaged_trace_in_a_corpus_is_named(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    argv = ["trace", "synth", "--workload", "phases", "--pages", "256", "--windows", "2"]
    for name in ("a", "b", "c"):
        assert main([*argv, "--out", str(corpus / name)]) == 0
    chunk = next((corpus / "b").glob("chunk-*.mct"))
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["evaluate", "--corpus", str(corpus), "--repeats", "1"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"migcodec evaluate: trace {corpus / 'b'}: window "), err
    assert "record body fails its checksum" in err and err.count("\n") == 1


# -- what a migration reports -------------------------------------------------------------
def test_none_is_labelled_as_typed(capsys):
    assert main(["migrate", *TINY[:2], "--codec", "none", "--quiet", "--dirty-rate", "0"]) == 0
    assert capsys.readouterr().out.startswith("none: ok; ")


def test_a_downtime_over_the_limit_fails_the_migration_with_the_measured_downtime(capsys):
    # nothing dirty after the first pass: pre-copy converges at once, and no real
    # stop-and-copy (digests, verdict) fits in a microsecond
    argv = ["migrate", *TINY, "--dirty-rate", "0", "--downtime-ms", "0.001"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert re.match(
        r"lz4: FAILED \(downtime \d+ ms exceeded the 0\.001 ms limit; the memory arrived and "
        r"was verified\); ",
        out,
    ), out
    assert main([*argv, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["converged"] and report["verified"] and report["downtime_exceeded"]
    assert not report["succeeded"] and report["error"].startswith("downtime ")
    assert report["downtime_limit_s"] == 1e-6 < report["downtime_s"]


def test_downtime_exceeded_needs_a_measured_downtime_and_a_limit():
    assert not MigrationReport("lz4", downtime_s=0.5).downtime_exceeded
    assert not MigrationReport("lz4", downtime_limit_s=0.3).downtime_exceeded
    assert not MigrationReport("lz4", downtime_s=0.3, downtime_limit_s=0.3).downtime_exceeded
    assert MigrationReport("lz4", downtime_s=0.31, downtime_limit_s=0.3).downtime_exceeded


# -- signals and pipes, as a shell sees them ----------------------------------------------
@pytest.mark.parametrize(
    ("sig", "status", "word"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
)
def test_ctrl_c_or_sigterm_during_a_migration_is_one_line_and_its_status(
    tmp_path, sig, status, word
):
    """SIGTERM runs Ctrl-C's cleanups and says so."""
    migrate = migrating(tmp_path, "migrate", *ENDLESS, "--codec", "lz4")
    try:
        migrate.send_signal(sig)
        out, err = migrate.communicate(timeout=60)
    finally:
        migrate.kill()
    assert migrate.returncode == status, err  # the run's own words if it ended otherwise
    assert out == ""
    assert err.splitlines()[-1] == f"migcodec migrate: {word}"
    assert "Traceback" not in err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_pass_over_shared_memory_stops_every_thread_before_unmapping(tmp_path, sig):
    """Every thread on the region (the guest's writer, the codec engines, the sender) is
    stopped before it is unmapped, and the region is released by migcodec itself. A
    first pass of 64 MiB over 20 MB/s takes 3 s; the signal comes 1 s after the region
    exists. (A second signal during that teardown is held until it ends:
    tests/test_interrupts.py.)"""
    region = f"migcodec-test-{os.getpid()}-{sig}"
    argv = ["--memory", "64MiB", "--shm", region, "--link", "20MB/s", "--dirty-rate", "5MB/s"]
    migrate = subprocess.Popen(
        [*migcodec_command(), "migrate", *argv, "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(tmp_path / "cache"),
    )
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(f"/dev/shm/{region}") and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(1.0)
        migrate.send_signal(sig)
        out, err = migrate.communicate(timeout=60)
    finally:
        migrate.kill()
    word = "interrupted" if sig == signal.SIGINT else "terminated"
    assert (migrate.returncode, out, err) == (128 + sig, "", f"migcodec migrate: {word}\n")
    assert not os.path.exists(f"/dev/shm/{region}")  # released by migcodec, not left


def _codecs_json_to(stdout, tmp_path) -> subprocess.CompletedProcess:
    """``migcodec codecs --json`` with its standard output on ``stdout``."""
    return subprocess.run(
        [*migcodec_command(), "codecs", "--json"],
        stdout=stdout,
        stderr=subprocess.PIPE,
        timeout=60,
        env=subprocess_env(tmp_path / "cache"),
    )


def test_a_closed_stdout_stops_quietly_with_status_141(tmp_path):
    read_end, write_end = os.pipe()
    os.close(read_end)  # as `| head` does once it has read enough
    try:
        done = _codecs_json_to(write_end, tmp_path)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, b"")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
def test_a_full_stdout_is_one_line_and_status_1(tmp_path):
    """A report printed to a full device was a traceback ending in ENOSPC."""
    with open("/dev/full", "w") as full:
        done = _codecs_json_to(full, tmp_path)
    assert (done.returncode, done.stderr.decode()) == (
        1,
        "migcodec codecs: cannot write (No space left on device): standard output, or a "
        "file this command writes, is on a full or failing device; free space there, or "
        "write elsewhere\n",
    )


@pytest.mark.parametrize(
    ("error", "status", "err"),
    [
        (BrokenPipeError(errno.EPIPE, "Broken pipe"), 141, ""),
        (
            OSError(errno.ENOSPC, "No space left on device"),
            1,
            "migcodec evaluate: cannot write (No space left on device): standard output, or a "
            "file this command writes, is on a full or failing device; free space there, or "
            "write elsewhere\n",
        ),
    ],
)
def test_evaluate_leaves_a_closed_or_full_stdout_to_the_command_s_handling(
    monkeypatch, capsys, error, status, err
):
    """`evaluate` words its own failures in one line with status 2, and took these for
    its own: `evaluate ... | head -c1` said "[Errno 32] Broken pipe", status 2."""

    def writes(args):
        raise error

    monkeypatch.setattr("migcodec.cli.evaluate_cmd._run", writes)
    assert main(["evaluate", "--workload", "zero"]) == status
    assert capsys.readouterr().err == err


def test_a_pipeline_reading_only_the_first_line_sees_no_error(tmp_path):
    done = subprocess.run(
        ["bash", "-c", "set -o pipefail; migcodec codecs --json | head -1; echo status $?"],
        capture_output=True,
        text=True,
        timeout=60,
        env=subprocess_env(tmp_path / "cache")
        | {"PATH": f"{Path(migcodec_command()[0]).parent}{os.pathsep}{os.environ['PATH']}"},
    )
    assert done.stderr == ""
    first, status = done.stdout.splitlines()
    assert first == "[" and status in ("status 0", "status 141")


def test_the_guest_fill_reports_progress_in_chunks_with_the_same_contents(monkeypatch):
    from migcodec.engine import guest as guest_module

    memory = np.zeros((250, 4096), np.uint8)
    whole = np.zeros_like(memory)
    guest_module.make_guest(whole, 0.0, seed=3)
    monkeypatch.setattr(guest_module, "FILL_CHUNK_PAGES", 100)
    calls = []
    guest_module.make_guest(memory, 0.0, seed=3, fill_progress=lambda *c: calls.append(c))
    assert calls == [(100, 250), (200, 250), (250, 250)]
    np.testing.assert_array_equal(memory, whole)


def test_benchmark_reversals_are_checked_with_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "migration.py"), "--reversals", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        env=subprocess_env(tmp_path / "cache"),
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        "migration.py: error: argument --reversals: '2' is not a whole number >= 3 (the "
        "estimate averages the reversals after the first two) (see migration.py --help)\n"
    )


def test_the_migration_benchmark_shows_progress_on_a_terminal(tmp_path):
    import fcntl
    import struct
    import termios

    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    argv = ["--memory", "16MiB", "--guests", "ones", "--codecs", "lz4", "--head-to-head", "0"]
    try:
        done = subprocess.run(
            [sys.executable, str(REPO / "benchmarks" / "migration.py"), *argv],
            stdout=subprocess.PIPE,
            stderr=follower,
            text=True,
            timeout=120,
            env=subprocess_env(tmp_path / "cache"),
        )
    finally:
        os.close(follower)
    drawn = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal is closed once everything was read
            break
        if not chunk:
            break
        drawn += chunk
    os.close(leader)
    assert done.returncode == 0
    assert done.stdout.startswith("ones       lz4 ")  # stdout: the table only
    bar = drawn.decode()
    assert "migrations: " in bar and " migrations/s, ones, lz4 at " in bar


def test_bench_refuses_a_codec_list_that_names_none_and_memory_it_cannot_hold(capsys):
    assert main(["bench", "--pages", "16", "--codecs", ",,,"]) == 2
    assert capsys.readouterr().err == (
        "migcodec bench: --codecs ',,,' names no codec; write names such as lz4,zstd "
        "(`migcodec codecs` lists them)\n"
    )
    assert main(["bench", "--pages", "16", "--codecs", "lz4,raw, lz4"]) == 2
    assert capsys.readouterr() == (
        "",
        "migcodec bench: --codecs 'lz4,raw, lz4' names lz4 more than once; name each codec once\n",
    )
    assert main(["bench", "--pages", "999999999", "--codecs", "raw"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("migcodec bench: --pages 999999999 needs ")
    assert err.endswith(" available; use fewer --pages\n")


@pytest.mark.parametrize("name", ["run.txt", "run.pgf", "run.PnG2"])
def test_a_plot_in_a_format_matplotlib_cannot_write_is_refused_before_the_work(
    tmp_path, capsys, name
):
    """matplotlib refused ``.txt`` (and pgf found no LaTeX) once the migration had run:
    a traceback after the report."""
    plot = tmp_path / name
    for command in (["migrate", *TINY], ["evaluate", "--workload", "phases"]):
        assert main([*command, "--plot", str(plot)]) == 2
        out, err = capsys.readouterr()
        assert out == ""
        suffix = plot.suffix[1:].lower()
        assert err.startswith(
            f"migcodec {command[0]}: --plot {plot}: cannot draw a .{suffix} file; name a .png "
            "file (or one of .avif, .eps, "
        )
        assert ".pgf" not in err.split("(or one of ")[1] and err.count("\n") == 1
    assert not plot.exists()


def test_a_plot_path_without_a_suffix_is_a_png_at_that_path(tmp_path):
    """matplotlib writes ``run`` to ``run.png``: a file the command line did not name."""
    from migcodec.plots.migration import plot_sweep

    plot = tmp_path / "run"
    plot_sweep([], 0.0, plot)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "run.png").exists()


def test_an_empty_plot_path_is_refused_not_taken_as_no_plot(capsys):
    assert main(["migrate", "--memory", "4MiB", "--quiet", "--plot", ""]) == 2
    assert capsys.readouterr().err == (
        "migcodec migrate: --plot '' names no file; give a path, e.g. run.png\n"
    )


EVALUATE = ["evaluate", "--workload", "text", "--windows", "2", "--pages", "8", "--repeats", "1"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--arms", ";"],
            "the arm list ';' names no codec; give one or more separated by ';', e.g. "
            "raw;lz4;zstd:level=3",
        ),
        (
            ["--policies", " ; "],
            "--policies ' ; ' names no policy; give one or more separated by ';', e.g. "
            "'auto;d-ucb:gamma=0.9', or leave --policies out for the defaults",
        ),
        (  # was measured twice and reported as two arms of one label
            ["--arms", "lz4;raw lz4;zstd:level=1;zstd:level=1"],
            "the arm list 'lz4;raw lz4;zstd:level=1;zstd:level=1' names 'lz4', 'zstd level=1' "
            "more than once; give each arm once",
        ),
        (  # replayed twice, and the overall rows counted one trace as two
            ["--link", "1Gbit,10Gbit, 1Gbit"],
            "--link '1Gbit,10Gbit, 1Gbit' names 1Gbit more than once; name each link rate once",
        ),
        (  # repeated --link options add up, as a comma-separated list
            ["--link", "1Gbit", "--link", "10Gbit,1Gbit"],
            "--link '1Gbit,10Gbit,1Gbit' names 1Gbit more than once; name each link rate once",
        ),
        (  # one rate written three ways was replayed three times, and counted so overall
            ["--link", "1Gbit,1000Mbit,125MB/s"],
            "--link '1Gbit,1000Mbit,125MB/s' names 1Gbit and 1000Mbit, one rate: 1.25e+08 "
            "bytes/s; name each link rate once",
        ),
        (
            ["--link", "unlimited,100Gbit"],
            "--link 'unlimited,100Gbit' names unlimited and 100Gbit, one rate: 1.25e+10 "
            "bytes/s, as unlimited is modelled; name each link rate once",
        ),
        (  # one codec configured alike, measured as two arms
            ["--arms", "raw;lz4;lz4:acceleration=1"],
            "the arm list 'raw;lz4;lz4:acceleration=1' names 'lz4' and 'lz4 acceleration=1', "
            "one codec configured alike (a setting at its default); give each arm once",
        ),
        (  # True counts as 1 in Python: it ran level 1 as an arm labelled "zstd level=True"
            ["--arms", "raw;zstd:level=true"],
            "zstd level must be a non-zero integer -131072..22, got True",
        ),
        (  # two rows of one label, and the overall rows listed the policy twice
            ["--policies", "ucb1;d-ucb ucb1:c=1"],
            "--policies 'ucb1;d-ucb ucb1:c=1' gives ucb1:c=1 as a policy given before (the "
            "same parameters); give each policy once",
        ),
        (
            ["--arms", "raw;zstd:nope=1"],
            "bad config for codec 'zstd': it has no parameter 'nope'; it takes: level",
        ),
        (
            ["--policies", "sw-ucb:window=1.5"],
            "policy 'sw-ucb': window must be a whole number, got 1.5",
        ),
        (
            ["--policies", "ucb1;probe-commit:k=99999999999999"],
            "policy 'probe-commit': k must be in [1, 1000000], got 99999999999999",
        ),
        (  # was "arm must be a number"
            ["--arms", "raw;lz4;zstd:level=1", "--policies", "auto fixed:arm=lz4"],
            "policy 'fixed:arm=lz4': arm is the index of an arm in the arm list, from 0 to 2 "
            "(0 raw, 1 lz4, 2 zstd level=1); got 'lz4' (lz4 is fixed:arm=1)",
        ),
        (  # was refused only once the table had been measured
            ["--arms", "raw;lz4;zstd:level=1", "--policies", "fixed:arm=3"],
            "policy 'fixed:arm=3': arm is the index of an arm in the arm list, from 0 to 2 "
            "(0 raw, 1 lz4, 2 zstd level=1); got 3",
        ),
    ],
)
def test_evaluate_refuses_an_empty_or_impossible_list_in_one_line(extra, message, capsys):
    """``--arms ';'`` failed mid-evaluation with numpy's "ufunc 'invert' not supported",
    and ``--policies ';'`` ran the fixed arms alone as if that were asked for."""
    assert main([*EVALUATE, *extra]) == 2
    assert capsys.readouterr() == ("", f"migcodec evaluate: {message}\n")


def test_evaluate_refuses_an_empty_plot_path_before_measuring(capsys):
    argv = ["evaluate", "--workload", "text", "--windows", "2", "--pages", "8", "--repeats", "1"]
    assert main([*argv, "--plot", ""]) == 2
    assert capsys.readouterr() == (
        "",
        "migcodec evaluate: --plot '' names no file; give a path, e.g. run.png\n",
    )


@pytest.mark.parametrize(
    ("option", "example"),
    [
        ("--grid", "a JSON file, e.g. grid.json"),
        ("--table", "a file, e.g. table.npz"),
        ("--table-dir", "a directory, e.g. tables"),
        ("--scheduler", "local, local:N or tcp://HOST:PORT"),
        # was "cannot read cost model : [Errno 2] No such file or directory: ''"
        ("--cost-model", "measured, calibrated or a cost model JSON file"),
    ],
)
def test_evaluate_refuses_an_empty_name_not_taken_as_the_option_left_out(option, example, capsys):
    """``--grid ''`` ran no grid, ``--table ''`` cached nothing and ``--scheduler ''`` ran
    in process, each with exit status 0."""
    assert main([*EVALUATE, option, " "]) == 2
    assert capsys.readouterr() == (
        "",
        f"migcodec evaluate: {option} ' ' names nothing; give {example}, or leave {option} out\n",
    )


def test_a_policy_parameter_given_twice_is_refused_not_overwritten(capsys):
    argv = ["evaluate", "--workload", "text", "--windows", "2", "--pages", "8", "--repeats", "1"]
    assert main([*argv, "--policies", "ucb1:c=1,c=2"]) == 2
    assert capsys.readouterr().err == (
        "migcodec evaluate: policy 'ucb1:c=1,c=2': parameter 'c' is given twice\n"
    )


def test_receive_checks_its_backing_before_it_listens(capsys, tmp_path, shm_name):
    """A FIFO or a device as --memory-file, or an empty --shm, was found out only once a
    source had connected (or, for --shm '', taken as no region at all); a directory of
    /dev/shm as --shm, as mmap's "[Errno 22] Invalid argument" then, and by migrate too."""
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (Path("/dev/shm") / shm_name).mkdir()
    try:
        for backing, problem in (
            (["--memory-file", str(fifo)], f"--memory-file {fifo} is not a regular file"),
            (["--memory-file", "/dev/null"], "--memory-file /dev/null is not a regular file"),
            (["--shm", ""], "--shm '' is not a shared-memory region's name"),
            (["--shm", "gäst"], "--shm 'gäst' is not a shared-memory region's name"),
            (
                ["--shm", shm_name],
                f"--shm {shm_name}: /dev/shm/{shm_name} is not a shared-memory region (a "
                "directory, FIFO or device); name another region\n",
            ),
        ):
            for command in (["receive", "--listen", "127.0.0.1:0"], ["migrate", *TINY]):
                assert main([*command, *backing]) == 2
                out, err = capsys.readouterr()
                assert out == "" and err.startswith(f"migcodec {command[0]}: {problem}")
    finally:
        (Path("/dev/shm") / shm_name).rmdir()


@pytest.mark.parametrize("command", [["migrate", *TINY], ["receive", "--listen", "127.0.0.1:0"]])
def test_a_memory_file_of_proc_is_refused_as_no_storage(command, capsys):
    """A file of /proc (a regular file there) was refused as its filesystem having no room,
    which sent the user to free space on a filesystem that holds none."""
    assert main([*command, "--memory-file", "/proc/self/mem"]) == 2
    assert capsys.readouterr() == (
        "",
        f"migcodec {command[0]}: --memory-file /proc/self/mem is on a filesystem that holds "
        "no storage (/proc, /sys or another pseudo-filesystem), not a file guest memory can "
        "be mapped from; give a file on a disk or in /dev/shm\n",
    )


@pytest.mark.parametrize("command", [["migrate", *TINY], ["receive", "--listen", "127.0.0.1:0"]])
def test_a_memory_file_outside_any_directory_is_refused_before_the_work(command, capsys, tmp_path):
    """A path under a file was a traceback from the cleanup of the file never made (and
    ``receive`` listened first: found out only once a source had connected)."""
    (tmp_path / "file").write_bytes(b"x")
    name = command[0]
    for path, state in (
        (tmp_path / "file" / "guest.img", f"{tmp_path / 'file'} is not a directory"),
        (tmp_path / "missing" / "guest.img", f"{tmp_path / 'missing'} does not exist"),
    ):
        assert main([*command, "--memory-file", str(path)]) == 2
        assert capsys.readouterr() == (
            "",
            f"migcodec {name}: --memory-file {path}: {state}; give a path in an existing "
            "directory\n",
        )
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["migrate", *TINY, "--plot", "{long}.png"],
        ["migrate", *TINY, "--memory-file", "{long}"],
        ["receive", "--listen", "127.0.0.1:0", "--memory-file", "{long}"],
        ["trace", "synth", "--workload", "seq", "--pages", "64", "--out", "{long}"],
    ],
)
def test_a_path_with_a_name_too_long_is_one_line(argv, capsys, tmp_path):
    """pathlib's exists() and is_dir() raise ENAMETOOLONG, which was a traceback from the
    first check of the path."""
    long = str(tmp_path / ("a" * 300))
    argv = [arg.format(long=long) for arg in argv]
    path = next(arg for arg in argv if arg.startswith(long))
    assert main(argv) == 2
    command = " ".join(argv[: 2 if argv[0] == "trace" else 1])
    assert capsys.readouterr() == (
        "",
        f"migcodec {command}: {path}: a name in this path is longer than the file system "
        "allows; give a shorter path\n",
    )


def test_a_cost_model_file_of_other_batches_is_refused_before_measuring(capsys):
    """A model calibrated for 64-page batches scored a table of 32-page batches: per-call
    costs and framing counted per batch of another size, with exit status 0."""
    model = REPO / "tests" / "selector" / "data" / "cost-model.json"
    assert main([*EVALUATE, "--cost-model", str(model), "--batch-pages", "32"]) == 2
    assert capsys.readouterr() == (
        "",
        f"migcodec evaluate: cost model {model} was calibrated for 64-page batches, and "
        "--batch-pages is 32; pass --batch-pages 64, or --cost-model calibrated to calibrate "
        "for 32-page batches\n",
    )


def test_a_cost_model_file_with_a_coefficient_too_large_for_a_float_is_refused(tmp_path, capsys):
    """A sealed model holding 10**400 ended the command with an OverflowError traceback."""
    from migcodec.hashing import seal, unseal

    model = REPO / "tests" / "selector" / "data" / "cost-model.json"
    doc = unseal(json.loads(model.read_text()))
    doc["arms"]["lz4"]["per_call"] = 10**400
    path = tmp_path / "model.json"
    path.write_text(json.dumps(seal(doc)))
    assert main([*EVALUATE, "--cost-model", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(
        f"migcodec evaluate: cannot read cost model {path}: arm 'lz4' has coefficients no "
        "calibration writes (per call an integer of 401 digits, "
    )
    assert err.endswith(f"; {NOT_A_COST_MODEL}\n")


#: what a --cost-model FILE that holds no cost model is told to do
NOT_A_COST_MODEL = (
    "it is not a cost model written by this migcodec: --cost-model calibrated writes one "
    "(this machine's calibration is kept under $XDG_CACHE_HOME/migcodec, by default "
    "~/.cache/migcodec)"
)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("some notes\n", "cannot read cost model {}: Expecting value: line 1 column 1 (char 0)"),
        ('{"version": 1}', "cost model {} has version 1, expected 4"),
    ],
    ids=["not JSON", "another version"],
)
def test_a_cost_model_file_that_holds_no_model_is_not_told_to_calibrate_again(
    tmp_path, capsys, text, problem
):
    """A file the user named was "calibrate again to replace it", the remedy of this
    machine's calibration, which migcodec keeps: nothing calibrated replaces that file."""
    path = tmp_path / "some.txt"
    path.write_text(text)
    assert main([*EVALUATE, "--cost-model", str(path)]) == 2
    assert capsys.readouterr() == (
        "",
        f"migcodec evaluate: {problem.format(path)}; {NOT_A_COST_MODEL}\n",
    )


def test_a_cost_model_file_without_an_arm_is_refused_before_measuring(capsys, monkeypatch):
    """The model's arms were looked up once the first table had been measured: a corpus
    was measured in full before the missing arm was named."""
    from migcodec.cli import evaluate_cmd

    def measured(*args):
        raise AssertionError("measured before the cost model was checked")

    monkeypatch.setattr(evaluate_cmd, "_build", measured)
    model = REPO / "tests" / "selector" / "data" / "cost-model.json"
    argv = [*EVALUATE, "--cost-model", str(model), "--arms", "raw;lz4:acceleration=4"]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(
        f"migcodec evaluate: cost model {model} has no costs for 'lz4 acceleration=4' (it "
        "covers raw, lz4, "
    )
    assert err.endswith(
        "); give a model calibrated with every arm of --arms (--cost-model calibrated makes "
        "one: this machine's calibration is kept under $XDG_CACHE_HOME/migcodec, by default "
        "~/.cache/migcodec)\n"
    )


def test_a_cost_model_file_without_the_cheap_features_is_refused_before_measuring(
    tmp_path, capsys, monkeypatch
):
    """It was refused once the table had been measured and cached, told to "calibrate it
    again with this arm"."""
    from migcodec.cli import evaluate_cmd
    from migcodec.selector.costmodel import FEATURES_LABEL, CostModel

    def measured(*args):
        raise AssertionError("measured before the cost model was checked")

    monkeypatch.setattr(evaluate_cmd, "_build", measured)
    model = CostModel.load(REPO / "tests" / "selector" / "data" / "cost-model.json")
    del model.arms[FEATURES_LABEL]
    path = tmp_path / "model.json"
    model.save(path)
    assert main([*EVALUATE, "--cost-model", str(path), "--arms", "raw;lz4"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(
        f"migcodec evaluate: cost model {path} has no costs for {FEATURES_LABEL!r} (it covers "
    )


def test_a_synthetic_trace_at_a_dirty_rate_of_zero_is_refused_not_written_a_page_a_window(
    tmp_path, capsys
):
    out = tmp_path / "t"
    argv = ["trace", "synth", "--workload", "memcached", "--out", str(out), "--dirty-rate", "0"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        "migcodec trace synth: --dirty-rate 0 dirties no page, and a trace's windows hold the "
        "pages dirtied; give a positive rate (e.g. 200MB/s) or --dirty-pages N\n"
    )
    assert not out.exists()


@pytest.mark.parametrize("option", ["--windows", "--pages", "--seed", "--phase-windows"])
def test_a_workload_option_given_with_a_trace_is_refused_not_ignored(option, capsys):
    """`evaluate TRACE --windows 3` scored the whole trace, as if the option were absent."""
    assert main(["evaluate", str(REPO / "corpus" / "traces" / "qemu"), option, "3"]) == 2
    name = option.lstrip("-").replace("-", "_")
    assert capsys.readouterr().err == (
        f"migcodec evaluate: {option} applies to --workload (a trace's windows are its own); "
        f"drop {option}\n"
    ), name


@pytest.mark.parametrize(
    ("workload", "what"),
    [("memcached", "a preset, whose phases are its own"), ("text,", "one page generator")],
)
def test_phase_windows_of_a_workload_without_phases_are_refused_not_ignored(workload, what, capsys):
    """`evaluate --workload memcached --phase-windows 4` scored the preset as if the option
    were absent: only a comma-separated list of generators has phases it can shape."""
    argv = ["evaluate", "--workload", workload, "--phase-windows", "4", "--windows", "2"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        "migcodec evaluate: --phase-windows applies to phases, a comma-separated --workload "
        f"(zero,memcached,text,random); {workload!r} is {what}: drop --phase-windows, or name "
        "several page generators\n"
    )
    phased = ["evaluate", "--workload", "zero,text", "--phase-windows", "1", "--windows", "2"]
    assert main([*phased, "--pages", "64", "--policies", "auto", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)


def test_trace_info_refuses_a_codec_named_twice_instead_of_showing_two_columns(tmp_path, capsys):
    trace = tmp_path / "t"
    argv = ["trace", "synth", "--workload", "text", "--windows", "2", "--pages", "64"]
    assert main([*argv, "--out", str(trace)]) == 0
    capsys.readouterr()
    assert main(["trace", "info", str(trace), "--codecs", "lz4,zstd,lz4"]) == 2
    assert capsys.readouterr().err == (
        "migcodec trace info: --codecs 'lz4,zstd,lz4' names lz4 more than once; name each "
        "codec once\n"
    )


@pytest.mark.parametrize("given", ["/no/such/model.json", "calibrate"])
def test_a_cost_model_that_is_no_mode_and_no_file_is_refused_naming_the_choices(given, capsys):
    argv = ["evaluate", "--workload", "text", "--windows", "2", "--pages", "16"]
    assert main([*argv, "--cost-model", given]) == 2
    assert capsys.readouterr().err == (
        f"migcodec evaluate: --cost-model {given!r} is neither 'measured', 'calibrated' nor an "
        "existing file; give one of those (this machine's calibration is kept under "
        "$XDG_CACHE_HOME/migcodec, by default ~/.cache/migcodec)\n"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["migrate", "--memory", "8MiB", "--quiet", "--memory-file", ""],
        ["receive", "--listen", "127.0.0.1:0", "--memory-file", ""],
    ],
)
def test_an_empty_memory_file_name_is_refused_not_taken_as_the_current_directory(argv, capsys):
    status = main(argv)
    assert (status, capsys.readouterr().err) == (
        2,
        f"migcodec {argv[0]}: --memory-file '' names no file: guest memory is mapped from a "
        "file; give the path of a file, or leave --memory-file out for anonymous memory\n",
    )


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["evaluate", ""], "''"),
        (["evaluate", str(REPO / "corpus" / "traces" / "qemu"), " "], "' '"),
        (["trace", "info", ""], "''"),
    ],
)
def test_an_empty_trace_name_is_refused_not_read_as_the_current_directory(argv, shown, capsys):
    """``Path("")`` is ".": the current directory was read as the trace, or reported as
    ". is not a trace"."""
    command = " ".join(argv[: 2 if argv[0] == "trace" else 1])
    assert (main(argv), capsys.readouterr().err) == (
        2,
        f"migcodec {command}: TRACE {shown} names nothing; give a trace directory, e.g. "
        "corpus/traces/redis\n",
    )


def test_every_json_document_of_the_command_line_is_strict_json():
    """Every --json writer goes through one helper: numbers that are not finite are null
    (numpy's float64 too), and the rest is unchanged."""
    from migcodec.cli.args import json_document

    doc = {
        "nan": float("nan"),
        "rates": [1.5, float("inf"), np.float64(-np.inf), np.float64(2.0)],
        "nested": {"pair": (0, float("nan")), "text": "NaN", "flag": True},
    }
    text = json_document(doc)
    assert "NaN" not in text.replace('"NaN"', "") and "Infinity" not in text
    assert json.loads(text) == {
        "nan": None,
        "rates": [1.5, None, None, 2.0],
        "nested": {"pair": [0, None], "text": "NaN", "flag": True},
    }
    assert json.loads(json_document({"path": Path("/x")}, default=str)) == {"path": "/x"}


def test_a_dirty_rate_a_synthetic_trace_cannot_hold_is_refused_not_capped(tmp_path, capsys):
    """A rate past the memory's pages each window was capped at them, and one under a page
    a window rounded up to a page, while the manifest kept the rate asked for."""
    argv = ["trace", "synth", "--workload", "memcached", "--pages", "256", "--windows", "4"]
    assert main([*argv, "--out", str(tmp_path / "a"), "--dirty-rate", "1TB/s"]) == 2
    assert capsys.readouterr().err == (
        "migcodec trace synth: --dirty-rate 931GiB/s dirties 24414062 pages in some of the "
        "100 ms windows, more than the memory's 256 pages, and a window dirties each page at "
        "most once; give at most 10MiB/s, or more --pages\n"
    )
    assert main([*argv, "--out", str(tmp_path / "b"), "--dirty-rate", "1B/s"]) == 2
    assert capsys.readouterr().err == (
        "migcodec trace synth: --dirty-rate 1B/s dirties less than a page in some of the "
        "100 ms windows; give at least 40KiB/s, or longer --window-ms\n"
    )
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    # a count of 300 digits is shown in exponent form
    assert main([*argv, "--out", str(tmp_path / "a"), "--dirty-rate", "1e308"]) == 2
    assert " dirties 2.44e+303 pages in some of the 100 ms windows" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "c"), "--dirty-rate", "10MiB/s"]) == 0


def test_a_dirty_rate_under_a_byte_a_second_is_suggested_in_digits(tmp_path, capsys):
    """Windows of hours hold a page at a fraction of a byte a second: rounded to a size, the
    rate suggested read "0B/s", which --dirty-rate refuses as dirtying nothing."""
    argv = ["trace", "synth", "--workload", "memcached", "--pages", "16", "--windows", "2"]
    argv += ["--window-ms", "1e9"]
    assert main([*argv, "--out", str(tmp_path / "a"), "--dirty-rate", "1GB/s"]) == 2
    assert capsys.readouterr().err.endswith("; give at most 0.0655B/s, or more --pages\n")
    assert main([*argv, "--out", str(tmp_path / "a"), "--dirty-rate", "0.0655B/s"]) == 0


def test_a_memory_too_small_for_every_phase_s_rate_asks_for_more_pages(tmp_path, capsys):
    """No rate fits one page between phases dirtying at once and twice the rate: the rate
    each bound suggested was refused by the other."""
    argv = ["trace", "synth", "--workload", "phases", "--pages", "1", "--dirty-rate", "1MB/s"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 2
    assert capsys.readouterr().err == (
        "migcodec trace synth: no --dirty-rate dirties at least a page in every one of the "
        "100 ms windows and at most the memory's 1 page in each (the workload's phases dirty "
        "at 1 to 2 times the rate); give more --pages\n"
    )
    assert not (tmp_path / "a").exists()


def _subcommands(parser) -> dict:
    """``parser``'s commands by name (none for a parser without them)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def _subparser(parser, name: str):
    """The parser of command ``name`` (``trace info``: two levels down); with ``""``, the
    top-level commands by name."""
    if not name:
        return _subcommands(parser)
    for word in name.split():
        parser = _subcommands(parser)[word]
    return parser


def test_bench_holds_the_three_copies_of_the_pages_it_checks_for(monkeypatch):
    """``bench`` refuses pages whose 3 copies (the pages, their encoding, their decoding)
    this machine has not the memory for; a run held 5: each repeat's copies were kept
    while the next was made, and the round trip was compared through a temporary the size
    of the memory. With 32 MiB of pages, allocations now peak at 3 copies and a few MiB
    (a chunk of the comparison, the engines' buffers)."""
    import tracemalloc

    from migcodec.bench import run_bench

    nbytes = 8192 * 4096
    tracemalloc.start()
    try:
        (result,) = run_bench("text", ["raw"], nbytes // 4096, workers=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.verified
    assert peak < 3 * nbytes + (16 << 20), peak / nbytes
