"""FrameWriter: encoded batches to a migration stream."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from migcodec.codecs import Codec, Encoded
from migcodec.codecs.registry import codec_package
from migcodec.hashing import checksum
from migcodec.wire import format as fmt
from migcodec.wire.handshake import read_reply
from migcodec.wire.io import Sink
from migcodec.wire.preamble import Preamble, validate_geometry


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
        validate_geometry(page_size, memory_pages, max_batch_pages)
        if len(codecs) > fmt.MAX_CODECS:
            raise ValueError(f"at most {fmt.MAX_CODECS} codecs per stream")
        for codec in codecs:
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
        preamble = Preamble(
            page_size,
            memory_pages,
            max_batch_pages,
            {i: codec.get_config() for i, codec in self.codecs.items()},
            packages={i: p for i, p in packages.items() if p},
        ).encode()
        self._sink.write_parts([preamble])
        self.bytes_written += len(preamble)
        if await_reply_from is not None:
            self._sink.flush()
            read_reply(await_reply_from)

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
        payload_len = sum(memoryview(p).nbytes for p in payload)
        head = fmt.FRAME_HEADER.pack(
            fmt.FRAME_MAGIC, ftype, codec_id, flags, run_count, page_count, payload_len, 0
        )[:16]
        body = [*prefix, *payload]
        header = head + fmt.CHECKSUM.pack(checksum([head, *body], seed=self.frames))
        self._sink.write_parts([header, *body])
        size = len(header) + sum(memoryview(p).nbytes for p in prefix) + payload_len
        self.frames += 1
        self.bytes_written += size
        return size

    def write_batch(self, encoded: Encoded, codec_id: int | None = None) -> int:
        """Frame one encoded batch; returns the bytes written."""
        if codec_id is None:
            codec_id = self.codec_id(encoded.codec)
        if encoded.page_size != self.page_size:
            raise ValueError(
                f"batch of {encoded.page_size}-byte pages in a {self.page_size}-byte stream"
            )
        if not 0 < encoded.n_pages <= self.max_batch_pages:
            raise ValueError(
                f"batch of {encoded.n_pages} pages; the stream allows 1..{self.max_batch_pages}"
            )
        runs = np.empty(encoded.runs.shape[0], dtype=fmt.RUN_DTYPE)
        runs["first"] = encoded.runs[:, 0]
        runs["count"] = encoded.runs[:, 1]
        modes = np.ascontiguousarray(encoded.modes, dtype=np.uint8)
        size = self._frame(
            fmt.FrameType.DATA,
            encoded.segments,
            codec_id,
            0,
            runs.shape[0],
            encoded.n_pages,
            prefix=[runs.view(np.uint8), modes],  # byte views: no copies
        )
        self.pages_sent += encoded.n_pages
        return size

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
        size = self._frame(fmt.FrameType.ABORT, [fmt.encode_reason(reason)])
        self.flush()
        return size

    def flush(self) -> None:
        self._sink.flush()
