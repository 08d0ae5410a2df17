"""The delta capability: a delta format the framework composes with the destination.

A delta codec encodes each page against the version the destination already holds. A delta
*format* implements two vectorised methods between two versions of pages,
:meth:`DeltaCodec.make_deltas` and :meth:`DeltaCodec.apply_deltas`; everything else is the
framework's, here: it is handed what the destination holds from the stream's
:class:`~migcodec.codecs.mirror.DestinationMirror` (a codec keeps no history of its own),
and decides per page between

* ``DELTA`` (``PageMode.ENCODED``): a delta against the held version,
* ``FALLBACK`` (3): not known to be held, sent through the fall-back codec (default ``lz4``),
* ``UNCHANGED`` (4): identical to the held version, no payload at all,
* ``RAW``: the delta would overflow or not pay off, or the fall-back did not shrink.

Blob layout (little-endian)::

    u32 fallback_nbytes | u16 length per DELTA page | fallback blob | deltas, page order

A delta is made only against a version the mirror holds, and the mirror holds only what the
stream sent, so the destination holds the base of every delta as long as frames are decoded
in the order their pages were encoded. Encoded without a mirror, every page takes the
fall-back: correct for any decoder.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar, NamedTuple

import numpy as np

from migcodec.codecs.base import (
    _SAME_MODE_BY_COUNT,
    Codec,
    PageEncoding,
    Recorded,
    _all_raw,
    _as_encoding,
    same_modes,
)
from migcodec.codecs.batch import Batch
from migcodec.codecs.changes import PageChanges
from migcodec.codecs.encoded import CodecKind, CodecPath, PageMode, nbytes_of
from migcodec.codecs.errors import DecodeError
from migcodec.codecs.mirror import DestinationMirror, Held

ZERO = np.uint8(PageMode.ZERO)
DELTA = np.uint8(PageMode.ENCODED)
FALLBACK = np.uint8(3)
UNCHANGED = np.uint8(4)
_DELTA_BYTE, _FALLBACK_BYTE, _UNCHANGED_BYTE = (
    bytes([int(m)]) for m in (DELTA, FALLBACK, UNCHANGED)
)
RAW = np.uint8(PageMode.RAW)
#: the modes the C kernels' record_frame writes (_deltas.c)
assert (ZERO, RAW, DELTA, UNCHANGED) == (0, 1, 2, 4)

#: what ``make_deltas`` says about each page
STATUS_UNCHANGED, STATUS_DELTA, STATUS_RAW = 0, 1, 2
_STATUS_MODE = np.array([UNCHANGED, DELTA, RAW], dtype=np.uint8)  # indexed by STATUS_*

#: bytes of one entry of a DSA delta record (u16 word offset, 8 new bytes): what the default
#: estimate prices a changed word at
RECORD_ENTRY_BYTES = 10

_U8 = np.dtype(np.uint8)  # np.frombuffer converts a type to a dtype at every call
_HEADER = np.dtype("<u4")
_LENGTH = np.dtype("<u2")
_NO_FALLBACK = np.zeros(1, dtype=_HEADER).tobytes()
_NO_LENGTHS = np.zeros(0, dtype=_LENGTH)


class Deltas(NamedTuple):
    """What :meth:`DeltaCodec.make_deltas` returns (a plain 3-tuple is taken as well).

    ``status``: a ``STATUS_*`` per page (uint8); ``lengths``: the little-endian u16 length
    field of each ``STATUS_DELTA`` page, in page order (a ``<u2`` array); ``data``: those
    pages' deltas concatenated (any buffer of bytes: a uint8 array, or ``bytes`` from a C
    kernel); ``path``: where they were made when the format has a device path (``None``:
    software), recorded as the request's path.
    """

    status: np.ndarray
    lengths: np.ndarray
    data: Any
    path: CodecPath | None = None


def _parts(*buffers: Any) -> tuple:
    """The blob's parts as bytes or byte views, sent back to back without joining them (a
    join copied every delta once more); empty parts are left out."""
    return tuple([b if type(b) is bytes else memoryview(b).cast("B") for b in buffers if len(b)])


class DeltaCodec(Codec):
    """Base of delta codecs: a delta format (:meth:`make_deltas` / :meth:`apply_deltas`)
    against what the destination holds, a fall-back codec for pages it is not known to
    hold. Subclasses set ``name``; their own parameters come from :meth:`format_params`."""

    kind = CodecKind.DELTA
    reads_destination = True
    decodes_in_place = True  # see _decode_against
    #: largest page the subclass's format can describe
    max_page_size: ClassVar[int | None] = 1 << 19
    #: the page size :meth:`_encode_lent` last found the format describes (0: none yet)
    _page_size_checked: int = 0

    def __init__(self, fallback: str | dict[str, Any] = "lz4") -> None:
        from migcodec.codecs.registry import get_codec  # the registry imports this package

        if not isinstance(fallback, str | dict):  # a number reached get_codec's dict(...)
            raise ValueError(
                f"codec {self.name!r}: fallback must name a codec (e.g. lz4) or be a codec "
                f"config, got {fallback!r}"
            )
        self.fallback = fallback
        self._fallback = get_codec(fallback)
        if self._fallback.reads_destination:
            raise ValueError(
                f"fall-back codec {self._fallback.name!r} is a delta codec; a page the "
                "destination is not known to hold needs a codec that does not depend on the "
                "destination (e.g. lz4)"
            )

    def params(self) -> dict[str, Any]:
        return {"fallback": self.fallback, **self.format_params()}

    def format_params(self) -> dict[str, Any]:
        """The subclass's own parameters (part of the config)."""
        return {}

    def estimate_sizes(self, changes: PageChanges, page_size: int) -> np.ndarray:
        """Bytes this codec's payload spends per page held by the destination, from how it
        changed (:func:`~migcodec.codecs.changes.page_changes`): what a selector predicts a
        delta arm by, without encoding. 0 for an unchanged page, ``page_size`` for a page
        that goes raw. This default is a delta record's cost, 10 bytes per changed word
        (DSA's format) and the page's u16 length."""
        words = changes.words
        size = RECORD_ENTRY_BYTES * words + 2
        size[size >= page_size] = page_size
        size[words == 0] = 0
        return size

    #: the :meth:`estimate_sizes` that :meth:`estimate_formula` describes: each class that
    #: defines one names it here, so that a subclass (or a patch) that changes the estimate
    #: alone is not summed by a formula that no longer is its own
    formula_describes = estimate_sizes

    def estimate_formula(self, page_size: int) -> tuple[str, int] | None:
        """The per-page formula :meth:`estimate_sizes` computes, as a name of
        :data:`migcodec.selector.scan.ESTIMATE_KINDS` and its parameter, so that a
        selector's scan of a sample can sum it in C without a call per arm; ``None``: none
        of those (:meth:`estimate_sizes` is called). Trusted only while
        :attr:`formula_describes` is the class's :meth:`estimate_sizes`."""
        return "record", 0

    # -- the delta format subclasses implement ---------------------------------------
    @abstractmethod
    def make_deltas(self, old: np.ndarray, new: np.ndarray) -> Deltas | tuple:
        """Deltas of ``new`` against ``old`` (both ``(m, page_size)``), vectorised over the
        batch: a :class:`Deltas` (or its first three fields as a tuple). ``old`` may be a
        read-only view of the mirror's store."""

    @abstractmethod
    def apply_deltas(self, pages: np.ndarray, deltas: np.ndarray, lengths: np.ndarray) -> None:
        """Apply concatenated ``deltas`` (``lengths``: each page's length field) to
        ``pages`` in place; :class:`DecodeError` when anything is malformed (``pages`` may
        then be partly written, unless :meth:`applies_whole` says otherwise)."""

    def applies_whole(self, pages: np.ndarray) -> bool:
        """Whether :meth:`apply_deltas` on ``pages`` checks every delta before its first
        write, so that a malformed one leaves them as they were. Decoding then applies
        deltas to destination memory in place; otherwise to a copy of its pages, which
        costs two more passes over them. The default makes no such promise."""
        return False

    def _record_frame(
        self, store: np.ndarray, new: np.ndarray, copy_raw: bool, find_zero: bool = False
    ) -> tuple | None:
        """The frame of a batch whose every page the destination holds, made in one pass
        that also records it: ``store`` is the mirror's slots holding the held versions
        (writable, ``DestinationMirror.lend_rows``), and each is replaced by its page of
        ``new`` once compared, so the mirror is not read and written in a second pass.
        Returns the C kernel's ``record_frame`` result (``_deltas.c`` says what it holds),
        or ``None`` where the format does not do this (nothing is written; then
        :meth:`_encode_against` encodes and the pages are copied into the slots after).
        The bytes are those :meth:`make_deltas` makes either way. ``find_zero``: all-zero
        pages of ``new`` are found in the same pass and given the framework's zero mode.
        A format that does this says so in :meth:`_kernel_records`."""
        return None

    def _kernel_records(self) -> bool:
        """Whether :meth:`_record_frame` makes frames here (a C kernel runs): the framework
        then hands it a fully held batch before any zero-page scan (:meth:`_encode_lent`)."""
        return False

    # -- as a compressor: nothing known of the destination ---------------------------
    def encode_pages(self, pages: np.ndarray) -> PageEncoding:
        """Every page through the fall-back (what the framework sends without a mirror)."""
        return self._encode_against(pages, None)

    def decode_pages(self, blob: memoryview, n_pages: int, page_size: int) -> np.ndarray:
        """A blob of fall-back pages only (what :meth:`encode_pages` writes when the
        fall-back shrinks them), which needs nothing of the destination."""
        current = np.zeros((n_pages, page_size), dtype=np.uint8)
        return self._decode_against(blob, np.full(n_pages, FALLBACK), current, page_size)

    # -- the framework's composition (Codec.encode / Codec.decode call these) ---------
    def _encode_against_mirror(
        self,
        pages: np.ndarray,
        destination: DestinationMirror,
        batch: Batch,
        rows: np.ndarray | None,
        copy_raw: bool,
    ) -> tuple[PageEncoding | Recorded, slice | None]:
        """The transform of ``pages`` (the batch's, or its ``rows``) composed with the
        stream's mirror, as :meth:`Codec.encode` calls it: return its result and the
        mirror slots it was lent (``None``: none).

        The held versions are read in the mirror's store where the mirror can lend them
        (:meth:`DestinationMirror.lend_rows`: every page held, in consecutive slots),
        which saves a copy of every page. Those slots are handed to :meth:`_record_frame`:
        where the format can, it records the pages there as it reads them, and the frame
        is laid out here as :meth:`Codec._lay_out` lays out :meth:`_encode_against`'s
        result, byte for byte (a :class:`Recorded`; ``copy_raw``: the pages are memory
        that may change once encode returns, so raw pages are copies). Otherwise
        :meth:`_encode_against` encodes and the pages are copied there. The slots stay
        lent until :meth:`DestinationMirror.sent` sets their keys, or are given back,
        forgotten, if the transform fails."""
        indices = batch.page_indices if rows is None else batch.page_indices[rows]
        done = self._encode_lent(pages, destination, indices, copy_raw, False)
        if done is None:  # not held whole in consecutive slots: a copy of what is held
            return self._encode_against(pages, destination.reference(indices)), None
        result, lent = done
        return (Recorded(*result) if type(result) is tuple else result), lent

    def _encode_lent(
        self,
        pages: np.ndarray,
        destination: DestinationMirror,
        indices: np.ndarray,
        copy_raw: bool,
        find_zero: bool,
    ) -> tuple[PageEncoding | tuple, slice] | None:
        """``pages`` (those of ``indices``) encoded in the slots the mirror lends for them
        (``None``, nothing lent, when it cannot: :meth:`DestinationMirror.lend_rows`), and
        the slots. Where :meth:`_record_frame` makes the frame, it is returned as the
        fields of a :class:`Recorded` (a plain tuple: this runs once per batch, after a
        kernel that left the caches cold, where a named tuple's constructor is dear);
        otherwise :meth:`_encode_against` reads the slots, read-only, and the pages are
        copied into them after. The slots are given back, forgotten, if encoding fails:
        they may have been written.

        With ``find_zero`` the kernel also finds the zero pages (modes, ``n_zero``; a zero
        page's slot holds its zeros, as :meth:`DestinationMirror.sent` would record them):
        :meth:`Codec.encode` hands a whole batch here, when :meth:`_kernel_records`, before
        its own zero-page scan, which read every page once more, ahead of the kernel and
        out of cache (a quarter of the framework's cost per 64-page batch); ``None`` then
        means the batch is not held whole in consecutive slots, and the framework scans and
        encodes as usual."""
        lease = destination.lend_rows(indices)
        if lease is None:
            return None
        store, lent = lease
        try:
            page_size = pages.shape[1]
            if page_size != self._page_size_checked:  # a stream's page size stays: once
                self.check_page_size(page_size)
                self._page_size_checked = page_size
            done = self._record_frame(store, pages, copy_raw, find_zero)
            if done is None:
                versions = store.view()
                versions.flags.writeable = False
                held = Held(np.ones(indices.shape[0], dtype=bool), versions)
                result = self._encode_against(pages, held)
                store[...] = pages
                return result, lent
            # the kernel laid the frame out; one mode for every page shares a table
            modes, segments, payload_nbytes, n_zero = done
            n = pages.shape[0]
            if type(modes) is not int:
                modes = np.frombuffer(modes, _U8)
            else:  # the table, without a call for the common batch sizes
                modes = _SAME_MODE_BY_COUNT[modes][n] if n <= 64 else same_modes(modes, n)
            if segments is None:  # every page raw, not copied: the pages are the payload
                segments = _all_raw(pages, False)
            return (segments, modes, payload_nbytes, n_zero), lent
        except BaseException:
            destination.give_back(lent)
            raise

    def _encode_against(self, pages: np.ndarray, held: Held | None) -> PageEncoding:
        """Deltas against ``held`` (what the destination holds, ``None``: nothing known),
        the fall-back for the other pages, laid out as one blob with a mode per page."""
        page_size = pages.shape[1]
        self.check_page_size(page_size)
        if held is not None and held.complete:  # every page held: deltas only
            status, lengths, deltas, *path = self.make_deltas(held.versions, pages)
            blob = _parts(_NO_FALLBACK, lengths, deltas)
            return PageEncoding(blob, _STATUS_MODE.take(status), *path)
        n = pages.shape[0]
        lengths = _NO_LENGTHS
        deltas = b""
        path = ()
        modes = np.full(n, FALLBACK, dtype=np.uint8)
        if held is not None and held.versions.shape[0]:
            hit_rows = np.flatnonzero(held.hit)
            status, lengths, deltas, *path = self.make_deltas(held.versions, pages[hit_rows])
            modes[hit_rows] = _STATUS_MODE.take(status)
        fallback_blob = self._encode_fallback(pages, modes)
        header = np.array([len(fallback_blob)], dtype=_HEADER).tobytes()
        return PageEncoding(_parts(header, lengths, fallback_blob, deltas), modes, *path)

    def _encode_fallback(self, snap: np.ndarray, modes: np.ndarray) -> bytes:
        """Encode the pages not known to be held; they go raw when it does not pay."""
        rows = np.flatnonzero(modes == FALLBACK)
        if rows.size == 0:
            return b""
        part = snap[rows]
        result = _as_encoding(self._fallback.encode_pages(part))
        blob = result.blob if result is not None else b""
        parts = blob if type(blob) is tuple else (blob,)
        if result is None or result.modes is not None or nbytes_of(parts) >= part.nbytes:
            modes[rows] = RAW  # per-page modes of the fall-back are not nested; raw is exact
            return b""
        return b"".join(parts)

    def _decode_against(
        self, blob: memoryview, modes: np.ndarray, current: np.ndarray, page_size: int
    ) -> np.ndarray:
        """The pages of ``modes`` decoded into ``current``, the destination's present
        pages, which is returned. Every part is checked before the first page is written
        (the fall-back's pages are decoded aside, the deltas applied whole or to a copy of
        their pages, see :meth:`applies_whole`), so ``current`` may be destination memory
        itself (``decodes_in_place``)."""
        if current is None:
            raise DecodeError(f"{self.name} needs the destination's current pages to decode")
        self.check_page_size(page_size)
        # each mode's pages counted in the modes' bytes (one C call each), and their rows
        # found only for a frame that mixes them
        kinds = modes.tobytes()
        n_delta = kinds.count(_DELTA_BYTE)
        n_fallback = 0
        if n_delta != len(kinds):
            n_fallback = kinds.count(_FALLBACK_BYTE)
            if n_delta + n_fallback + kinds.count(_UNCHANGED_BYTE) != len(kinds):
                bad = (modes != DELTA) & (modes != FALLBACK) & (modes != UNCHANGED)
                raise DecodeError(
                    f"page mode {int(modes[bad][0])} is not one of {self.name}'s modes "
                    f"(delta {DELTA}, fall-back {FALLBACK}, unchanged {UNCHANGED})"
                )
        buf = np.frombuffer(blob, dtype=np.uint8)
        head = 4 + 2 * n_delta
        if buf.size < head:
            raise DecodeError(
                f"{self.name} blob of {buf.size} bytes is shorter than its {head}-byte header"
            )
        fallback_nbytes = int.from_bytes(blob[:4], "little")
        if head + fallback_nbytes > buf.size:
            raise DecodeError(
                f"{self.name} fall-back part of {fallback_nbytes} bytes runs past the "
                f"{buf.size}-byte blob"
            )
        if bool(n_fallback) != bool(fallback_nbytes):
            raise DecodeError(
                f"{self.name} blob has {fallback_nbytes} fall-back bytes for "
                f"{n_fallback} fall-back pages"
            )
        pages = current.reshape(-1, page_size)
        decoded = None
        if n_fallback:
            out = self._fallback.decode_pages(
                blob[head : head + fallback_nbytes], n_fallback, page_size
            )
            decoded = np.frombuffer(out, dtype=np.uint8)
            if decoded.size != n_fallback * page_size:
                raise DecodeError(
                    f"fall-back codec {self._fallback.name!r} decoded {decoded.size} bytes for "
                    f"{n_fallback} pages"
                )
        deltas = buf[head + fallback_nbytes :]
        if n_delta:
            lengths = buf[4:head].view(_LENGTH).astype(np.int64)
            if n_delta == pages.shape[0] and self.applies_whole(pages):
                self.apply_deltas(pages, deltas, lengths)  # every page a delta: in place
            else:
                delta_rows = np.flatnonzero(modes == DELTA)
                work = pages[delta_rows]
                self.apply_deltas(work, deltas, lengths)
                pages[delta_rows] = work
        elif deltas.size:
            raise DecodeError(f"{self.name} blob has {deltas.size} bytes past its last part")
        if decoded is not None:  # last: nothing after it can fail
            pages[np.flatnonzero(modes == FALLBACK)] = decoded.reshape(-1, page_size)
        return pages
