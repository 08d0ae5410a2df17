"""The codec contract and the framework that every codec gets for free.

A compressor implements ``encode_pages(pages) -> blob`` and ``decode_pages(blob, n_pages,
page_size) -> bytes``. The framework owns everything around them (gathering pages from runs,
zero-page detection, raw fall-back when encoding does not pay, the path and time of each
request, validated in-place decoding), so a codec never deals with batching, threads,
buffers or the destination. Delta coding (:class:`~migcodec.codecs.delta.DeltaCodec`) and
several paths (:class:`~migcodec.codecs.accel.AcceleratorCodec`) are composed by the
framework on top of this contract, not written into ``encode``.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Any, ClassVar, NamedTuple

import numpy as np

from migcodec.codecs.batch import Batch, as_runs, check_run, check_runs, expand_runs
from migcodec.codecs.encoded import (
    MAX_PAGE_MODE,
    CodecKind,
    CodecPath,
    Encoded,
    Measurements,
    PageMode,
    nbytes_of,
)
from migcodec.codecs.errors import (
    CodecFailed,
    DecodeError,
    InvalidBatch,
    OutdatedPlugin,
    PageSizeUnsupported,
)
from migcodec.codecs.mirror import DestinationMirror
from migcodec.codecs.page_views import page_view, rows_as_slice
from migcodec.codecs.zero import zero_page_rows

RUN_BYTES = 12  # what one run costs on the wire (u64 first page + u32 count)
#: one encode in this many reads the thread's CPU clock; see Codec.encode
CPU_SAMPLE_EVERY = 64
_ZERO, _RAW, _ENCODED = (np.uint8(m) for m in (PageMode.ZERO, PageMode.RAW, PageMode.ENCODED))
_SOFTWARE = CodecPath.SOFTWARE
#: no bound on a decoded batch's pages (the wire reader bounds frames as it reads them)
_ANY_SIZE = int(np.iinfo(np.int64).max)
_UINT8 = np.dtype(np.uint8)
_RAW_BYTE = bytes([PageMode.RAW])
_ENCODED_BYTE = bytes([PageMode.ENCODED])


def is_integer(value: object) -> bool:
    """Whether a codec's config value is an integer and not a boolean: Python counts
    ``True`` as 1, so ``zstd:level=true`` built a codec that ran level 1 under the label
    ``zstd level=True``, an arm besides plain ``zstd``."""
    return isinstance(value, int) and not isinstance(value, bool)


def _read_only_modes(mode: int) -> np.ndarray:
    modes = np.full(4096, mode, dtype=np.uint8)
    modes.flags.writeable = False
    return modes


# read-only "every page has this mode" tables, per mode, and per batch size up to the
# common maximum of 64 pages, so the hot path indexes a tuple instead of making or slicing
# an array per batch (frames keep them as their modes: shared, copied before any change)
_SAME_MODE = tuple(_read_only_modes(mode) for mode in range(MAX_PAGE_MODE + 1))
_SAME_MODE_BY_COUNT = tuple(tuple(full[:n] for n in range(65)) for full in _SAME_MODE)
_ALL_ENCODED = _SAME_MODE[PageMode.ENCODED]
_ALL_ENCODED_BY_COUNT = _SAME_MODE_BY_COUNT[PageMode.ENCODED]


def same_modes(mode: int, n: int) -> np.ndarray:
    """The modes of ``n`` pages that all travel as ``mode``: read-only, and shared for up
    to 4096 pages (copy before changing them)."""
    if n <= 64:
        return _SAME_MODE_BY_COUNT[mode][n]
    if n <= 4096:
        return _SAME_MODE[mode][:n]
    modes = np.full(n, mode, dtype=np.uint8)
    modes.flags.writeable = False
    return modes


def _all_raw(data: np.ndarray, copy: bool) -> tuple:
    """Every page of ``data`` as the one raw segment: a view, or a copy when ``copy``."""
    flat = data.reshape(-1)
    return (flat.copy() if copy else flat,)


@dataclass(frozen=True)
class Probe:
    """Whether a plugin can run here, which path it would take (a :class:`CodecPath`:
    ``hardware``, ``software``, ``emulated`` or ``unavailable``), and why."""

    available: bool
    path: CodecPath
    reason: str = ""


@dataclass(slots=True)
class PageEncoding:
    """What a transform returns when a bare blob does not say enough.

    ``blob`` is one buffer, or a tuple of buffers sent back to back and decoded as one.
    ``modes`` (one per input page, ``RAW`` or ``ENCODED``; a delta codec also uses values
    above ``ENCODED``) sends some pages raw, the blob covering only the others. ``path`` is
    where the request ran (``None``: :meth:`Codec.probe_path`) and ``device_s`` the modelled
    device time of an emulated request; both go into the measurements.
    """

    blob: Any
    modes: np.ndarray | None = None
    path: CodecPath | None = None
    device_s: float | None = None


class Recorded(NamedTuple):
    """A delta codec's frame that its transform laid out itself while recording the batch
    in the mirror slots it was lent (``DeltaCodec._encode_against_mirror``): the payload
    segments, a mode per page (a new array) and the segments' size in bytes, with the raw
    fall-back applied. The framework uses them as they are; the mirror, which lent the
    slots writable (``DestinationMirror.lend_rows``), does not copy the pages again."""

    segments: tuple
    modes: np.ndarray
    payload_nbytes: int
    #: pages the kernel found all zero (``ZERO`` modes, no payload), when it looked
    n_zero: int = 0


def _is_seconds(x: object) -> bool:
    """Whether ``x`` is a finite real number >= 0 (a bool is not)."""
    return (
        isinstance(x, int | float | np.floating | np.integer)
        and not isinstance(x, bool)
        and math.isfinite(x)
        and x >= 0
    )


def _as_encoding(result: Any) -> PageEncoding | None:
    """A transform's result as a :class:`PageEncoding` (``None``: every page goes raw)."""
    if result is None or isinstance(result, PageEncoding):
        return result
    return PageEncoding(result)


#: hooks of the retired codec contract -> the method that replaces each (named in the error)
_OLD_HOOKS = {
    "_encode_pages": "encode_pages(self, pages) -> blob (or None: send the pages raw)",
    "_decode_pages": "decode_pages(self, blob, n_pages, page_size) -> n_pages * page_size bytes",
    "_make_deltas": "make_deltas(self, old, new) -> (status, lengths, deltas)",
    "_apply_deltas": "apply_deltas(self, pages, deltas, lengths)",
}


_KEYWORD = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


@functools.cache
def _init_params(cls: type) -> tuple[str, ...]:
    """Names of the keyword parameters of ``cls``'s constructor (``*args``/``**kwargs``
    left out): what the default :meth:`Codec.params` reads back."""
    signature = inspect.signature(cls.__init__)
    return tuple(name for name, p in list(signature.parameters.items())[1:] if p.kind in _KEYWORD)


@functools.cache
def _config_params(cls: type) -> tuple[str, ...]:
    """The keyword parameters a config of ``cls`` may give: its constructor's, and where
    that passes ``**kwargs`` on, those of the base classes' constructors it reaches."""
    names: list[str] = []
    for klass in cls.__mro__:
        if klass is Codec or klass is object:
            break
        if "__init__" not in klass.__dict__:
            continue
        parameters = list(inspect.signature(klass.__init__).parameters.values())[1:]
        names += [p.name for p in parameters if p.name not in names and p.kind in _KEYWORD]
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            break
    return tuple(names)


class Codec(ABC):
    """A batch codec, fully described by its config (numcodecs' convention).

    A compressor sets ``name``, takes its parameters as constructor keyword arguments kept
    as attributes of the same name (the default :meth:`params` reads them back), and
    implements :meth:`encode_pages` / :meth:`decode_pages`. ``kind`` (a :class:`CodecKind`)
    defaults to ``compress``; :meth:`probe` says whether it can run here.
    """

    name: ClassVar[str]
    kind: ClassVar[CodecKind] = CodecKind.COMPRESS
    #: set by :class:`~migcodec.codecs.delta.DeltaCodec`, never by a plugin: the framework
    #: then hands the transform what the destination holds, and decoding its pages
    reads_destination: ClassVar[bool] = False
    #: a codec that reads the destination decodes into the destination's pages it is given
    #: (``_decode_against``'s ``current``) and checks every part of a payload before its
    #: first write to them: the framework then hands it destination memory itself, not a
    #: copy to write back (two passes over the pages fewer)
    decodes_in_place: ClassVar[bool] = False
    #: the largest page the codec's format can describe (``None``: any size)
    max_page_size: ClassVar[int | None] = None
    # CPU-clock sampling state (Codec.encode): encodes left until the next sample, and the
    # CPU/wall ratio the last sample measured
    _cpu_countdown: int = 0
    _cpu_per_wall: float = 1.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse, at class definition, a codec that implements the retired hooks
        (``_encode_pages(pages, indices)`` and friends): they are never called, so the codec
        would otherwise fail later and less clearly. The error names each replacement.

        Raises :class:`OutdatedPlugin` for a retired hook, and ``TypeError`` for a class that
        sets ``reads_destination`` without being a :class:`~migcodec.codecs.delta.DeltaCodec`."""
        super().__init_subclass__(**kwargs)
        old = [hook for hook in _OLD_HOOKS if hook in cls.__dict__]
        if old:
            changes = "; ".join(f"{hook} -> {_OLD_HOOKS[hook]}" for hook in old)
            raise OutdatedPlugin(
                f"codec class {cls.__module__}.{cls.__qualname__} implements "
                f"{', '.join(old)}, hooks of an earlier migcodec codec contract; rename and "
                f"reshape them: {changes} (examples/migcodec-rle is a complete codec)"
            )
        if cls.reads_destination and not hasattr(cls, "_encode_against_mirror"):
            raise TypeError(
                f"codec class {cls.__module__}.{cls.__qualname__} sets reads_destination; a "
                "codec that encodes against the destination subclasses "
                "migcodec.codecs.delta.DeltaCodec and implements make_deltas / apply_deltas"
            )

    # -- configuration ---------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """Parameters that, passed back to the constructor, rebuild an equal codec.

        By default every keyword parameter of the constructor, read from the attribute of
        the same name; a codec that stores a parameter otherwise overrides this."""
        try:
            return {name: getattr(self, name) for name in _init_params(type(self))}
        except AttributeError as exc:
            raise TypeError(
                f"{type(self).__name__} takes {exc.name!r} but keeps no attribute of that "
                f"name: store it as self.{exc.name} or override params()"
            ) from None

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, **self.params()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Codec:
        params = dict(config)
        name = params.pop("name", cls.name)
        if name != cls.name:
            raise ValueError(f"config names codec {name!r}, not {cls.name!r}")
        try:
            return cls(**params)
        except TypeError as exc:
            takes = _config_params(cls)
            unknown = [key for key in params if key not in takes]
            if unknown:  # say what it takes, not which Python call failed
                raise ValueError(
                    f"bad config for codec {cls.name!r}: it has no parameter {unknown[0]!r}; "
                    f"it takes: {', '.join(takes) or 'none'}"
                ) from None
            raise ValueError(f"bad config for codec {cls.name!r}: {exc}") from exc

    def config_json(self) -> str:
        return json.dumps(self.get_config(), sort_keys=True, separators=(",", ":"))

    def clone(self) -> Codec:
        """An independent instance with the same config, e.g. one per device engine (what
        a stream's destination holds is not codec state: see :meth:`encode`)."""
        return type(self).from_config(self.get_config())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Codec) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash(self.config_json())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    def check_page_size(self, page_size: int) -> None:
        """Refuse a page size the format cannot describe: streams and trace writers call it
        before the first page, so a stream never fails on it midway."""
        if self.max_page_size is not None and page_size > self.max_page_size:
            raise PageSizeUnsupported(
                f"{self.name} describes pages of at most {self.max_page_size} bytes, not "
                f"{page_size}; use another codec (e.g. lz4 or zstd) for larger pages"
            )

    @classmethod
    def probe(cls) -> Probe:
        """Whether this codec can run here; plugins with devices or libraries override."""
        return Probe(True, CodecPath.SOFTWARE, "runs on the CPU")

    # -- the transform plugins implement ---------------------------------------------
    @abstractmethod
    def encode_pages(self, pages: np.ndarray) -> Any:
        """Encode ``pages`` (``(n, page_size)`` uint8, none of them all zero) as one blob.

        Return the blob (bytes or any buffer), ``None`` when encoding cannot pay (the pages
        go raw; the framework also sends them raw when the blob is not smaller than they
        are), or a :class:`PageEncoding` to send some pages raw or report the path.
        """

    @abstractmethod
    def decode_pages(self, blob: memoryview, n_pages: int, page_size: int) -> Any:
        """Return exactly ``n_pages * page_size`` bytes decoded from ``blob``.

        The blob may come from an untrusted peer: raise :class:`DecodeError` for anything
        malformed, and check every length it claims before allocating from it.
        """

    # -- the framework ---------------------------------------------------------------
    def encode(
        self,
        batch: Batch,
        staging: np.ndarray | None = None,
        destination: DestinationMirror | None = None,
    ) -> Encoded:
        """Encode a batch. ``staging`` is a pooled ``(max_pages, page_size)`` scratch buffer.

        Without ``staging`` the transform reads guest memory in place and raw pages in the
        payload are views of it (zero copy), which is right when memory holds still. With
        ``staging`` the batch is copied there first, so a guest that keeps writing can
        neither corrupt the encoding (see :meth:`Batch.pages`) nor change a frame between
        its checksum and its send.

        ``destination`` is the stream's :class:`~migcodec.codecs.mirror.DestinationMirror`:
        a delta codec encodes against it, and whatever the codec it learns what the
        destination holds once this batch is decoded. Without one nothing is assumed about
        the destination (a delta codec sends every page through its fall-back).

        ``stats.cpu_s`` reads the thread's CPU clock on one encode in
        :data:`CPU_SAMPLE_EVERY` and estimates the others as their wall time times the CPU
        share of the last sample: the thread clock is a system call (no vDSO), too dear to
        read around every batch, and a transform is pure CPU unless preempted, so the share
        moves slowly. A sample costs far more than its two calls: on a VM with speculation
        mitigations the kernel entries leave the caches and predictors cold for the batch
        that follows, about 40 us of a 64-page delta batch of 90 us, so one in 8 was 5 us
        a batch; one in 64 is under 1 us (64 batches of 256 KiB are a few milliseconds).
        """
        wall0 = time.perf_counter()
        cpu0 = time.thread_time() if self._cpu_countdown <= 0 else None  # None: no sample
        block = batch.pages(out=staging)
        # a delta codec's C kernel records a batch held whole and finds its zero pages in
        # the same pass: no scan of the batch first, and the frame is the kernel's, so it
        # leaves here, past the general path's branches (DeltaCodec._encode_lent). Raw pages
        # of a batch read in place are copies, for the reason given at ``live`` below.
        if destination is not None and self.reads_destination and self._kernel_records():
            indices = batch.page_indices
            live = staging is None and batch.single_run
            whole = self._encode_lent(block, destination, indices, live, True)
            if whole is not None:
                (segments, modes, payload_nbytes, n_zero), lent = whole
                destination.sent(indices, block, None, True, lent)
                return self._encoded(
                    batch, modes, segments, payload_nbytes, n_zero, None, wall0, cpu0
                )
        page_size = batch.page_size
        # a delta codec given a mirror encodes against what the destination holds
        against = destination is not None and self.reads_destination
        record = against or (destination is not None and destination.recording)
        # A recorded batch read in place: the guest may write once encode returns, so the
        # frame must not show it raw pages that differ from what the mirror records. Only
        # those are copied (below); deltas and compressed blobs are copies already, and the
        # mirror records the pages before encode returns, while memory still holds still.
        live = record and staging is None and batch.single_run
        n = batch.n_pages
        zero = zero_page_rows(block)
        lent = None  # mirror slots a delta transform reads in place, until sent() below
        n_zero = 0
        try:
            if zero is None and n <= _ALL_ENCODED.size:
                # shared and read-only; copied before any change
                modes = _ALL_ENCODED_BY_COUNT[n] if n <= 64 else _ALL_ENCODED[:n]
                if against:
                    result, lent = self._encode_against_mirror(
                        block, destination, batch, None, live
                    )
                else:
                    result = self.encode_pages(block)
                if type(result) is bytes and len(result) < block.nbytes:  # the common case
                    segments: tuple = (result,)
                    payload_nbytes = len(result)
                    encoding = None
                elif type(result) is Recorded:  # a delta codec's, when every page is held
                    segments, modes, payload_nbytes, _ = result
                    encoding = None
                else:
                    encoding = _as_encoding(result)
                    segments, modes, payload_nbytes = self._lay_out(
                        encoding, block, None, page_size, live
                    )
            else:
                modes = np.full(n, _ENCODED, dtype=np.uint8)
                segments = ()
                payload_nbytes = 0
                encoding = None
                if zero is None:  # a batch larger than the shared mode table, no zero page
                    zero = np.zeros(n, dtype=bool)
                modes[zero] = _ZERO
                n_zero = int(np.count_nonzero(zero))
                if n_zero < n:
                    nonzero = np.flatnonzero(~zero)
                    data = block[nonzero]  # a copy: its raw pages are a snapshot already
                    if against:
                        result, lent = self._encode_against_mirror(
                            data, destination, batch, nonzero, False
                        )
                    else:
                        result = self.encode_pages(data)
                    if type(result) is Recorded:
                        segments, sub, payload_nbytes, _ = result
                    else:
                        encoding = _as_encoding(result)
                        segments, sub, payload_nbytes = self._lay_out(
                            encoding, data, nonzero, page_size, False
                        )
                    modes[nonzero] = sub
        except BaseException:
            if lent is not None:
                destination.give_back(lent)
            raise
        if destination is not None and (record or lent is not None or destination.holds_pages):
            destination.sent(batch.page_indices, block, zero, record, lent)
        return self._encoded(batch, modes, segments, payload_nbytes, n_zero, encoding, wall0, cpu0)

    def _encoded(
        self,
        batch: Batch,
        modes: np.ndarray,
        segments: tuple,
        payload_nbytes: int,
        n_zero: int,
        encoding: PageEncoding | None,
        wall0: float,
        cpu0: float | None,
    ) -> Encoded:
        """:meth:`encode`'s frame, with its measurements: the wall time since ``wall0``, and
        the CPU time since ``cpu0`` where this encode samples the thread's clock (see
        :meth:`encode`; ``None``: it does not), else estimated from the last sample."""
        wall_s = time.perf_counter() - wall0
        if cpu0 is not None:
            cpu_s = time.thread_time() - cpu0
            self._cpu_per_wall = cpu_s / wall_s if wall_s > 0 else 1.0
            self._cpu_countdown = CPU_SAMPLE_EVERY
        else:
            cpu_s = wall_s * self._cpu_per_wall
        self._cpu_countdown -= 1
        if encoding is None or encoding.path is None:
            path, device_s = self.probe_path(), None
        else:
            path, device_s = encoding.path, encoding.device_s
            if device_s is not None and not _is_seconds(device_s):
                self._bad_device_time(device_s)
        n, page_size = batch.n_pages, batch.page_size
        stats = Measurements(
            n * page_size,
            payload_nbytes + n + RUN_BYTES * len(batch.runs),
            wall_s,
            cpu_s,
            device_s,
            path,
            n_zero,
        )
        return Encoded(self.name, page_size, batch.runs, modes, segments, stats)

    def _lay_out(
        self,
        encoding: PageEncoding | None,
        data: np.ndarray,
        nonzero: np.ndarray | None,
        page_size: int,
        copy_raw: bool,
    ) -> tuple[tuple, np.ndarray, int]:
        """Payload segments for the non-zero pages (raw pages first, then the blob), their
        modes (a new array) and the segments' size in bytes.

        Applies the raw fall-back: no encoding (``None``), or a blob not smaller than the
        pages it covers, sends those pages raw. ``copy_raw``: ``data`` views memory that may
        change once encode returns, so raw pages are copied rather than viewed.
        """
        n = data.shape[0]
        if encoding is None:
            return _all_raw(data, copy_raw), np.full(n, _RAW, dtype=np.uint8), data.nbytes
        blob, sub = encoding.blob, encoding.modes
        if type(blob) is tuple:
            parts, blob_nbytes = blob, nbytes_of(blob)
        else:
            parts = (blob,)
            blob_nbytes = len(blob) if type(blob) is bytes else memoryview(blob).nbytes
        if sub is None:
            if blob_nbytes < data.nbytes:
                return parts, np.full(n, _ENCODED, dtype=np.uint8), blob_nbytes
            return _all_raw(data, copy_raw), np.full(n, _RAW, dtype=np.uint8), data.nbytes
        sub = self._transform_modes(sub, n)
        n_raw = sub.tobytes().count(_RAW_BYTE)  # one call; the mask only when it is needed
        n_encoded = n - n_raw
        if n_encoded and blob_nbytes >= n_encoded * page_size:
            # encoding did not pay: every non-zero page goes raw
            return _all_raw(data, copy_raw), np.full(n, _RAW, dtype=np.uint8), data.nbytes
        modes = sub.copy()  # the transform's array may be shared
        if not n_raw:
            return (parts if blob_nbytes else ()), modes, blob_nbytes
        raw = _all_raw(data, copy_raw) if n_raw == n else (data[sub == _RAW].reshape(-1),)
        if n_encoded and blob_nbytes:
            return (*raw, *parts), modes, n_raw * page_size + blob_nbytes
        return raw, modes, n_raw * page_size

    def _transform_modes(self, modes: object, n: int) -> np.ndarray:
        """The page modes a transform returned for its ``n`` pages, as uint8, or
        :class:`CodecFailed` naming the codec: one integer per page, ``RAW`` or
        ``ENCODED`` (a delta codec's also above ``ENCODED``, its own forms). Checked here,
        at the source, because the rest travels unchecked until a destination decodes it:
        ``ZERO`` would have the page zero-filled there without a word (the framework found
        the zero pages before the transform ran: it was given none), a cast to uint8 turns
        an int64 256 into that same 0, and a compressor's mode above ``ENCODED`` fails the
        stream's decode midway. Two counts of bytes per batch when the modes are right."""
        arr = np.asarray(modes)
        problem = None
        if arr.shape != (n,) or arr.dtype.kind not in "iu":
            problem = f"{arr.dtype} page modes of shape {arr.shape} for {n} pages"
        elif arr.dtype is not _UINT8 and ((arr < 0) | (arr > MAX_PAGE_MODE)).any():
            problem = f"page mode {arr[(arr < 0) | (arr > MAX_PAGE_MODE)][0]}"
        else:
            arr = arr.astype(_UINT8, copy=False)
            data = arr.tobytes()
            if self.reads_destination:
                bad = arr[(arr == PageMode.ZERO) | (arr > MAX_PAGE_MODE)]
            elif data.count(_RAW_BYTE) + data.count(_ENCODED_BYTE) != n:
                bad = arr[(arr != PageMode.RAW) & (arr != PageMode.ENCODED)]
            else:
                return arr
            if not bad.size:
                return arr
            problem = f"page mode {bad[0]}"
        from migcodec.codecs.registry import faulty_plugin_hint  # registry imports this

        allowed = f"{PageMode.RAW:d} (raw) or {PageMode.ENCODED:d} (encoded)"
        if self.reads_destination:
            allowed += f", or {PageMode.ENCODED + 1:d} to {MAX_PAGE_MODE} (its own forms)"
        raise CodecFailed(
            f"codec {self.name!r} returned {problem} from its transform, which must return "
            f"one mode per page it was given, {allowed}; {faulty_plugin_hint(self.name)}"
        )

    def _bad_device_time(self, device_s: object) -> None:
        """Refuse a transform's modelled device time that is no number of seconds (a
        negative one was an evaluation's damaged table, naming no codec, and a bench's
        negative device rate)."""
        from migcodec.codecs.registry import faulty_plugin_hint  # registry imports this

        raise CodecFailed(
            f"codec {self.name!r} returned a device time of {device_s!r} from its transform, "
            f"which must be a finite number of seconds >= 0, or None; "
            f"{faulty_plugin_hint(self.name)}"
        )

    def probe_path(self) -> CodecPath:
        """The path this instance's requests take when a request does not say
        (:attr:`PageEncoding.path`); codecs with a device say which they expect."""
        return _SOFTWARE  # a global: an enum member is a class look-up, dear when cold

    def decode(self, encoded: Encoded, memory: object) -> None:
        """Write the batch's pages into destination ``memory`` in place.

        Everything is validated before the first write, so a malformed ``encoded`` leaves
        memory untouched; only the pages its runs name are ever written. Runs given as a
        list or another integer dtype are taken as :class:`Batch` takes them.
        """
        view = page_view(memory, encoded.page_size)
        if not view.flags.writeable:
            raise InvalidBatch(
                "destination memory is read-only; decode into writable memory (a numpy "
                "array, bytearray, or mmap opened for writing)"
            )
        runs = as_runs(encoded.runs)
        if runs is not encoded.runs:  # converted: decode the checked array, not the input
            encoded = replace(encoded, runs=runs)
        if runs.shape[0] == 1:  # the common frame, checked on Python integers
            check_run(*runs[0].tolist(), view.shape[0], _ANY_SIZE)
        else:
            check_runs(runs, view.shape[0], max_pages=_ANY_SIZE)
        _check_modes(encoded.modes)
        self.decode_checked(encoded, view)

    def _decode_one_run(self, encoded: Encoded, modes: np.ndarray, view: np.ndarray) -> bool:
        """The common frame, one run of pages all raw or all encoded, decoded with slices
        instead of index arrays; ``False`` (nothing done) for any other frame. The checks
        and messages are :meth:`decode_checked`'s."""
        first, count = encoded.runs[0].tolist()
        kinds = modes.tobytes()
        page_size = encoded.page_size
        payload = encoded.payload_view()
        if kinds.count(_RAW_BYTE) == count:
            _check_raw_payload(payload.nbytes, count, page_size, encoded_follow=False)
            view[first : first + count] = np.frombuffer(payload, np.uint8).reshape(-1, page_size)
            return True
        if min(kinds) < PageMode.ENCODED:
            return False
        current = None
        if self.reads_destination:
            current = view[first : first + count]
            if not self.decodes_in_place:
                current = current.copy()  # a transform may write it, then find it malformed
        out = self._decode_encoded(payload, modes, current, page_size)
        if not (self.reads_destination and self.decodes_in_place):  # else decoded there
            view[first : first + count] = self._decoded_pages(out, count, page_size)
        return True

    def _decoded_pages(self, out: Any, pages: int, page_size: int) -> np.ndarray:
        """A transform's output as ``pages`` rows, or the error that it is not that size."""
        decoded = np.frombuffer(out, dtype=np.uint8)
        if decoded.size != pages * page_size:
            raise DecodeError(
                f"{self.name} decoded {decoded.size} bytes where "
                f"{pages} pages ({pages * page_size} bytes) were expected"
            )
        return decoded.reshape(-1, page_size)

    def _decode_encoded(
        self, blob: memoryview, modes: np.ndarray, current: np.ndarray | None, page_size: int
    ) -> Any:
        """The bytes of the pages whose ``modes`` are ``ENCODED`` or above. A delta codec's
        composition decodes them against ``current``, the destination's present pages (a
        copy, ``DeltaCodec._decode_against``); a compressor has one encoded form, so any
        other mode is malformed before its :meth:`decode_pages` sees the blob."""
        if self.reads_destination:
            return self._decode_against(blob, modes, current, page_size)
        n = modes.shape[0]
        if modes.tobytes().count(_ENCODED_BYTE) != n:
            raise DecodeError(
                f"page mode {int(modes[modes != _ENCODED][0])} is not one of {self.name}'s "
                f"modes (zero {PageMode.ZERO:d}, raw {PageMode.RAW:d}, "
                f"encoded {PageMode.ENCODED:d})"
            )
        return self.decode_pages(blob, n, page_size)

    def decode_checked(self, encoded: Encoded, view: np.ndarray) -> None:
        """:meth:`decode` into a ``(n_pages, page_size)`` view whose runs and page modes the
        caller has already checked against it (a wire reader checks each frame as it parses
        it, so they are not checked twice). The payload is still checked in full before the
        first write."""
        page_size = encoded.page_size
        modes = np.asarray(encoded.modes, dtype=np.uint8)
        runs = encoded.runs
        one_run = runs.shape[0] == 1 and modes.shape[0] == runs[0, 1]
        if one_run and self._decode_one_run(encoded, modes, view):
            return
        indices = expand_runs(runs)
        if modes.shape != indices.shape:
            raise DecodeError(f"{modes.shape[0]} page modes for a batch of {indices.size} pages")
        payload = encoded.payload_view()
        raw_idx = indices[modes == PageMode.RAW]
        raw_nbytes = raw_idx.size * page_size
        enc_mask = modes >= PageMode.ENCODED
        enc_idx = indices[enc_mask]
        _check_raw_payload(payload.nbytes, raw_idx.size, page_size, bool(enc_idx.size))
        decoded = None
        if enc_idx.size:
            current = view[enc_idx] if self.reads_destination else None
            out = self._decode_encoded(payload[raw_nbytes:], modes[enc_mask], current, page_size)
            decoded = self._decoded_pages(out, enc_idx.size, page_size)
        view[indices[modes == PageMode.ZERO]] = 0
        if raw_idx.size:
            raw = np.frombuffer(payload[:raw_nbytes], dtype=np.uint8).reshape(-1, page_size)
            view[rows_as_slice(raw_idx)] = raw
        if decoded is not None:
            view[rows_as_slice(enc_idx)] = decoded


def _check_modes(modes: object) -> None:
    """Raise :class:`DecodeError` unless ``modes`` is one defined page mode per page. The
    values are checked as given, before :meth:`Codec.decode_checked` casts them to uint8:
    the cast would turn an int64 256 into 0, a valid mode, and -1 into 255."""
    arr = np.asarray(modes)
    if arr.ndim != 1:
        raise DecodeError(f"page modes must be a 1-D array, one per page, got shape {arr.shape}")
    if arr.dtype is _UINT8:  # what every encoder makes
        bad = arr > MAX_PAGE_MODE
    elif arr.dtype.kind in "iu" or not arr.size:
        bad = (arr < 0) | (arr > MAX_PAGE_MODE)
    else:
        raise DecodeError(
            f"page modes must be integers 0 to {MAX_PAGE_MODE}, got {arr.dtype} values"
        )
    if bad.any():
        raise DecodeError(
            f"page mode {arr[bad][0]} is not defined; page modes are 0 to {MAX_PAGE_MODE}"
        )


def _check_raw_payload(nbytes: int, raw_pages: int, page_size: int, encoded_follow: bool) -> None:
    """A payload holds its raw pages first, then the encoded pages' blob, if any."""
    need = raw_pages * page_size
    if nbytes < need:
        raise DecodeError(
            f"payload of {nbytes} bytes is shorter than its {raw_pages} raw pages ({need} bytes)"
        )
    if not encoded_follow and nbytes != need:
        raise DecodeError(
            f"payload has {nbytes - need} bytes beyond its raw pages but no encoded page"
        )
