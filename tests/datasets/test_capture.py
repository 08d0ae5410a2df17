"""Capture from a real child process whose page changes are known exactly."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migcodec.datasets import TraceReader
from migcodec.datasets.capture import (
    CaptureError,
    MappingFilter,
    NotAProcess,
    PageLayout,
    ProcessCapture,
    ProcessReplaced,
    capture_to_trace,
    procfs,
)
from migcodec.datasets.capture import process as process_module

CHILD = Path(__file__).with_name("mutator_child.py")
PAGES, TOUCHED, NEVER = 96, 80, range(88, 96)  # pages 80..95 start absent; 88..95 stay so

needs_proc = pytest.mark.skipif(
    not os.path.exists("/proc/self/pagemap") or os.geteuid() != 0,
    reason="capture needs /proc and root (or ptrace rights over the child)",
)


class Child:
    def __init__(self, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(PAGES), str(TOUCHED), *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        hello = json.loads(self.proc.stdout.readline())
        self.address, self.page_size = hello["address"], hello["page_size"]
        self.range = (self.address, self.address + PAGES * self.page_size)

    def send(self, command: dict) -> str:
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def child():
    c = Child()
    yield c
    c.close()


def _schedule(rng: np.random.Generator, model: np.ndarray) -> dict:
    """A random step: whole-page fills, word writes and frees; applies it to ``model``."""
    writable = np.array([p for p in range(PAGES) if p not in NEVER])
    whole = [[int(p), int(rng.integers(0, 256))] for p in rng.choice(writable, 6, replace=False)]
    words = [
        [int(p), int(rng.integers(0, 512)), int(rng.integers(0, 1 << 62))]
        for p in rng.choice(writable, 6)
    ]
    free = [int(p) for p in rng.choice(writable, 2, replace=False)]
    w = model.view("<u8")
    for p, b in whole:
        model[p] = b
    for p, i, v in words:
        w[p, i] = v
    for p in free:
        model[p] = 0
    return {"whole": whole, "words": words, "free": free}


def _present(pid: int, address: int, page_size: int) -> np.ndarray:
    with open(f"/proc/{pid}/pagemap", "rb") as f:
        f.seek(address // page_size * 8)
        entries = np.frombuffer(f.read(PAGES * 8), dtype="<u8")
    return (entries >> np.uint64(63)) == 1


@needs_proc
def test_captured_windows_equal_the_known_changes(child: Child) -> None:
    ps = child.page_size
    model = np.zeros((PAGES, ps), dtype=np.uint8)
    model[:TOUCHED] = (np.arange(TOUCHED, dtype=np.uint8) + 1)[:, None]
    exact = ProcessCapture(child.proc.pid, select=MappingFilter(address_range=child.range))
    broad = ProcessCapture(child.proc.pid)  # default selection: all private anonymous memory
    exact.start()
    broad.start()
    assert exact.method == "snapshot-diff" or exact.method == "soft-dirty"
    rng = np.random.default_rng(7)
    for step in range(5):
        before = model.copy()
        assert child.send(_schedule(rng, model)) == "ok"
        truth = np.flatnonzero((before != model).any(axis=1))
        window = exact.next_window()
        assert window is not None and window.index == step
        np.testing.assert_array_equal(window.page_indices, truth)
        np.testing.assert_array_equal(window.pages, model[truth])
        np.testing.assert_array_equal(window.previous, before[truth])
        # the broad capture sees the same pages among the interpreter's own
        wide = broad.next_window()
        vaddr = broad.layout.to_virtual(wide.page_indices) * ps
        inside = (vaddr >= child.range[0]) & (vaddr < child.range[1])
        offsets = (vaddr[inside] - child.address) // ps
        assert set(truth.tolist()) <= set(offsets.tolist())
        rows = np.flatnonzero(inside)[np.isin(offsets, truth)]
        np.testing.assert_array_equal(wide.pages[rows], model[(vaddr[rows] - child.address) // ps])
    present = _present(child.proc.pid, child.address, ps)
    assert not present[list(NEVER)].any(), "capture faulted in pages the child never touched"
    child.send({"exit": True})
    child.proc.wait(timeout=10)
    assert exact.next_window() is None  # the process is gone: the capture ends, no error
    exact.close()
    broad.close()


@needs_proc
def test_capture_to_trace_ends_cleanly_when_the_process_exits(tmp_path: Path) -> None:
    c = Child("--churn-ms", "400")
    try:
        result = capture_to_trace(
            c.proc.pid,
            tmp_path / "t",
            windows=10_000,
            interval_s=0.02,
            select=MappingFilter(address_range=c.range),
            progress=False,
        )
    finally:
        c.close()
    assert "exited" in result.end_reason
    assert 1 <= result.windows < 10_000
    reader = TraceReader(tmp_path / "t")
    info = reader.info()
    assert info.complete and info.windows == result.windows
    assert info.meta["method"] == result.method
    dirty = [w.page_indices.tolist() for w in reader]
    assert [0] in dirty  # page 0 is the one the child rewrites


def _capture_error(child: Child, out: Path) -> CaptureError:
    """What a capture of three short windows of ``child``'s pages into ``out`` raised."""
    with pytest.raises(CaptureError) as err:
        capture_to_trace(
            child.proc.pid,
            out,
            windows=3,
            interval_s=0.01,
            select=MappingFilter(address_range=child.range),
            progress=False,
        )
    return err.value


@needs_proc
def test_a_process_that_exits_before_the_first_window_is_an_error_not_an_empty_trace(
    child: Child, monkeypatch, tmp_path: Path
) -> None:
    """It was a complete trace of no window and exit status 0: a capture, as far as a
    script could tell, that evaluate then found empty."""

    def exit_after_start(pid: int) -> str:  # its command line, asked for once started
        child.send({"exit": True})
        child.proc.wait(timeout=10)
        return "mutator"

    monkeypatch.setattr("migcodec.datasets.capture.run._cmdline", exit_after_start)
    err = _capture_error(child, tmp_path / "t")
    assert str(err) == (
        f"process {child.proc.pid} exited before its first window ended, so nothing was "
        f"captured (an empty trace is left in {tmp_path / 't'}, unclosed); capture a process "
        "that runs for longer than the interval"
    )
    assert not TraceReader(tmp_path / "t", allow_incomplete=True).info().complete


def test_a_process_that_does_not_exist_is_a_clear_error() -> None:
    """Not "has exited": nothing says it ever ran."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    with pytest.raises(NotAProcess) as err:
        ProcessCapture(proc.pid)
    assert str(err.value) == (f"no process {proc.pid}: give the pid of a running process (ps -e)")


def test_capturing_a_pid_of_no_process_is_an_input_error(tmp_path, capsys) -> None:
    """Exit status 1 said the work ran and failed; the command line must change: 2."""
    from migcodec.cli import main

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    argv = ["trace", "capture", "--pid", str(proc.pid), "--out", str(tmp_path / "t")]
    argv += ["--windows", "2", "--interval", "100"]
    assert main([*argv, "--quiet"]) == 2
    assert capsys.readouterr().err == (
        f"migcodec trace capture: no process {proc.pid}: give the pid of a running process "
        "(ps -e)\n"
    )


def test_the_capturing_process_itself_is_refused_before_any_snapshot() -> None:
    """Each snapshot lands in the memory the next one reads: ``exec migcodec trace capture
    --pid $$`` doubled its memory every window until the kernel killed it."""
    with pytest.raises(CaptureError) as err:
        ProcessCapture(os.getpid())
    assert str(err.value) == (
        f"process {os.getpid()} is this capture itself: each snapshot would hold the ones "
        "before it, and grow until memory runs out; give the pid of another process"
    )


EXEC_LATER = (
    "import os, sys\n"
    "b = bytearray(1 << 20)\n"
    "b[::4096] = b'x' * 256\n"
    "print('ready', flush=True)\n"
    "sys.stdin.readline()\n"
    "os.execv('/bin/sleep', ['sleep', '30'])\n"
)


@needs_proc
@pytest.mark.parametrize("ranged", [False, True])
def test_a_process_that_runs_another_program_ends_its_trace_as_such(ranged) -> None:
    """After exec the files opened on the process read nothing: every window after it was
    recorded as empty, and the trace said complete. With ``--address-range`` over memory
    the new program does not map, nothing was read, and the exec went unnoticed."""
    child = subprocess.Popen(
        [sys.executable, "-c", EXEC_LATER], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert child.stdout.readline() == b"ready\n"
        heap = [m for m in procfs.read_maps(child.pid) if m.path == "[heap]"]
        select = MappingFilter(address_range=(heap[0].start, heap[0].end)) if ranged else None
        cap = (
            ProcessCapture(child.pid)
            if select is None
            else ProcessCapture(child.pid, select=select)
        )
        cap.start()
        child.stdin.write(b"go\n")
        child.stdin.flush()
        deadline = time.monotonic() + 10
        sleep = os.path.realpath("/bin/sleep")
        while os.readlink(f"/proc/{child.pid}/exe") != sleep:
            assert time.monotonic() < deadline, "the child did not exec"
            time.sleep(0.01)
        assert cap.next_window() is None
        assert isinstance(cap.ended, ProcessReplaced)
        assert str(cap.ended) == f"process {child.pid} ran another program (exec)"
    finally:
        child.kill()
        child.wait()


def _kernel_thread() -> int | None:
    """A live process without an address space (empty maps), if this machine shows one."""
    from migcodec.datasets.capture.procfs import is_alive

    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/maps") as maps:
                    if not maps.read() and is_alive(int(entry)):  # a zombie's are empty too
                        return int(entry)
            except OSError:
                continue
    return None


@needs_proc
def test_a_kernel_thread_is_named_as_one_not_as_exited() -> None:
    pid = _kernel_thread()
    if pid is None:
        pytest.skip("no kernel thread visible here")
    with pytest.raises(CaptureError) as err:
        ProcessCapture(pid)
    assert str(err.value) == (
        f"process {pid} has no user memory to capture (a kernel thread); give the pid of a "
        "user-space program"
    )


@needs_proc
def test_a_process_larger_than_a_sixth_of_the_free_memory_is_refused_before_reading_it(
    child: Child, monkeypatch
) -> None:
    """Up to six copies of its present pages are held (two snapshots, and a window that
    rewrote them all with what they replaced and its encoding): a large process had the
    capture killed by the kernel mid-trace, without a word."""
    monkeypatch.setattr("migcodec.ram.available_memory", lambda: 4096)
    cap = ProcessCapture(child.proc.pid, select=MappingFilter(address_range=child.range))
    with pytest.raises(CaptureError) as err:
        cap.start()
    assert str(err.value) == (
        f"process {child.proc.pid} has 320 KiB of memory to capture, and a capture holds up "
        "to 6 copies of it (1.88 MiB) when a window rewrites all of it, but this machine has "
        "4 KiB available; capture a part of it with --address-range, or free memory here"
    )


def _grow_when_memory_is_first_asked(child: Child, monkeypatch) -> None:
    """Plenty of memory for the capture's start, which also makes the child write 8 of its
    absent pages (88 present, 352 KiB); 4 KiB for every question after."""
    asked = []

    def available() -> int:
        asked.append(1)
        if len(asked) > 1:
            return 4096
        assert child.send({"whole": [[p, 7] for p in range(TOUCHED, NEVER[0])]}) == "ok"
        return 1 << 40

    monkeypatch.setattr("migcodec.ram.available_memory", available)


@needs_proc
def test_a_process_that_grows_past_the_free_memory_is_refused_before_its_next_snapshot(
    child: Child, monkeypatch
) -> None:
    """The last snapshot is held while the next is read: a process that grew by GBs during
    a capture had the capture killed by the kernel mid-trace, without a word."""
    _grow_when_memory_is_first_asked(child, monkeypatch)
    cap = ProcessCapture(child.proc.pid, select=MappingFilter(address_range=child.range))
    cap.start()
    with pytest.raises(CaptureError) as err:
        cap.next_window()
    cap.close()
    assert str(err.value) == (
        f"process {child.proc.pid} grew to 352 KiB of memory to capture, and its next "
        "snapshot does not fit beside the last: this machine has 4 KiB available; capture a "
        "part of it with --address-range, or free memory here"
    )


@needs_proc
def test_a_capture_whose_process_outgrew_the_memory_leaves_its_windows_unclosed(
    child: Child, monkeypatch, tmp_path: Path
) -> None:
    _grow_when_memory_is_first_asked(child, monkeypatch)
    err = _capture_error(child, tmp_path / "t")
    assert str(err).endswith(
        f"or free memory here (the 0 windows captured are left in {tmp_path / 't'}, unclosed: "
        "`migcodec trace info --allow-incomplete` reads them)"
    )
    info = TraceReader(tmp_path / "t", allow_incomplete=True).info()
    assert not info.complete and info.end_reason.startswith("error: CaptureError: process")


RESERVED = (  # 64 GiB of writable address space (MAP_NORESERVE), 4 MiB of it written
    "import ctypes, mmap, sys\n"
    "m = mmap.mmap(-1, 64 << 30, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | 0x4000)\n"
    "for page in range(0, 4 << 20, mmap.PAGESIZE):\n"
    "    m[page] = 1\n"
    "print(ctypes.addressof(ctypes.c_char.from_buffer(m)), flush=True)\n"
    "sys.stdin.readline()\n"
)


@needs_proc
def test_a_large_reservation_costs_memory_for_its_present_pages_not_its_size() -> None:
    """A 64 GiB writable reservation holding 4 MiB: its pagemap entries were read whole,
    8 bytes per page of address space (128 MiB here; more than the machine for a
    sanitizer's terabytes of shadow memory)."""
    import tracemalloc

    child = subprocess.Popen(
        [sys.executable, "-c", RESERVED], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        address = int(child.stdout.readline())
        cap = ProcessCapture(
            child.pid, select=MappingFilter(address_range=(address, address + (64 << 30)))
        )
        tracemalloc.start()
        try:
            cap.start()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            cap.close()
    finally:
        child.kill()
        child.wait()
    assert cap.layout.n_pages == (64 << 30) // cap.page_size
    assert cap._idx.size == (4 << 20) // cap.page_size
    assert peak < 32 << 20  # two 8 MiB batches, and the 4 MiB snapshot


@needs_proc
def test_without_ptrace_rights_the_error_says_what_is_needed(tmp_path: Path) -> None:
    code = (
        "import os, sys\n"
        "from migcodec.datasets.capture import ProcessCapture, CaptureError\n"
        "os.setgid(65534); os.setuid(65534)  # drop root after the imports\n"
        "try:\n    ProcessCapture(1)\nexcept CaptureError as e:\n    print(e); sys.exit(3)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 3, run.stderr
    assert "root or ptrace" in run.stdout


@needs_proc
def test_soft_dirty_on_a_kernel_without_it_is_refused_before_the_first_window(
    child: Child, monkeypatch
) -> None:
    """Its bits never set there: every window would hold no page, and the trace would say
    complete."""
    monkeypatch.setattr("migcodec.datasets.capture.process.kernel_has_soft_dirty", lambda: False)
    cap = ProcessCapture(
        child.proc.pid, select=MappingFilter(address_range=child.range), method="soft-dirty"
    )
    with pytest.raises(CaptureError) as err:
        cap.start()
    assert str(err.value) == (
        "--method soft-dirty: this kernel is built without CONFIG_MEM_SOFT_DIRTY, so no page "
        "is ever marked dirty; use --method snapshot-diff (or auto)"
    )


@needs_proc
def test_soft_dirty_method_reports_exactly_the_written_pages(child: Child, monkeypatch) -> None:
    """This kernel has no soft-dirty bits, so the test sets them itself: bit 55 on exactly
    the pages the child wrote since the last clear, as a soft-dirty kernel would."""
    ps = child.page_size
    cap = ProcessCapture(
        child.proc.pid, select=MappingFilter(address_range=child.range), method="soft-dirty"
    )
    written: set[int] = set()
    real_entries = cap.files._entries

    def entries(lo: int, hi: int, buf: np.ndarray, *, first: bool) -> np.ndarray:
        """One batch of pagemap entries, of pages ``[lo, hi)``."""
        e = real_entries(lo, hi, buf, first=first)
        offsets = np.array(sorted(written), dtype=np.int64) + child.address // ps - lo
        offsets = offsets[(offsets >= 0) & (offsets < e.size)]
        e[offsets] |= np.uint64(1 << 55)
        return e

    monkeypatch.setattr(cap.files, "_entries", entries)
    monkeypatch.setattr(cap.files, "clear_soft_dirty", written.clear)
    monkeypatch.setattr("migcodec.datasets.capture.process.kernel_has_soft_dirty", lambda: True)
    model = np.zeros((PAGES, ps), dtype=np.uint8)
    model[:TOUCHED] = (np.arange(TOUCHED, dtype=np.uint8) + 1)[:, None]
    present = np.arange(PAGES) < TOUCHED
    cap.start()
    assert cap.method == "soft-dirty"
    rng = np.random.default_rng(11)
    for step in range(4):
        before, was_present = model.copy(), present.copy()
        command = _schedule(rng, model)
        if step == 0:  # rewrite a page with the bytes it holds: still dirty in a dirty log
            command["whole"].append([3, 4])
            model[3] = 4
        touched = {p for p, _b in command["whole"]} | {p for p, _i, _v in command["words"]}
        present[list(touched)] = True
        present[command["free"]] = False
        written |= touched
        assert child.send(command) == "ok"
        truth = np.flatnonzero(
            (np.isin(np.arange(PAGES), list(touched)) & present) | (was_present & ~present)
        )
        window = cap.next_window()
        np.testing.assert_array_equal(window.page_indices, truth)
        np.testing.assert_array_equal(window.pages, model[truth])
        np.testing.assert_array_equal(window.previous, before[truth])
    cap.close()


@needs_proc
@pytest.mark.parametrize("how", ["r", ""])
def test_memory_made_read_only_or_inaccessible_keeps_its_pages(child: Child, how: str) -> None:
    """mprotect changes no page: pages made read-only (or inaccessible) and writable again
    are neither zeroed nor rewritten; a write after that is the one change."""
    ps = child.page_size
    model = np.zeros((PAGES, ps), dtype=np.uint8)
    model[:TOUCHED] = (np.arange(TOUCHED, dtype=np.uint8) + 1)[:, None]
    cap = ProcessCapture(child.proc.pid, select=MappingFilter(address_range=child.range))
    cap.start()
    assert child.send({"protect": [16, 32, how]}) == "ok"
    window = cap.next_window()
    assert window.page_indices.tolist() == []
    assert child.send({"protect": [16, 32, "rw"], "words": [[20, 3, 77]]}) == "ok"
    window = cap.next_window()
    assert window.page_indices.tolist() == [20]
    np.testing.assert_array_equal(window.previous, model[[20]])
    model.view("<u8")[20, 3] = 77
    np.testing.assert_array_equal(window.pages, model[[20]])
    # a part protected and then freed is zeroed, as before
    assert child.send({"protect": [40, 4, how], "free": [41]}) == "ok"
    window = cap.next_window()
    assert window.page_indices.tolist() == [41]
    assert not window.pages.any()
    assert cap.layout.n_pages == PAGES
    cap.close()


@needs_proc
def test_memory_only_read_is_not_read_and_its_first_write_is_captured(child: Child) -> None:
    """A page only ever read maps the kernel's zero page: it reads as zeros, as an absent
    page is recorded, so it is not read each window (1 GiB only read cost 1.5 s a window)."""
    if not procfs.zero_frames():
        pytest.skip("pagemap shows no frame numbers here (CAP_SYS_ADMIN)")
    cap = ProcessCapture(child.proc.pid, select=MappingFilter(address_range=child.range))
    cap.start()
    assert child.send({"read": [84, 85]}) == "ok"
    vpns, _, _ = cap._scan()
    assert (vpns - child.address // child.page_size).tolist() == list(range(TOUCHED))
    assert cap.next_window().page_indices.tolist() == []
    assert child.send({"words": [[84, 0, 9]]}) == "ok"
    window = cap.next_window()
    assert window.page_indices.tolist() == [84]
    assert not window.previous.any() and window.pages.view("<u8")[0, 0] == 9
    cap.close()


@needs_proc
def test_pages_swapped_out_or_being_moved_keep_their_contents(child: Child, monkeypatch) -> None:
    """pagemap shows a page swapped out, or being moved by the kernel (compaction, NUMA
    balancing), as not present but swapped: it holds its data all the same."""
    ps = child.page_size
    cap = ProcessCapture(child.proc.pid, select=MappingFilter(address_range=child.range))
    cap.start()
    real_entries = cap.files._entries
    out = set(range(10, 18))

    def entries(lo: int, hi: int, buf: np.ndarray, *, first: bool) -> np.ndarray:
        e = real_entries(lo, hi, buf, first=first)
        offsets = np.array(sorted(out), dtype=np.int64) + child.address // ps - lo
        offsets = offsets[(offsets >= 0) & (offsets < e.size)]
        e[offsets] = (e[offsets] & ~procfs.PRESENT) | procfs.SWAPPED
        return e

    monkeypatch.setattr(cap.files, "_entries", entries)
    assert cap.next_window().page_indices.tolist() == []
    out.clear()
    assert cap.next_window().page_indices.tolist() == []
    cap.close()


@needs_proc
def test_a_page_unmapped_in_a_run_read_leaves_the_pages_after_it_read(child: Child) -> None:
    ps = child.page_size
    cap = ProcessCapture(child.proc.pid, select=MappingFilter(address_range=child.range))
    cap.start()
    assert child.send({"unmap": 50}) == "ok"  # after pagemap was read: a run crosses it
    vpns = np.arange(TOUCHED, dtype=np.int64) + child.address // ps
    pages, ok = cap.files.read_pages(vpns)
    assert np.flatnonzero(~ok).tolist() == [50]
    np.testing.assert_array_equal(pages[51:, 0], np.arange(52, TOUCHED + 1, dtype=np.uint8))
    window = cap.next_window()
    assert window.page_indices.tolist() == [50] and not window.pages.any()
    cap.close()


@needs_proc
def test_a_maps_listing_with_overlapping_lines_is_read_once_per_page(
    child: Child, monkeypatch
) -> None:
    """A listing read while the process changes its mappings may show lines that overlap:
    each page is read and recorded once, not refused."""
    from migcodec.datasets.capture.procfs import Mapping

    real = process_module.read_maps

    def overlapping(pid: int) -> list[Mapping]:
        maps = real(pid)
        start, end = child.range
        return [*maps, Mapping(start, end, "rw-p", 0, 0, "")]

    monkeypatch.setattr(process_module, "read_maps", overlapping)
    cap = ProcessCapture(child.proc.pid, select=MappingFilter(address_range=child.range))
    cap.start()
    assert child.send({"words": [[7, 1, 5], [60, 2, 6]]}) == "ok"
    assert cap.next_window().page_indices.tolist() == [7, 60]
    assert cap.layout.n_pages == PAGES
    cap.close()


def test_a_selection_keeps_the_captured_parts_of_mappings_no_longer_writable() -> None:
    from migcodec.datasets.capture.procfs import Mapping

    maps = [
        Mapping(0x1000, 0x5000, "---p", 0, 0, ""),  # was writable from 0x2000 to 0x4000
        Mapping(0x5000, 0x6000, "---p", 0, 0, ""),  # never captured
        Mapping(0x6000, 0x8000, "r--p", 0, 42, "/usr/lib/libc.so.6"),  # file-backed
        Mapping(0x8000, 0x9000, "rw-p", 0, 0, ""),
        Mapping(0x9000, 0xA000, "-w-p", 0, 0, ""),  # write-only
        Mapping(0xA000, 0xB000, "r--p", 0, 0, "[vvar]"),
    ]
    held = {0x1000: [(0x2000, 0x4000)], 0x6000: [(0x6000, 0x8000)], 0xA000: [(0xA000, 0xB000)]}
    chosen = MappingFilter().select(maps, held=lambda start, end: held.get(start, []))
    assert [(m.start, m.end, m.perms) for m in chosen] == [
        (0x2000, 0x4000, "---p"),
        (0x8000, 0x9000, "rw-p"),
        (0x9000, 0xA000, "-w-p"),
    ]
    assert [m.start for m in MappingFilter().select(maps)] == [0x8000, 0x9000]


def test_layout_numbers_address_space_compactly_and_inverts() -> None:
    layout = PageLayout()
    layout.cover(1000, 1010)
    layout.cover(5000, 5004)
    layout.cover(1000, 1010)  # already covered: nothing new
    layout.cover(1005, 1020)  # a grown mapping: only its new part gets new numbers
    assert layout.n_pages == 10 + 4 + 10
    vpns = np.array([1000, 1009, 5000, 5003, 1010, 1019])
    trace = layout.to_trace(vpns)
    assert trace.tolist() == [0, 9, 10, 13, 14, 23]
    np.testing.assert_array_equal(layout.to_virtual(trace), vpns)
    again = PageLayout.from_segments(layout.segments())
    np.testing.assert_array_equal(again.to_trace(vpns), trace)
    with pytest.raises(ValueError, match="outside"):
        layout.to_trace(np.array([7000]))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.tuples(st.integers(0, 300), st.integers(1, 40)), min_size=1, max_size=6),
            st.sampled_from(["apart", "reversed", "overlapping"]),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_layout_numbers_each_new_page_next_in_order_of_cover(scans) -> None:
    """Against a page-by-page model: every page covered gets the next free number the
    first time it is covered (a range's new pages in address order, ranges in turn), and
    the numbering inverts, survives the manifest, and meets each range where it is
    covered; ranges ascending and apart (a process's mappings) or not (a listing read
    while they changed)."""
    layout, model = PageLayout(), {}
    for scan, shape in scans:
        ranges, end = [], 0
        for gap, size in scan:
            ranges.append((end + gap, end + gap + size))
            end += gap + size
        if shape == "reversed":
            ranges.reverse()
        elif shape == "overlapping":
            ranges = [(lo, hi + 30) for lo, hi in ranges]
        for lo, hi in ranges:
            for page in range(lo, hi):
                model.setdefault(page, len(model))
        if len(ranges) == 1:
            layout.cover(*ranges[0])
        else:
            layout.cover_all(ranges)
    vpns = np.array(sorted(model), dtype=np.int64)
    numbers = np.array([model[v] for v in vpns.tolist()], dtype=np.int64)
    assert layout.n_pages == len(model)
    np.testing.assert_array_equal(layout.to_trace(vpns), numbers)
    np.testing.assert_array_equal(layout.to_virtual(numbers), vpns)
    again = PageLayout.from_segments(layout.segments())
    assert again.segments() == layout.segments()
    np.testing.assert_array_equal(again.to_trace(vpns), numbers)
    rows = layout.segments()
    assert [r[2] for r in rows] == sorted(r[2] for r in rows)
    parts = layout.covered(0, 4000)
    assert sum(hi - lo for lo, hi in parts) == len(model)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(parts))


def test_ranges_that_overlap_or_go_back_are_covered_one_at_a_time() -> None:
    """A maps listing read while the process changed its mappings can show lines that
    overlap: covered as given, in turn, not refused (it was a ValueError mid-capture)."""
    layout = PageLayout()
    layout.cover_all([(0, 10), (5, 12), (3, 4), (20, 22)])
    assert layout.n_pages == 14
    np.testing.assert_array_equal(
        layout.to_trace(np.array([0, 9, 10, 11, 20, 21])), [0, 9, 10, 11, 12, 13]
    )


def test_mapping_filter_takes_reachable_private_anonymous_memory_by_default() -> None:
    from migcodec.datasets.capture.procfs import Mapping

    maps = [
        Mapping(0x1000, 0x5000, "rw-p", 0, 0, "[heap]"),
        Mapping(0x5000, 0x6000, "r--p", 0, 0, ""),  # read-only
        Mapping(0x6000, 0x8000, "rw-p", 0, 42, "/usr/lib/libc.so.6"),  # file-backed
        Mapping(0x8000, 0x9000, "rw-s", 0, 0, "/dev/zero (deleted)"),  # shared
        Mapping(0x9000, 0xA000, "rw-p", 0, 0, ""),
        Mapping(0xA000, 0xB000, "r--p", 0, 0, "[vvar]"),
        Mapping(0xB000, 0xC000, "r-xp", 0, 0, ""),  # a JIT's code
        Mapping(0xC000, 0xD000, "---p", 0, 0, ""),  # a reservation
        Mapping(0xD000, 0xE000, "r-xp", 0, 42, "/usr/lib/libc.so.6"),  # a library's code
    ]
    starts = [m.start for m in MappingFilter().select(maps)]
    assert starts == [0x1000, 0x5000, 0x9000, 0xB000]
    starts = [m.start for m in MappingFilter(include_file=True, include_shared=True).select(maps)]
    assert starts == [0x1000, 0x5000, 0x6000, 0x8000, 0x9000, 0xB000]
    starts = [m.start for m in MappingFilter(include_shared=True).select(maps)]
    assert starts == [0x1000, 0x5000, 0x8000, 0x9000, 0xB000]
    clipped = MappingFilter(address_range=(0x2000, 0x9800)).select(maps)
    assert [(m.start, m.end) for m in clipped] == [
        (0x2000, 0x5000),
        (0x5000, 0x6000),
        (0x9000, 0x9800),
    ]


@needs_proc
def test_code_written_and_protected_within_a_window_is_captured(child: Child) -> None:
    """A JIT writes its code while writable and runs it while executable: memory that is
    read-only at every window's end is captured all the same."""
    assert child.send({"protect": [60, 4, "r"]}) == "ok"
    cap = ProcessCapture(child.proc.pid, select=MappingFilter(address_range=child.range))
    cap.start()
    assert child.send({"protect": [60, 4, "rw"], "words": [[61, 0, 5]]}) == "ok"
    assert child.send({"protect": [60, 4, "r"]}) == "ok"
    window = cap.next_window()
    assert window.page_indices.tolist() == [61]
    assert window.pages.view("<u8")[0, 0] == 5 and window.previous[0, 0] == 62
    cap.close()


@needs_proc
@pytest.mark.parametrize(
    ("start", "end", "pages"),
    [((0, 16), (0, 32), [0]), ((0, 2048), (1, 2048), [0, 1]), ((1, 0), (2, 1024), [1, 2])],
)
def test_a_range_that_ends_mid_page_captures_every_page_it_touches(
    child: Child, start: tuple[int, int], end: tuple[int, int], pages: list[int]
) -> None:
    """Ends given as (page of the child's buffer, bytes into it): a range within one page
    captured nothing and succeeded, and one ending mid-page lost the page it ended in."""

    def at(page: int, offset: int) -> int:
        return child.address + page * child.page_size + offset

    cap = ProcessCapture(child.proc.pid, select=MappingFilter(address_range=(at(*start), at(*end))))
    cap.start()
    assert child.send({"whole": [[p, 200] for p in range(4)]}) == "ok"
    window = cap.next_window()
    cap.close()
    assert cap.layout.n_pages == len(pages)
    assert cap.layout.to_virtual(window.page_indices).tolist() == [
        child.address // child.page_size + p for p in pages
    ]


def test_a_range_without_memory_to_capture_is_refused_not_recorded_as_an_empty_trace(
    tmp_path: Path,
) -> None:
    c = Child()
    try:
        with pytest.raises(CaptureError) as info:
            capture_to_trace(
                c.proc.pid,
                tmp_path / "t",
                windows=3,
                interval_s=0.01,
                select=MappingFilter(address_range=(0x0, 0x1000)),  # the unmapped first page
                progress=False,
            )
    finally:
        c.close()
    assert str(info.value) == (
        f"process {c.proc.pid} has no private anonymous memory in --address-range "
        f"0x0-0x1000 to capture; see /proc/{c.proc.pid}/maps for its mappings, and give a "
        "range that overlaps them or --include-file / --include-shared"
    )
    assert not (tmp_path / "t").exists()


@given(
    st.lists(st.tuples(st.booleans(), st.integers(1, 12)), min_size=1, max_size=12),
    st.integers(0, 2**32 - 1),
)
@settings(max_examples=60, deadline=None)
def test_pages_compared_in_place_or_gathered_differ_exactly_where_they_do(runs, seed) -> None:
    """Matched rows in runs of consecutive pages (compared in place) and with gaps
    (gathered), across compare blocks of 5 pages: the same answer as comparing each pair."""
    rng = np.random.default_rng(seed)
    rows, at = [], 0
    for consecutive, length in runs:
        step = 1 if consecutive else 2
        rows.extend(range(at, at + step * length, step))
        at += step * length + int(rng.integers(0, 3))
    ia = np.array(rows, dtype=np.int64)
    ib = ia + np.arange(ia.size) // 7  # other rows on the other side, still ascending
    a = rng.integers(0, 2, (int(ia[-1]) + 1, 64), dtype=np.uint8)
    b = rng.integers(0, 2, (int(ib[-1]) + 1, 64), dtype=np.uint8)
    b[ib[::3]] = a[ia[::3]]  # a third of the pairs equal
    expected = (a[ia] != b[ib]).any(axis=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(process_module, "_COMPARE_BLOCK", 5)
        np.testing.assert_array_equal(process_module._rows_differ(a, ia, b, ib), expected)


def test_a_refusal_as_root_does_not_advise_running_as_root():
    """Root is refused a process that made itself non-dumpable, or that a security module
    or a user namespace guards: "run as root" told root to do what it did."""
    from migcodec.datasets.capture.procfs import permission_error

    as_root = str(permission_error(1, "/proc/PID/mem", root=True))
    assert as_root.startswith("no permission to read /proc/PID/mem of process 1, even as root:")
    assert "run as root" not in as_root and as_root.endswith("capture another process")
    as_user = str(permission_error(1, "/proc/PID/mem", root=False))
    assert "(run as root, or as its owner" in as_user


@needs_proc
def test_a_thread_id_is_refused_naming_its_process():
    """A thread's /proc entry shows its process's memory and goes when the thread does:
    captured by a thread id, a capture ended as if the process had exited."""
    import os
    import threading

    from migcodec.datasets.capture.procfs import ProcFiles, thread_group

    assert thread_group(os.getpid()) == os.getpid()
    seen, started, done = [], threading.Event(), threading.Event()

    def run() -> None:
        seen.append(threading.get_native_id())
        started.set()
        done.wait()

    worker = threading.Thread(target=run)
    worker.start()
    try:
        started.wait(10)
        (tid,) = seen
        assert thread_group(tid) == os.getpid()
        with pytest.raises(NotAProcess) as err:
            ProcFiles(tid)
    finally:
        done.set()
        worker.join()
    assert str(err.value) == (
        f"{tid} is a thread of process {os.getpid()}, whose memory it shares; give --pid "
        f"{os.getpid()}"
    )


@needs_proc
@pytest.mark.parametrize(
    ("started_again", "told"), [(False, "ran another program"), (True, "exited")]
)
def test_a_pid_given_to_another_process_is_an_exit_not_an_exec(monkeypatch, started_again, told):
    """Once the process captured is gone, its open pagemap reads nothing. Where its pid
    lives on, that was an exec, unless the pid names a process started since: the kernel
    gave it to another one, and the capture's process exited."""
    import subprocess

    from migcodec.datasets.capture import procfs

    child = subprocess.Popen(["sleep", "30"])
    try:
        files = procfs.ProcFiles(child.pid)
    finally:
        child.kill()
        child.wait()
    started = files.started
    monkeypatch.setattr(procfs, "is_alive", lambda pid: True)  # the pid is taken again
    monkeypatch.setattr(procfs, "start_time", lambda pid: started + int(started_again))
    with pytest.raises(procfs.ProcessExited) as err:
        files.present(0, files.page_size)
    files.close()
    assert isinstance(err.value, procfs.ProcessReplaced) is not started_again
    assert told in str(err.value)


def test_anonymous_huge_pages_are_anonymous_memory() -> None:
    """MAP_ANONYMOUS | MAP_HUGETLB shows as a deleted /anon_hugepage with an inode: taken
    for a file's, none of it was captured (and --address-range over it said there was no
    anonymous memory there)."""
    huge = procfs.Mapping(
        0x7F0000000000, 0x7F0000400000, "rw-p", 0, 362316, "/anon_hugepage (deleted)"
    )
    assert huge.anonymous
    assert MappingFilter().select([huge]) == [huge]
    assert not procfs.Mapping(0, 4096, "rw-p", 0, 7, "/usr/lib/libc.so.6").anonymous


@pytest.mark.parametrize(
    ("leader", "threads", "alive"),
    [
        (b"R 1 1 1 0 -1 4194560", [], True),
        # in its exit: state R, memory being torn down (/proc/PID/maps already empty), read
        # as every page zeroed, or as an exec
        (b"R 1 1 1 0 -1 4194564", [], False),
        (b"Z 1 1 1 0 -1 4194564", [], False),
        # its main thread ended alone (pthread_exit): a zombie, its worker writing on
        (b"Z 1 1 1 0 -1 4194564", [b"S 1 1 1 0 -1 4194368"], True),
        (b"Z 1 1 1 0 -1 4194564", [b"Z 1 1 1 0 -1 4194564"], False),
    ],
)
def test_a_process_is_alive_while_a_thread_of_it_runs_and_is_not_exiting(
    monkeypatch, leader, threads, alive
) -> None:
    stats = {"100": leader.split()} | {
        f"100/task/{101 + i}": t.split() for i, t in enumerate(threads)
    }
    monkeypatch.setattr(procfs, "_stat_fields", lambda pid: stats.get(str(pid)))
    tasks = ["100", *(str(101 + i) for i in range(len(threads)))]
    monkeypatch.setattr(procfs.os, "listdir", lambda path: tasks)
    assert procfs.is_alive(100) is alive
    live = [f"100/task/{t}" for t in tasks[1:] if alive and threads]
    assert procfs._task_of(100) == ("100" if not live else live[0])
