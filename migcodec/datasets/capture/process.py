"""Dirty-page windows of a live process: snapshots of its present pages, diffed page by page.

Two methods find what changed in a window:

``snapshot-diff``
    read every present page of the selected mappings each window and compare with the
    previous snapshot (8-byte words, whole window at once). Works on any kernel; costs a
    read of all present memory per window. A page is dirty when its contents differ from
    what a destination holds (a page that became absent now reads as zeros).
``soft-dirty``
    where the kernel has CONFIG_MEM_SOFT_DIRTY: read the soft-dirty bits (pagemap bit 55),
    clear them (``clear_refs`` 4) and read only those pages, like a hypervisor's dirty
    log; a page written with the same bytes is still dirty, as it is in migration.

``auto`` picks soft-dirty when the first snapshot shows soft-dirty bits set (every newly
faulted page has one), else snapshot-diff; :attr:`ProcessCapture.method` says which ran.
"""

from __future__ import annotations

import os
import time

import numpy as np

from migcodec.codecs import zero_page_mask
from migcodec.datasets.window import Window

from .layout import PageLayout
from .procfs import (
    SOFT_DIRTY,
    CaptureError,
    MappingFilter,
    ProcessExited,
    ProcFiles,
    kernel_has_soft_dirty,
    on_zero_page,
    read_maps,
)
from .sample import sample_mask, sample_rng, sample_window

METHODS = ("auto", "soft-dirty", "snapshot-diff")
_COMPARE_BLOCK = 8192  # pages compared per step: bounds the temporary copies to 64 MiB


def _rows(array: np.ndarray, rows: np.ndarray, lo: int, hi: int, buf: np.ndarray) -> np.ndarray:
    """``array[rows[lo:hi]]``: a view when those rows are consecutive (ascending and
    unique, so the first and last tell), else gathered into ``buf``."""
    first, last = int(rows[lo]), int(rows[hi - 1])
    if last - first == hi - lo - 1:
        return array[first : last + 1]
    out = buf[: hi - lo]
    np.take(array, rows[lo:hi], axis=0, out=out)
    return out


def _rows_differ(a: np.ndarray, ia: np.ndarray, b: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """``a[ia[k]] != b[ib[k]]`` for every k, a block of pages at a time (``ia`` and ``ib``
    ascending and unique, as matched page numbers' rows are).

    A block whose rows are consecutive on a side is compared in place: between two
    snapshots most present pages stay present, so most blocks are, and gathering them
    cost 4x the compare (a 400 MiB process: 0.2 s a window of 0.35). Other blocks are
    gathered into two reused buffers, so a large compare makes no fresh allocations,
    whose first-touch page faults can cost more than the compare itself.
    """
    n = ia.shape[0]
    out = np.zeros(n, dtype=bool)
    if n == 0:
        return out
    k = min(n, _COMPARE_BLOCK)
    bufa = np.empty((k, a.shape[1]), dtype=np.uint8)
    bufb = np.empty_like(bufa)
    for lo in range(0, n, _COMPARE_BLOCK):
        hi = min(n, lo + _COMPARE_BLOCK)
        wa, wb = _rows(a, ia, lo, hi, bufa), _rows(b, ib, lo, hi, bufb)
        out[lo:hi] = (wa.view("<u8") != wb.view("<u8")).any(axis=1)
    return out


def _assemble(
    page_size: int, parts: list[tuple[np.ndarray, np.ndarray | None, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    """Gather rows from several sources into one ascending window, one copy per row.

    Each part is ``(page numbers, source array or None for zero pages, rows)``.
    """
    busy = [p for p in parts if p[0].size]
    if len(busy) == 1 and busy[0][1] is not None:  # the common case: changed pages only
        numbers, source, rows = busy[0]
        return numbers, np.take(source, rows, axis=0)
    idx = np.concatenate([p[0] for p in parts])
    order = np.argsort(idx, kind="stable")
    position = np.empty_like(order)
    position[order] = np.arange(order.size)
    out = np.zeros((idx.size, page_size), dtype=np.uint8)
    start = 0
    for numbers, source, rows in parts:  # a few parts, each one vectorised copy
        if source is not None and rows.size:
            out[position[start : start + numbers.size]] = source[rows]
        start += numbers.size
    return idx[order], out


#: copies of the captured memory a capture may hold at once: the last snapshot and the
#: next, and of a window that rewrote every page, its pages, what they replaced and the
#: trace writer's encoding of them. Measured: a capture of a 526 MiB process rewriting
#: all of it peaked at 3154 MiB (6.0x; a 1 GiB one at 6.4 GB), where twice the process
#: was checked, so a process of a sixth to half of the free memory passed the check and
#: the capture could be killed by the kernel mid-trace
CAPTURE_COPIES = 6


class ProcessCapture:
    """Snapshots of one process; :meth:`next_window` returns what changed since the last.

    Drive it yourself (tests synchronise with the target through pipes, then call
    :meth:`next_window`) or through :func:`migcodec.datasets.capture.capture_to_trace`,
    which calls it every interval.

    With ``max_pages``, a window that dirtied more pages holds a uniform sample of
    ``max_pages`` of them (drawn from ``seed`` and the window's index, see
    :mod:`.sample`) and its true count in ``dirty_pages``; the snapshot itself stays
    whole, so later windows are diffed against the complete memory.
    """

    def __init__(
        self,
        pid: int,
        *,
        select: MappingFilter | None = None,
        method: str = "auto",
        max_pages: int | None = None,
        seed: int = 0,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"method {method!r} not in {METHODS}")
        if max_pages is not None and max_pages < 1:
            raise ValueError(
                f"max_pages must be at least 1 (or None for no bound), not {max_pages}"
            )
        if pid == os.getpid():
            # each snapshot is read into this process's memory, so the next one holds it
            # too: the memory to read doubled every window until the kernel killed the
            # capture (`exec migcodec trace capture --pid $$`)
            raise CaptureError(
                f"process {pid} is this capture itself: each snapshot would hold the ones "
                "before it, and grow until memory runs out; give the pid of another process"
            )
        self.max_pages = max_pages
        self.seed = seed
        self.pid = pid
        self.select = select or MappingFilter()
        self.files = ProcFiles(pid)
        self.page_size = self.files.page_size
        self.layout = PageLayout()
        self.requested = method
        self.method = method
        self._idx = np.zeros(0, dtype=np.int64)
        self._pages = np.zeros((0, self.page_size), dtype=np.uint8)
        #: the buffer the last snapshot was read into, and the one before it, which the
        #: next snapshot is read into (see _read_snapshot)
        self._buffer: np.ndarray | None = None
        self._spare: np.ndarray | None = None
        self._index = 0
        #: the most present pages the machine's memory was checked to hold a snapshot of
        self._room_for = 0
        self._t_last = 0.0
        self.mappings_seen: dict[int, str] = {}
        #: why :meth:`next_window` returned ``None``: the process exited, or ran another
        #: program (:class:`ProcessReplaced`)
        self.ended: ProcessExited | None = None

    # -- snapshots -------------------------------------------------------------------------
    def _scan(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Virtual page numbers, trace page numbers and pagemap entries of present pages."""
        vpns, entries = [], []
        chosen = self.select.select(read_maps(self.pid), held=self._held)
        pages = [self.files.pages_of(m.start, m.end) for m in chosen]
        self.layout.cover_all(pages)
        for m, (first, _) in zip(chosen, pages, strict=True):
            self.mappings_seen.setdefault(m.start, m.path)
            offsets, e = self.files.present(m.start, m.end)
            vpns.append(offsets + first)
            entries.append(e)
        if not vpns:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0, dtype=np.uint64)
        v = np.concatenate(vpns)
        e = np.concatenate(entries)
        zero = on_zero_page(e)  # once over every mapping's: per mapping, numpy's calls cost
        if zero is not None and zero.any():
            v, e = v[~zero], e[~zero]
        t = self.layout.to_trace(v)
        order = np.argsort(t, kind="stable")
        v, t, e = v[order], t[order], e[order]
        # mappings never overlap, but a listing read while they changed may show lines that
        # do: a page listed twice is read once
        again = t[1:] == t[:-1]
        if again.any():
            once = np.concatenate(([True], ~again))
            v, t, e = v[once], t[once], e[once]
        return v, t, e

    def _held(self, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of the bytes ``[start, end)`` captured before (see
        :meth:`MappingFilter.select`)."""
        ps = self.page_size
        first, last = self.files.pages_of(start, end)
        return [
            (max(lo * ps, start), min(hi * ps, end)) for lo, hi in self.layout.covered(first, last)
        ]

    def start(self) -> None:
        """Take the first snapshot: what the destination holds before the first window."""
        vpns, idx, entries = self._scan()
        if not self.mappings_seen:  # else an empty trace, written as if it recorded something
            raise CaptureError(self._nothing_to_capture())
        if self.requested == "auto":
            self.method = "soft-dirty" if (entries & SOFT_DIRTY).any() else "snapshot-diff"
        elif self.method == "soft-dirty" and kernel_has_soft_dirty() is False:
            # its bits never set: every window would record no page, as if none changed
            raise CaptureError(
                "--method soft-dirty: this kernel is built without CONFIG_MEM_SOFT_DIRTY, so "
                "no page is ever marked dirty; use --method snapshot-diff (or auto)"
            )
        self._check_room(vpns.size)
        self._room_for = vpns.size
        if self.method == "soft-dirty":
            self.files.clear_soft_dirty()
        pages, ok = self.files.read_pages(vpns)
        self._idx, self._pages = (idx, pages) if ok.all() else (idx[ok], pages[ok])
        self._t_last = time.perf_counter()

    def _check_room(self, present: int) -> None:
        """Refuse, before reading any, a process whose present pages this machine cannot
        hold :data:`CAPTURE_COPIES` times: a large process had the capture killed by the
        kernel mid-trace, with no word of why."""
        from migcodec.ram import short_of
        from migcodec.units import format_size

        size = present * self.page_size
        need = CAPTURE_COPIES * size
        free = short_of(need)
        if free is not None:
            raise CaptureError(
                f"process {self.pid} has {format_size(size)} of memory to capture, and a "
                f"capture holds up to {CAPTURE_COPIES} copies of it ({format_size(need)}) "
                f"when a window rewrites all of it, but this machine has "
                f"{format_size(free)} available; capture a part of it with "
                "--address-range, or free memory here"
            )

    def _check_growth(self, present: int) -> None:
        """Refuse the next snapshot of a process that grew past what this machine can still
        hold, before reading it: the last snapshot is kept while the next is read into new
        memory, so a process that grew by GBs during a capture had the capture killed by the
        kernel mid-trace (as :meth:`_check_room` prevents at start). Checked only when the
        process grew: a snapshot of no more pages than before fits in the memory freed or
        reused from the one before it."""
        if present <= self._room_for:
            return
        from migcodec.ram import short_of
        from migcodec.units import format_size

        size = present * self.page_size
        free = short_of(size)
        if free is not None:
            raise CaptureError(
                f"process {self.pid} grew to {format_size(size)} of memory to capture, and its "
                f"next snapshot does not fit beside the last: this machine has "
                f"{format_size(free)} available; capture a part of it with --address-range, "
                "or free memory here"
            )
        self._room_for = present

    def _nothing_to_capture(self) -> str:
        """Why no mapping of the process was selected, and what would select some."""
        kinds = "private anonymous memory"
        if self.select.include_shared:
            kinds += " or writable shared memory"
        if self.select.include_file:
            kinds += " or writable file-backed memory"
        where = ""
        if self.select.address_range is not None:
            start, end = self.select.address_range
            where = f" in --address-range {start:#x}-{end:#x}"
        return (
            f"process {self.pid} has no {kinds}{where} to capture; see /proc/{self.pid}/maps "
            "for its mappings, and give a range that overlaps them or --include-file / "
            "--include-shared"
        )

    def next_window(self) -> Window | None:
        """The pages that changed since the last call, or ``None`` once the process exited
        or ran another program (:attr:`ended` says which)."""
        try:
            self.files.check_same()
            vpns, idx, entries = self._scan()
            self._check_growth(vpns.size)
            if self.method == "soft-dirty":
                known = np.isin(idx, self._idx, assume_unique=True)
                want = ((entries & SOFT_DIRTY) != 0) | ~known
                self.files.clear_soft_dirty()  # before reading: later writes stay dirty
                read_v, read_t = vpns[want], idx[want]
                pages, ok = self.files.read_pages(read_v)
            else:
                read_t = idx
                pages, ok = self._read_snapshot(vpns)
        except ProcessExited as exc:
            self.ended = exc
            return None
        now = time.perf_counter()
        if not ok.all():  # rare: a range was unmapped while we read it
            read_t, pages = read_t[ok], pages[ok]
        if self.method == "soft-dirty":
            window_idx, new_pages, previous = self._soft_dirty_window(idx, read_t, pages)
            dirty = int(window_idx.size)
        else:
            window_idx, new_pages, previous, dirty = self._diff_window(read_t, pages)
        window = Window(
            index=self._index,
            page_indices=window_idx,
            pages=new_pages,
            previous=previous,
            phase=None,
            duration_s=now - self._t_last,
            meta={"method": self.method, "present_pages": int(idx.size)},
            dirty_pages=dirty if dirty > window_idx.size else None,
        )
        if self.max_pages is not None and window.dirty_pages is None:
            window = sample_window(window, self.max_pages, self.seed)
        self._index += 1
        self._t_last = now
        return window

    def _read_snapshot(self, vpns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Read a whole snapshot into the buffer of the snapshot before last, which no
        window refers to any more (windows hold copies), grown with some room when the
        process grew: reading hundreds of MiB into fresh memory each window spent as long
        faulting it in as reading it."""
        n = vpns.shape[0]
        spare = self._spare
        if spare is None or spare.shape[0] < n:
            spare = self._spare = None  # freed before its successor is allocated
            spare = np.empty((n + n // 8 + 1, self.page_size), dtype=np.uint8)
        self._spare, self._buffer = self._buffer, spare
        return self.files.read_pages(vpns, out=spare)

    def close(self) -> None:
        self.files.close()

    # -- the two methods ----------------------------------------------------------------------
    def _diff_window(self, idx: np.ndarray, pages: np.ndarray) -> tuple:
        """Page numbers, contents and previous contents of the changed pages (a sample of
        them with ``max_pages``), and how many pages changed in all."""
        old_idx, old = self._idx, self._pages
        _, io, inew = np.intersect1d(old_idx, idx, assume_unique=True, return_indices=True)
        only_new = np.ones(idx.size, dtype=bool)
        only_new[inew] = False
        changed = _rows_differ(old, io, pages, inew)
        io, inew = io[changed], inew[changed]
        born = np.flatnonzero(only_new)
        born = born[~zero_page_mask(pages[born])]  # a new page reading as zero changed nothing
        only_old = np.isin(old_idx, idx, assume_unique=True, invert=True)
        gone = np.flatnonzero(only_old)
        gone = gone[~zero_page_mask(old[gone])]  # an absent page reads as zero now
        none = np.zeros(0, dtype=np.int64)
        dirty = int(inew.size + born.size + gone.size)
        if self.max_pages is not None:
            # sample before gathering: a huge window never costs more than max_pages copies
            numbers = np.concatenate((idx[inew], idx[born], old_idx[gone]))
            order = np.argsort(numbers)  # sample over ascending page numbers: reproducible
            in_order = sample_mask(numbers.size, self.max_pages, sample_rng(self.seed, self._index))
            if in_order is not None:
                keep = np.empty_like(in_order)
                keep[order] = in_order
                k_new, k_born, k_gone = np.split(keep, [inew.size, inew.size + born.size])
                io, inew, born, gone = io[k_new], inew[k_new], born[k_born], gone[k_gone]
        w_idx, w_new = _assemble(
            self.page_size,
            [(idx[inew], pages, inew), (idx[born], pages, born), (old_idx[gone], None, none)],
        )
        _, w_old = _assemble(
            self.page_size,
            [(idx[inew], old, io), (idx[born], None, none), (old_idx[gone], old, gone)],
        )
        self._idx, self._pages = idx, pages
        return w_idx, w_new, w_old, dirty

    def _soft_dirty_window(self, present: np.ndarray, read_idx: np.ndarray, read: np.ndarray):
        old_idx, old = self._idx, self._pages
        # new state: every present page, from this read where read, else from the old state
        pages = np.zeros((present.size, self.page_size), dtype=np.uint8)
        if old_idx.size:
            pos_old = np.searchsorted(old_idx, present).clip(max=old_idx.size - 1)
            in_old = old_idx[pos_old] == present
        else:
            pos_old = np.zeros(present.size, dtype=np.int64)
            in_old = np.zeros(present.size, dtype=bool)
        pages[in_old] = old[pos_old[in_old]]
        pos_read = np.searchsorted(present, read_idx)
        pages[pos_read] = read
        gone_mask = ~np.isin(old_idx, present, assume_unique=True)
        gone = np.flatnonzero(gone_mask)
        prev_read = np.zeros_like(read)
        was = np.isin(read_idx, old_idx, assume_unique=True)
        prev_read[was] = old[np.searchsorted(old_idx, read_idx[was])]
        w_idx = np.concatenate((read_idx, old_idx[gone]))
        w_new = np.concatenate((read, np.zeros((gone.size, self.page_size), np.uint8)))
        w_old = np.concatenate((prev_read, old[gone]))
        self._idx, self._pages = present, pages
        order = np.argsort(w_idx)
        return w_idx[order], w_new[order], w_old[order]


def method_note(method: str) -> str:
    """A line for reports: which method ran and why."""
    if method == "soft-dirty":
        return "soft-dirty bits (pagemap bit 55, clear_refs 4)"
    config = kernel_has_soft_dirty()
    why = {
        False: "kernel built without CONFIG_MEM_SOFT_DIRTY",
        None: "no soft-dirty bits seen",
        True: "requested, or no soft-dirty bits seen",
    }[config]
    return f"snapshot diffing of present pages ({why})"


__all__ = ["METHODS", "CaptureError", "ProcessCapture", "method_note"]
