"""The source side's record of what the destination holds, for delta codecs.

A delta frame is only correct if the destination holds exactly the version the delta was
made against. :class:`DeltaCache` keeps, per guest page number, the version that was last
*sent* (as a delta, raw, through the fall-back codec or as a zero page), within a byte
budget. It is direct-mapped like QEMU's XBZRLE page cache (``migration/page_cache.c``): page
``p`` lives in slot ``p % n_slots``, so lookup, insertion and eviction of a whole batch are a
few numpy operations, with no per-page Python work and no LRU bookkeeping. A page that maps
to an occupied slot evicts its occupant; the evicted page is simply a miss next time.

Rules that keep deltas correct (the owner of the stream enforces them):

* every batch encoded against the cache is delivered and decoded, in encoding order for any
  one page; a lost or reordered frame makes later deltas of its pages wrong;
* a page sent by any other codec must be reported (:meth:`store` with what was sent, or
  :meth:`forget`), or the cache believes the destination holds an older version;
* a new stream (a new destination) starts with :meth:`clear`.

Not thread-safe by itself: the delta codec holds :attr:`lock` around each batch so engines
sharing one cache see each batch's lookups and updates as one step.
"""

from __future__ import annotations

import threading

import numpy as np

from migcodec.codecs.memory import rows_as_slice

#: QEMU's default XBZRLE cache size (``xbzrle-cache-size``), 64 MiB
DEFAULT_CACHE_BYTES = 64 << 20

_EMPTY = -1


class DeltaCache:
    """Direct-mapped cache of the destination's page versions, ``budget_bytes`` at most.

    The page store is allocated zero-filled (the OS maps it lazily), so a large budget costs
    memory only for slots that are used.
    """

    def __init__(self, budget_bytes: int, page_size: int) -> None:
        if page_size <= 0 or page_size % 8:
            raise ValueError(f"page size {page_size} must be a positive multiple of 8 bytes")
        n_slots = budget_bytes // page_size
        if n_slots < 1:
            raise ValueError(
                f"delta cache budget of {budget_bytes} bytes holds no {page_size}-byte page; "
                "give at least one page"
            )
        self.budget_bytes = budget_bytes
        self.page_size = page_size
        self.n_slots = n_slots
        self.keys = np.full(n_slots, _EMPTY, dtype=np.int64)
        self.data = np.zeros((n_slots, page_size), dtype=np.uint8)
        self.lock = threading.Lock()

    def __len__(self) -> int:
        """How many pages the cache holds."""
        return int(np.count_nonzero(self.keys != _EMPTY))

    def lookup(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Slots of ``indices`` and whether each page is cached there."""
        slots = indices % self.n_slots
        return slots, self.keys[slots] == indices

    def versions(self, slots: np.ndarray) -> np.ndarray:
        """The cached pages in ``slots``: a view when the slots are consecutive (a run of
        guest pages usually is), else a copy. Read it before the next :meth:`store`."""
        where = rows_as_slice(slots)
        return self.data[where]

    def store(self, indices: np.ndarray, pages: np.ndarray) -> None:
        """Record that the destination now holds ``pages`` at ``indices``.

        Where two pages of one call share a slot, the later one wins, as if stored in order.
        """
        slots = indices % self.n_slots
        where = rows_as_slice(slots)
        if isinstance(where, slice):  # consecutive slots: distinct, one memcpy
            self.keys[where] = indices
            self.data[where] = pages
            return
        keep = _last_per_slot(slots)
        if keep is None:
            self.keys[slots] = indices
            self.data[slots] = pages
        else:
            self.keys[slots[keep]] = indices[keep]
            self.data[slots[keep]] = pages[keep]

    def store_zero(self, indices: np.ndarray) -> None:
        """Record that pages became zero: cached ones now hold zeros (QEMU caches the zero
        page too), so a page that is dirtied again gets a delta against zeros."""
        slots, hit = self.lookup(indices)
        if hit.any():
            self.data[slots[hit]] = 0

    def forget(self, indices: np.ndarray) -> None:
        """Drop pages whose destination version is unknown (sent by another codec)."""
        slots, hit = self.lookup(np.asarray(indices, dtype=np.int64))
        self.keys[slots[hit]] = _EMPTY

    def clear(self) -> None:
        """Forget everything: the start of a new stream to a new destination."""
        self.keys.fill(_EMPTY)


def _last_per_slot(slots: np.ndarray) -> np.ndarray | None:
    """Positions of the last occurrence of each slot, or ``None`` when slots are distinct."""
    if slots.size < 2:
        return None
    order = np.sort(slots)
    if (order[1:] != order[:-1]).all():
        return None
    _, first_from_end = np.unique(slots[::-1], return_index=True)
    return np.sort(slots.size - 1 - first_from_end)
