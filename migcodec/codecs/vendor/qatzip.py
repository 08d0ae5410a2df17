"""ctypes binding to QATzip (``libqatzip.so.3``): sessions, one-shot compress and decompress.

Structures follow QATzip's public header ``include/qatzip.h`` (API 2.x, the one shipped with
``libqatzip.so.3``): ``QzSession_T``, ``QzSessionParamsCommon_T`` and
``QzSessionParamsDeflate_T``. Parameters are filled by ``qzGetDefaultsDeflate`` first and only
the fields migcodec cares about are changed, so fields this binding never touches keep the
library's own defaults. Every status code is mapped to an exception that says what happened
and what to do; positive "using software" codes are not errors, they tell which path runs.
"""

from __future__ import annotations

import contextlib
import ctypes
from ctypes import POINTER, c_int, c_long, c_ubyte, c_uint, c_uint64, c_ulong, c_void_p
from dataclasses import dataclass

import numpy as np

from migcodec.codecs.errors import CodecError, CodecUnavailable, DecodeError

SONAME = "libqatzip.so.3"
ENV_LIBRARY = "MIGCODEC_QATZIP_LIBRARY"
INSTALL_HINT = "install QATzip (https://github.com/intel/QATzip) with the QAT driver or qatlib"

# -- status codes (qatzip.h) -------------------------------------------------------------
QZ_OK = 0
QZ_DUPLICATE = 1
QZ_FORCE_SW = 2
QZ_PARAMS = -1
QZ_FAIL = -2
QZ_BUF_ERROR = -3
QZ_DATA_ERROR = -4
QZ_TIMEOUT = -5
QZ_INTEG = -100
QZ_NO_HW = 11
QZ_NO_MDRV = 12
QZ_NO_INST_ATTACH = 13
QZ_LOW_MEM = 14
QZ_LOW_DEST_MEM = 15
QZ_UNSUPPORTED_FMT = 16
QZ_NONE = 100
QZ_NOSW_NO_HW = -101
QZ_NOSW_NO_MDRV = -102
QZ_NOSW_NO_INST_ATTACH = -103
QZ_NOSW_LOW_MEM = -104
QZ_NO_SW_AVAIL = -105
QZ_NOSW_UNSUPPORTED_FMT = -116
QZ_POST_PROCESS_ERROR = -117
QZ_METADATA_OVERFLOW = -118
QZ_OUT_OF_RANGE = -119
QZ_NOT_SUPPORTED = -200

#: code -> (name, what it means, what to do)
STATUS: dict[int, tuple[str, str, str]] = {
    QZ_OK: ("QZ_OK", "success", ""),
    QZ_DUPLICATE: ("QZ_DUPLICATE", "already initialised", ""),
    QZ_FORCE_SW: ("QZ_FORCE_SW", "switched to software after an earlier failure", ""),
    QZ_PARAMS: ("QZ_PARAMS", "invalid parameter", "report a migcodec bug with the config used"),
    QZ_FAIL: ("QZ_FAIL", "unspecified failure", "check dmesg and the QAT service status"),
    QZ_BUF_ERROR: ("QZ_BUF_ERROR", "output buffer too small", "the data is not what was sent"),
    QZ_DATA_ERROR: ("QZ_DATA_ERROR", "input data is corrupt", "the stream was damaged"),
    QZ_TIMEOUT: ("QZ_TIMEOUT", "operation timed out", "check device load and health"),
    QZ_INTEG: ("QZ_INTEG", "integrity check failed", "the stream was damaged"),
    QZ_NO_HW: ("QZ_NO_HW", "no QAT hardware; using software", "enable a QAT device"),
    QZ_NO_MDRV: ("QZ_NO_MDRV", "no memory driver; using software", "load usdm_drv or qatlib"),
    QZ_NO_INST_ATTACH: (
        "QZ_NO_INST_ATTACH",
        "could not attach to a QAT instance; using software",
        "configure more instances or processes in the QAT config",
    ),
    QZ_LOW_MEM: ("QZ_LOW_MEM", "not enough pinned memory; using software", "reserve hugepages"),
    QZ_LOW_DEST_MEM: (
        "QZ_LOW_DEST_MEM",
        "not enough pinned memory for the output; using software",
        "reserve hugepages",
    ),
    QZ_UNSUPPORTED_FMT: (
        "QZ_UNSUPPORTED_FMT",
        "device does not support the data format; using software",
        "use a newer QAT generation",
    ),
    QZ_NONE: ("QZ_NONE", "device uninitialised", "call qzInit first"),
    QZ_NOSW_NO_HW: ("QZ_NOSW_NO_HW", "no QAT hardware and no software backup", "enable a device"),
    QZ_NOSW_NO_MDRV: (
        "QZ_NOSW_NO_MDRV",
        "no memory driver and no software backup",
        "load usdm_drv or qatlib",
    ),
    QZ_NOSW_NO_INST_ATTACH: (
        "QZ_NOSW_NO_INST_ATTACH",
        "no QAT instance available and no software backup",
        "configure more instances",
    ),
    QZ_NOSW_LOW_MEM: (
        "QZ_NOSW_LOW_MEM",
        "not enough pinned memory and no software backup",
        "reserve hugepages",
    ),
    QZ_NO_SW_AVAIL: (
        "QZ_NO_SW_AVAIL",
        "software backup requested but unavailable",
        "build QATzip with software fallback",
    ),
    QZ_NOSW_UNSUPPORTED_FMT: (
        "QZ_NOSW_UNSUPPORTED_FMT",
        "device does not support the data format and no software backup",
        "use a newer QAT generation",
    ),
    QZ_POST_PROCESS_ERROR: ("QZ_POST_PROCESS_ERROR", "post-processing failed", ""),
    QZ_METADATA_OVERFLOW: ("QZ_METADATA_OVERFLOW", "metadata buffer too small", ""),
    QZ_OUT_OF_RANGE: ("QZ_OUT_OF_RANGE", "metadata block out of range", ""),
    QZ_NOT_SUPPORTED: ("QZ_NOT_SUPPORTED", "request not supported", "use a supported format"),
}

#: positive codes under which QATzip runs, but in its own software path
SOFTWARE_CODES = frozenset(
    {QZ_FORCE_SW, QZ_NO_HW, QZ_NO_MDRV, QZ_NO_INST_ATTACH, QZ_LOW_MEM, QZ_LOW_DEST_MEM,
     QZ_UNSUPPORTED_FMT}
)  # fmt: skip
_UNAVAILABLE = frozenset(
    {QZ_NOSW_NO_HW, QZ_NOSW_NO_MDRV, QZ_NOSW_NO_INST_ATTACH, QZ_NOSW_LOW_MEM, QZ_NO_SW_AVAIL,
     QZ_NOSW_UNSUPPORTED_FMT, QZ_NONE}
)  # fmt: skip

# -- enums and flags ----------------------------------------------------------------------
QZ_DYNAMIC_HDR = 0
QZ_DIR_BOTH = 2
QZ_DEFLATE_4B, QZ_DEFLATE_GZIP, QZ_DEFLATE_GZIP_EXT, QZ_DEFLATE_RAW = 0, 1, 2, 3
QZ_DEFLATE = 8
QZ_SW_BACKUP = 1  # bit 0 of sw_backup
QZ_SW_EXECUTION_MASK = 1 << 4  # extended return code: the request ran in software


def status_name(code: int) -> str:
    return STATUS.get(code, (f"status {code}", "", ""))[0]


def describe(code: int) -> str:
    """``QZ_NO_HW (11): no QAT hardware; using software`` for reports and errors."""
    name, meaning, _ = STATUS.get(code, (f"unknown status {code}", "not in qatzip.h", ""))
    return f"{name} ({code}): {meaning}" if meaning else f"{name} ({code})"


class QatzipError(CodecError):
    """A QATzip call failed; ``status`` is the QATzip code, ``call`` the function."""

    def __init__(self, call: str, status: int) -> None:
        self.call = call
        self.status = status
        name, meaning, todo = STATUS.get(status, (f"unknown status {status}", "", ""))
        text = f"{call} returned {name} ({status})"
        if meaning:
            text += f": {meaning}"
        if todo:
            text += f"; {todo}"
        super().__init__(text)


class QatzipUnavailable(QatzipError, CodecUnavailable):
    """No hardware session and no software backup could be set up."""


class QatzipParamsError(QatzipError, ValueError):
    """QATzip rejected a parameter (a binding or config bug)."""


class QatzipBufferError(QatzipError):
    """The output buffer was too small."""


class QatzipDataError(QatzipError, DecodeError):
    """The compressed input is corrupt."""


def raise_for(call: str, status: int) -> int:
    """Return ``status`` if it is not an error (``>= 0``), else raise the matching exception."""
    if status >= 0 and status not in _UNAVAILABLE:
        return status
    if status in _UNAVAILABLE:
        raise QatzipUnavailable(call, status)
    if status == QZ_PARAMS:
        raise QatzipParamsError(call, status)
    if status == QZ_BUF_ERROR:
        raise QatzipBufferError(call, status)
    if status in (QZ_DATA_ERROR, QZ_INTEG):
        raise QatzipDataError(call, status)
    raise QatzipError(call, status)


# -- structures (qatzip.h) ----------------------------------------------------------------
class QzSession(ctypes.Structure):
    """``QzSession_T``: opaque session state the library fills in."""

    _fields_ = [
        ("hw_session_stat", c_long),
        ("thd_sess_stat", c_int),
        ("internal", c_void_p),
        ("total_in", c_ulong),
        ("total_out", c_ulong),
    ]


class QzSessionParamsCommon(ctypes.Structure):
    """``QzSessionParamsCommon_T`` (release builds: no ``ERR_INJECTION`` fields)."""

    _fields_ = [
        ("direction", c_int),
        ("comp_lvl", c_uint),
        ("comp_algorithm", c_ubyte),
        ("max_forks", c_uint),
        ("sw_backup", c_ubyte),
        ("hw_buff_sz", c_uint),
        ("strm_buff_sz", c_uint),
        ("input_sz_thrshold", c_uint),
        ("req_cnt_thrshold", c_uint),
        ("wait_cnt_thrshold", c_uint),
        ("polling_mode", c_int),
        ("is_sensitive_mode", c_uint),
    ]


class QzSessionParamsDeflate(ctypes.Structure):
    """``QzSessionParamsDeflate_T``: common parameters, Huffman header type, data format."""

    _fields_ = [
        ("common_params", QzSessionParamsCommon),
        ("huffman_hdr", c_int),
        ("data_fmt", c_int),
    ]


_U = POINTER(c_uint)


def bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Declare the prototypes migcodec calls; ``qzCompressExt`` is optional (older builds)."""
    proto = {
        "qzInit": (c_int, [POINTER(QzSession), c_ubyte]),
        "qzGetDefaultsDeflate": (c_int, [POINTER(QzSessionParamsDeflate)]),
        "qzSetupSessionDeflate": (c_int, [POINTER(QzSession), POINTER(QzSessionParamsDeflate)]),
        "qzCompress": (c_int, [POINTER(QzSession), c_void_p, _U, c_void_p, _U, c_uint]),
        "qzDecompress": (c_int, [POINTER(QzSession), c_void_p, _U, c_void_p, _U]),
        "qzTeardownSession": (c_int, [POINTER(QzSession)]),
        "qzClose": (c_int, [POINTER(QzSession)]),
    }
    for name, (restype, argtypes) in proto.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise CodecUnavailable(
                f"{lib._name} has no {name}; it is not QATzip API 2.x ({INSTALL_HINT})"
            ) from None
        fn.restype, fn.argtypes = restype, argtypes
    ext = getattr(lib, "qzCompressExt", None)
    if ext is not None:
        ext.restype = c_int
        ext.argtypes = [POINTER(QzSession), c_void_p, _U, c_void_p, _U, c_uint, POINTER(c_uint64)]
    return lib


def max_compressed_length(nbytes: int, hw_buff_sz: int = 64 * 1024) -> int:
    """Output capacity that no deflate/gzip stream of ``nbytes`` can exceed.

    Stored blocks cost 5 bytes per 64 KiB; each gzip member (one per hardware buffer) costs
    a header with QATzip's extra field plus an 8-byte trailer. Generous on purpose.
    """
    members = nbytes // max(hw_buff_sz, 1024) + 1
    return nbytes + 5 * (nbytes // 16384 + 1) + 64 * members + 1024


@dataclass
class CompressResult:
    """What one ``qzCompress`` produced and whether QATzip ran it in software."""

    blob: np.ndarray
    software: bool


class QatzipDeflate:
    """One QATzip session (``qzInit`` + ``qzSetupSessionDeflate``) for gzip output.

    ``software`` is true when QATzip set the session up on its own software backup (a
    positive status from init or setup), with ``reason`` saying why. Not thread-safe: the
    owner serialises calls, as QATzip sessions are per thread.
    """

    def __init__(self, lib: ctypes.CDLL, level: int = 1, data_fmt: int = QZ_DEFLATE_GZIP_EXT):
        self.lib = bind(lib)
        self.session = QzSession()
        self._open = False
        status = raise_for("qzInit", lib.qzInit(ctypes.byref(self.session), QZ_SW_BACKUP))
        self._open = True
        params = QzSessionParamsDeflate()
        try:
            raise_for("qzGetDefaultsDeflate", lib.qzGetDefaultsDeflate(ctypes.byref(params)))
            params.common_params.comp_lvl = level
            params.common_params.direction = QZ_DIR_BOTH
            params.common_params.sw_backup = QZ_SW_BACKUP
            params.data_fmt = data_fmt
            params.huffman_hdr = QZ_DYNAMIC_HDR
            setup = raise_for(
                "qzSetupSessionDeflate",
                lib.qzSetupSessionDeflate(ctypes.byref(self.session), ctypes.byref(params)),
            )
        except QatzipError:
            self.close()
            raise
        self.params = params
        codes = [c for c in (status, setup) if c in SOFTWARE_CODES]
        self.software = bool(codes)
        self.reason = (
            f"QATzip runs its software backup: {describe(codes[0])}"
            if codes
            else "QATzip session on QAT hardware"
        )
        self._has_ext = getattr(lib, "qzCompressExt", None) is not None

    def compress(self, data: np.ndarray) -> CompressResult:
        """Compress ``data`` (C-contiguous ``uint8``) in one call with ``last=1``."""
        nbytes = data.nbytes
        out = np.empty(max_compressed_length(nbytes), dtype=np.uint8)
        src_len, dst_len = c_uint(nbytes), c_uint(out.nbytes)
        src, dst = data.ctypes.data, out.ctypes.data
        sess = ctypes.byref(self.session)
        if self._has_ext:
            ext = c_uint64(0)
            status = self.lib.qzCompressExt(
                sess, src, ctypes.byref(src_len), dst, ctypes.byref(dst_len), 1, ctypes.byref(ext)
            )
            software = bool(ext.value & QZ_SW_EXECUTION_MASK)
        else:
            status = self.lib.qzCompress(
                sess, src, ctypes.byref(src_len), dst, ctypes.byref(dst_len), 1
            )
            software = self.software
        raise_for("qzCompress", status)
        if src_len.value != nbytes:
            raise CodecError(
                f"qzCompress consumed {src_len.value} of {nbytes} bytes in a last=1 call; "
                "this QATzip build does not compress a whole request at once"
            )
        return CompressResult(out[: dst_len.value], software or self.software)

    def decompress(self, blob: memoryview, expected: int) -> np.ndarray:
        """Inflate ``blob`` to exactly ``expected`` bytes or raise :class:`DecodeError`."""
        src = np.frombuffer(blob, dtype=np.uint8)
        out = np.empty(expected, dtype=np.uint8)
        src_len, dst_len = c_uint(src.nbytes), c_uint(expected)
        status = self.lib.qzDecompress(
            ctypes.byref(self.session),
            src.ctypes.data,
            ctypes.byref(src_len),
            out.ctypes.data,
            ctypes.byref(dst_len),
        )
        if status == QZ_BUF_ERROR:
            raise QatzipDataError("qzDecompress", QZ_BUF_ERROR)
        raise_for("qzDecompress", status)
        if dst_len.value != expected:
            raise DecodeError(
                f"qzDecompress produced {dst_len.value} bytes where {expected} were expected"
            )
        if src_len.value != src.nbytes:
            raise DecodeError(
                f"qzDecompress left {src.nbytes - src_len.value} of {src.nbytes} input bytes "
                "unconsumed (trailing data)"
            )
        return out

    def close(self) -> None:
        """Tear the session down and release the instance (idempotent)."""
        if self._open:
            self._open = False
            self.lib.qzTeardownSession(ctypes.byref(self.session))
            self.lib.qzClose(ctypes.byref(self.session))

    def __del__(self) -> None:  # pragma: no cover - interpreter shutdown order varies
        with contextlib.suppress(Exception):
            self.close()
