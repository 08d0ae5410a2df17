"""``migcodec migrate``, ``send`` and ``receive``: plots, guest memory from a file or a
shared-memory region, and what reaches stdout and stderr."""

from __future__ import annotations

import contextlib
import io
import json
import re
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path

import numpy as np
import pytest

from migcodec.cli import main
from tests.plugin_dist import ENDLESS, migcodec_command, migrating, subprocess_env

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MiB = 1 << 20
PAGE = 4096
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
    sweep = json.loads(capsys.readouterr().out)
    assert sweep["runs"] and all("iteration_log" in r for r in sweep["runs"])
    # the status is the document's verdict: a rate that migrated (in most of its runs), or
    # none (null), which also names no rate 0.0
    largest = sweep["largest_dirty_rate"]
    assert code == (0 if largest is not None else 1) and largest != 0.0
    assert_png(png)


def test_a_sweep_past_what_a_small_guest_can_dirty_reports_what_it_dirtied(capsys):
    """A guest of 1 MiB dirties each page at most once a tick (about 200 MB/s at most):
    the sweep said "at least 2048 MB/s", the rate asked, with no word that the guest
    dirtied a sixteenth of it."""
    argv = ["migrate", "--memory", "1MiB", "--quiet", "--sweep-dirty-rate"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    top = lines[-2]
    assert top.startswith("  dirty   2048.0 MB/s -> auto: ok; ")
    assert re.search(
        r"; the guest dirtied \d+\.\d MB/s of the 2048\.0 asked \(each page at most once a "
        r"tick: give it more --memory for a higher rate\)$",
        top,
    ), top
    assert re.fullmatch(
        r"largest migratable dirty rate with auto: at least \d+\.\d MB/s, the most this guest "
        r"dirtied \(2048\.0 MB/s asked; it dirties each page at most once a tick: give it more "
        r"--memory to try higher rates\)",
        lines[-1],
    ), lines[-1]
    assert main([*argv, "--json"]) == 0
    sweep = json.loads(capsys.readouterr().out)
    assert sweep["largest_dirty_rate"] == 2048e6
    assert sweep["largest_dirty_rate_achieved"] < 300e6
    assert sweep["largest_dirty_rate_achieved"] == max(
        r["dirty_rate_achieved"] for r in sweep["runs"] if r["succeeded"]
    )


def test_a_guest_that_never_ran_is_not_said_to_need_more_memory(capsys):
    """Over a link of a byte a second the migration ends before its first pass, and the
    guest dirtied nothing: the row added "the guest dirtied 0.0 MB/s of the 5.0 asked
    (...: give it more --memory for a higher rate)", which more memory would not change."""
    argv = ["migrate", "--memory", "64KiB", "--link", "8", "--max-time", "0.5", "--quiet"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert out.startswith("auto: FAILED (did not finish within its 0.5 s time limit")
    assert "the guest dirtied" not in out
    assert out.endswith(" MB on the wire, 0 iterations\n")


def test_a_failed_migration_says_why_on_stderr_as_well(capsys):
    """Its report is on stdout (JSON here); a script reading stderr saw nothing."""
    argv = ["migrate", "--memory", "64KiB", "--link", "10kbit", "--max-time", "1", "--quiet"]
    assert main([*argv, "--json"]) == 1
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["succeeded"] is False
    assert err == f"migcodec migrate: the migration failed: {report['error']}\n"
    assert report["error"].startswith("did not finish within its 1 s time limit")


def test_a_link_too_slow_for_the_preamble_is_a_migration_out_of_time(capsys):
    """The preamble's exchange ran outside the migration's own handling of its time
    limit: at 800 bit/s it ended in "the connection failed", with no report."""
    argv = ["migrate", "--memory", "64KiB", "--link", "800bit", "--max-time", "1", "--quiet"]
    assert main([*argv, "--json"]) == 1
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert (report["succeeded"], report["iterations"], report["wire_bytes"]) == (False, 0, 0)
    assert report["error"].startswith(
        "did not finish within its 1 s time limit (the link at 100 bytes/s needed "
    )
    assert err == f"migcodec migrate: the migration failed: {report['error']}\n"


def test_a_sweep_in_which_no_rate_migrated_fails_and_says_so(capsys):
    """Every run FAILED, and the sweep exited 0 with "largest migratable dirty rate with
    auto: 0.0 MB/s", which no run showed. A link of 100 kbit/s cannot pace 64 KiB within
    a second, so no rate can migrate."""
    argv = ["migrate", "--memory", "64KiB", "--link", "100kbit", "--max-time", "1"]
    assert main([*argv, "--quiet", "--sweep-dirty-rate", "--json"]) == 1
    out, err = capsys.readouterr()
    sweep = json.loads(out)
    assert sweep["largest_dirty_rate"] is None and sweep["every_rate_converged"] is False
    assert not any(r["succeeded"] for r in sweep["runs"])
    lowest = min(r["dirty_rate"] for r in sweep["runs"]) / 1e6
    assert err == (
        f"migcodec migrate: no dirty rate tried migrated with auto: even {lowest:.1f} MB/s "
        "failed (each run says why); give it more --max-time, a faster --link or less "
        "--memory\n"
    )


def test_a_sweep_refuses_a_dirty_rate_it_would_ignore(capsys):
    """``--dirty-rate`` with ``--sweep-dirty-rate`` was ignored without a word: the sweep
    ran at rates of its own, exit status 0."""
    assert main(["migrate", *TINY, "--sweep-dirty-rate", "--dirty-rate", "10MB/s"]) == 2
    assert capsys.readouterr() == (
        "",
        "migcodec migrate: --sweep-dirty-rate chooses the dirty rates it tries; drop "
        "--dirty-rate, or drop --sweep-dirty-rate to migrate at that rate\n",
    )


def test_a_sweep_of_an_image_kept_as_it_is_is_refused(tmp_path, capsys):
    """Each rate's guest wrote the image, and the next run migrated another one (its
    ratio climbing from 1.02 to 1.42 over the sweep)."""
    image = tmp_path / "img"
    image.write_bytes(bytes(64 * 4096))
    argv = ["migrate", "--memory-file", str(image), "--keep-contents", "--sweep-dirty-rate"]
    assert main(argv) == 2
    assert capsys.readouterr() == (
        "",
        "migcodec migrate: --sweep-dirty-rate has the guest dirty its memory at each rate it "
        "tries, and --keep-contents migrates an image as it is: the image would be written "
        "by each run and the next would migrate another; drop one of them\n",
    )
    assert image.read_bytes() == bytes(64 * 4096)


def test_plot_without_matplotlib_fails_before_migrating(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    png = tmp_path / "run.png"
    assert main(["migrate", *TINY, "--plot", str(png)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("migcodec migrate: --plot needs matplotlib")
    assert "pip install 'migcodec[plot]'" in err
    assert not png.exists()


def ramp(n_bytes: int) -> bytes:
    """Contents no workload generator produces: a byte ramp modulo 251."""
    return (np.arange(n_bytes) % 251).astype(np.uint8).tobytes()


def migrate_json(capsys, *args: str) -> dict:
    code = main(["migrate", *TINY, "--json", *args])
    report = json.loads(capsys.readouterr().out)
    assert code == (0 if report["succeeded"] else 1)
    return report


def test_migrate_from_a_memory_file_round_trips(tmp_path, capsys):
    path = tmp_path / "guest.img"
    report = migrate_json(capsys, "--memory-file", str(path), "--dirty-rate", "20MB/s")
    assert report["succeeded"] and report["verified"], report["error"]
    assert path.stat().st_size == 8 * MiB == report["memory_bytes"]
    assert any(path.read_bytes()[:PAGE])  # the guest's pages live in the file


def test_migrate_from_shared_memory_round_trips_and_removes_the_region_it_made(capsys, shm_name):
    report = migrate_json(capsys, "--shm", shm_name, "--dirty-rate", "20MB/s")
    assert report["succeeded"] and report["verified"], report["error"]
    assert report["memory_bytes"] == 8 * MiB
    with pytest.raises(FileNotFoundError):
        SharedMemory(shm_name)


def test_keep_contents_refuses_a_memory_size_that_would_grow_the_image(tmp_path, capsys):
    """A 1 MiB image with --memory 2MiB was grown with zeros, migrated as its contents, and
    left 2 MiB: the file was changed by a command told to keep it."""
    image = tmp_path / "kept.img"
    image.write_bytes(ramp(1 * MiB))
    argv = ["migrate", "--memory-file", str(image), "--keep-contents", "--memory", "2MiB"]
    assert main([*argv, "--quiet"]) == 2
    assert capsys.readouterr() == (
        "",
        f"migcodec migrate: --memory-file {image} holds 1048576 bytes, and --keep-contents "
        "migrates what it holds: --memory 2097152 would grow it; leave --memory out to "
        "migrate all of it, or drop --keep-contents to fill a new image\n",
    )
    assert image.read_bytes() == ramp(1 * MiB)
    kept = ["migrate", "--memory-file", str(image), "--keep-contents", "--codec", "lz4"]
    assert main([*kept, "--quiet", "--json"]) == 0  # the whole image, as it is
    report = json.loads(capsys.readouterr().out)
    assert report["succeeded"] and report["memory_bytes"] == 1 * MiB
    assert image.read_bytes() == ramp(1 * MiB)


def test_keep_contents_migrates_the_file_as_it_is_and_without_it_the_file_is_filled(
    tmp_path, capsys
):
    kept, filled = tmp_path / "kept.img", tmp_path / "filled.img"
    for path in (kept, filled):
        path.write_bytes(ramp(4 * MiB))
    report = migrate_json(capsys, "--memory-file", str(kept), "--keep-contents", "--memory", "4MiB")
    assert report["succeeded"], report["error"]  # digest-verified: the destination got it
    assert report["dirty_rate"] == 0  # a memory image is not written to unless asked
    assert kept.read_bytes() == ramp(4 * MiB)
    report = migrate_json(capsys, "--memory-file", str(filled), "--memory", "4MiB")
    assert report["succeeded"], report["error"]
    assert filled.read_bytes() != ramp(4 * MiB)


@pytest.mark.parametrize("existing", [None, 8 * MiB])
def test_send_keeps_a_memory_image_and_receive_writes_it_into_a_file(tmp_path, capsys, existing):
    """Into an existing, larger file too: its tail kept the file's old bytes, and the file
    passed for the source's image while it was not."""
    image, received = tmp_path / "image.img", tmp_path / "received.img"
    image.write_bytes(ramp(4 * MiB))
    if existing is not None:
        received.write_bytes(b"\x07" * existing)
    receiver = subprocess.Popen(
        [*migcodec_command(), "receive", "--listen", "127.0.0.1:0", "--memory-file", str(received)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(tmp_path / "cache"),
    )
    try:
        listening = receiver.stdout.readline()
        assert listening.startswith("listening on 127.0.0.1:"), listening
        port = listening.rsplit(":", 1)[1].strip()
        # a generous downtime limit: this checks the image's way through both commands, and
        # the downtime counts both ends' digests, which a busy host stretches past 300 ms
        args = ["--memory-file", str(image), "--keep-contents", "--codec", "zstd", "--json"]
        args += ["--downtime-ms", "10000"]
        code = main(["send", "--connect", f"127.0.0.1:{port}", *args])
        out, err = receiver.communicate(timeout=60)
    finally:
        receiver.kill()
    assert code == 0 and json.loads(capsys.readouterr().out)["succeeded"]
    assert receiver.returncode == 0, err
    cut = "" if existing is None else re.escape(" (cut to the guest's 4 MiB)")  # said so
    assert re.search(
        r"^received (\d+) page sends from 127\.0\.0\.1 in \d+ frames and [1-9]\d* iterations "
        f"into file {re.escape(str(received))}{cut}; memory digest verified$",
        out,
        re.MULTILINE,
    ), out
    assert int(re.search(r"received (\d+) page sends", out)[1]) >= 4 * MiB // 4096
    assert not list(tmp_path.glob(".received.img.partial-*"))
    assert received.read_bytes() == ramp(4 * MiB)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--keep-contents"], "--keep-contents needs --memory-file or --shm"),
        (["--memory", "4MiB", "--memory-file", "{odd}"], f"holds {PAGE + 1} bytes, not a whole"),
        (["--shm", "{small}"], f"holds {4 * PAGE} bytes; the guest needs {8 * MiB}"),
    ],
)
def test_bad_guest_memory_exits_2_saying_what_is_wrong(
    tmp_path, capsys, foreign_shm, args, message
):
    odd = tmp_path / "odd.img"
    odd.write_bytes(b"\0" * (PAGE + 1))
    small = foreign_shm(4 * PAGE)
    args = [a.format(odd=odd, small=small) for a in args]
    assert main(["migrate", *TINY, *args]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("migcodec migrate: ") and message in err


def test_a_memory_file_and_shared_memory_at_once_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["migrate", "--memory-file", str(tmp_path / "m"), "--shm", "x"])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


class _Terminal(io.StringIO):
    """stderr as a terminal, as tqdm tells one apart."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("quiet", ["--json", "--quiet"])
def test_json_and_quiet_keep_progress_off_even_on_a_terminal(capsys, monkeypatch, quiet):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["migrate", *TINY, "--dirty-rate", "20MB/s", quiet]) == 0
    out = capsys.readouterr().out
    if quiet == "--json":
        assert json.loads(out)["succeeded"]  # stdout is one JSON document and nothing else
    else:
        assert out.startswith("lz4: ok;") and out.count("\n") == 1
    assert terminal.getvalue() == ""


@pytest.mark.parametrize("columns", [80, 200])
def test_a_terminal_gets_a_progress_bar_that_fits_its_width(capsys, monkeypatch, columns):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setenv("COLUMNS", str(columns))
    assert main(["migrate", *TINY, "--dirty-rate", "20MB/s"]) == 0
    assert capsys.readouterr().out.startswith("lz4: ok;")
    bar = terminal.getvalue()
    assert "\r" in bar  # redrawn in place
    assert "iteration 0:" in bar and "stop-and-copy: 100%|" in bar
    drawn = [line for line in bar.replace("\n", "\r").split("\r") if line]
    for line in drawn:
        assert len(line) <= columns - 1, line  # never cut, never wrapped
        assert len(line.split("|")[1]) >= 10, line  # a bar, not a sliver
        assert " MB/s guest, " in line and line.endswith(" MB/s wire"), line
    if columns >= 120:  # room for everything
        assert all(" pages, " in line and " dirty left, " in line for line in drawn)


def test_a_log_gets_one_plain_line_per_iteration(capsys):
    assert main(["migrate", *TINY, "--dirty-rate", "20MB/s"]) == 0  # stderr: not a terminal
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert "\r" not in err and len(lines) >= 2
    assert lines[0].startswith(f"iteration 0: {8 * MiB // PAGE} pages sent, ")
    assert lines[-1].startswith("stop-and-copy: ") and ", 0 dirty pages left," in lines[-1]
    assert out.startswith("lz4: ok;") and f"{len(lines)} iterations" in out


def test_a_malformed_address_is_a_usage_error_naming_the_form(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["send", "--connect", "dest-without-port"])
    assert exit_info.value.code == 2
    assert "'dest-without-port' is not HOST:PORT (e.g. 127.0.0.1:4444)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "address", "problem"),
    [
        # str.isdigit takes any script's digits: this listened on port 80
        (
            ["receive", "--listen"],
            "127.0.0.1:\u0668\u0660",
            "is not HOST:PORT (e.g. 127.0.0.1:4444)",
        ),
        (["send", "--connect"], "127.0.0.1:\u0668\u0660", "is not HOST:PORT (e.g. 127.0.0.1:4444)"),
        (["receive", "--listen"], "127.0.0.1:65536", "names port 65536; a port is 0 to 65535"),
    ],
)
def test_a_port_of_other_digits_or_out_of_range_is_a_usage_error(capsys, command, address, problem):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, address])
    assert exit_info.value.code == 2
    assert f"{address!r} {problem}" in capsys.readouterr().err


@pytest.mark.parametrize("address", ["[::1:4444", "::1]:4444", "[127.0.0.1]:4444"])
def test_an_address_with_unbalanced_or_needless_brackets_is_a_usage_error(capsys, address):
    """``[::1:0`` was taken as host ``::1`` and port 0."""
    with pytest.raises(SystemExit) as exit_info:
        main(["receive", "--listen", address])
    assert exit_info.value.code == 2
    assert (
        f"{address!r} is not HOST:PORT: an IPv6 address goes in brackets before the port "
        "(e.g. [::1]:4444)"
    ) in capsys.readouterr().err


@pytest.mark.parametrize("address", ["4444", ":4444", "127.0.0.1:0"])
def test_an_address_no_listener_can_have_is_a_usage_error(capsys, address):
    """`--connect 4444` looked up the host name '' ("cannot find host"), and port 0 was
    tried and refused by the system, status 1: neither can be a listener's address."""
    with pytest.raises(SystemExit) as exit_info:
        main(["send", "--connect", address])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        f"migcodec send: error: argument --connect: {address!r} is not the HOST:PORT of a "
        "listener (e.g. 127.0.0.1:4444): give the host `migcodec receive` runs on and the "
        "port it printed (see migcodec send --help)\n"
    )


# -- hostile and silent peers --------------------------------------------------------------
@pytest.mark.parametrize("command", [["receive"], ["send", "--connect", "127.0.0.1:9"]])
@pytest.mark.parametrize("option", ["--timeout", "--deadline", "--connect-timeout"])
@pytest.mark.parametrize("value", ["-1", "nan", "inf", "0", "soon"])
def test_time_limits_are_checked_while_parsing(capsys, command, option, value):
    with pytest.raises(SystemExit) as info:
        main([*command, option, value])
    assert info.value.code == 2
    assert capsys.readouterr().err == (
        f"migcodec {command[0]}: error: argument {option}: {value!r} is not a positive, "
        f"finite number of seconds (e.g. 30 or 0.5) (see migcodec {command[0]} --help)\n"
    )


def test_time_limits_have_defaults_shown_in_help(capsys):
    for command in (["receive"], ["send", "--connect", "127.0.0.1:9"]):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--connect-timeout SECONDS" in text and "(default 3600)" in text
        assert "sends or takes nothing for this long (default 60)" in text


class Receiver:
    """``migcodec receive`` in a subprocess, listening on a free loopback port."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            [*migcodec_command(), "receive", "--listen", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=subprocess_env(tmp_path / "cache"),
        )
        listening = self.process.stdout.readline()
        assert listening.startswith("listening on 127.0.0.1:"), listening
        self.address = ("127.0.0.1", int(listening.rsplit(":", 1)[1]))

    def finish(self) -> tuple[int, str, str]:
        try:
            out, err = self.process.communicate(timeout=60)
        finally:
            self.process.kill()
        return self.process.returncode, out, err


def _stream_to(address, write) -> None:
    """Connect, send the preamble, take the destination's answer, then ``write``."""
    from migcodec.codecs import get_codec
    from migcodec.wire import FrameWriter

    with socket.create_connection(address, timeout=30) as sock:
        writer = FrameWriter(sock, PAGE, 4, [get_codec("raw")], await_reply_from=sock)
        write(writer)
        with contextlib.suppress(OSError):
            sock.recv(65536)  # the verdict


def test_receive_refuses_a_stream_it_cannot_verify(tmp_path):
    receiver = Receiver(tmp_path)
    _stream_to(receiver.address, lambda writer: writer.end_stream(digest=None))
    code, out, err = receiver.finish()
    assert code == 1
    assert "verified" not in out and out == ""
    assert err == (
        "migcodec receive: the source ended the stream without a "
        "memory digest, so the received memory cannot be verified; refusing it (a migcodec "
        "source always sends one: check what is sending to this port)\n"
    )


@pytest.mark.parametrize("existed", [None, 0, 4 * PAGE])
def test_a_memory_file_that_received_part_of_a_migration_is_not_left_as_an_image(tmp_path, existed):
    """A file made for the migration would be left full-size with part of the memory in
    it, like a migrated image; one that existed before is the user's, and stays: an empty
    one (``touch``-ed for the image) empty again, where it was left full-size."""
    image = tmp_path / "dest.img"
    if existed is not None:
        image.write_bytes(b"\x07" * existed)
    receiver = Receiver(tmp_path, "--memory-file", str(image))
    _stream_to(receiver.address, lambda writer: writer.abort("the source stopped"))
    code, out, err = receiver.finish()
    assert code == 1 and out == ""
    assert err.endswith("peer aborted: 'the source stopped'\n"), err
    # one that held data is said to hold what the stream wrote (it said nothing of it)
    note = (
        f"migcodec receive: note: --memory-file {image} held data before; it now holds any "
        "pages the failed stream wrote into it, unverified\n"
    )
    assert (note in err) == bool(existed), err
    assert image.exists() == (existed is not None)
    if existed is not None:
        assert image.read_bytes() == b"\x07" * existed
    assert not list(tmp_path.glob(".dest.img.partial-*"))


def test_a_destination_killed_midway_leaves_no_file_at_the_image_s_name(tmp_path):
    """Killed (SIGKILL, the out-of-memory killer) with part of the memory received, it
    left a full-size file at the image's name, like a received one: the file is made
    under a name that says it is partial, and takes the image's name once whole."""
    from migcodec.codecs import Batch, get_codec

    image = tmp_path / "dest.img"
    receiver = Receiver(tmp_path, "--memory-file", str(image))
    raw = get_codec("raw")
    pages = np.full((4, PAGE), 9, np.uint8)

    def half_then_killed(writer) -> None:
        writer.write_batch(raw.encode(Batch(pages, [(0, 2)])), 0)
        for _ in range(100):  # until the destination has taken the frame
            if list(tmp_path.glob(".dest.img.partial-*")):
                break
            time.sleep(0.05)
        receiver.process.kill()
        receiver.process.wait(30)

    _stream_to(receiver.address, half_then_killed)
    assert not image.exists()
    (partial,) = tmp_path.glob(".dest.img.partial-*")
    assert partial.stat().st_size == 4 * PAGE


def test_a_second_source_is_refused_at_once_while_the_first_migrates(tmp_path):
    """The listening socket closes once a source connected: a second was queued by the
    kernel and waited out its own timeout, told nothing."""
    receiver = Receiver(tmp_path)

    def second_source(writer) -> None:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(receiver.address, timeout=5).close()
        writer.abort("done")

    _stream_to(receiver.address, second_source)
    code, _, err = receiver.finish()
    assert code == 1 and err.endswith("peer aborted: 'done'\n"), err


def test_receive_shows_an_abort_reason_quoted_on_one_line(tmp_path):
    reason = "x\nreceived 4 pages from 127.0.0.1 in 2 frames; memory digest verified\x1b[2K"
    receiver = Receiver(tmp_path)
    _stream_to(receiver.address, lambda writer: writer.abort(reason))
    code, out, err = receiver.finish()
    assert code == 1 and out == ""
    assert err == (
        "migcodec receive: frame 0, byte offset 57: peer aborted: 'x\\nreceived 4 pages from "
        "127.0.0.1 in 2 frames; memory digest verified\\x1b[2K'\n"
    )


def test_receive_gives_up_on_a_source_that_never_connects(capsys):
    code = main(["receive", "--listen", "127.0.0.1:0", "--connect-timeout", "0.2"])
    assert code == 1
    out, err = capsys.readouterr()
    port = out.split(":")[-1].strip()
    assert err == (
        f"migcodec receive: no source connected to 127.0.0.1:{port} within 0.2 s "
        "(--connect-timeout); start `migcodec send --connect` sooner, or wait longer\n"
    )


def test_receive_cuts_off_a_trickling_source_at_the_deadline(tmp_path):
    from migcodec.codecs import get_codec
    from migcodec.wire import FrameWriter

    head = io.BytesIO()
    FrameWriter(head, PAGE, 4, [get_codec("raw")])
    receiver = Receiver(tmp_path, "--deadline", "1", "--timeout", "0.5")
    stop = threading.Event()
    with socket.create_connection(receiver.address, timeout=30) as sock:
        sock.sendall(head.getvalue())
        sock.recv(16)  # accepted
        # a byte every 50 ms: never idle for 0.5 s, never finished
        while not stop.wait(0.05):
            try:
                sock.sendall(b"M")
            except OSError:
                break
            if receiver.process.poll() is not None:
                break
        code, out, err = receiver.finish()
    assert code == 1 and out == ""
    assert err.startswith("migcodec receive: frame 0, byte offset ")
    assert err.endswith(
        ": the connection's deadline of 1 s passed before the stream ended; allow the "
        "migration longer (--deadline)\n"
    )


def test_send_gives_up_on_a_destination_that_never_answers(capsys):
    # the kernel completes the connection; nobody reads or answers
    with socket.create_server(("127.0.0.1", 0)) as silent:
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        code = main(["send", "--connect", address, *TINY, "--memory", "1MiB", "--timeout", "0.3"])
    assert code == 1
    assert capsys.readouterr().err == (
        "migcodec send: destination did not answer: the peer sent nothing for 0.3 s "
        "(the idle timeout)\n"
    )


def test_send_to_a_closed_port_says_so(capsys):
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    assert main(["send", "--connect", f"127.0.0.1:{port}", *TINY]) == 1
    assert capsys.readouterr().err == (
        f"migcodec send: cannot connect to 127.0.0.1:{port} (Connection refused); is "
        "`migcodec receive` listening there?\n"
    )


def test_filling_a_large_guest_shows_a_bar_on_a_terminal(monkeypatch):
    from migcodec.cli import migrate_progress

    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(migrate_progress, "FILL_BAR_DELAY_S", 0.0)  # shown at once
    with migrate_progress.ProgressDisplay() as display:
        for done in (16384, 32768, 40000):
            display.fill(done, 40000)
    bar = terminal.getvalue()
    assert "filling guest memory:  41%|" in bar and "| 16384/40000 [" in bar
    assert "filling guest memory: 100%|" in bar and "| 40000/40000 [" in bar
    assert bar.endswith("\r")  # cleared once filled: the migration's bar follows


def test_a_log_gets_nothing_while_the_guest_is_filled(capsys):
    from migcodec.cli.migrate_progress import ProgressDisplay

    with ProgressDisplay() as display:  # stderr is not a terminal here
        display.fill(40000, 40000)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("columns", [30, 50, 80, 120])
def test_the_bar_layout_keeps_the_rates_as_long_as_they_fit(columns):
    from migcodec.cli.migrate_progress import MIN_BAR, bar_layout
    from migcodec.engine.progress import MigrationProgress

    p = MigrationProgress(7, 262144, 131072, 181000, 160.3e6, 113.04e6)
    layout = bar_layout("iteration 7", p, columns)
    text = layout.replace("{percentage:3.0f}", " 50").replace("{bar}", "")
    if columns >= 50:
        assert len(text) + MIN_BAR <= columns - 1, layout
        assert "160" in text and "113" in text, layout  # guest and wire MB/s
    if columns >= 120:
        assert "131072/262144 pages, 181000 dirty left, 160.3 MB/s guest, 113.0 MB/s wire" in text


def test_max_time_ends_a_migration_whose_link_is_too_slow_for_one_iteration(capsys):
    """One iteration of 4 MiB at 2 Mbit/s takes 17 s; the time limit ends it at 1 s."""
    started = time.monotonic()
    code = main(["migrate", "--memory", "4MiB", "--quiet", "--max-time", "1", "--link", "2Mbit",
                 "--codec", "none", "--json"])  # fmt: skip
    assert code == 1 and time.monotonic() - started < 10
    report = json.loads(capsys.readouterr().out)
    assert report["error"].startswith("did not finish within its 1 s time limit (the link at ")
    # only pages whose frames went out count as sent (raw: each costs its 4096 bytes at least)
    assert report["pages_sent"] * 4096 <= report["wire_bytes"]


def test_a_migration_past_its_time_limit_after_an_iteration_fails_whatever_the_link_did(capsys):
    """An iteration that went out on a link fast enough never to reach its deadline inside
    a frame still ends pre-copy once past the limit: a limit of a nanosecond fails every
    run, not only those whose pacing happened to wait."""
    code = main(["migrate", "--memory", "4MiB", "--quiet", "--max-time", "1e-9", "--link",
                 "100Gbit", "--json"])  # fmt: skip
    assert code == 1
    report = json.loads(capsys.readouterr().out)
    assert report["error"].startswith("did not finish within its 1e-09 s time limit")
    assert not report["converged"]


def test_a_destination_that_dies_mid_migration_is_named_in_the_source_s_report(tmp_path):
    """Not "link failed: BrokenPipeError": the source says the destination closed the
    connection, and where to look for why."""
    receiver = Receiver(tmp_path)
    host, port = receiver.address
    send = migrating(tmp_path, "send", "--connect", f"{host}:{port}", *ENDLESS)
    try:
        receiver.process.kill()
        out, err = send.communicate(timeout=60)
    finally:
        send.kill()
        receiver.finish()
    assert send.returncode == 1, err
    assert out.startswith("auto: FAILED (the destination closed the connection ("), out
    assert "): it stopped, or refused the stream; its own output says why); " in out


def test_send_to_a_peer_that_resets_the_connection_says_so_in_one_line(capsys):
    import struct

    with socket.create_server(("127.0.0.1", 0)) as server:
        address = f"127.0.0.1:{server.getsockname()[1]}"

        def reset() -> None:
            conn, _ = server.accept()
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.recv(1)
            conn.close()  # with a zero linger: a reset, not an orderly close

        peer = threading.Thread(target=reset)
        peer.start()
        code = main(["send", "--connect", address, *TINY, "--memory", "1MiB", "--timeout", "5"])
        peer.join()
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("migcodec send: ") and "\n" not in err[:-1]
    assert "Traceback" not in err


def test_a_migration_whose_codec_failed_says_how_many_batches_went_raw():
    """A codec that fails sends its batches raw and the migration goes on: one that failed
    on every batch read as a migration at ratio 1.00 that succeeded, with nothing said."""
    from migcodec.cli.migrate_cmd import _row
    from migcodec.engine.report import MigrationReport

    assert _row(MigrationReport("lz4", fallback_batches=1)).endswith(
        "0 iterations, 1 batch sent raw after its codec failed"
    )
    assert _row(MigrationReport("lz4", fallback_batches=12)).endswith(
        ", 12 batches sent raw after their codec failed"
    )
    assert _row(MigrationReport("lz4")).endswith("0 iterations")


def test_migrate_auto_says_when_the_saved_calibration_was_not_used(tmp_path, capsys, monkeypatch):
    """Every run then calibrates again for seconds: ``evaluate`` said so, ``migrate --codec
    auto`` threw the note away."""
    from migcodec.selector import costmodel

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = costmodel.default_path(4096, 64)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert main(["migrate", "--codec", "auto", "--memory", "1MiB", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"migcodec migrate: note: the calibration saved at {path} was not used (")
    assert err.endswith("), and was made again\n") and err.count("\n") == 1
    assert main(["migrate", "--codec", "auto", "--memory", "1MiB", "--quiet"]) == 0
    assert capsys.readouterr().err == ""  # made again and kept: used from then on
