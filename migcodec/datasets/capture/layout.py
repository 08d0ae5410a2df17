"""Virtual addresses of a process laid out as a compact, guest-like memory.

A trace numbers pages from 0 like guest RAM, but a process's memory is scattered over a
47-bit address space. Each new stretch of captured address space gets the next free page
numbers; a mapping that grows (the heap) gets a new segment for its new part. The table of
segments is saved in the manifest, so every page can be traced back to its address.
"""

from __future__ import annotations

import itertools

import numpy as np


class PageLayout:
    """Segments ``(first virtual page, n pages, first trace page)``, never overlapping.

    The segments are kept sorted by virtual page, so that finding the ones a range meets
    is a binary search and every call costs in proportion to the segments it meets, not
    to all of them: a process of 16,000 mappings (a JVM's thread stacks and heap regions
    are thousands) was captured in time quadratic in its mappings while each new mapping
    sorted and walked the whole table.
    """

    def __init__(self) -> None:
        self._vstart = np.zeros(0, dtype=np.int64)
        self._count = np.zeros(0, dtype=np.int64)
        self._base = np.zeros(0, dtype=np.int64)
        self._by_base: np.ndarray | None = None  # segment order by trace page, made on need
        self.n_pages = 0

    def _met(self, first_vpn: int, end_vpn: int) -> tuple[int, int]:
        """Indices ``[k, j)`` of the segments that may meet ``[first_vpn, end_vpn)``: the
        last starting at or before its first page, and every one starting inside it."""
        vstart = self._vstart
        k = int(np.searchsorted(vstart, first_vpn, side="right")) - 1
        j = int(np.searchsorted(vstart, end_vpn, side="left"))
        return (k if k > 0 else 0), j

    def covered(self, first_vpn: int, end_vpn: int) -> list[tuple[int, int]]:
        """The parts of ``[first_vpn, end_vpn)`` that have trace page numbers, in order."""
        k, j = self._met(first_vpn, end_vpn)
        parts = []
        for s, c in zip(self._vstart[k:j].tolist(), self._count[k:j].tolist(), strict=True):
            lo, hi = max(s, first_vpn), min(s + c, end_vpn)
            if lo < hi:
                parts.append((lo, hi))
        return parts

    def cover(self, first_vpn: int, end_vpn: int) -> None:
        """Make sure every page of ``[first_vpn, end_vpn)`` has a trace page number: the
        parts that have none get the next free numbers, in address order."""
        self.cover_all([(first_vpn, end_vpn)])

    def cover_all(self, ranges: list[tuple[int, int]]) -> None:
        """:meth:`cover` each of ``ranges``, in that order. Where they ascend without
        overlapping (a process's mappings as /proc lists them) the segment table grows
        once: grown per mapping, the first window of a process of 64,000 mappings copied
        it 64,000 times (12 s). Ranges that overlap or go back (a listing read while the
        process changed its mappings, which the kernel may show with overlapping lines)
        are covered one at a time."""
        if any(b[0] < a[1] for a, b in itertools.pairwise(ranges)):
            for one in ranges:
                self._number(self._gaps([one]))
        else:
            self._number(self._gaps(ranges))

    def _gaps(self, ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """The parts of ``ranges`` (ascending, apart) that have no trace page numbers."""
        vstart, count = self._vstart, self._count
        gaps = []
        for first_vpn, end_vpn in ranges:
            k, j = self._met(first_vpn, end_vpn)
            if j - k == 1 and vstart[k] <= first_vpn and end_vpn <= vstart[k] + count[k]:
                continue  # the common case: one segment holds it
            at = first_vpn
            for lo, hi in self.covered(first_vpn, end_vpn):
                if lo > at:
                    gaps.append((at, lo))
                at = hi
            if at < end_vpn:
                gaps.append((at, end_vpn))
        return gaps

    def _number(self, gaps: list[tuple[int, int]]) -> None:
        """Give ``gaps`` (ascending, apart, none covered) the next free numbers in turn."""
        if not gaps:
            return
        starts = np.array([g[0] for g in gaps], dtype=np.int64)
        counts = np.array([g[1] - g[0] for g in gaps], dtype=np.int64)
        bases = self.n_pages + np.concatenate(([0], np.cumsum(counts)[:-1]))
        where = np.searchsorted(self._vstart, starts)
        self._vstart = np.insert(self._vstart, where, starts)
        self._count = np.insert(self._count, where, counts)
        self._base = np.insert(self._base, where, bases)
        self._by_base = None
        self.n_pages += int(counts.sum())

    def to_trace(self, vpns: np.ndarray) -> np.ndarray:
        """Trace page numbers of virtual pages (each must be covered)."""
        vstart, count = self._vstart, self._count
        seg = np.searchsorted(vstart, vpns, side="right") - 1
        if vpns.size and ((seg < 0).any() or (vpns >= vstart[seg] + count[seg]).any()):
            raise ValueError("a virtual page outside every segment; call cover() first")
        return self._base[seg] + (vpns - vstart[seg])

    def _base_order(self) -> np.ndarray:
        if self._by_base is None:
            self._by_base = np.argsort(self._base, kind="stable")
        return self._by_base

    def to_virtual(self, pages: np.ndarray) -> np.ndarray:
        """Virtual page numbers of trace pages (the inverse of :meth:`to_trace`)."""
        order = self._base_order()
        vstart, base = self._vstart[order], self._base[order]
        seg = np.searchsorted(base, pages, side="right") - 1
        return vstart[seg] + (pages - base[seg])

    def segments(self) -> list[list[int]]:
        """``[first virtual page, n pages, first trace page]`` rows in trace page order
        (the order they were numbered in), for the manifest."""
        order = self._base_order()
        return np.stack(
            [self._vstart[order], self._count[order], self._base[order]], axis=1
        ).tolist()

    @classmethod
    def from_segments(cls, rows: list[list[int]]) -> PageLayout:
        layout = cls()
        if rows:
            arr = np.asarray(rows, dtype=np.int64)
            arr = arr[np.argsort(arr[:, 0], kind="stable")]
            layout._vstart, layout._count, layout._base = arr[:, 0], arr[:, 1], arr[:, 2]
            layout.n_pages = int((arr[:, 1] + arr[:, 2]).max())
        return layout
