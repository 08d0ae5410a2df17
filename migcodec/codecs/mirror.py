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
them out: :meth:`DestinationMirror.lend` hands out a read-only view when the batch is held
whole in consecutive slots, and those slots stay *lent* until the batch is recorded in them
(:meth:`~DestinationMirror.sent`) or given back (:meth:`~DestinationMirror.give_back`).
No store overwrites a lent slot: a page that maps there is forgotten instead, which is safe
(a miss, never a wrong base).

A delta kernel may also record the batch in its lent slots as it reads them
(:meth:`DestinationMirror.lend_rows`): each page is then read once, not once by the kernel
and again by the copy into the mirror. The slots hold the new versions before
:meth:`~DestinationMirror.sent`; nothing else reads them meanwhile (they are lent, and the
stream encodes a page again only once its batch is encoded), and if the transform fails
they are forgotten rather than given back as held (:meth:`~DestinationMirror.give_back`).
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import numpy as np

from migcodec.codecs.page_views import rows_as_slice

#: QEMU's default XBZRLE cache size (``xbzrle-cache-size``), 64 MiB
DEFAULT_MIRROR_BYTES = 64 << 20

_EMPTY = -1


class Held(NamedTuple):
    """What the destination holds for some pages: ``hit`` per page, and ``versions``, the
    held pages of the hits in order: a private copy (:meth:`DestinationMirror.reference`),
    or a read-only view of slots lent to the caller (:meth:`DestinationMirror.lend`)."""

    hit: np.ndarray
    versions: np.ndarray

    @property
    def complete(self) -> bool:
        """Whether the destination holds every page (``versions`` has one per page)."""
        return self.versions.shape[0] == self.hit.shape[0]


class DestinationMirror:
    """Direct-mapped record of the destination's page versions, ``budget_bytes`` at most.

    Thread-safe: engines of one stream encode concurrently, and each lookup or update of a
    batch is one step under :attr:`lock`, so a slot's page number and contents always match.
    The page store is allocated zero-filled (the OS maps it lazily): a large budget costs
    memory only for the slots that are used, unless :meth:`prefault` is called.
    """

    def __init__(
        self, page_size: int, budget_bytes: int = DEFAULT_MIRROR_BYTES, *, recording: bool = True
    ) -> None:
        if not isinstance(page_size, int) or page_size <= 0 or page_size % 8:
            raise ValueError(f"page size {page_size!r} must be a positive multiple of 8 bytes")
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
        self._readonly = self.data.view()  # what lend hands out: views that cannot write
        self._readonly.flags.writeable = False
        self.lock = threading.Lock()
        self._lent: list[slice] = []  # slots whose data an encode reads in place (lend)
        self._writable: list[slice] = []  # those of them lent writable (lend_rows)

    @classmethod
    def holding(cls, indices: np.ndarray, pages: np.ndarray) -> DestinationMirror:
        """A mirror of a destination known to hold exactly ``pages`` at ``indices`` (what a
        trace window's ``previous`` says), e.g. to probe or evaluate a delta codec on one
        window. Sized to the pages, so distinct window rows ``0..n-1`` never evict each other."""
        pages = np.asarray(pages, dtype=np.uint8)
        n, page_size = pages.shape
        mirror = cls(page_size, max(n, 1) * page_size)
        if n:
            mirror.record(np.asarray(indices, dtype=np.int64), pages)
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

    def lend(self, indices: np.ndarray) -> tuple[Held, slice | None]:
        """:meth:`reference` without the copy where it can: when every page is held, in
        consecutive slots none of which is lent already, ``versions`` is a read-only view
        of the store and those slots are lent (returned as a slice) until :meth:`sent`
        records the batch in them or :meth:`give_back`; otherwise a copy as
        :meth:`reference` makes, and ``None``.

        A lent slot is not overwritten, so the view stays the version the destination
        holds while the caller reads it. The framework hands the slice to :meth:`sent`
        once the batch is encoded (recording it where it was lent costs one copy), and
        gives it back if the transform fails.
        """
        lent = self._lend_run(indices, False)
        if lent is None:
            return self.reference(indices), None
        return Held(_all_true(indices.shape[0]), self._readonly[lent]), lent

    def lend_rows(self, indices: np.ndarray) -> tuple[np.ndarray, slice] | None:
        """:meth:`lend` for a transform that records the batch where it reads the held
        versions: when :meth:`lend` would lend the slots, those slots writable (every page
        held, in batch order) and the slice lent; otherwise ``None``, and nothing is lent.

        The caller writes the batch's pages into the rows before :meth:`sent` (a delta
        kernel copies each new page over its held version once compared), so :meth:`sent`
        sets the slots' keys and copies nothing. :meth:`give_back` forgets such slots: they
        may hold pages that were never sent."""
        lent = self._lend_run(indices, True)
        return None if lent is None else (self.data[lent], lent)

    def _lend_run(self, indices: np.ndarray, writable: bool) -> slice | None:
        """Lend the slots of ``indices`` when every page is held, in consecutive slots none
        of which is lent already (``writable``: to :meth:`lend_rows`); else ``None``."""
        n = indices.shape[0]
        if not n:
            return None
        start = indices.item(0) % self.n_slots
        stop = start + n
        with self.lock:
            # keys equal to the indices in consecutive slots: each page is in its slot
            # (compared as bytes: one call; int64 indices, as batches have)
            if (
                stop <= self.n_slots
                and not (self._lent and self._lent_within(start, stop))
                and self.keys[start:stop].tobytes() == indices.tobytes()
            ):
                lent = slice(start, stop)
                self._lent.append(lent)
                if writable:
                    self._writable.append(lent)
                return lent
        return None

    def give_back(self, lent: slice | None) -> None:
        """End a :meth:`lend`: its slots may be overwritten again. Slots lent writable
        (:meth:`lend_rows`) may hold pages of a batch that is not sent: the pages they held
        are forgotten (a miss next time, never a wrong base)."""
        if lent is None:
            return
        with self.lock:
            self._lent.remove(lent)  # lent ranges never overlap: this is the one lent
            if self._writable and lent in self._writable:
                self._writable.remove(lent)
                self.keys[lent] = _EMPTY

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

        ``lent`` ends a :meth:`lend` for these pages. When it lent the whole batch (no zero
        page), the pages are those slots' pages (:meth:`lend` checked), so they are recorded
        there at once: one copy, without finding the slots again, and none when they were
        lent writable (:meth:`lend_rows`): the transform wrote the pages there already.
        """
        with self.lock:
            if lent is not None:
                self._lent.remove(lent)  # lent ranges never overlap: this is the one lent
                written = bool(self._writable) and lent in self._writable
                if written:
                    self._writable.remove(lent)
                if copy and zero is None and lent.stop - lent.start == indices.shape[0]:
                    self.keys[lent] = indices  # as lent, unless clear() or forget() ran since
                    if not written:
                        self.data[lent] = pages
                    return
            if zero is not None and zero.any():
                slots = indices[zero] % self.n_slots
                self.data[slots[self.keys[slots] == indices[zero]]] = 0
                keep = ~zero
                indices, pages = indices[keep], pages[keep]
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

    # -- internals (the caller holds the lock) ------------------------------------------------
    def _store(self, indices: np.ndarray, pages: np.ndarray) -> None:
        """Where two pages of one call share a slot, the later one wins, as if stored in order.
        Lent slots are not written: a page that maps to one is forgotten instead."""
        if not indices.size:
            return
        slots = indices % self.n_slots
        if self._lent:
            lent = np.zeros(slots.shape[0], dtype=bool)
            for taken in self._lent:
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
        return any(taken.start < stop and start < taken.stop for taken in self._lent)

    def _forget(self, indices: np.ndarray) -> None:
        slots = indices % self.n_slots
        stale = self.keys[slots] == indices
        if stale.any():
            self.keys[slots[stale]] = _EMPTY


_ALL_TRUE = np.ones(4096, dtype=bool)
_ALL_TRUE.flags.writeable = False


def _all_true(n: int) -> np.ndarray:
    """A read-only all-true mask of ``n`` entries, shared for common batch sizes."""
    return _ALL_TRUE[:n] if n <= _ALL_TRUE.size else np.ones(n, dtype=bool)


def _last_per_slot(slots: np.ndarray) -> np.ndarray | None:
    """Positions of the last occurrence of each slot, or ``None`` when slots are distinct."""
    if slots.size < 2:
        return None
    order = np.sort(slots)
    if (order[1:] != order[:-1]).all():
        return None
    _, first_from_end = np.unique(slots[::-1], return_index=True)
    return np.sort(slots.size - 1 - first_from_end)
