"""``iaa``: per-page raw DEFLATE with a 4 KiB window, on Intel IAA through QPL.

IAA compresses one page per job, as QEMU's ``multifd-qpl.c`` does: every page of the request
is submitted as its own hardware job, then all are waited for. A page that does not shrink
goes raw. When the work queues are full, submission is retried ``max_retries`` times (QEMU:
3) and the page then goes through QPL's software job (counted in ``counters.retries`` and
``counters.software_pages``; the request reports ``software``).

IAA keeps only a 4 KiB history, so it cannot decompress streams that reach further back.
The codec's jobs ask for neither dynamic Huffman (``QPL_FLAG_DYNAMIC_HUFFMAN``) nor a Huffman
table, so QPL writes fixed-Huffman blocks. Without library or device the emulated path
writes the same: zlib-ng at ``wbits=-12`` (4 KiB window, decodable by the device) with the
``Z_FIXED`` strategy, so its ratio is the device's, and reports modelled device time.

Blob layout (the pages the framework did not send zero or raw): ``n`` little-endian u16
compressed lengths, then the ``n`` streams back to back. Each length is 1..page_size-1 and
they must add up to the blob exactly; anything else is a :class:`DecodeError`. Decoding
accepts what the device accepts: valid DEFLATE that fills its page exactly with no match
more than 4 KiB back. The device's refusal stands (the stream is not IAA's format); in
software a page of up to 4 KiB cannot reach further back than its start, which zlib refuses,
and a larger page's matches are measured with :func:`~migcodec.codecs.deflate_scan.scan_deflate`
(in C where the extension was built: ``migcodec codecs`` says which).
"""

from __future__ import annotations

import numpy as np
from zlib_ng import zlib_ng

from migcodec.codecs.accel import AcceleratorCodec, accelerator_probe
from migcodec.codecs.base import PageEncoding, Probe
from migcodec.codecs.deflate_scan import scan_deflate
from migcodec.codecs.device_model import LABEL
from migcodec.codecs.encoded import CodecPath, PageMode
from migcodec.codecs.errors import CodecUnavailable, DecodeError
from migcodec.codecs.plugins.zlib_ng import inflate_exact
from migcodec.codecs.vendor import qpl
from migcodec.codecs.vendor.detect import iaa_work_queues, load_library

WBITS = -12  # raw DEFLATE, 4 KiB history: what IAA can decompress
HISTORY = 1 << -WBITS  # the furthest back a match may reach on the device
#: QPL without QPL_FLAG_DYNAMIC_HUFFMAN or a Huffman table writes fixed-Huffman blocks
STRATEGY = zlib_ng.Z_FIXED
MEM_LEVEL = 8  # zlib's default
LEVEL = 1  # IAA's only hardware level (QEMU: "only supports compression level 1")
MAX_SUBMIT_RETRIES = 3  # QEMU multifd-qpl.c MAX_SUBMIT_RETRY_NUM
MAX_PAGE_SIZE = 65536  # lengths travel as u16 and are < page size
_OVERFLOW = frozenset({qpl.QPL_STS_MORE_OUTPUT_NEEDED, qpl.QPL_STS_DST_IS_SHORT_ERR})
#: decompression statuses that condemn the stream itself (QPL's 2xx codes do as well)
_STREAM_ERRORS = frozenset({qpl.QPL_STS_MORE_OUTPUT_NEEDED, qpl.QPL_STS_MORE_INPUT_NEEDED})
_RAW, _ENCODED = np.uint8(PageMode.RAW), np.uint8(PageMode.ENCODED)


class QplDevice:
    """QPL jobs of one codec instance: per-page hardware jobs and one software job.

    Jobs are allocated once and reused (a request cache); hardware jobs
    grow to the largest request seen.
    """

    def __init__(self, lib) -> None:
        self.lib = qpl.bind(lib)
        self.hw: list[qpl.Job] = [qpl.Job(lib, qpl.qpl_path_hardware)]
        self.sw = qpl.Job(lib, qpl.qpl_path_software)

    def jobs(self, n: int) -> list[qpl.Job]:
        while len(self.hw) < n:
            self.hw.append(qpl.Job(self.lib, qpl.qpl_path_hardware))
        return self.hw

    def run(
        self, op: int, src: np.ndarray, src_lens: np.ndarray, dst: np.ndarray, dst_len: int,
        max_retries: int, src_offsets: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:  # fmt: skip
        """Run one job per row: submit all (busy -> retry, then software), then wait all.

        Returns per-row status, ``total_out``, ``total_in``, the number of retries and of
        rows that ran in software.
        """
        n = src_lens.shape[0]
        jobs = self.jobs(n)
        status = np.zeros(n, np.int64)
        out_len = np.zeros(n, np.int64)
        in_len = np.zeros(n, np.int64)
        submitted = np.zeros(n, bool)
        src_base, dst_base, stride = src.ctypes.data, dst.ctypes.data, dst.strides[0]
        retries = software = 0
        busy = qpl.QPL_STS_QUEUES_ARE_BUSY_ERR
        for i in range(n):
            args = (op, src_base + int(src_offsets[i]), int(src_lens[i]), dst_base + i * stride)
            job = jobs[i]
            job.prepare(*args, dst_len)
            st = job.submit()
            tries = 0
            while st == busy and tries < max_retries:
                tries += 1
                st = job.submit()
            retries += tries
            if st == qpl.QPL_STS_OK:
                submitted[i] = True
                continue
            # the queue is still full (or refused the job): this page goes through QPL's
            # software job now, which also leaves the queue room for the next pages
            self.sw.prepare(*args, dst_len)
            status[i] = self.sw.execute()
            out_len[i], in_len[i] = self.sw.job.total_out, self.sw.job.total_in
            software += 1
        for i in np.flatnonzero(submitted):
            job = jobs[i]
            status[i] = job.wait()
            out_len[i], in_len[i] = job.job.total_out, job.job.total_in
        return status, out_len, in_len, retries, software

    def close(self) -> None:
        for job in (*self.hw, self.sw):
            job.close()


class IaaCodec(AcceleratorCodec):
    """Per-page raw DEFLATE, 4 KiB window, level 1 (IAA's format; no parameters)."""

    name = "iaa"
    device = "iaa"
    vendor_error = qpl.QplError
    vendor_setup = "QPL hardware jobs"
    #: refused before a stream or trace starts (Codec.check_page_size), not at its first
    #: encode: a stream of larger pages used to pass the handshake and fail partway
    max_page_size = MAX_PAGE_SIZE

    def __init__(self) -> None:
        super().__init__()
        self.max_retries = MAX_SUBMIT_RETRIES
        self._zbuf: np.ndarray | None = None

    @classmethod
    def probe(cls) -> Probe:
        lookup = load_library(qpl.SONAME, qpl.ENV_LIBRARY, qpl.INSTALL_HINT)
        emulated = f"zlib-ng writes 4 KiB-window DEFLATE per page; device time {LABEL}"
        return accelerator_probe(lookup, iaa_work_queues(), "QPL", "IAA work queue", emulated)

    def _open_vendor(self, probe: Probe) -> tuple[QplDevice, str]:
        lookup = load_library(qpl.SONAME, qpl.ENV_LIBRARY, qpl.INSTALL_HINT)
        return QplDevice(lookup.handle), f"QPL hardware path: {probe.reason}"

    # -- encode ----------------------------------------------------------------------
    def encode_pages(self, pages: np.ndarray) -> PageEncoding:
        self.check_page_size(pages.shape[1])  # a caller that skipped the check before
        with self._lock:
            return self._encode_locked(np.ascontiguousarray(pages))

    def _encode_locked(self, data: np.ndarray) -> PageEncoding:
        n, page_size = data.shape
        device = self._open()
        if device is None:
            return self._encode_emulated(data)
        zbuf = self._scratch(data.shape)
        try:
            status, lens, _, retries, software = device.run(
                qpl.qpl_op_compress,
                data,
                np.full(n, page_size, np.int64),
                zbuf,
                page_size - 1,  # a page that would not shrink fails the job and goes raw
                self.max_retries,
                np.arange(n, dtype=np.int64) * page_size,
            )
        except (qpl.QplError, CodecUnavailable) as exc:  # e.g. more jobs could not be set up
            self.counters.fallbacks += 1
            self.counters.last_error = str(exc)
            return self._encode_emulated(data)
        self.counters.retries += retries
        self.counters.software_pages += software
        ok = (status == qpl.QPL_STS_OK) & (lens > 0) & (lens < page_size)
        errors = ~ok & ~np.isin(status, list(_OVERFLOW)) & (status != qpl.QPL_STS_OK)
        if errors.any():
            self.counters.page_errors += int(np.count_nonzero(errors))
            first = int(np.flatnonzero(errors)[0])
            self.counters.last_error = f"page job returned {qpl.status_name(int(status[first]))}"
        if software:
            self.counters.fallbacks += 1
            self.counters.last_error = f"{software} page(s) ran in software after busy queues"
        keep = np.arange(page_size) < np.where(ok, lens, 0)[:, None]  # one gather
        encoding = _page_encoding(ok, lens[ok], zbuf[keep].tobytes())
        return self._ran(encoding, CodecPath.SOFTWARE if software else CodecPath.HARDWARE)

    def _scratch(self, shape: tuple[int, int]) -> np.ndarray:
        """The device's output buffer, reused across requests (under the lock)."""
        n, page_size = shape
        if self._zbuf is None or self._zbuf.shape[0] < n or self._zbuf.shape[1] != page_size:
            self._zbuf = np.empty((max(n, 64), page_size), dtype=np.uint8)
        return self._zbuf[:n]

    def _encode_emulated(self, data: np.ndarray) -> PageEncoding:
        page_size = data.shape[1]
        streams = [_deflate_fixed(page) for page in data]
        lens = np.fromiter(map(len, streams), np.int64, len(streams))
        ok = lens < page_size
        payload = b"".join(s for s, keep in zip(streams, ok, strict=True) if keep)
        encoding = _page_encoding(ok, lens[ok], payload)
        return self._ran(encoding, CodecPath.EMULATED, data.nbytes, data.shape[0])

    # -- decode ----------------------------------------------------------------------
    def decode_pages(self, blob, n_pages, page_size):
        n = n_pages
        data = memoryview(blob).cast("B")
        lens, offsets = _length_table(data, n, page_size)
        with self._lock:
            device = self._open()
            if device is not None:
                try:
                    return self._decode_device(device, data, lens, offsets, page_size)
                except qpl.QplDataError:
                    raise  # the device's verdict on the stream: not IAA's format
                except (qpl.QplError, CodecUnavailable) as exc:
                    self.counters.decode_fallbacks += 1
                    self.counters.last_error = str(exc)
        out = bytearray(n * page_size)
        view = memoryview(out)
        for i in range(n):
            start = int(offsets[i])
            stream = data[start : start + int(lens[i])]
            page = inflate_exact(stream, page_size, WBITS, f"iaa page {i}")
            if page_size > HISTORY:
                _check_history(stream, i, page_size)
            view[i * page_size : (i + 1) * page_size] = page
        return out

    def _decode_device(self, device, data, lens, offsets, page_size) -> np.ndarray:
        src = np.frombuffer(data, dtype=np.uint8)
        out = np.empty((lens.shape[0], page_size), np.uint8)
        status, produced, consumed, retries, software = device.run(
            qpl.qpl_op_decompress, src, lens, out, page_size, self.max_retries, offsets
        )
        self.counters.retries += retries
        self.counters.software_pages += software
        bad = np.flatnonzero(status != qpl.QPL_STS_OK)
        if bad.size:
            i, code = int(bad[0]), int(status[bad[0]])
            detail = f"iaa page {i} of {lens.shape[0]} does not decode"
            if code in _STREAM_ERRORS or 200 <= code < 300:
                raise qpl.QplDataError("qpl_wait_job", code, detail)
            raise qpl.QplError("qpl_wait_job", code, detail)  # device trouble, not the data
        wrong = np.flatnonzero((produced != page_size) | (consumed != lens))
        if wrong.size:
            i = int(wrong[0])
            raise DecodeError(
                f"iaa page {i} decoded {int(produced[i])} of {page_size} bytes from "
                f"{int(consumed[i])} of its {int(lens[i])} compressed bytes"
            )
        return out


def _deflate_fixed(page: np.ndarray) -> bytes:
    """One page as QPL's fixed-Huffman job writes it: raw DEFLATE, 4 KiB window."""
    deflater = zlib_ng.compressobj(LEVEL, zlib_ng.DEFLATED, WBITS, MEM_LEVEL, STRATEGY)
    return deflater.compress(page) + deflater.flush()


def max_blocks(page_size: int) -> int:
    """The most DEFLATE blocks a page's stream may hold: far more than an IAA-compatible
    encoder writes, few enough that walking their code tables (:func:`_check_history`)
    costs no more than the page's symbols. Unbounded, a payload of empty blocks took a
    third of a second per 64 KiB page to check in Python: minutes per frame, past any
    deadline of the receiving side."""
    return 8 + page_size // 1024


def _check_history(stream: memoryview, page: int, page_size: int) -> None:
    """Refuse a stream (that zlib inflated) with a match further back than IAA's history:
    zlib's own check depends on how its output is split between calls, the device's not.
    A stream of more blocks than :func:`max_blocks` is refused without walking them all."""
    limit = max_blocks(page_size)
    scan = scan_deflate(stream, HISTORY, limit)
    if scan.more_blocks:
        raise DecodeError(
            f"iaa page {page} has more than {limit} DEFLATE blocks; IAA-compatible encoders "
            "write a few per page, so it was not written by one"
        )
    far = scan.far_match
    if far is not None:
        at, distance = far
        raise DecodeError(
            f"iaa page {page} has a match {distance} bytes back at byte {at}; IAA keeps "
            f"{HISTORY} bytes of history, so the device refuses this stream (it was not "
            "written by an IAA-compatible encoder)"
        )


def _page_encoding(ok: np.ndarray, lens: np.ndarray, streams: bytes) -> PageEncoding:
    """Modes (raw where a page did not shrink) and the blob: u16 length table, streams."""
    modes = np.where(ok, _ENCODED, _RAW).astype(np.uint8)
    if not lens.size:
        return PageEncoding(b"", modes)
    return PageEncoding(lens.astype("<u2").tobytes() + streams, modes)


def _length_table(data: memoryview, n: int, page_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate the u16 length table against the blob; return lengths and stream offsets."""
    table = 2 * n
    if data.nbytes < table:
        raise DecodeError(
            f"iaa blob of {data.nbytes} bytes is shorter than its length table "
            f"({n} pages x 2 bytes)"
        )
    lens = np.frombuffer(data[:table], dtype="<u2").astype(np.int64)
    bad = np.flatnonzero((lens == 0) | (lens >= page_size))
    if bad.size:
        i = int(bad[0])
        raise DecodeError(
            f"iaa page {i} claims {int(lens[i])} compressed bytes; a compressed page "
            f"has 1..{page_size - 1}"
        )
    total = table + int(lens.sum())
    if total != data.nbytes:
        raise DecodeError(
            f"iaa length table adds up to {total} bytes but the blob has {data.nbytes}"
        )
    offsets = table + np.concatenate(([0], np.cumsum(lens)[:-1]))
    return lens, offsets
