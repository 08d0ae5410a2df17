"""FrameReader: a migration stream from an untrusted peer, into destination memory.

Order of checks for every frame: header magic and type, codec id, every length against its
bound (before any allocation), the checksum over header and body (before any parsing of the
body), runs against memory, then decoding, which validates fully before writing. A bad
frame is a specific :class:`WireError` naming the frame index and byte offset.

What a bad frame may write: nothing, with one exception. While :meth:`FrameReader.receive`
applies a stream, a frame of one run whose pages all travel as they are (``RAW``) is
received straight into the pages that run names, once the run has been checked against
memory: a copy through the frame buffer would cost the destination as much as the socket's
own copy, the largest part of a migration's first pass. If such a frame then fails its
checksum, or the stream ends inside it, those pages (never any outside memory) hold what
arrived, and the stream fails all the same: the memory of a failed stream is never vouched
for. Every other frame is verified and decoded before any byte of it is written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from migcodec.codecs import (
    Codec,
    CodecError,
    DecodeError,
    Encoded,
    InvalidBatch,
    get_codec,
    page_view,
)
from migcodec.codecs.batch import check_run, check_runs
from migcodec.codecs.bounded import codec_watch
from migcodec.codecs.encoded import MAX_PAGE_MODE, PageMode
from migcodec.hashing import RunningDigest, checksum
from migcodec.interrupts import from_signal
from migcodec.wire import format as fmt
from migcodec.wire.errors import (
    ChecksumMismatch,
    CorruptPayload,
    DigestMismatch,
    FrameTooLarge,
    IncompleteStream,
    MalformedFrame,
    MemoryMismatch,
    PeerTimeout,
    RunOutOfBounds,
    StreamAborted,
    TrailingData,
    TruncatedStream,
    UnknownCodecId,
    WireError,
)
from migcodec.wire.handshake import send_reply
from migcodec.wire.io import DeadlinePassed, PeerIdle, Source
from migcodec.wire.preamble import Preamble, read_preamble, resolve_codecs

_RAW_BYTE = bytes([PageMode.RAW])


@dataclass
class Frame:
    """One verified frame. A data frame's ``encoded`` views the reader's buffer: apply it
    before reading the next frame."""

    index: int
    offset: int
    type: fmt.FrameType
    codec_id: int = 0
    encoded: Encoded | None = None
    iteration: int = 0
    pages: int = 0
    frames: int = 0
    digest: bytes | None = None
    reason: str = ""
    #: its pages were received straight into destination memory: there is nothing to apply
    in_place: bool = False


@dataclass
class StreamSummary:
    """What a completed stream delivered."""

    frames: int = 0
    data_frames: int = 0
    pages: int = 0
    bytes_read: int = 0
    iterations: int = 0
    digest_verified: bool = False
    pages_by_codec: dict[str, int] = field(default_factory=dict)


class FrameReader:
    """Reads and checks the preamble at construction; then frames, one at a time.

    ``resolve`` turns a codec config into a codec (the registry by default); a codec that
    cannot be resolved refuses the whole stream before any page is read.
    ``max_batch_pages`` is this side's own bound, whatever the peer announces. With
    ``reply_to`` (the socket back to the source) the reader answers the preamble: accept,
    or refuse naming what is wrong (a missing codec and what to install, a version or
    flags of a newer migcodec, a damaged preamble). ``admit`` sees the preamble
    before that answer (e.g. to open destination memory of the announced size); a
    :class:`WireError` it raises refuses the stream with its message.
    """

    def __init__(
        self,
        source: object,
        resolve: Callable[[dict[str, Any]], Codec] = get_codec,
        max_batch_pages: int = fmt.MAX_BATCH_PAGES,
        reply_to: object | None = None,
        max_memory_bytes: int | None = None,
        admit: Callable[[Preamble], None] | None = None,
        max_memory_note: str = "",
    ) -> None:
        self._source = Source(source)
        self.offset = 0
        self.index = 0
        self.ended = False
        self._reached = 0  # the end of the pages receive() has written (see _follow)
        try:
            # inside: a preamble of a newer version (or a damaged one) is answered with why,
            # so that the source says what to upgrade, not that the destination hung up
            self.preamble: Preamble = read_preamble(self._read_exact)
            self._check_limits(max_batch_pages, max_memory_bytes, max_memory_note)
            self.codecs = resolve_codecs(self.preamble, resolve)
            self._allocate_buffers()
            if admit is not None:
                admit(self.preamble)
        except WireError as exc:
            if reply_to is not None:
                # best effort: a source that hung up cannot hear why, and this error says it
                with contextlib.suppress(WireError):
                    send_reply(reply_to, False, exc.detail, self.replies_checksummed)
            raise
        if reply_to is not None:
            send_reply(reply_to, True, checksummed=self.replies_checksummed)

    @property
    def replies_checksummed(self) -> bool:
        """Whether the source asked for checksums after this side's replies (a preamble
        not read whole asked for nothing this side can know)."""
        preamble = getattr(self, "preamble", None)
        return preamble is not None and bool(preamble.flags & fmt.PREAMBLE_REPLY_CHECKSUM)

    def _allocate_buffers(self) -> None:
        """The frame header's and body's buffers, of the preamble's bounds (up to
        :data:`~migcodec.wire.format.MAX_BATCH_BYTES` and its runs), made before the
        source is answered: a host that cannot hold them refuses the stream, and tells the
        source, instead of accepting it and failing on its first frame."""
        self._header = bytearray(fmt.FRAME_HEADER.size)
        data_bound = self.preamble.max_batch_pages * (fmt.RUN.size + 1 + self.preamble.page_size)
        control_bound = max(fmt.MAX_ABORT_REASON, fmt.END_STREAM.size + fmt.MAX_DIGEST)
        size = max(data_bound, control_bound)
        try:
            self._body = bytearray(size)
        except MemoryError:
            raise FrameTooLarge(
                f"this destination cannot allocate the {size}-byte frame buffer that batches "
                f"of {self.preamble.max_batch_pages} pages of {self.preamble.page_size} bytes "
                "need; send smaller batches",
                -1,
                0,
            ) from None

    def _check_limits(self, max_batch_pages: int, max_memory_bytes: int | None, note: str) -> None:
        """This side's own bounds, whatever the peer announces; ``note`` follows the
        memory bound in its refusal (what the bound is, and what takes more)."""
        if self.preamble.max_batch_pages > max_batch_pages:
            raise FrameTooLarge(
                f"peer batches of {self.preamble.max_batch_pages} pages exceed this side's "
                f"limit of {max_batch_pages}",
                -1,
                0,
            )
        memory_bytes = self.preamble.memory_pages * self.preamble.page_size
        if max_memory_bytes is not None and memory_bytes > max_memory_bytes:
            raise MemoryMismatch(
                f"the stream is for {memory_bytes} bytes of memory; this destination accepts "
                f"at most {max_memory_bytes}{note}",
                -1,
                0,
            )

    @property
    def page_size(self) -> int:
        return self.preamble.page_size

    @property
    def memory_pages(self) -> int:
        return self.preamble.memory_pages

    def _read_exact(self, n: int, frame: int, read: tuple = (0, 0)) -> bytes:
        buf = bytearray(n)
        self._fill(memoryview(buf), frame, read=read)
        return bytes(buf)

    def _fill(
        self, view: memoryview, frame: int, at_boundary: bool = False, read: tuple = (0, 0)
    ) -> None:
        """Fill ``view`` or raise. ``read`` is ``(bytes before view, length of the whole
        read)`` when ``view`` is a part of one read, which is what a short read names."""
        try:
            got = self._source.fill(view)
        except PeerIdle as exc:  # a TimedSocket says which limit ran out
            raise PeerTimeout(
                f"{exc}; check that the source is still running, or allow it longer (--timeout)",
                frame,
                self.offset,
            ) from exc
        except DeadlinePassed as exc:
            raise PeerTimeout(
                f"{exc} before the stream ended; allow the migration longer (--deadline)",
                frame,
                self.offset,
            ) from exc
        except TimeoutError as exc:  # a plain socket timeout: the peer went silent
            raise PeerTimeout(
                f"the peer sent nothing for the receive timeout ({exc})", frame, self.offset
            ) from exc
        except OSError as exc:  # a reset connection is a broken stream, like an early EOF
            raise TruncatedStream(
                f"connection failed mid-stream ({type(exc).__name__}: {exc})", frame, self.offset
            ) from exc
        if got < len(view):
            if at_boundary and got == 0:
                raise IncompleteStream(
                    "stream ended before its end-of-stream frame; the migration is incomplete",
                    frame,
                    self.offset,
                )
            whole = read[1] or len(view)
            raise TruncatedStream(
                f"stream ended {whole - read[0] - got} bytes short of a {whole}-byte read",
                frame,
                self.offset + got,
            )
        self.offset += got

    def read_frame(self) -> Frame:
        """The next verified frame. Raises a :class:`WireError` subclass, never anything else."""
        return self._read_frame(None)

    def _read_frame(self, memory: np.ndarray | None) -> Frame:
        """:meth:`read_frame`; with ``memory`` (pages checked by :meth:`_view`), a frame that
        qualifies (see the module's docstring) is received into it, and its ``Frame`` says
        so (``in_place``)."""
        if self.ended:
            raise MalformedFrame("read past the end-of-stream frame", self.index, self.offset)
        index, start = self.index, self.offset
        header = memoryview(self._header)
        self._fill(header, index, at_boundary=True)
        magic, ftype, codec_id, flags, run_count, page_count, payload_len, expected = (
            fmt.FRAME_HEADER.unpack(header)
        )
        if magic != fmt.FRAME_MAGIC:
            raise MalformedFrame(f"bad frame magic {bytes(magic)!r}", index, start)
        body_len = self._check_header(
            index, start, ftype, codec_id, flags, run_count, page_count, payload_len
        )
        body = memoryview(self._body)[:body_len]
        landed = None
        prefix = fmt.RUN.size + page_count  # a one-run frame's run and modes
        if memory is not None and ftype == fmt.FrameType.DATA and run_count == 1:
            landed = self._fill_in_place(body, prefix, memory, index, payload_len)
        else:
            self._fill(body, index)
        parts = [header[:16], body] if landed is None else [header[:16], body[:prefix], landed]
        if checksum(parts, seed=index) != expected:
            raise ChecksumMismatch(
                "checksum does not match: the frame is corrupt, or frames were lost, "
                "repeated or reordered",
                index,
                start,
            )
        self.index += 1
        frame = Frame(index, start, fmt.FrameType(ftype), codec_id)
        if landed is not None:
            frame.encoded = self._parse_data(
                index, start, codec_id, run_count, page_count, body[:prefix]
            )
            frame.encoded.segments = (landed,)  # the pages, where they landed
            frame.in_place = True
        elif ftype == fmt.FrameType.DATA:
            frame.encoded = self._parse_data(index, start, codec_id, run_count, page_count, body)
        elif ftype == fmt.FrameType.END_ITERATION:
            frame.iteration, frame.pages = fmt.END_ITERATION.unpack(body)
        elif ftype == fmt.FrameType.END_STREAM:
            frame.pages, frame.frames = fmt.END_STREAM.unpack(body[: fmt.END_STREAM.size])
            if flags & fmt.FLAG_DIGEST:
                frame.digest = bytes(body[fmt.END_STREAM.size :])
            self.ended = True
        else:
            frame.reason = bytes(body).decode("utf-8", "replace")
        return frame

    def _fill_in_place(
        self, body: memoryview, prefix: int, memory: np.ndarray, index: int, payload_len: int
    ) -> memoryview | None:
        """Read a one-run data frame's body: its run and modes (the first ``prefix`` bytes)
        into the frame buffer, then, when the run lies in memory and every page is ``RAW``,
        its payload into the pages the run names (returned, for the checksum); otherwise
        into the frame buffer (and ``None``). Nothing here is verified yet: a run that
        fails these checks is read the usual way, so that the checksum, not the run,
        reports a damaged frame."""
        self._fill(body[:prefix], index, read=(0, len(body)))
        first, count = fmt.RUN.unpack_from(body)
        pages = prefix - fmt.RUN.size
        if (
            count == pages
            and first + count <= self.memory_pages
            and payload_len == pages * self.page_size
            and bytes(body[fmt.RUN.size : prefix]).count(_RAW_BYTE) == pages
        ):
            landed = memoryview(memory[first : first + count].reshape(-1))
        else:
            landed = None
        self._fill(body[prefix:] if landed is None else landed, index, read=(prefix, len(body)))
        return landed

    def _check_header(
        self, index, start, ftype, codec_id, flags, run_count, page_count, payload_len
    ) -> int:
        """Validate header fields against the stream's bounds; return the body length."""
        if ftype == fmt.FrameType.DATA:
            if codec_id not in self.codecs:
                raise UnknownCodecId(
                    f"codec id {codec_id} is not in the stream's codec table "
                    f"({sorted(self.codecs)})",
                    index,
                    start,
                )
            limit = self.preamble.max_batch_pages
            if not 0 < run_count <= limit or not 0 < page_count <= limit:
                raise FrameTooLarge(
                    f"{run_count} runs / {page_count} pages; the stream allows 1..{limit}",
                    index,
                    start,
                )
            if payload_len > page_count * self.page_size:
                raise FrameTooLarge(
                    f"payload of {payload_len} bytes for {page_count} pages "
                    f"(at most {page_count * self.page_size})",
                    index,
                    start,
                )
            if flags:
                raise MalformedFrame(f"unknown data frame flags {flags:#x}", index, start)
            return run_count * fmt.RUN.size + page_count + payload_len
        if ftype not in fmt.FrameType.__members__.values():
            raise MalformedFrame(f"unknown frame type {ftype}", index, start)
        if codec_id or run_count or page_count:
            raise MalformedFrame("control frame with codec, runs or pages", index, start)
        if ftype == fmt.FrameType.END_ITERATION:
            ok, bound = payload_len == fmt.END_ITERATION.size and not flags, None
        elif ftype == fmt.FrameType.END_STREAM:
            bound = fmt.END_STREAM.size + (fmt.MAX_DIGEST if flags & fmt.FLAG_DIGEST else 0)
            ok = flags & ~fmt.FLAG_DIGEST == 0 and fmt.END_STREAM.size <= payload_len <= bound
            ok = ok and (flags & fmt.FLAG_DIGEST or payload_len == fmt.END_STREAM.size)
        else:
            ok = payload_len <= fmt.MAX_ABORT_REASON and not flags
        if not ok:
            raise FrameTooLarge(
                f"{fmt.FrameType(ftype).name} frame with payload of {payload_len} bytes "
                f"and flags {flags:#x}",
                index,
                start,
            )
        return payload_len

    def _parse_data(self, index, start, codec_id, run_count, page_count, body) -> Encoded:
        runs_end = run_count * fmt.RUN.size
        if run_count == 1:  # the common frame: checked on Python integers, same messages
            first, count = fmt.RUN.unpack_from(body)
            if first >= self.memory_pages:
                raise RunOutOfBounds(
                    f"run 0 starts at page {first}, beyond memory of {self.memory_pages} pages",
                    index,
                    start,
                )
            try:
                n_pages = check_run(first, count, self.memory_pages, self.preamble.max_batch_pages)
            except InvalidBatch as exc:
                raise RunOutOfBounds(str(exc), index, start) from exc
            runs = np.array([[first, count]], dtype=np.int64)
        else:
            runs = self._parse_runs(index, start, body[:runs_end])
            n_pages = int(runs[:, 1].sum())
        if n_pages != page_count:
            raise MalformedFrame(
                f"runs name {n_pages} pages but the header says {page_count}", index, start
            )
        modes = np.frombuffer(body[runs_end : runs_end + page_count], dtype=np.uint8)
        if modes.max() > MAX_PAGE_MODE:
            raise MalformedFrame(f"undefined page mode {int(modes.max())}", index, start)
        payload = body[runs_end + page_count :]
        codec = self.codecs[codec_id]
        return Encoded(codec.name, self.page_size, runs, modes, (payload,) if payload else ())

    def _parse_runs(self, index, start, raw) -> np.ndarray:
        """Several runs, checked against memory and each other (:func:`check_runs`)."""
        raw_runs = np.frombuffer(raw, dtype=fmt.RUN_DTYPE)
        first = raw_runs["first"]
        # on the unsigned wire value: a first page >= 2**63 would wrap negative as int64
        if (first >= self.memory_pages).any():
            bad = int(np.flatnonzero(first >= self.memory_pages)[0])
            raise RunOutOfBounds(
                f"run {bad} starts at page {int(first[bad])}, beyond memory of "
                f"{self.memory_pages} pages",
                index,
                start,
            )
        runs = np.stack([first.astype(np.int64), raw_runs["count"].astype(np.int64)], axis=1)
        try:
            check_runs(runs, self.memory_pages, self.preamble.max_batch_pages)
        except InvalidBatch as exc:
            raise RunOutOfBounds(str(exc), index, start) from exc
        return runs

    def _view(self, memory: object) -> np.ndarray:
        """``memory`` as pages, refused (:class:`MemoryMismatch`) unless it is exactly the
        stream's memory: a buffer of whole pages of the announced size and number."""
        try:
            view = page_view(memory, self.page_size)
        except InvalidBatch as exc:
            raise MemoryMismatch(
                f"destination memory cannot hold this stream's {self.page_size}-byte pages: "
                f"{exc}; give it {self.memory_pages} pages of {self.page_size} bytes "
                f"({self.memory_pages * self.page_size} bytes)"
            ) from exc
        if view.shape[0] != self.memory_pages:
            raise MemoryMismatch(
                f"destination memory has {view.shape[0]} pages; the stream is for "
                f"{self.memory_pages}"
            )
        if not view.flags.writeable:
            raise MemoryMismatch(
                "destination memory is read-only; give a writable buffer (a numpy array, "
                "a bytearray, or an mmap opened for writing)"
            )
        return view

    def apply(self, frame: Frame, memory: object) -> None:
        """Decode a data frame into destination memory (only the pages it names)."""
        self._decode(frame, self._view(memory))

    def _decode(self, frame: Frame, view: np.ndarray) -> None:
        """:meth:`apply` into memory already checked by :meth:`_view`."""
        codec = self.codecs[frame.codec_id]
        # _parse_data checked runs and modes; the call is watched: a thread waiting for this
        # one names a codec stuck in it (migcodec.codecs.bounded)
        try:
            codec_watch().calling(codec, "decode", codec.decode_checked, frame.encoded, view)
        except (DecodeError, InvalidBatch, CodecError) as exc:
            raise CorruptPayload(f"{codec.name}: {exc}", frame.index, frame.offset) from exc
        # a codec bug on hostile input is still a wire error: a plugin's SystemExit(0)
        # ended a destination with success and no pages, a GeneratorExit in a traceback
        except BaseException as exc:
            if from_signal(exc):  # Ctrl-C or SIGTERM while decoding: the command's end
                raise
            raise CorruptPayload(
                f"{codec.name} failed on this payload: {type(exc).__name__}: {exc}",
                frame.index,
                frame.offset,
            ) from exc

    def __iter__(self) -> Iterator[Frame]:
        """Frames up to and including end of stream; an abort frame raises."""
        return self._frames(None)

    def _frames(self, memory: np.ndarray | None) -> Iterator[Frame]:
        while not self.ended:
            frame = self._read_frame(memory)
            if frame.type == fmt.FrameType.ABORT:
                raise StreamAborted(frame.reason, frame.index, frame.offset)
            yield frame

    def receive(self, memory: object, verify_digest: bool = True) -> StreamSummary:
        """Apply a whole stream to ``memory``; return only if it completed and matched.

        Bytes after the end-of-stream frame are :class:`TrailingData`. A stream whose end
        carried no digest returns with ``digest_verified`` false: whoever reports success
        must check it (:func:`~migcodec.engine.destination.receive_migration` refuses such
        a stream)."""
        view = self._view(memory)
        # the digest is hashed as pages arrive, while they are in cache (see _follow)
        running = RunningDigest(view) if verify_digest else None
        return self._receive(view, running)

    def _receive(self, view: np.ndarray, running: RunningDigest | None) -> StreamSummary:
        summary = StreamSummary()
        iteration_pages = 0  # pages of the pass under way, which its end frame must count
        for frame in self._frames(view):
            summary.frames += 1
            if frame.type == fmt.FrameType.DATA:
                if not frame.in_place:
                    self._decode(frame, view)
                summary.data_frames += 1
                n_pages = frame.encoded.n_pages
                summary.pages += n_pages
                iteration_pages += n_pages
                name = self.codecs[frame.codec_id].name
                summary.pages_by_codec[name] = summary.pages_by_codec.get(name, 0) + n_pages
                if running is not None:
                    self._follow(running, frame.encoded.runs, summary.iterations == 0)
            elif frame.type == fmt.FrameType.END_ITERATION:
                if frame.iteration != summary.iterations or frame.pages != iteration_pages:
                    raise MalformedFrame(
                        f"end of pass {frame.iteration} reports {frame.pages} pages; this is "
                        f"pass {summary.iterations}, which delivered {iteration_pages} pages: "
                        "the sender lost count of what it sent",
                        frame.index,
                        frame.offset,
                    )
                summary.iterations += 1
                iteration_pages = 0
            elif frame.type == fmt.FrameType.END_STREAM:
                self._verify_end(frame, summary, running)
        if self._source.pending():
            raise TrailingData(
                "bytes follow the end-of-stream frame; a stream ends with that frame, so this "
                "one was not written by a migcodec writer (or two streams were joined)",
                self.index,
                self.offset,
            )
        summary.bytes_read = self.offset
        return summary

    def _follow(self, running: RunningDigest, runs: np.ndarray, first_pass: bool) -> None:
        """Keep the running digest true to memory after a frame wrote ``runs``.

        Pages written below what is hashed are hashed again (from a checkpoint before
        them). In the first pass, a frame that continues the hashed prefix is hashed at
        once: a migration's first pass sends memory in order, so the digest is ready when
        the stream ends instead of reading all of memory then. Later passes only rewind:
        they resend pages from all over memory, and hashing ahead there could hash memory
        once per pass; what they leave is hashed once, at the end. So does a first-pass
        frame that rewrites pages already hashed: hashed again at once, a peer's frames
        of 68 bytes that each rewrote the same 64 MiB of zero pages had it hash 64 MiB
        apiece."""
        page_size = self.page_size
        if runs.shape[0] == 1:
            first, count = runs[0].tolist()
            end = first + count
        else:
            first, count = int(runs[:, 0].min()), 0
            end = int((runs[:, 0] + runs[:, 1]).max())
        low = first * page_size
        ahead = first_pass and count and low >= self._reached  # not a rewrite
        self._reached = max(self._reached, end * page_size)
        running.written(low)
        if ahead:
            running.extend(low, low + count * page_size)

    def _verify_end(self, frame, summary, running: RunningDigest | None) -> None:
        if frame.pages != summary.pages or frame.frames != frame.index:
            raise DigestMismatch(
                f"sender reports {frame.pages} pages in {frame.frames} frames; received "
                f"{summary.pages} pages in {frame.index} frames",
                frame.index,
                frame.offset,
            )
        if frame.digest is not None and running is not None:
            if running.digest(self._source.check_deadline) != frame.digest:
                raise DigestMismatch(
                    "destination memory digest differs from the source's",
                    frame.index,
                    frame.offset,
                )
            summary.digest_verified = True
