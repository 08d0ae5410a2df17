"""FrameWriter: encoded batches to a migration stream."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from migcodec.codecs import Codec, Encoded
from migcodec.codecs.batch import check_run, check_runs
from migcodec.codecs.encoded import MAX_PAGE_MODE
from migcodec.codecs.registry import codec_package
from migcodec.hashing import checksum
from migcodec.wire import format as fmt
from migcodec.wire.handshake import read_reply
from migcodec.wire.io import Sink
from migcodec.wire.preamble import Preamble, validate_geometry

_RUN_DTYPE = np.dtype(fmt.RUN_DTYPE)


@dataclass(slots=True)
class PreparedFrame:
    """A frame ready to send: ``parts`` (header first) of ``nbytes`` in all, checksummed
    as frame number ``index`` of its stream."""

    index: int
    parts: list
    nbytes: int
    n_pages: int = 0


def _build(
    index: int,
    ftype: int,
    payload: Sequence,
    codec_id: int,
    flags: int,
    run_count: int,
    page_count: int,
    prefix: Sequence,
) -> PreparedFrame:
    """Header (with the checksum seeded by ``index``), ``prefix``, then ``payload``."""
    payload_len = 0
    for part in payload:
        payload_len += part.nbytes if type(part) is np.ndarray else memoryview(part).nbytes
    head = fmt.FRAME_HEAD.pack(
        fmt.FRAME_MAGIC, ftype, codec_id, flags, run_count, page_count, payload_len
    )
    body = [*prefix, *payload]
    header = head + fmt.CHECKSUM.pack(checksum([head, *body], seed=index))
    size = fmt.FRAME_HEADER.size + payload_len + sum(len(part) for part in prefix)
    return PreparedFrame(index, [header, *body], size)


class FrameWriter:
    """Writes the preamble at construction, then one frame per call.

    With ``await_reply_from`` (the socket from the destination) the constructor waits for
    the destination to accept the codec table and raises ``HandshakeRefused`` if it does not.

    ``codecs`` become the stream's codec table (ids in the given order), each with the
    Python package that provides it when that is not migcodec (a version 2 preamble). The
    writer holds no payload: segments go straight from the ``Encoded`` (and its pooled
    buffers) to the sink.
    """

    def __init__(
        self,
        target: object,
        page_size: int,
        memory_pages: int,
        codecs: Sequence[Codec],
        max_batch_pages: int = 64,
        await_reply_from: object | None = None,
    ) -> None:
        for name, value in (
            ("page_size", page_size),
            ("memory_pages", memory_pages),
            ("max_batch_pages", max_batch_pages),
        ):
            # packed into the preamble: struct's error named none (numpy's integers pass)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool):
                raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
        validate_geometry(page_size, memory_pages, max_batch_pages)
        if len(codecs) > fmt.MAX_CODECS:
            raise ValueError(f"at most {fmt.MAX_CODECS} codecs per stream")
        for codec in codecs:
            if not isinstance(codec, Codec):
                raise TypeError(
                    f"a stream's codecs are Codec instances (get_codec({codec!r}) builds one), "
                    f"got {type(codec).__name__} {codec!r}"
                )
            codec.check_page_size(page_size)  # refused here, before the preamble
        self.page_size = page_size
        self.memory_pages = memory_pages
        self.max_batch_pages = max_batch_pages
        self.codecs = dict(enumerate(codecs))
        self._ids = {codec.config_json(): i for i, codec in self.codecs.items()}
        names = [codec.name for codec in codecs]
        self._ids_by_name = {n: names.index(n) for n in names if names.count(n) == 1}
        self._sink = Sink(target)
        self.frames = 0
        self.pages_sent = 0
        self.bytes_written = 0
        packages = {i: codec_package(codec) for i, codec in self.codecs.items()}
        #: whether the destination's replies carry checksums (asked for by a writer that
        #: waits for them: see migcodec.wire.handshake); read_reply takes it
        self.replies_checksummed = await_reply_from is not None
        preamble = Preamble(
            page_size,
            memory_pages,
            max_batch_pages,
            {i: codec.get_config() for i, codec in self.codecs.items()},
            flags=fmt.PREAMBLE_REPLY_CHECKSUM if self.replies_checksummed else 0,
            packages={i: p for i, p in packages.items() if p},
        ).encode()
        self._sink.write_parts([preamble])
        self.bytes_written += len(preamble)
        if await_reply_from is not None:
            self._sink.flush()
            read_reply(await_reply_from, checksummed=True)

    def codec_id(self, codec: Codec | str) -> int:
        """The table id of a codec instance (by config) or of a uniquely named codec."""
        if isinstance(codec, Codec):
            key = codec.config_json()
            if key in self._ids:
                return self._ids[key]
            codec = codec.name
        if codec in self._ids_by_name:
            return self._ids_by_name[codec]
        raise KeyError(f"codec {codec!r} is not (uniquely) in this stream's codec table")

    def _frame(
        self,
        ftype: int,
        payload: Sequence,
        codec_id: int = 0,
        flags: int = 0,
        run_count: int = 0,
        page_count: int = 0,
        prefix: Sequence = (),
    ) -> int:
        """Write one frame: header, ``prefix`` (runs and modes), then ``payload``."""
        frame = _build(self.frames, ftype, payload, codec_id, flags, run_count, page_count, prefix)
        return self._send(frame)

    def _send(self, frame: PreparedFrame) -> int:
        self._sink.write_parts(frame.parts)
        self.frames += 1
        self.bytes_written += frame.nbytes
        return frame.nbytes

    def prepare_batch(self, encoded: Encoded, codec_id: int, index: int) -> PreparedFrame:
        """The frame of one encoded batch, to go out as frame number ``index``: header,
        checksum and parts, built without touching the writer's state, so any thread may
        build frames ahead (an engine, right after encoding) while another writes them
        (:meth:`write_prepared`). The parts view ``encoded``'s buffers."""
        if encoded.page_size != self.page_size:
            raise ValueError(
                f"batch of {encoded.page_size}-byte pages in a {self.page_size}-byte stream"
            )
        modes = encoded.modes
        n_pages = modes.shape[0]
        if not 0 < n_pages <= self.max_batch_pages:
            raise ValueError(
                f"batch of {n_pages} pages; the stream allows 1..{self.max_batch_pages}"
            )
        if codec_id not in self.codecs:
            raise KeyError(f"codec id {codec_id} is not in this stream's codec table")
        runs = encoded.runs
        # a run below page 0 or of no pages (an Encoded made by hand: a Batch checks its
        # runs) was struct's "argument out of range", or wrapped in the unsigned run
        if runs.shape[0] == 1:
            first, count = runs[0].tolist()
            end = first + count
            if first < 0 or count < 1:
                check_run(first, count, self.memory_pages, self.max_batch_pages)
            run_bytes = fmt.RUN.pack(first, count)
        else:
            least_first, least_count = runs.min(axis=0).tolist()  # one call: the hot path
            if least_first < 0 or least_count < 1:  # the batch layer's words for it
                check_runs(runs, self.memory_pages, self.max_batch_pages)
            end = int((runs[:, 0] + runs[:, 1]).max())
            wire_runs = np.empty(runs.shape[0], dtype=_RUN_DTYPE)
            wire_runs["first"] = runs[:, 0]
            wire_runs["count"] = runs[:, 1]
            run_bytes = wire_runs.view(np.uint8)  # a byte view: no copy
        if end > self.memory_pages:
            # a batch over larger memory than the stream's: the destination refused the
            # frame, once the source had sent it
            raise ValueError(
                f"batch names pages up to {end - 1}, beyond the stream's memory of "
                f"{self.memory_pages} pages; encode batches of the memory the stream was "
                "opened for"
            )
        if modes.dtype != np.uint8 or not modes.flags.c_contiguous:
            # checked before the cast: a mode of 256 went out as 0, a zero page, and the
            # destination zeroed the page (one of 255 or less is its decoder's to refuse)
            if modes.dtype.kind not in "iu" or int(modes.min()) < 0 or int(modes.max()) > 255:
                raise ValueError(
                    f"page modes must be whole numbers 0..{MAX_PAGE_MODE}, got {modes.dtype} "
                    f"from {modes.min()} to {modes.max()}"
                )
            modes = np.ascontiguousarray(modes, dtype=np.uint8)
        frame = _build(
            index,
            fmt.FrameType.DATA,
            encoded.segments,
            codec_id,
            0,
            runs.shape[0],
            n_pages,
            (run_bytes, modes),
        )
        frame.n_pages = n_pages
        return frame

    def write_prepared(self, frame: PreparedFrame) -> int:
        """Write a frame from :meth:`prepare_batch`; returns the bytes written. A frame
        built for another position in the stream is refused: its checksum, seeded with
        its index, would fail at the destination."""
        if frame.index != self.frames:
            raise ValueError(f"frame prepared as number {frame.index}, written as {self.frames}")
        size = self._send(frame)
        self.pages_sent += frame.n_pages
        return size

    def write_batch(self, encoded: Encoded, codec_id: int | None = None) -> int:
        """Frame one encoded batch; returns the bytes written."""
        if codec_id is None:
            codec_id = self.codec_id(encoded.codec)
        return self.write_prepared(self.prepare_batch(encoded, codec_id, self.frames))

    def end_iteration(self, iteration: int, pages: int) -> int:
        return self._frame(fmt.FrameType.END_ITERATION, [fmt.END_ITERATION.pack(iteration, pages)])

    def end_stream(self, digest: bytes | None = None) -> int:
        """Close the stream with totals (and a memory digest) the destination must match."""
        body = [fmt.END_STREAM.pack(self.pages_sent, self.frames)]
        flags = 0
        if digest is not None:
            if len(digest) > fmt.MAX_DIGEST:
                raise ValueError(f"digest longer than {fmt.MAX_DIGEST} bytes")
            body.append(digest)
            flags = fmt.FLAG_DIGEST
        size = self._frame(fmt.FrameType.END_STREAM, body, flags=flags)
        self.flush()
        return size

    def abort(self, reason: str) -> int:
        """Tell the destination the migration failed, and why."""
        if not isinstance(reason, str):
            raise TypeError(f"an abort's reason is a str, got {type(reason).__name__}")
        size = self._frame(fmt.FrameType.ABORT, [fmt.encode_reason(reason)])
        self.flush()
        return size

    def flush(self) -> None:
        self._sink.flush()
