"""What one stream's destination holds, as far as its source knows: the base of every delta.

A delta frame is only correct if the destination holds exactly the version the delta was
made against. That knowledge belongs to the stream, not to a codec: a :class:`DestinationMirror`
is created per stream (per destination), handed to every encode of that stream
(``Codec.encode(batch, destination=mirror)``), and updated by the codec framework after each
batch, whatever codec encoded it, zero pages included. Delta codecs read it; probes and
choosers read it; nothing else keeps a copy. A codec given no mirror knows nothing of the
destination, so a delta codec then sends every page through its fall-back codec: a delta is
never made against a base the decoder may not hold.

Like QEMU's XBZRLE page cache (``migration/page_cache.c``) it is direct-mapped within a byte
budget: page ``p`` lives in slot ``p % n_slots``, so lookups and updates of a whole batch are
a few numpy operations, and a page that maps to an occupied slot evicts its occupant (the
evicted page is a miss next time, never a wrong base).

``recording`` is the stream's option to pay for copies: when it is off, pages sent by codecs
that do not read the destination are only *forgotten* where the mirror held an older version
(a cheap lookup), not copied in; pages sent by a delta codec are always copied, since its next
delta needs them. Either way the mirror never holds a version the destination does not.

The stream must decode frames in the order their pages were encoded, and must not encode
a batch's pages again before that batch has been encoded (the migration engine sends each
page at most once per iteration and drains iterations).

A delta codec's transform reads every held version once, so the framework does not copy
them out: when the batch is held whole in consecutive slots,
:meth:`DestinationMirror.lend_rows` lends those slots, and the transform records the batch
there as it reads them (each page read once, not once by the kernel and again by a copy
into the mirror). The slots stay *lent* until :meth:`~DestinationMirror.sent` sets their
keys, or until :meth:`~DestinationMirror.give_back` forgets them when the transform fails
(they may hold pages never sent). No store overwrites a lent slot: a page that maps there
is forgotten instead, which is safe (a miss, never a wrong base); nothing else reads them
meanwhile, since the stream encodes a page again only once its batch is encoded.
"""

from __future__ import annotations

import numbers
import threading
from typing import NamedTuple

import numpy as np

from migcodec.codecs import delta_kernels
from migcodec.codecs.page_views import checked_page_size, rows_as_slice

#: QEMU's default XBZRLE cache size (``xbzrle-cache-size``), 64 MiB
DEFAULT_MIRROR_BYTES = 64 << 20

_EMPTY = -1


class Held(NamedTuple):
    """What the destination holds for some pages: ``hit`` per page, and ``versions``, the
    held pages of the hits in order (a private copy, or a read-only view of slots lent to
    the caller)."""

    hit: np.ndarray
    versions: np.ndarray

    @property
    def complete(self) -> bool:
        """Whether the destination holds every page (``versions`` has one per page)."""
        return self.versions.shape[0] == self.hit.shape[0]


class DestinationMirror:
    """Direct-mapped record of the destination's page versions, ``budget_bytes`` at most.

    Thread-safe: engines of one stream encode concurrently, and each lookup or update of a
    batch is one step under :attr:`lock`, so a slot's page number and contents always match
    (the end of a whole batch's lease, which writes nothing, takes no lock: :meth:`sent`).
    The page store is allocated zero-filled (the OS maps it lazily): a large budget costs
    memory only for the slots that are used, unless :meth:`prefault` is called.
    """

    def __init__(
        self, page_size: int, budget_bytes: int = DEFAULT_MIRROR_BYTES, *, recording: bool = True
    ) -> None:
        page_size = checked_page_size(page_size)
        if isinstance(budget_bytes, numbers.Integral) and not isinstance(budget_bytes, bool):
            budget_bytes = int(budget_bytes)  # a numpy integer was refused as holding no page
        if not isinstance(budget_bytes, int) or budget_bytes < page_size:
            raise ValueError(
                f"a destination mirror of {budget_bytes!r} bytes holds no {page_size}-byte "
                "page; give it at least one page"
            )
        self.page_size = page_size
        self.budget_bytes = budget_bytes
        self.n_slots = budget_bytes // page_size
        self.recording = recording
        self.keys = np.full(self.n_slots, _EMPTY, dtype=np.int64)
        self.data = np.zeros((self.n_slots, page_size), dtype=np.uint8)
        self.lock = threading.Lock()
        # slots an encode reads and records in (lend_rows), by their first slot: the slots,
        # and how many times keys had been set empty (clear, forget, give_back) when they
        # were lent: sent() sets a lent range's keys again only if some were emptied meanwhile
        self._lent: dict[int, tuple[slice, int]] = {}
        # what lend_rows hands out, by first slot (at most one per slot), kept: a batch's
        # slots are lent again at the next iteration, and a new view and slice per batch
        # cost more than the dictionary look-up once the kernel has left the caches cold
        self._leases: dict[int, tuple[np.ndarray, slice]] = {}
        # the keys as bytes, which lend_rows compares without a numpy call (each costs a
        # few microseconds per batch once a delta kernel has left the caches cold)
        self._key_bytes = memoryview(self.keys).cast("B")
        self._forgets = 0
        # whether any page was stored since the mirror was made or cleared: until then a
        # batch sent without a copy (a first pass, not teaching) has nothing to forget
        self._holds = False

    @property
    def holds_pages(self) -> bool:
        """Whether any page may be held (not until the first store, nor after
        :meth:`clear`). Until one is, a batch sent without a copy changes nothing here:
        its encoder skips :meth:`sent`, and the page numbers it would have computed for
        it (a first pass not teaching the mirror: every batch of it)."""
        return self._holds

    @classmethod
    def holding(cls, indices: np.ndarray, pages: np.ndarray) -> DestinationMirror:
        """A mirror of a destination known to hold exactly ``pages`` at ``indices`` (what a
        trace window's ``previous`` says), e.g. to probe or evaluate a delta codec on one
        window. Sized to the pages, so distinct window rows ``0..n-1`` never evict each other."""
        # checked, not cast: the mirror is what every delta is made against, and page
        # numbers 0.5 and 1.5 held pages 0 and 1, contents of 300 held 44
        pages, indices = np.asarray(pages), np.asarray(indices)
        if pages.dtype != np.uint8 or pages.ndim != 2:
            raise ValueError(
                f"a mirror's pages are a (pages, page_size) uint8 array, got a {pages.dtype} "
                f"array of shape {pages.shape}"
            )
        n, page_size = pages.shape
        if indices.dtype.kind not in "iu" or indices.shape != (n,):
            raise ValueError(
                f"a mirror's page numbers are {n} whole numbers, one per page, got a "
                f"{indices.dtype} array of shape {indices.shape}"
            )
        mirror = cls(page_size, max(n, 1) * page_size)
        if n:
            mirror.record(indices.astype(np.int64, copy=False), pages)
        return mirror

    def __len__(self) -> int:
        """How many pages the mirror holds."""
        return int(np.count_nonzero(self.keys != _EMPTY))

    def prefault(self) -> None:
        """Touch the whole store now (QEMU sizes its XBZRLE cache at migration set-up too),
        so its page faults are set-up cost, not taken from the first encodes. Only before
        the stream starts: it zeroes the store."""
        with self.lock:
            if self._lent:
                raise RuntimeError("prefault() while slots are lent to an encode")
            self.data.fill(0)

    # -- reading ------------------------------------------------------------------------------
    def reference(self, indices: np.ndarray) -> Held:
        """Which of ``indices`` the destination is known to hold, and those versions."""
        with self.lock:
            slots = indices % self.n_slots
            hit = self.keys[slots] == indices
            if hit.all():
                where = rows_as_slice(slots)
                versions = self.data[where].copy() if isinstance(where, slice) else self.data[slots]
            else:
                versions = self.data[slots[hit]]
        return Held(hit, versions)

    def lend_rows(self, indices: np.ndarray) -> tuple[np.ndarray, slice] | None:
        """The slots holding ``indices``, writable, and the slice lent, when every page is
        held, in batch order in consecutive slots none of which is lent already; otherwise
        ``None``, and nothing is lent.

        The caller writes the batch's pages into the rows before :meth:`sent` (a delta
        kernel copies each new page over its held version once compared), so :meth:`sent`
        sets the slots' keys and copies nothing."""
        n = len(indices)
        if not n:
            return None
        native = delta_kernels.native
        with self.lock:
            # keys equal to the indices in consecutive slots: each page is in its slot
            # (int64 indices, as batches have: compared as bytes, in one call)
            if native is not None:
                start = native.held_run(self._key_bytes, indices, n, self.n_slots)
            else:
                start = self._held_run(indices, n)
            if start < 0 or (self._lent and self._lent_within(start, start + n)):
                return None
            lease = self._leases.get(start)
            if lease is None or lease[1].stop != start + n:
                lent = slice(start, start + n)
                lease = self._leases[start] = (self.data[lent], lent)
            self._lent[start] = (lease[1], self._forgets)
            return lease

    def _held_run(self, indices: np.ndarray, n: int) -> int:
        """The C kernels' ``held_run`` (``_deltas.c``) for the numpy path: the first of the
        ``n`` consecutive slots whose keys are ``indices``, or -1."""
        first = indices.item(0)
        start = first % self.n_slots
        if first < 0 or start + n > self.n_slots:
            return -1
        held = self._key_bytes[8 * start : 8 * (start + n)].tobytes() == indices.tobytes()
        return start if held else -1

    def give_back(self, lent: slice | None) -> None:
        """End a :meth:`lend_rows` whose batch is not sent: its slots may hold pages of
        that batch, so the pages they held are forgotten (a miss next time, never a wrong
        base)."""
        if lent is None:
            return
        with self.lock:
            del self._lent[lent.start]  # lent ranges never overlap: this is the one lent
            self.keys[lent] = _EMPTY
            self._forgets += 1

    def held(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per page of ``indices``: whether it is known, and its held version (zeros for
        pages not known: what a chooser's features compare against)."""
        hit, versions = self.reference(indices)
        if hit.all():
            return hit, versions
        out = np.zeros((indices.shape[0], self.page_size), dtype=np.uint8)
        out[hit] = versions
        return hit, out

    # -- what was sent ----------------------------------------------------------------------
    def sent(
        self,
        indices: np.ndarray,
        pages: np.ndarray,
        zero: np.ndarray | None,
        copy: bool,
        lent: slice | None = None,
    ) -> None:
        """The destination now holds ``pages`` at ``indices`` (zeros where ``zero``).

        With ``copy`` the non-zero pages are recorded; without it only forgotten where an
        older version was held. Zero pages are recorded as zeros where they were held (QEMU
        caches the zero page too: a page dirtied again then gets a delta against zeros).

        ``lent`` ends a :meth:`lend_rows` for these pages. When it lent the whole batch (no
        zero page), the transform wrote the pages in those slots already, and their keys
        are the indices :meth:`lend_rows` compared: nothing is written, unless keys were
        emptied while the slots were lent (then the range's keys are set again).

        That common end takes no lock (a lock costs as much as the rest once a delta
        kernel has left the caches cold): it only drops this lease's own entry, which no
        other thread touches, and writes no key. A forget, clear or give_back empties keys
        before it counts itself, under the lock; counted, it sends this end down the
        locked path, which sets the keys again; missed, the emptied keys stay empty, so
        those pages are forgotten: a miss, never a wrong base. Readers of the lent ranges
        iterate over a snapshot, so the entry may go while they read.
        """
        whole = lent is not None and copy and zero is None
        whole = whole and lent.stop - lent.start == len(indices)
        if whole and self._lent[lent.start][1] == self._forgets:  # no key emptied since
            del self._lent[lent.start]
            return
        with self.lock:
            if lent is not None:
                _, forgets = self._lent.pop(lent.start)  # lent ranges never overlap
                if copy and zero is None and lent.stop - lent.start == len(indices):
                    if forgets != self._forgets:  # clear() or forget() ran since it was lent
                        self.keys[lent] = indices
                        self._holds = True
                    return  # else the keys are still the indices lend_rows compared
            if not copy and not self._holds:
                return  # nothing held: no version to forget, no zero page to record
            if zero is not None and zero.any():
                slots = indices[zero] % self.n_slots
                self.data[slots[self.keys[slots] == indices[zero]]] = 0
                keep = ~zero
                indices = indices[keep]
                if copy:  # the pages are read only to be stored
                    pages = pages[keep]
            if copy:
                self._store(indices, pages)
            else:
                self._forget(indices)

    def record(self, indices: np.ndarray, pages: np.ndarray) -> None:
        """The destination now holds ``pages`` at ``indices``."""
        with self.lock:
            self._store(indices, pages)

    def forget(self, indices: np.ndarray) -> None:
        """The destination's version of these pages is no longer known."""
        with self.lock:
            self._forget(np.asarray(indices, dtype=np.int64))

    def clear(self) -> None:
        """Forget everything: the start of a new stream to a new destination."""
        with self.lock:
            self.keys.fill(_EMPTY)
            self._forgets += 1
            self._holds = False

    # -- internals (the caller holds the lock) ------------------------------------------------
    def _store(self, indices: np.ndarray, pages: np.ndarray) -> None:
        """Where two pages of one call share a slot, the later one wins, as if stored in order.
        Lent slots are not written: a page that maps to one is forgotten instead."""
        if not indices.size:
            return
        self._holds = True
        slots = indices % self.n_slots
        if self._lent:
            lent = np.zeros(slots.shape[0], dtype=bool)
            for taken, _ in tuple(self._lent.values()):  # a snapshot: see sent()
                lent |= (slots >= taken.start) & (slots < taken.stop)
            if lent.any():
                self._forget(indices[lent])
                keep = ~lent
                indices, pages, slots = indices[keep], pages[keep], slots[keep]
                if not indices.size:
                    return
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

    def _lent_within(self, start: int, stop: int) -> bool:
        """Whether any of the slots ``start..stop-1`` is lent."""
        lent = tuple(self._lent.values())  # a snapshot: sent() may end a lease unlocked
        return any(taken.start < stop and start < taken.stop for taken, _ in lent)

    def _forget(self, indices: np.ndarray) -> None:
        slots = indices % self.n_slots
        stale = self.keys[slots] == indices
        if stale.any():
            self.keys[slots[stale]] = _EMPTY
            self._forgets += 1


def _last_per_slot(slots: np.ndarray) -> np.ndarray | None:
    """Positions of the last occurrence of each slot, or ``None`` when slots are distinct."""
    if slots.size < 2:
        return None
    order = np.sort(slots)
    if (order[1:] != order[:-1]).all():
        return None
    _, first_from_end = np.unique(slots[::-1], return_index=True)
    return np.sort(slots.size - 1 - first_from_end)
