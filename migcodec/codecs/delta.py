"""What every delta codec shares: the cache, the fall-back codec and the blob layout.

A delta codec encodes each page against the version the destination already holds
(:mod:`migcodec.codecs.delta_cache`). Subclasses implement only the page-level format
(``_make_deltas`` / ``_apply_deltas``, vectorised over the batch); this class decides per
page between

* ``DELTA`` (``PageMode.ENCODED``): a delta against the cached version,
* ``FALLBACK`` (3): not cached, sent through the fall-back codec (default ``lz4``),
* ``UNCHANGED`` (4): identical to the cached version, no payload at all,
* ``RAW``: the delta would overflow or not pay off, or the fall-back did not shrink.

Blob layout (little-endian)::

    u32 fallback_nbytes | u16 length per DELTA page | fallback blob | deltas, page order

Wire rule: a delta frame is emitted only for a page the cache holds, and the cache holds only
what this codec (or :meth:`DeltaCodec.note_sent`) sent in the current stream, so the
destination is known to hold the base of every delta. Frames must be decoded in the order
they were encoded for any one page; :meth:`DeltaCodec.reset` starts a new stream. Clones
share one cache (and its lock), so engines of one device see one history; each batch's
lookups and updates run under the lock, which serialises the delta engines by design.
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np

from migcodec.codecs.base import Codec, PageEncoding
from migcodec.codecs.delta_cache import DEFAULT_CACHE_BYTES, DeltaCache
from migcodec.codecs.encoded import PageMode, nbytes_of
from migcodec.codecs.errors import DecodeError

DELTA = np.uint8(PageMode.ENCODED)
FALLBACK = np.uint8(3)
UNCHANGED = np.uint8(4)
RAW = np.uint8(PageMode.RAW)

#: what ``_make_deltas`` says about each page
STATUS_UNCHANGED, STATUS_DELTA, STATUS_RAW = 0, 1, 2
_STATUS_MODE = np.array([UNCHANGED, DELTA, RAW], dtype=np.uint8)  # indexed by STATUS_*

_HEADER = np.dtype("<u4")
_LENGTH = np.dtype("<u2")


class _SharedState:
    """The cache of one stream, created at the first batch (when the page size is known)."""

    def __init__(self, cache_bytes: int) -> None:
        self.cache_bytes = cache_bytes
        self.cache: DeltaCache | None = None
        self._create = threading.Lock()  # engines may start their first batch together

    def cache_for(self, page_size: int) -> DeltaCache:
        if self.cache is None:
            with self._create:
                if self.cache is None:
                    self.cache = DeltaCache(self.cache_bytes, page_size)
        if self.cache.page_size != page_size:
            raise ValueError(
                f"delta cache holds {self.cache.page_size}-byte pages, batch has {page_size}-byte "
                "pages; use one codec instance per page size"
            )
        return self.cache


class DeltaCodec(Codec):
    """Base of delta codecs over a shared, bounded cache with a fall-back codec."""

    kind = "delta"
    needs_indices = True
    needs_private_pages = True
    reads_destination = True
    #: largest page the subclass's format can describe
    max_page_size: ClassVar[int] = 1 << 19

    def __init__(
        self, cache_bytes: int = DEFAULT_CACHE_BYTES, fallback: str | dict[str, Any] = "lz4"
    ) -> None:
        from migcodec.codecs.registry import get_codec  # the registry imports this package

        if not isinstance(cache_bytes, int) or cache_bytes <= 0:
            raise ValueError(f"cache_bytes must be a positive integer, got {cache_bytes!r}")
        self.cache_bytes = cache_bytes
        self.fallback = fallback
        self._fallback = get_codec(fallback)
        fb = self._fallback
        if fb.kind == "delta" or fb.reads_destination or fb.needs_indices:
            raise ValueError(
                f"fall-back codec {self._fallback.name!r} is a delta codec; a page missing from "
                "the cache needs a codec that does not depend on the destination (e.g. lz4)"
            )
        self._state = _SharedState(cache_bytes)

    def params(self) -> dict[str, Any]:
        return {"cache_bytes": self.cache_bytes, "fallback": self.fallback, **self.format_params()}

    def format_params(self) -> dict[str, Any]:
        """The subclass's own parameters (part of the config)."""
        return {}

    def clone(self) -> DeltaCodec:
        """Same config and the *same* cache: engines of one stream share its history."""
        twin = super().clone()
        twin._state = self._state
        return twin

    # -- the stream's history ------------------------------------------------------
    @property
    def cache(self) -> DeltaCache | None:
        """The shared cache (``None`` before the first batch)."""
        return self._state.cache

    def reset(self) -> None:
        """Forget what the destination holds: call at the start of every new stream."""
        if self._state.cache is not None:
            with self._state.cache.lock:
                self._state.cache.clear()

    def prepare(self, page_size: int) -> None:
        """Allocate the cache and fault its memory in now (QEMU sizes its XBZRLE cache at
        migration set-up too), not on the first stores during the migration."""
        cache = self._state.cache_for(page_size)
        with cache.lock:
            cache.data.fill(0)

    def note_sent(self, indices: np.ndarray, pages: np.ndarray) -> None:
        """Another codec sent ``pages`` at ``indices``: keep the cache truthful."""
        cache = self._state.cache_for(pages.shape[1])
        with cache.lock:
            cache.store(np.asarray(indices, dtype=np.int64), pages)

    def invalidate(self, indices: np.ndarray) -> None:
        """Another codec sent these pages and their content is not at hand: forget them."""
        if self._state.cache is not None:
            with self._state.cache.lock:
                self._state.cache.forget(indices)

    def _pages_sent_as_zero(self, indices: np.ndarray) -> None:
        if self._state.cache is not None:
            with self._state.cache.lock:
                self._state.cache.store_zero(indices)

    # -- the page-level format subclasses implement ---------------------------------
    @abstractmethod
    def _make_deltas(
        self, old: np.ndarray, new: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Deltas of ``new`` against ``old`` (both ``(m, page_size)``), vectorised.

        Returns a ``STATUS_*`` per page, the u16 length field of each ``STATUS_DELTA`` page
        (in page order) and the concatenated deltas of those pages as a uint8 array.
        """

    @abstractmethod
    def _apply_deltas(self, deltas: np.ndarray, lengths: np.ndarray, pages: np.ndarray) -> None:
        """Apply concatenated ``deltas`` to ``pages`` in place; :class:`DecodeError` when
        anything is malformed (``pages`` may then be partly written: it is a copy)."""

    def _check_page_size(self, page_size: int) -> None:
        if page_size > self.max_page_size:
            raise ValueError(
                f"{self.name} describes pages of at most {self.max_page_size} bytes, "
                f"not {page_size}; use another codec for huge pages"
            )

    # -- the transform -------------------------------------------------------------
    def _encode_pages(self, pages: np.ndarray, indices: np.ndarray | None) -> PageEncoding:
        assert indices is not None  # needs_indices
        page_size = pages.shape[1]
        self._check_page_size(page_size)
        # ``pages`` is private (needs_private_pages): the cache, the deltas and any raw page
        # are all this one version of them.
        snap = pages
        n = snap.shape[0]
        modes = np.full(n, FALLBACK, dtype=np.uint8)
        cache = self._state.cache_for(page_size)
        with cache.lock:
            slots, hit = cache.lookup(indices)
            all_hit = bool(hit.all())
            hit_rows = None if all_hit else np.flatnonzero(hit)
            lengths = np.zeros(0, dtype=_LENGTH)
            deltas = np.zeros(0, dtype=np.uint8)
            if all_hit or hit_rows.size:
                old = cache.versions(slots if all_hit else slots[hit_rows])
                new = snap if all_hit else snap[hit_rows]
                status, lengths, deltas = self._make_deltas(old, new)
                hit_modes = _STATUS_MODE[status]
                if all_hit:
                    modes = hit_modes
                else:
                    modes[hit_rows] = hit_modes
            # every page but an unchanged one now has ``snap`` at the destination, however
            # it travels (delta, raw, fall-back)
            changed = modes != UNCHANGED
            if changed.all():
                cache.store(indices, snap)
            elif changed.any():
                cache.store(indices[changed], snap[changed])
        fallback_blob = self._encode_fallback(snap, modes, all_hit)  # outside the lock
        header = np.array([len(fallback_blob)], dtype=_HEADER).tobytes()
        # join takes the arrays' buffers as they are: one copy, into the blob
        blob = b"".join((header, np.asarray(lengths, dtype=_LENGTH), fallback_blob, deltas))
        return PageEncoding(blob, modes, pages=snap)

    def _encode_fallback(self, snap: np.ndarray, modes: np.ndarray, all_hit: bool) -> bytes:
        """Encode the pages missing from the cache; they go raw when it does not pay."""
        if all_hit:
            return b""
        rows = np.flatnonzero(modes == FALLBACK)
        if rows.size == 0:
            return b""
        part = snap[rows]
        result = self._fallback._encode_pages(part, None)
        blob = result.blob
        nbytes = nbytes_of((blob,))
        if result.modes is not None or nbytes >= part.nbytes:
            modes[rows] = RAW  # per-page modes of the fall-back are not nested; raw is exact
            return b""
        return bytes(blob)

    def _decode_pages(
        self, blob: memoryview, modes: np.ndarray, current: np.ndarray | None, page_size: int
    ) -> Any:
        if current is None:
            raise DecodeError(f"{self.name} needs the destination's current pages to decode")
        self._check_page_size(page_size)
        bad = (modes != DELTA) & (modes != FALLBACK) & (modes != UNCHANGED)
        if bad.any():
            raise DecodeError(
                f"page mode {int(modes[bad][0])} is not one of {self.name}'s modes "
                f"(delta {DELTA}, fall-back {FALLBACK}, unchanged {UNCHANGED})"
            )
        buf = np.frombuffer(blob, dtype=np.uint8)
        delta_rows = np.flatnonzero(modes == DELTA)
        fallback_rows = np.flatnonzero(modes == FALLBACK)
        head = 4 + 2 * delta_rows.size
        if buf.size < head:
            raise DecodeError(
                f"{self.name} blob of {buf.size} bytes is shorter than its {head}-byte header"
            )
        fallback_nbytes = int(buf[:4].view(_HEADER)[0])
        if head + fallback_nbytes > buf.size:
            raise DecodeError(
                f"{self.name} fall-back part of {fallback_nbytes} bytes runs past the "
                f"{buf.size}-byte blob"
            )
        if bool(fallback_rows.size) != bool(fallback_nbytes):
            raise DecodeError(
                f"{self.name} blob has {fallback_nbytes} fall-back bytes for "
                f"{fallback_rows.size} fall-back pages"
            )
        pages = current.reshape(-1, page_size)
        if fallback_rows.size:
            out = self._fallback._decode_pages(
                blob[head : head + fallback_nbytes],
                np.full(fallback_rows.size, DELTA, dtype=np.uint8),
                None,
                page_size,
            )
            decoded = np.frombuffer(out, dtype=np.uint8)
            if decoded.size != fallback_rows.size * page_size:
                raise DecodeError(
                    f"fall-back codec {self._fallback.name!r} decoded {decoded.size} bytes for "
                    f"{fallback_rows.size} pages"
                )
            pages[fallback_rows] = decoded.reshape(-1, page_size)
        deltas = buf[head + fallback_nbytes :]
        if delta_rows.size:
            lengths = buf[4:head].view(_LENGTH).astype(np.int64)
            if delta_rows.size == pages.shape[0]:  # every page a delta: apply in place
                self._apply_deltas(deltas, lengths, pages)
            else:
                work = pages[delta_rows]
                self._apply_deltas(deltas, lengths, work)
                pages[delta_rows] = work
        elif deltas.size:
            raise DecodeError(f"{self.name} blob has {deltas.size} bytes past its last part")
        return pages
