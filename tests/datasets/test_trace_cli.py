"""`migcodec trace synth | info | capture` from the command line."""

from __future__ import annotations

import errno
import io
import json
import os
from pathlib import Path

import pytest

from migcodec.cli import build_parser, main
from migcodec.cli.trace_cmd import _command
from migcodec.datasets import TraceReader, TraceWriter, Workload, get_workload
from migcodec.datasets.trace import TraceWriteInterrupted
from migcodec.datasets.trace import writer as writer_module
from migcodec.hashing import seal
from tests.datasets.test_capture import Child


def test_synth_then_info_prints_a_summary_per_phase(tmp_path: Path, capsys) -> None:
    out = tmp_path / "t"
    assert (
        main(
            [
                "trace",
                "synth",
                "--workload",
                "phases",
                "--pages",
                "1024",
                "--windows",
                "8",
                "--seed",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "8 windows" in capsys.readouterr().out
    assert main(["trace", "info", str(out)]) == 0
    text = capsys.readouterr().out
    # 64 to 128 pages stored per window: the header says which of them the ratios encode
    assert "; pages per window min 64, mean 80, max 128\n" in text
    assert "  per phase (ratios of every stored page, 64-page batches):\n" in text
    for sample, which in (("100", "sampled from up to 100 stored"), ("4", "sampled from 4")):
        assert main(["trace", "info", str(out), "--sample", sample]) == 0
        assert f"  per phase (ratios {which} pages per window, 64-page" in capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line.startswith("  ")}
    for phase in ("boot", "memcached", "counters", "random"):
        assert rows[phase][1] == "2"  # windows in that phase
    assert float(rows["boot"][3].rstrip("%")) > 50  # zero fraction of the boot phase
    assert rows["random"][-1] == "1.00"  # zlib-ng cannot shrink random pages
    assert main(["trace", "info", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [p["phase"] for p in doc["summary"]] == ["boot", "memcached", "counters", "random"]
    assert "--workload phases" in doc["trace"]["command"]


def test_the_recorded_command_keeps_options_whose_value_is_zero() -> None:
    argv = ["trace", "synth", "--workload", "phases", "--dirty-rate", "0", "--out", "t"]
    command = _command(build_parser().parse_args(argv))
    assert "--dirty-rate 0 " in command
    assert "--seed 0" in command
    assert "--force" not in command  # a flag left unset is still left out


def test_info_on_a_missing_trace_says_so(tmp_path: Path, capsys) -> None:
    assert main(["trace", "info", str(tmp_path)]) == 2
    assert "not a trace" in capsys.readouterr().err


def test_info_on_a_path_that_does_not_exist_says_so_and_what_belongs_there(tmp_path, capsys):
    """It said "manifest.json is missing", as of a directory that holds no trace."""
    missing = tmp_path / "nothing"
    assert main(["trace", "info", str(missing)]) == 2
    assert capsys.readouterr().err == (
        f"migcodec trace info: {missing} does not exist; give a trace directory written by "
        "`migcodec trace capture` or `migcodec trace synth`\n"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="capture needs root")
def test_capture_command_writes_a_readable_trace(tmp_path: Path, capsys) -> None:
    child = Child("--churn-ms", "300")
    try:
        lo, hi = child.range
        code = main(
            [
                "trace",
                "capture",
                "--pid",
                str(child.proc.pid),
                "--windows",
                "3",
                "--interval",
                "20",
                "--address-range",
                f"{lo:x}-{hi:x}",
                "--out",
                str(tmp_path / "c"),
                "--quiet",
            ]
        )
    finally:
        child.close()
    assert code == 0
    out = capsys.readouterr().out
    assert ("3 windows" in out and "snapshot diffing" in out) or "soft-dirty" in out
    assert main(["trace", "info", str(tmp_path / "c")]) == 0
    assert "capture" in capsys.readouterr().out


SYNTH = ["trace", "synth", "--workload", "memcached", "--pages", "16", "--windows", "1"]


def test_synth_refuses_more_dirty_pages_a_window_than_the_memory_has(tmp_path, capsys):
    """Capped silently, the trace would hold windows of 16 pages under a command line that
    says 1000."""
    assert main([*SYNTH, "--dirty-pages", "1000", "--out", str(tmp_path / "t")]) == 2
    assert capsys.readouterr().err == (
        "migcodec trace synth: --dirty-pages 1000 is more than the memory's 16 pages, and a "
        "window dirties each page at most once; give at most 16\n"
    )
    assert main([*SYNTH, "--dirty-pages", "16", "--out", str(tmp_path / "t")]) == 0


def test_synth_refuses_an_output_that_is_a_file_or_holds_other_things(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    assert main([*SYNTH, "--out", str(afile)]) == 2
    assert capsys.readouterr().err == (
        f"migcodec trace synth: {afile} exists and is not a directory; name a new or empty "
        "directory for the trace\n"
    )
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    for force in ([], ["--force"]):  # --force replaces a trace, never other files
        assert main([*SYNTH, "--out", str(busy), *force]) == 2
        assert capsys.readouterr().err == (
            f"migcodec trace synth: {busy} is a directory that holds other files (e.g. "
            "'notes.txt') and no trace; name a new or empty directory for the trace\n"
        )
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]
    assert main([*SYNTH, "--out", ""]) == 2
    assert "names no directory" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([*SYNTH, "--out", str(empty)]) == 0


def test_synth_over_a_trace_names_only_force(tmp_path, capsys):
    out = tmp_path / "t"
    assert main([*SYNTH, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main([*SYNTH, "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"migcodec trace synth: {out} already holds a trace; choose another --out or pass "
        "--force to replace it\n"
    )
    assert main([*SYNTH, "--out", str(out), "--force"]) == 0


class _FullDisk(io.FileIO):
    """A file on a full disk: every write fails as the kernel's would."""

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _full_disk_from(monkeypatch, name: str) -> None:
    """Writes to the trace file ``name`` (a chunk, the index, the manifest) fail."""

    def fake_open(file, mode="r", *args, **kwargs):
        if Path(file).name.startswith(name) and "w" in mode:
            return _FullDisk(file, "wb")
        return open(file, mode, *args, **kwargs)

    monkeypatch.setattr(writer_module, "open", fake_open, raising=False)


def test_a_full_disk_while_writing_a_window_is_one_line_and_leaves_nothing(
    tmp_path, capsys, monkeypatch
):
    """``trace synth`` stages its trace (a synthetic one is made again at will): a failed
    write leaves no trace in part, and a trace it was to replace as it was."""
    out = tmp_path / "t"
    assert main([*SYNTH, "--out", str(out)]) == 0
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    capsys.readouterr()
    _full_disk_from(monkeypatch, "chunk-")
    for force in ([], ["--force"]):
        target = tmp_path / "u" if not force else out
        assert main([*SYNTH, "--out", str(target), *force]) == 1  # it ran and failed
        assert capsys.readouterr().err == (
            f"migcodec trace synth: cannot write window 0 of trace {target}: No space left "
            f"on device (errno 28, {target.absolute()}); nothing of it is kept, and {target} "
            "holds what it held: free space or choose another directory, then write it "
            "again\n"
        )
    assert not (tmp_path / "u").exists()
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before
    assert sorted(f.name for f in tmp_path.iterdir()) == ["t"]  # no staged directory left


def test_a_full_disk_when_closing_keeps_the_windows_written(tmp_path, capsys, monkeypatch):
    out = tmp_path / "t"
    spec = get_workload("memcached", n_pages=16, n_windows=2)
    writer = TraceWriter(out, memory_pages=16)
    writer.write_all(Workload(spec))
    monkeypatch.setattr(Path, "write_text", _FullDisk.write)
    with pytest.raises(TraceWriteInterrupted, match="cannot write the closing manifest of trace"):
        writer.close()
    writer.close()  # nothing more is written
    assert not (out / "manifest.json.tmp").exists()
    assert len(TraceReader(out, allow_incomplete=True)) == 2


def test_a_trace_that_cannot_be_created_is_one_line(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    assert main([*SYNTH, "--out", str(afile / "t")]) == 2
    assert capsys.readouterr().err == (
        f"migcodec trace synth: cannot create trace {afile / 't'}: Not a directory (errno 20, "
        f"{afile / 't'}); choose another directory\n"
    )


def test_synth_refuses_more_memory_than_the_machine_has_before_allocating(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr("migcodec.ram.available_memory", lambda: 8 << 30)
    argv = ["trace", "synth", "--workload", "memcached", "--windows", "2", "--dirty-pages", "16"]
    out = tmp_path / "t"
    assert main([*argv, "--pages", "3000000", "--out", str(out)]) == 2
    assert capsys.readouterr() == (
        "",
        "migcodec trace synth: --pages 3000000 (the workload's memory, 11.4 GiB, and windows "
        "of up to 16 dirty pages) needs 23.1 GiB of RAM, but this machine has 8 GiB "
        "available; use a smaller --pages\n",
    )
    assert main([*argv, "--pages", "999999999", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("migcodec trace synth: --pages 999999999 (the workload's memory")
    assert err.endswith("; use a smaller --pages\n") and err.count("\n") == 1
    assert not out.exists()
    # where the machine does not say how much it has, numpy's refusal is one line too
    monkeypatch.setattr("migcodec.ram.available_memory", lambda: None)
    assert main([*argv, "--pages", "999999999", "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        "migcodec trace synth: cannot allocate the workload's memory of 999999999 pages; "
        "use a smaller --pages\n"
    )
    assert not out.exists()


def test_import_qemu_refuses_a_pipe_or_a_device_before_opening_it(tmp_path, capsys):
    fifo = tmp_path / "stream"
    os.mkfifo(fifo)  # opening it would wait for a writer forever
    out = tmp_path / "t"
    assert main(["trace", "import-qemu", str(fifo), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"migcodec trace import-qemu: the stream {fifo} is a named pipe (FIFO), not a regular "
        'file; save the stream to a file first (QEMU: migrate "exec:cat > FILE") and give the '
        "file\n"
    )
    assert main(["trace", "import-qemu", "/dev/zero", "--out", str(out)]) == 2
    assert "the stream /dev/zero is a character device, not a regular file" in (
        capsys.readouterr().err
    )
    stream = tmp_path / "saved"
    stream.write_bytes(b"")
    argv = ["trace", "import-qemu", str(stream), "--out", str(out), "--sync-points", str(fifo)]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"migcodec trace import-qemu: the sync points file {fifo} is a named pipe (FIFO), not "
        "a regular file; give the JSON file of sync points\n"
    )
    assert not out.exists()


def test_import_qemu_over_a_trace_names_force(tmp_path, capsys):
    """It said "pass overwrite=True", the library's word, to a command-line user."""
    trace = tmp_path / "t"
    argv = ["trace", "synth", "--workload", "zero", "--pages", "16", "--windows", "1"]
    assert main([*argv, "--out", str(trace)]) == 0
    capsys.readouterr()
    stream = Path(__file__).resolve().parent / "data" / "qemu-xbzrle.stream.xz"
    assert main(["trace", "import-qemu", str(stream), "--out", str(trace)]) == 2
    assert capsys.readouterr().err == (
        f"migcodec trace import-qemu: {trace} already holds a trace; choose another --out or "
        "pass --force to replace it\n"
    )


def test_import_qemu_refuses_sync_points_too_deep_or_too_large_to_be_sync_points(
    tmp_path, capsys, monkeypatch
):
    """JSON nested deeper than Python's parser follows ended in a RecursionError traceback,
    and a file of any size was read whole."""
    from migcodec.datasets import qemu_stream

    stream = tmp_path / "saved"
    stream.write_bytes(b"")
    points = tmp_path / "points.json"
    argv = ["trace", "import-qemu", str(stream), "--out", str(tmp_path / "t")]
    points.write_text("[" * 100_000 + "]" * 100_000)
    assert main([*argv, "--sync-points", str(points)]) == 2
    assert capsys.readouterr().err == (
        f"migcodec trace import-qemu: cannot read sync points from {points}: its JSON is "
        "nested too deeply\n"
    )
    monkeypatch.setattr(qemu_stream, "MAX_SYNC_POINTS_BYTES", 8)
    points.write_text("[0, 1, 2, 3]")
    assert main([*argv, "--sync-points", str(points)]) == 2
    assert capsys.readouterr().err == (
        f"migcodec trace import-qemu: the sync points file {points} is larger than 8 B; give "
        "the JSON file of sync points\n"
    )


@pytest.mark.parametrize("text", ["[]", json.dumps(seal({"sync_points": []}))])
def test_import_qemu_refuses_empty_sync_points(tmp_path, capsys, text):
    """An empty list cut no window: the whole stream, its pages sent several times, went
    into one window, and the manifest called it one window per scan pass."""
    stream = Path(__file__).resolve().parent / "data" / "qemu-xbzrle.stream.xz"
    points = tmp_path / "points.json"
    points.write_text(text)
    out = tmp_path / "t"
    argv = ["trace", "import-qemu", str(stream), "--out", str(out)]
    assert main([*argv, "--sync-points", str(points)]) == 2
    assert capsys.readouterr().err == (
        "migcodec trace import-qemu: the sync points are empty, and QEMU syncs its dirty "
        "bitmap at least once per migration; give the counts recorded beside the stream "
        "(corpus/qemu_stream.py writes them), or none (leave out --sync-points) to cut a "
        "window per scan pass\n"
    )
    assert not out.exists()


def test_evaluate_refuses_a_cost_model_that_is_a_pipe(tmp_path, capsys):
    fifo = tmp_path / "model"
    os.mkfifo(fifo)
    argv = ["evaluate", "--workload", "zero", "--windows", "2", "--pages", "8"]
    assert main([*argv, "--cost-model", str(fifo)]) == 2
    assert capsys.readouterr() == (
        "",
        f"migcodec evaluate: cost model {fifo} is a named pipe (FIFO), not a regular file; "
        "give a cost model JSON file\n",
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("nope", "cannot read 'nope': write hex START-END, e.g. 7f0000000000-7f0001000000"),
        ("10-", "cannot read '10-': write hex START-END, e.g. 7f0000000000-7f0001000000"),
        ("zz-yy", "cannot read 'zz-yy': write hex START-END, e.g. 7f0000000000-7f0001000000"),
        (
            "1_000-2_000",
            "cannot read '1_000-2_000': write hex START-END, e.g. 7f0000000000-7f0001000000",
        ),
        (
            "\u0661\u0660-\u0662\u0660",
            "cannot read '\u0661\u0660-\u0662\u0660': write hex START-END, e.g. "
            "7f0000000000-7f0001000000",
        ),
        (
            "20-10",
            "'20-10' is empty: START must be below END; write hex START-END, e.g. "
            "7f0000000000-7f0001000000",
        ),
        (
            "0-1ffffffffffffffff",
            "'0-1ffffffffffffffff' lies beyond the 64-bit address space; write hex START-END "
            "within 0-10000000000000000, e.g. 7f0000000000-7f0001000000",
        ),
    ],
)
def test_capture_refuses_an_address_range_it_cannot_use(capsys, text, reason):
    argv = ["trace", "capture", "--pid", "1", "--windows", "1", "--interval", "5", "--out", "x"]
    with pytest.raises(SystemExit) as info:
        main([*argv, "--address-range", text])
    assert info.value.code == 2
    assert capsys.readouterr() == (
        "",
        f"migcodec trace capture: error: argument --address-range: {reason} (see migcodec "
        "trace capture --help)\n",
    )


def test_an_address_range_is_read_as_hex_and_recorded_as_typed():
    argv = ["trace", "capture", "--pid", "1", "--windows", "1", "--interval", "5", "--out", "x"]
    args = build_parser().parse_args([*argv, "--address-range", "7f0000000000-7f0001000000"])
    assert args.address_range == (0x7F0000000000, 0x7F0001000000)
    assert "--address-range 7f0000000000-7f0001000000" in _command(args)
    from migcodec.datasets.capture import MappingFilter

    with pytest.raises(ValueError, match="0x20-0x10 is empty"):
        MappingFilter(address_range=(0x20, 0x10))


def _unclosed_trace(path: Path) -> None:
    spec = get_workload("memcached", n_pages=16, n_windows=3)
    writer = TraceWriter(path, memory_pages=16)
    writer.write_all(Workload(spec))  # no close(): the writer "crashed"


def test_trace_info_shows_a_window_length_no_one_could_read_in_three_figures(tmp_path, capsys):
    """A file's window of 1e308 s was printed as a number of 309 digits; and two of them
    had a median of inf, with numpy's overflow warning."""
    import numpy as np

    from migcodec.datasets import Window

    for k, (lengths, shown) in enumerate(
        [
            ((0.25, 1e308), "min 0.250 s, median 5e+307 s, max 1e+308 s"),
            ((1e308, 1e308), "min 1e+308 s, median 1e+308 s, max 1e+308 s"),
        ]
    ):
        path = tmp_path / f"t{k}"
        with TraceWriter(path, memory_pages=16) as writer:
            for i, seconds in enumerate(lengths):
                pages = np.ones((1, 4096), np.uint8)
                writer.write(Window(i, np.array([i]), pages, duration_s=seconds))
        assert main(["trace", "info", str(path), "--codecs", "lz4"]) == 0
        out, err = capsys.readouterr()
        assert f"  window lengths (measured): {shown}\n" in out
        assert err == ""


def test_an_unclosed_trace_is_reported_with_the_options_of_the_command_reading_it(tmp_path, capsys):
    trace = tmp_path / "t"
    _unclosed_trace(trace)
    assert main(["trace", "info", str(trace)]) == 2
    assert capsys.readouterr().err == (
        f"migcodec trace info: {trace} was not closed by its writer (3 windows indexed); "
        "pass --allow-incomplete to read them\n"
    )
    assert main(["trace", "info", str(trace), "--allow-incomplete"]) == 0
    created = capsys.readouterr().out.splitlines()[3]  # it was "complete: False (None)"
    assert created.endswith(
        "complete: False (no reason recorded: its writer has not closed it (it is still "
        "writing, or it stopped before it could: killed, or its disk full))"
    )
    # evaluate has no --allow-incomplete: it is not advised
    assert main(["evaluate", str(trace), "--repeats", "1"]) == 2
    err = capsys.readouterr().err
    assert f"{trace} was not closed by its writer (3 windows indexed)" in err
    assert err.endswith("the trace is incomplete; write it again\n")
    assert "allow" not in err and err.count("\n") == 1


def test_synth_refuses_a_trace_the_disk_cannot_hold_after_a_few_windows(
    tmp_path, capsys, monkeypatch
):
    """A trace of a billion windows ran for hours until the disk was full: the windows
    written show what the rest will take, and past the free space synth stops there, after
    8 windows, in one line; within it, every window is written."""
    import shutil

    free = 4 << 20  # what the filesystem is said to have left
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(writer_module.shutil, "disk_usage", lambda path: usage._replace(free=free))
    out = tmp_path / "t"
    argv = ["trace", "synth", "--workload", "memcached", "--pages", "64", "--dirty-pages", "32"]
    assert main([*argv, "--windows", "100000", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("migcodec trace synth: 100000 windows would take about ")
    assert err.endswith(
        f"and the filesystem holding {out} has 4 MiB free: ask for fewer windows or write the "
        f"trace elsewhere (nothing of it is kept, and {out} holds what it held)\n"
    )
    assert len(err.splitlines()) == 1
    assert not out.exists()  # staged beside it, and removed
    # a trace that fits is written whole
    assert main([*argv, "--windows", "20", "--out", str(tmp_path / "fits")]) == 0
    assert TraceReader(tmp_path / "fits").info().windows == 20


def test_a_writer_checks_its_room_after_8_windows_then_at_each_doubling(tmp_path, monkeypatch):
    """The free space is read after windows 8, 16, 32...: a disk that fills meanwhile (or
    windows that grow) is seen at the next check, and a writer without an expected length
    never reads it."""
    import shutil

    from migcodec.datasets.trace import TraceTooLarge

    seen: list[int] = []
    usage = shutil.disk_usage(tmp_path)
    free = [1 << 30, 1 << 30, 1 << 20]  # what the filesystem has left at each check

    def disk_usage(path):
        seen.append(writer.stored_bytes)
        return usage._replace(free=free[len(seen) - 1])

    monkeypatch.setattr(writer_module.shutil, "disk_usage", disk_usage)
    windows = list(Workload(get_workload("memcached", n_pages=64, n_windows=40)))
    refused = pytest.raises(
        TraceTooLarge, match=r"^4000 windows would take about .* \(the first 32 "
    )
    with refused, TraceWriter(tmp_path / "t", memory_pages=64, expected_windows=4000) as writer:
        writer.write_all(windows)
    assert len(seen) == 3  # after 8 and 16 windows it fitted; after 32 it did not
    with TraceWriter(tmp_path / "u", memory_pages=64) as writer:
        writer.write_all(windows)
    assert len(seen) == 3


@pytest.mark.parametrize("command", ["synth", "capture", "import-qemu"])
@pytest.mark.parametrize("out", ["", " "])
def test_an_out_that_names_no_directory_is_refused(tmp_path, monkeypatch, capsys, command, out):
    """`--out ' '` made a directory named " ", where other path options refuse a name of
    blanks."""
    monkeypatch.chdir(tmp_path)
    first = {
        "synth": ["--workload", "text"],
        "capture": ["--pid", str(os.getpid()), "--windows", "1", "--interval", "100"],
        "import-qemu": ["stream.bin"],
    }[command]
    assert main(["trace", command, *first, "--out", out]) == 2
    assert capsys.readouterr().err == (
        f"migcodec trace {command}: --out {out!r} names no directory; give the trace's "
        "directory, e.g. traces/run1\n"
    )
    assert list(tmp_path.iterdir()) == []
