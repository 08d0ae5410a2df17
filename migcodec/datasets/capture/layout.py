"""Virtual addresses of a process laid out as a compact, guest-like memory.

A trace numbers pages from 0 like guest RAM, but a process's memory is scattered over a
47-bit address space. Each new stretch of captured address space gets the next free page
numbers; a mapping that grows (the heap) gets a new segment for its new part. The table of
segments is saved in the manifest, so every page can be traced back to its address.
"""

from __future__ import annotations

import numpy as np


class PageLayout:
    """Segments ``(first virtual page, n pages, first trace page)``, never overlapping."""

    def __init__(self) -> None:
        self._vstart = np.zeros(0, dtype=np.int64)
        self._count = np.zeros(0, dtype=np.int64)
        self._base = np.zeros(0, dtype=np.int64)
        self.n_pages = 0

    def cover(self, first_vpn: int, end_vpn: int) -> None:
        """Make sure every page of ``[first_vpn, end_vpn)`` has a trace page number.

        The common case, a range already covered by one segment, is one binary search;
        only new address space walks the segment table.
        """
        order = np.argsort(self._vstart)
        if order.size:
            k = int(np.searchsorted(self._vstart[order], first_vpn, side="right")) - 1
            if k >= 0 and end_vpn <= self._vstart[order[k]] + self._count[order[k]]:
                return
        gaps = [(first_vpn, end_vpn)]
        for s, c in zip(self._vstart[order].tolist(), self._count[order].tolist(), strict=True):
            nxt = []
            for lo, hi in gaps:  # per segment, never per page
                if s + c <= lo or s >= hi:
                    nxt.append((lo, hi))
                    continue
                if lo < s:
                    nxt.append((lo, s))
                if s + c < hi:
                    nxt.append((s + c, hi))
            gaps = nxt
        for lo, hi in gaps:
            self._vstart = np.append(self._vstart, lo)
            self._count = np.append(self._count, hi - lo)
            self._base = np.append(self._base, self.n_pages)
            self.n_pages += hi - lo

    def to_trace(self, vpns: np.ndarray) -> np.ndarray:
        """Trace page numbers of virtual pages (each must be covered)."""
        order = np.argsort(self._vstart)
        vstart, count, base = self._vstart[order], self._count[order], self._base[order]
        seg = np.searchsorted(vstart, vpns, side="right") - 1
        if vpns.size and ((seg < 0).any() or (vpns >= vstart[seg] + count[seg]).any()):
            raise ValueError("a virtual page outside every segment; call cover() first")
        return base[seg] + (vpns - vstart[seg])

    def to_virtual(self, pages: np.ndarray) -> np.ndarray:
        """Virtual page numbers of trace pages (the inverse of :meth:`to_trace`)."""
        order = np.argsort(self._base)
        vstart, base = self._vstart[order], self._base[order]
        seg = np.searchsorted(base, pages, side="right") - 1
        return vstart[seg] + (pages - base[seg])

    def segments(self) -> list[list[int]]:
        """``[first virtual page, n pages, first trace page]`` rows, for the manifest."""
        return np.stack([self._vstart, self._count, self._base], axis=1).tolist()

    @classmethod
    def from_segments(cls, rows: list[list[int]]) -> PageLayout:
        layout = cls()
        if rows:
            arr = np.asarray(rows, dtype=np.int64)
            layout._vstart, layout._count, layout._base = arr[:, 0], arr[:, 1], arr[:, 2]
            layout.n_pages = int((arr[:, 1] + arr[:, 2]).max())
        return layout
