"""ctypes binding to Intel QPL (``libqpl.so.1``): jobs for per-page DEFLATE on IAA.

``qpl_job`` is laid out from QPL's public headers (``include/qpl/c_api/job.h``, ``defs.h``,
``status.h``, ``statistics.h``). The application allocates ``qpl_get_job_size`` bytes (the
public struct plus the library's private buffers) and ``qpl_init_job`` fills them in; this
binding only reads and writes the public fields before ``data_ptr``.

A job compresses one page to raw DEFLATE with IAA's 4 KiB history window (QPL's software
path keeps the same limit, so its output stays decodable by the device).
"""

from __future__ import annotations

import contextlib
import ctypes
from ctypes import POINTER, c_int, c_int32, c_uint8, c_uint32, c_uint64, c_void_p

from migcodec.codecs.errors import CodecError, CodecUnavailable, DecodeError

SONAME = "libqpl.so.1"
ENV_LIBRARY = "MIGCODEC_QPL_LIBRARY"
INSTALL_HINT = (
    "install Intel QPL (https://github.com/intel/qpl, built with -DQPL_LIBRARY_TYPE=SHARED)"
)

# -- defs.h -------------------------------------------------------------------------------
qpl_path_auto, qpl_path_hardware, qpl_path_software = 0, 1, 2
qpl_op_decompress, qpl_op_compress = 0, 1
qpl_level_1 = 1
QPL_FLAG_FIRST = 0x0001
QPL_FLAG_LAST = 0x0002
QPL_FLAG_OMIT_VERIFY = 0x4000

# -- status.h (the codes migcodec acts on; others are reported by number) -----------------
QPL_STS_OK = 0
QPL_STS_BEING_PROCESSED = 1
QPL_STS_MORE_OUTPUT_NEEDED = 2
QPL_STS_MORE_INPUT_NEEDED = 3
QPL_STS_QUEUES_ARE_BUSY_ERR = 5
QPL_STS_LIBRARY_INTERNAL_ERR = 6
QPL_STS_NULL_PTR_ERR = 50
QPL_STS_PATH_ERR = 54
QPL_STS_INVALID_PARAM_ERR = 55
QPL_STS_SIZE_ERR = 57
QPL_STS_NO_MEM_ERR = 101
QPL_STS_BAD_DIST_ERR = 217
QPL_STS_REF_BEFORE_START_ERR = 218
QPL_STS_DST_IS_SHORT_ERR = 225
QPL_STS_INIT_HW_NOT_SUPPORTED = 500
QPL_STS_INIT_LIBACCEL_NOT_FOUND = 501
QPL_STS_INIT_LIBACCEL_ERROR = 502
QPL_STS_INIT_WORK_QUEUES_NOT_AVAILABLE = 503

STATUS_NAMES: dict[int, str] = {
    QPL_STS_OK: "QPL_STS_OK",
    QPL_STS_BEING_PROCESSED: "QPL_STS_BEING_PROCESSED",
    QPL_STS_MORE_OUTPUT_NEEDED: "QPL_STS_MORE_OUTPUT_NEEDED",
    QPL_STS_MORE_INPUT_NEEDED: "QPL_STS_MORE_INPUT_NEEDED",
    4: "QPL_STS_JOB_NOT_CONTINUABLE_ERR",
    QPL_STS_QUEUES_ARE_BUSY_ERR: "QPL_STS_QUEUES_ARE_BUSY_ERR",
    QPL_STS_LIBRARY_INTERNAL_ERR: "QPL_STS_LIBRARY_INTERNAL_ERR",
    7: "QPL_STS_JOB_NOT_SUBMITTED",
    8: "QPL_STS_NOT_SUPPORTED_BY_WQ",
    QPL_STS_NULL_PTR_ERR: "QPL_STS_NULL_PTR_ERR",
    51: "QPL_STS_OPERATION_ERR",
    52: "QPL_STS_NOT_SUPPORTED_MODE_ERR",
    53: "QPL_STS_BAD_JOB_STRUCT_ERR",
    QPL_STS_PATH_ERR: "QPL_STS_PATH_ERR",
    QPL_STS_INVALID_PARAM_ERR: "QPL_STS_INVALID_PARAM_ERR",
    56: "QPL_STS_FLAG_CONFLICT_ERR",
    QPL_STS_SIZE_ERR: "QPL_STS_SIZE_ERR",
    58: "QPL_STS_BUFFER_TOO_LARGE_ERR",
    59: "QPL_STS_BUFFER_OVERLAP_ERR",
    87: "QPL_STS_UNSUPPORTED_COMPRESSION_LEVEL",
    QPL_STS_NO_MEM_ERR: "QPL_STS_NO_MEM_ERR",
    201: "QPL_STS_BIG_HEADER_ERR",
    213: "QPL_STS_INVALID_BLOCK_TYPE",
    214: "QPL_STS_INVALID_STORED_LEN_ERR",
    215: "QPL_STS_BAD_EOF_ERR",
    216: "QPL_STS_BAD_LEN_ERR",
    QPL_STS_BAD_DIST_ERR: "QPL_STS_BAD_DIST_ERR",
    QPL_STS_REF_BEFORE_START_ERR: "QPL_STS_REF_BEFORE_START_ERR",
    219: "QPL_STS_TIMEOUT_ERR",
    QPL_STS_DST_IS_SHORT_ERR: "QPL_STS_DST_IS_SHORT_ERR",
    232: "QPL_STS_SRC_IS_SHORT_ERR",
    QPL_STS_INIT_HW_NOT_SUPPORTED: "QPL_STS_INIT_HW_NOT_SUPPORTED",
    QPL_STS_INIT_LIBACCEL_NOT_FOUND: "QPL_STS_INIT_LIBACCEL_NOT_FOUND",
    QPL_STS_INIT_LIBACCEL_ERROR: "QPL_STS_INIT_LIBACCEL_ERROR",
    QPL_STS_INIT_WORK_QUEUES_NOT_AVAILABLE: "QPL_STS_INIT_WORK_QUEUES_NOT_AVAILABLE",
}

_INIT_ADVICE = {
    QPL_STS_INIT_HW_NOT_SUPPORTED: "this CPU has no IAA",
    QPL_STS_INIT_LIBACCEL_NOT_FOUND: "install accel-config (libaccel-config1)",
    QPL_STS_INIT_LIBACCEL_ERROR: "check accel-config and the idxd driver",
    QPL_STS_INIT_WORK_QUEUES_NOT_AVAILABLE: (
        "enable a shared IAA work queue with accel-config and give this user access to /dev/iax"
    ),
}


def status_name(code: int) -> str:
    return STATUS_NAMES.get(code, f"qpl_status {code}")


class QplError(CodecError):
    """A QPL call failed; ``status`` is the ``qpl_status`` code."""

    def __init__(self, call: str, status: int, detail: str = "") -> None:
        self.call = call
        self.status = status
        text = f"{call} returned {status_name(status)} ({status})"
        advice = _INIT_ADVICE.get(status, "")
        if detail:
            text += f": {detail}"
        if advice:
            text += f"; {advice}"
        super().__init__(text)


class QplUnavailable(QplError, CodecUnavailable):
    """The requested execution path (usually hardware) cannot be initialised."""


class QplQueueBusy(QplError):
    """Every IAA work queue was full when the job was submitted."""


class QplDataError(QplError, DecodeError):
    """A DEFLATE stream did not decompress (corrupt, or uses more than a 4 KiB window)."""


def raise_for(call: str, status: int) -> None:
    if status == QPL_STS_OK:
        return
    if status >= QPL_STS_INIT_HW_NOT_SUPPORTED or status == QPL_STS_PATH_ERR:
        raise QplUnavailable(call, status)
    if status == QPL_STS_QUEUES_ARE_BUSY_ERR:
        raise QplQueueBusy(call, status)
    raise QplError(call, status)


# -- job.h --------------------------------------------------------------------------------
class QplData(ctypes.Structure):
    """``struct qpl_aux_data`` (``qpl_data``): the library's internal pointers."""

    _fields_ = [
        ("compress_state_ptr", c_void_p),
        ("decompress_state_ptr", c_void_p),
        ("analytics_state_ptr", c_void_p),
        ("middle_layer_buffer_ptr", c_void_p),
        ("hw_state_ptr", c_void_p),
        ("path", c_int),
    ]


class QplJob(ctypes.Structure):
    """``qpl_job``. Enums are C ``int``; pointers are ``void *`` so addresses assign as ints."""

    _fields_ = [
        ("next_in_ptr", c_void_p),
        ("available_in", c_uint32),
        ("total_in", c_uint32),
        ("next_out_ptr", c_void_p),
        ("available_out", c_uint32),
        ("total_out", c_uint32),
        ("op", c_int),
        ("flags", c_uint32),
        ("crc", c_uint32),
        ("xor_checksum", c_uint32),
        ("last_bit_offset", c_uint32),
        ("level", c_int),
        ("statistics_mode", c_int),
        ("huffman_table", c_void_p),
        ("dictionary", c_void_p),
        ("mini_block_size", c_int),
        ("idx_array", c_void_p),
        ("idx_max_size", c_uint32),
        ("idx_num_written", c_uint32),
        ("decomp_end_processing", c_uint8),
        ("ignore_start_bits", c_uint8),
        ("ignore_end_bits", c_uint8),
        ("crc64_poly", c_uint64),
        ("crc64", c_uint64),
        ("next_src2_ptr", c_void_p),
        ("available_src2", c_uint32),
        ("src1_bit_width", c_uint32),
        ("src2_bit_width", c_uint32),
        ("num_input_elements", c_uint32),
        ("out_bit_width", c_int),
        ("param_low", c_uint32),
        ("param_high", c_uint32),
        ("drop_initial_bytes", c_uint32),
        ("initial_output_index", c_uint32),
        ("parser", c_int),
        ("first_index_min_value", c_uint32),
        ("last_index_max_value", c_uint32),
        ("sum_value", c_uint32),
        ("numa_id", c_int32),
        ("data_ptr", QplData),
    ]


_JOB = POINTER(QplJob)


def bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Declare the job API prototypes; a library without them is not QPL."""
    proto = {
        "qpl_get_job_size": [c_int, POINTER(c_uint32)],
        "qpl_init_job": [c_int, _JOB],
        "qpl_execute_job": [_JOB],
        "qpl_submit_job": [_JOB],
        "qpl_wait_job": [_JOB],
        "qpl_fini_job": [_JOB],
    }
    for name, argtypes in proto.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise CodecUnavailable(f"{lib._name} has no {name}; it is not Intel QPL") from None
        fn.restype, fn.argtypes = c_int, argtypes
    return lib


class Job:
    """One initialised ``qpl_job`` on a path, owning its ``qpl_get_job_size`` buffer."""

    def __init__(self, lib: ctypes.CDLL, path: int) -> None:
        self.lib = lib
        self.path = path
        size = c_uint32(0)
        raise_for("qpl_get_job_size", lib.qpl_get_job_size(path, ctypes.byref(size)))
        if size.value < ctypes.sizeof(QplJob):
            raise CodecUnavailable(
                f"qpl_get_job_size reported {size.value} bytes, smaller than the public "
                f"qpl_job ({ctypes.sizeof(QplJob)} bytes): the QPL headers do not match "
                "this binding"
            )
        self._buffer = (ctypes.c_uint8 * size.value)()  # zeroed, as QEMU's g_malloc0
        self.ptr = ctypes.cast(self._buffer, _JOB)
        self.job = self.ptr.contents
        self._live = False
        raise_for("qpl_init_job", lib.qpl_init_job(path, self.ptr))
        self._live = True

    def prepare(self, op: int, src: int, src_len: int, dst: int, dst_len: int) -> None:
        """One-shot job over ``src`` into ``dst`` (addresses), as QEMU's multifd-qpl does."""
        job = self.job
        job.op = op
        job.next_in_ptr = src
        job.available_in = src_len
        job.next_out_ptr = dst
        job.available_out = dst_len
        job.flags = QPL_FLAG_FIRST | QPL_FLAG_LAST | QPL_FLAG_OMIT_VERIFY
        job.level = qpl_level_1

    def execute(self) -> int:
        return self.lib.qpl_execute_job(self.ptr)

    def submit(self) -> int:
        return self.lib.qpl_submit_job(self.ptr)

    def wait(self) -> int:
        return self.lib.qpl_wait_job(self.ptr)

    def close(self) -> None:
        if self._live:
            self._live = False
            self.lib.qpl_fini_job(self.ptr)

    def __del__(self) -> None:  # pragma: no cover - interpreter shutdown order varies
        with contextlib.suppress(Exception):
            self.close()
