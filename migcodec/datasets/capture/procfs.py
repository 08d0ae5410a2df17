"""A live process's memory through /proc: its mappings, which pages are present, their bytes.

Only present pages are ever read: reading an absent page through ``/proc/PID/mem`` would
fault it in (allocating memory in the target and changing what we measure). Presence and
soft-dirty bits come from ``/proc/PID/pagemap`` (bit 63 present, bit 62 swapped, bit 55
soft-dirty), read as one uint64 array per mapping.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import mmap
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

PRESENT = np.uint64(1 << 63)
SWAPPED = np.uint64(1 << 62)
SOFT_DIRTY = np.uint64(1 << 55)
#: a present page's frame number (shown to a process with CAP_SYS_ADMIN, else 0)
FRAME = np.uint64((1 << 55) - 1)
_HOLDS_DATA = PRESENT | SWAPPED
SPECIAL = ("[vvar]", "[vdso]", "[vsyscall]", "[vvar_vclock]")
_PAGEMAP_BATCH = 1 << 20  # entries per read: 8 MiB, the buffer a mapping's entries are read into


class CaptureError(Exception):
    """Capture cannot start or continue; the message says what to do."""


class NotAProcess(CaptureError):
    """The pid given names no process to capture (none, or a thread of another): the
    command line must change."""


class ProcessExited(CaptureError):
    """The target process is gone (or a zombie); a capture ends its trace cleanly."""


class ProcessReplaced(ProcessExited):
    """The target ran another program (exec): the address space being captured is gone,
    and the new one is another program's memory, so its trace ends there."""


def permission_error(pid: int, what: str, root: bool | None = None) -> CaptureError:
    """What to do about a process whose memory this one may not read. As root (``root``:
    by default, whether this process runs as root) running as root is no advice: the
    kernel refuses root where the target made itself non-dumpable, runs in a user
    namespace this process has no rights in, or a security module forbids it."""
    if root if root is not None else os.geteuid() == 0:
        return CaptureError(
            f"no permission to read {what} of process {pid}, even as root: it may have made "
            "itself non-dumpable (prctl PR_SET_DUMPABLE), run in a user namespace this "
            "process has no rights in, or be protected by a security module (SELinux, "
            "AppArmor, kernel.yama.ptrace_scope=3); capture another process"
        )
    return CaptureError(
        f"no permission to read {what} of process {pid}: capture needs root or ptrace rights "
        "over the target (run as root, or as its owner with kernel.yama.ptrace_scope=0 / "
        "CAP_SYS_PTRACE)"
    )


@dataclass(frozen=True)
class Mapping:
    """One line of /proc/PID/maps."""

    start: int
    end: int
    perms: str
    offset: int
    inode: int
    path: str

    @property
    def anonymous(self) -> bool:
        """No file behind it; shared anonymous memory shows as a deleted /dev/zero or SysV
        segment, and anonymous huge pages as a deleted /anon_hugepage: both count as
        anonymous too (huge pages were skipped as a file's, and nothing of them captured)."""
        if self.path.startswith(("/dev/zero", "/SYSV", "/anon_hugepage")):
            return True  # (/anon_hugepage: MAP_ANONYMOUS | MAP_HUGETLB, private or shared)
        return self.inode == 0 and not self.path.startswith("/")

    @property
    def shared(self) -> bool:
        return self.perms[3] == "s"


@dataclass(frozen=True)
class MappingFilter:
    """Which mappings to capture. By default private anonymous memory (heap, stacks,
    anonymous mmaps) that the process can reach: what a guest's RAM is to a hypervisor.
    Readable or executable as well as writable: a JIT's code is written while writable
    and run while executable, and a capture that took writable memory only missed code
    written and protected within one window. Not ``PROT_NONE`` reservations, which are
    address space (a JVM reserves tens of GB) with nothing in them until made accessible;
    but memory captured before keeps being captured whatever its protection (``held``,
    :meth:`select`). ``include_file`` and ``include_shared`` add writable file-backed and
    shared mappings; ``address_range`` clips every mapping to ``[start, end)``."""

    include_file: bool = False
    include_shared: bool = False
    address_range: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.address_range is not None:
            start, end = self.address_range
            if not 0 <= start < end <= 1 << 64:
                raise ValueError(
                    f"address range {start:#x}-{end:#x} is empty or beyond the 64-bit address "
                    "space: it must be [start, end) with 0 <= start < end <= 2**64"
                )

    def select(
        self,
        mappings: list[Mapping],
        held: Callable[[int, int], list[tuple[int, int]]] | None = None,
    ) -> list[Mapping]:
        """The mappings to capture, clipped to ``address_range``. ``held(start, end)``:
        the parts of ``[start, end)`` captured before (ascending byte ranges). A mapping
        of the kind selected that is not selected for its protection now keeps those
        parts: memory made read-only or inaccessible (``mprotect``; a JVM's heap regions,
        a guard page) keeps its pages, and dropped from the selection they were recorded
        as zeroed, then, writable again, as rewritten (512 false dirty pages for 256
        protected)."""
        chosen = []
        for m in mappings:
            if m.path in SPECIAL:
                continue
            if (m.shared and not self.include_shared) or (
                not m.anonymous and not self.include_file
            ):
                continue
            start, end = m.start, m.end
            if self.address_range is not None:
                start, end = max(start, self.address_range[0]), min(end, self.address_range[1])
                if start >= end:
                    continue
            # writable (write-only too: /proc/PID/mem reads it), or private anonymous
            # memory the process can reach at all
            reachable = m.anonymous and not m.shared and m.perms[:3] != "---"
            if m.perms[1] == "w" or reachable:
                chosen.append(Mapping(start, end, m.perms, m.offset, m.inode, m.path))
            elif held is not None:
                for lo, hi in held(start, end):
                    chosen.append(Mapping(lo, hi, m.perms, m.offset, m.inode, m.path))
        return chosen


def _open_error(pid: int, what: str, exc: OSError) -> CaptureError:
    if isinstance(exc, PermissionError):
        return permission_error(pid, what)
    if _gone(exc):
        return ProcessExited(f"process {pid} has exited")
    return CaptureError(f"cannot read {what} of process {pid}: {exc}")


def _gone(exc: OSError) -> bool:
    """Whether ``exc`` says the process (or its address space) is not there."""
    return isinstance(exc, FileNotFoundError | ProcessLookupError) or exc.errno == errno.ESRCH


def _stat_fields(pid: int | str) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command name (the state first, field 3), or
    ``None`` where the process is gone: the name is in parentheses and may hold spaces
    and parentheses itself, so the fields start after the last ``)``. ``pid`` may be
    ``"PID/task/TID"``, a thread's."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(b")") + 2 :].split()


#: the kernel's flag of a task in its exit (field 9 of /proc/PID/stat), set before its
#: memory is torn down
_PF_EXITING = 0x4


def _runs(fields: list[bytes] | None) -> bool:
    """Whether a task of these stat fields runs on: not a zombie, not dead, not exiting."""
    if not fields or fields[0] in (b"Z", b"X", b"x"):
        return False
    try:
        return not int(fields[6]) & _PF_EXITING
    except (ValueError, IndexError):
        return True


def _live_threads(pid: int) -> list[str]:
    """``"PID/task/TID"`` of the threads of ``pid`` that run on, its main thread first."""
    try:
        threads = sorted(os.listdir(f"/proc/{pid}/task"), key=lambda t: t != str(pid))
    except OSError:
        return []
    return [f"{pid}/task/{t}" for t in threads if _runs(_stat_fields(f"{pid}/task/{t}"))]


def _live_task(pid: int) -> str | None:
    """Where /proc shows the memory of process ``pid`` while it lives: its own entry, or,
    once its main thread ended alone (``pthread_exit``), a live thread's (the main
    thread's maps are empty then, and its pagemap and mem refuse to open); ``None`` once
    no thread of it runs on."""
    if _runs(_stat_fields(pid)):
        return str(pid)
    live = _live_threads(pid)
    return live[0] if live else None


def is_alive(pid: int) -> bool:
    """False once the process has exited, including as an unreaped zombie or while it
    exits. Its main thread may have ended alone (``pthread_exit``), a zombie while the
    others run: the process lives while any of its threads does (it was said to have
    exited, with its workers still writing). One exiting tears its memory down with
    /proc/PID/maps empty and its state still R: read then, it was recorded as zeroing
    every page, or as running another program."""
    return _live_task(pid) is not None


def _task_of(pid: int) -> str:
    """:func:`_live_task`, or the process's own entry once none lives (its reads then
    fail as a gone process's do)."""
    return _live_task(pid) or str(pid)


def start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks after boot: field 22 of /proc/PID/stat), or
    ``None`` where it is gone: a pid the kernel gave to another process since has
    another, where a process that ran another program (exec) keeps its own."""
    fields = _stat_fields(pid)
    try:
        return None if fields is None else int(fields[19])
    except (ValueError, IndexError):
        return None


def thread_group(pid: int) -> int | None:
    """The process that ``pid`` is a thread of (itself for a process's main thread), or
    ``None`` where /proc does not say."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("Tgid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def read_maps(pid: int) -> list[Mapping]:
    """Parsed /proc/PID/maps; raises :class:`ProcessExited` when the process is gone."""
    try:
        with open(f"/proc/{_task_of(pid)}/maps") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise _open_error(pid, "/proc/PID/maps", exc) from exc
    if not lines and not is_alive(pid):  # a live process has a stack at least
        raise ProcessExited(f"process {pid} has exited")
    out = []
    for line in lines:
        parts = line.split(maxsplit=5)
        lo, hi = parts[0].split("-")
        path = parts[5] if len(parts) > 5 else ""
        out.append(
            Mapping(int(lo, 16), int(hi, 16), parts[1], int(parts[2], 16), int(parts[4]), path)
        )
    return out


#: this process's mappings of the zero pages, kept so that the huge zero page, once
#: mapped, stays where :func:`zero_frames` found it
_ZERO_PROBES: list[mmap.mmap] = []


@functools.cache
def zero_frames() -> tuple[tuple[int, int], ...]:
    """The page frames ``[first, end)`` of the kernel's shared zero pages, as pagemap
    shows them: the zero page, and the huge zero page (512 frames) where transparent huge
    pages map it. Found once, by reading fresh memory of this process; empty where
    pagemap hides frame numbers (a process without CAP_SYS_ADMIN) or the probe fails.
    The huge zero page is freed once no process holds it, and its frames may hold other
    data then: this process holds it for as long as it lives (the probe's mapping)."""
    size = mmap.PAGESIZE
    huge = 2 << 20
    try:
        small = mmap.mmap(-1, 2 * size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        region = mmap.mmap(-1, 2 * huge, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        _ZERO_PROBES.extend((small, region))
        small_at = np.frombuffer(small, dtype=np.uint8).ctypes.data
        region_at = np.frombuffer(region, dtype=np.uint8).ctypes.data
        aligned = -region_at % huge
        if hasattr(mmap, "MADV_HUGEPAGE"):
            region.madvise(mmap.MADV_HUGEPAGE, aligned, huge)
        if small[0] or small[size] or region[aligned] or region[aligned + size]:
            return ()  # fresh anonymous memory reads as zeros
        with open("/proc/self/pagemap", "rb") as f:

            def frames(address: int) -> list[int]:
                f.seek(address // size * 8)
                e = np.frombuffer(f.read(16), dtype="<u8")
                return [int(x & FRAME) if x & PRESENT else 0 for x in e]

            zero = frames(small_at)
            big = frames(region_at + aligned)
    except (OSError, ValueError):
        return ()
    found = []
    if zero[0] and zero[0] == zero[1]:  # two pages of one frame: the zero page
        found.append((zero[0], zero[0] + 1))
    if big[0] and big[1] == big[0] + 1 and big[0] % (huge // size) == 0 and big[0] != zero[0]:
        found.append((big[0], big[0] + huge // size))
    return tuple(found)


def on_zero_page(entries: np.ndarray) -> np.ndarray | None:
    """Which of these pagemap entries map the kernel's zero pages (:func:`zero_frames`),
    or ``None`` where none can be told. Memory only ever read maps them: it reads as
    zeros, as an absent page is recorded, so it need not be read, and reading it cost a
    window 1.5 s for a process that had read 1 GiB of untouched memory."""
    zeros = zero_frames()
    if not zeros:
        return None
    frame = np.where(entries & PRESENT, entries & FRAME, 0)  # a swap entry has no frame
    mapped = np.zeros(entries.shape, dtype=bool)
    for begin, stop in zeros:
        mapped |= (frame >= begin) & (frame < stop)
    return mapped


class ProcFiles:
    """Open /proc/PID/pagemap and /proc/PID/mem once; the checks happen at open."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.page_size = os.sysconf("SC_PAGE_SIZE")
        if not os.path.exists(f"/proc/{pid}"):  # else told apart from one that exited
            raise NotAProcess(f"no process {pid}: give the pid of a running process (ps -e)")
        self.started = start_time(pid)
        owner = thread_group(pid)
        if owner is not None and owner != pid:
            # a thread's /proc entry shows its process's memory, and goes when the thread
            # does: its capture ended as if the process had exited while it ran on
            raise NotAProcess(
                f"{pid} is a thread of process {owner}, whose memory it shares; give --pid {owner}"
            )
        task = _task_of(pid)
        try:
            self.pagemap = os.open(f"/proc/{task}/pagemap", os.O_RDONLY)
            try:
                self.mem = os.open(f"/proc/{task}/mem", os.O_RDONLY)
            except OSError:
                os.close(self.pagemap)
                raise
        except OSError as exc:
            if _gone(exc) and is_alive(pid):  # a live process without an address space
                raise CaptureError(
                    f"process {pid} has no user memory to capture (a kernel thread); give "
                    "the pid of a user-space program"
                ) from exc
            raise _open_error(pid, "/proc/PID/pagemap or /proc/PID/mem", exc) from exc

    def _lives(self) -> bool:
        """Whether the process captured is alive: not a zombie, and not gone with its pid
        given to another process since (which an exec was reported for)."""
        return is_alive(self.pid) and start_time(self.pid) == self.started

    def check_same(self) -> None:
        """Raise :class:`ProcessReplaced` or :class:`ProcessExited` once the address space
        opened at start is gone, whatever the selection reads of it: with
        ``--address-range`` over memory the new program (or the process given the pid
        since) does not map, nothing was read, and an exec or exit went unnoticed; the
        trace recorded every page zeroed and ended complete."""
        self._entries(0, 1, np.empty(1, dtype="<u8"), first=True)

    def close(self) -> None:
        for fd in (self.pagemap, self.mem):
            with contextlib.suppress(OSError):
                os.close(fd)

    def pages_of(self, start: int, end: int) -> tuple[int, int]:
        """The first page of ``[start, end)`` and the page past its last: every page holding
        a byte of it, as a range clipped mid-page by --address-range (a mapping is whole
        pages) holds part of a page at either end. Ends rounded down dropped a last page
        partly in the range, and a range within one page captured nothing, successfully."""
        return start // self.page_size, -(-end // self.page_size)

    def present(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """The pages of ``[start, end)`` (:meth:`pages_of`) that hold data: their offsets
        from its first page (int64) and their pagemap entries (uint64).

        A page holds data when it is in memory, or swapped out or being moved (the
        kernel's swap and migration entries): skipped, such pages were recorded as zeroed
        while out and as rewritten when back, though none changed (reading one brings it
        back into memory, as a hypervisor reading its guest does). Pages in memory that
        map the kernel's zero page are among them (:func:`on_zero_page` finds them).

        Read a batch of entries at a time into one buffer, so memory follows the pages,
        not the size of the mapping: all of a mapping's entries at once took 8 bytes
        per page of address space, 2 GiB for a 1 TiB reservation (``MAP_NORESERVE``) and
        more than the machine for a sanitizer's terabytes of shadow memory."""
        first, last = self.pages_of(start, end)
        offsets, entries = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype="<u8")]
        buf = np.empty(min(last - first, _PAGEMAP_BATCH), dtype="<u8")
        for lo in range(first, last, _PAGEMAP_BATCH):  # one read per 1M pages, not per page
            e = self._entries(lo, min(last, lo + _PAGEMAP_BATCH), buf, first=lo == first)
            found = np.flatnonzero(e & _HOLDS_DATA)
            offsets.append(found.astype(np.int64) + (lo - first))
            entries.append(e[found])
        return np.concatenate(offsets), np.concatenate(entries)

    def _entries(self, lo: int, hi: int, buf: np.ndarray, *, first: bool) -> np.ndarray:
        """pagemap entries of pages ``[lo, hi)``, read into ``buf``; ``first``: the first
        batch of a mapping, where reading nothing means the address space is gone."""
        out = buf[: hi - lo]
        view = memoryview(out).cast("B")
        try:
            got = os.preadv(self.pagemap, [view], lo * 8)
        except OSError as exc:
            raise _open_error(self.pid, "/proc/PID/pagemap", exc) from exc
        if got == 0 and first:  # no address space behind the open file at all
            if self._lives():  # the process lives on in another program's memory
                raise ProcessReplaced(f"process {self.pid} ran another program (exec)")
            raise ProcessExited(f"process {self.pid} has exited")
        if got != view.nbytes:  # the mapping went away under us: treat as absent
            out[got // 8 :] = 0
        return out

    def read_pages(
        self, vpns: np.ndarray, out: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Contents of the pages ``vpns``, one read per run of adjacent ascending pages.

        Returns ``(pages, ok)``: a page that could not be read (unmapped meanwhile) has
        ``ok`` False and zero contents, or, read into ``out`` (a buffer of at least as
        many pages, reused so that a snapshot of hundreds of MiB does not fault in fresh
        memory every window), whatever ``out`` held there; the pages after it are read on.
        """
        n = vpns.shape[0]
        pages = np.zeros((n, self.page_size), dtype=np.uint8) if out is None else out[:n]
        ok = np.ones(n, dtype=bool)
        if n == 0:
            return pages, ok
        breaks = np.flatnonzero(np.diff(vpns) != 1) + 1
        starts = np.concatenate(([0], breaks))
        ends = np.concatenate((breaks, [n]))
        flat = memoryview(pages.reshape(-1))
        ps = self.page_size
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):  # per run, not per page
            checked = False
            while a < b:
                view = flat[a * ps : b * ps]
                try:
                    got = os.preadv(self.mem, [view], int(vpns[a]) * ps)
                except OSError as exc:
                    if exc.errno == errno.ESRCH or (not checked and not self._lives()):
                        raise ProcessExited(f"process {self.pid} exited during a read") from exc
                    checked = True
                    got = 0  # EIO/EFAULT: the page was unmapped between pagemap and read
                a += got // ps
                if a < b:
                    # the page at ``a`` is gone; a run crosses mappings, and the pages after
                    # it may still be there: marked unread, they were recorded as zeroed
                    # and then rewritten (64 untouched pages, 33,280 times in 13,000
                    # windows, beside a mapping a thread unmapped and mapped again)
                    ok[a] = False
                    a += 1
        if not ok.all() and not self._lives():
            raise ProcessExited(f"process {self.pid} exited during a read")
        return pages, ok

    def clear_soft_dirty(self) -> None:
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w") as f:
                f.write("4")
        except OSError as exc:
            raise _open_error(self.pid, "/proc/PID/clear_refs", exc) from exc


def kernel_has_soft_dirty() -> bool | None:
    """CONFIG_MEM_SOFT_DIRTY from the kernel config, or None when no config is readable."""
    import gzip

    release = os.uname().release
    for path, opener in (("/proc/config.gz", gzip.open), (f"/boot/config-{release}", open)):
        try:
            with opener(path, "rt") as f:
                return any(line.strip() == "CONFIG_MEM_SOFT_DIRTY=y" for line in f)
        except OSError:
            continue
    return None
