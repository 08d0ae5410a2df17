"""The ``qat`` plugin: QATzip binding against a fake libqatzip, paths, fall-backs, format."""

from __future__ import annotations

import contextlib
import ctypes
import gzip
import re
import time
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migcodec.codecs import Batch, CodecUnavailable, DecodeError, Encoded, PageMode
from migcodec.codecs.device_model import device_model
from migcodec.codecs.plugins.qat import QatCodec, inflate_gzip_members
from migcodec.codecs.vendor import qatzip
from migcodec.codecs.vendor.detect import qat_devices
from tests.codecs.page_kinds import build_pages, page_kinds

PAGE = 4096


def _memory(n: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    memory = rng.integers(0, 4, (n, PAGE), dtype=np.uint8)  # compressible, not trivially
    memory[3] = 0
    return memory


def _gzip_members(payload: bytes) -> list[bytes]:
    """Split with plain zlib, one member at a time: what any gzip reader does."""
    members, data = [], payload
    while data:
        d = zlib.decompressobj(31)
        members.append(d.decompress(data))
        assert d.eof
        data = d.unused_data
    return members


def _round_trip(codec: QatCodec, memory: np.ndarray, runs) -> None:
    encoded = codec.encode(Batch(memory, runs))
    dest = np.zeros_like(memory)
    codec.decode(encoded, dest)
    named = Batch(memory, runs).page_indices
    np.testing.assert_array_equal(dest[named], memory[named])


# -- binding ------------------------------------------------------------------------------
def test_struct_layout_matches_the_c_compiler(fake_qatzip):
    values = (ctypes.c_size_t * 10)()
    assert fake_qatzip.fake_qz_layout(values, 10) == 10
    p = qatzip.QzSessionParamsDeflate
    common = qatzip.QzSessionParamsCommon
    ours = [
        ctypes.sizeof(qatzip.QzSession),
        qatzip.QzSession.internal.offset,
        qatzip.QzSession.total_out.offset,
        ctypes.sizeof(p),
        common.comp_lvl.offset,
        common.sw_backup.offset,
        common.hw_buff_sz.offset,
        common.polling_mode.offset,
        p.huffman_hdr.offset,
        p.data_fmt.offset,
    ]
    assert ours == list(values)


def test_session_parameters_reach_the_library(fake_qatzip):
    codec = QatCodec(level=6)
    codec.encode(Batch(_memory(8), [(0, 8)]))
    last = (ctypes.c_long * 8)()
    fake_qatzip.fake_qz_last(last, 8)
    level, data_fmt, sw_backup, direction, calls, final = list(last)[:6]
    assert (level, data_fmt, sw_backup, direction) == (6, qatzip.QZ_DEFLATE_GZIP_EXT, 1, 2)
    assert calls >= 1 and final == 1  # one qzCompress per request, last=1


@pytest.mark.parametrize(
    ("status", "kind", "text"),
    [
        (qatzip.QZ_NOSW_NO_HW, qatzip.QatzipUnavailable, "QZ_NOSW_NO_HW (-101): no QAT hardware"),
        (qatzip.QZ_NO_SW_AVAIL, CodecUnavailable, "QZ_NO_SW_AVAIL (-105)"),
        (qatzip.QZ_NOSW_UNSUPPORTED_FMT, qatzip.QatzipUnavailable, "QZ_NOSW_UNSUPPORTED_FMT"),
        (qatzip.QZ_PARAMS, ValueError, "QZ_PARAMS (-1): invalid parameter"),
        (qatzip.QZ_BUF_ERROR, qatzip.QatzipBufferError, "QZ_BUF_ERROR (-3)"),
        (qatzip.QZ_DATA_ERROR, DecodeError, "QZ_DATA_ERROR (-4): input data is corrupt"),
        (qatzip.QZ_FAIL, qatzip.QatzipError, "QZ_FAIL (-2): unspecified failure; check dmesg"),
        (qatzip.QZ_NOT_SUPPORTED, qatzip.QatzipError, "QZ_NOT_SUPPORTED (-200)"),
        (-999, qatzip.QatzipError, "unknown status -999"),
    ],
)
def test_status_codes_map_to_exceptions(status, kind, text):
    with pytest.raises(kind) as info:
        qatzip.raise_for("qzCall", status)
    assert str(info.value).startswith(f"qzCall returned {text}".split(":")[0])
    assert text in str(info.value)
    assert info.value.status == status


@pytest.mark.parametrize("status", [qatzip.QZ_OK, qatzip.QZ_DUPLICATE, qatzip.QZ_NO_HW])
def test_success_and_software_codes_are_not_errors(status):
    assert qatzip.raise_for("qzInit", status) == status


def test_a_library_without_the_api_is_reported(tmp_path):
    libc = ctypes.CDLL(None)
    expected = re.escape("has no qzInit; it is not QATzip API 2.x")
    with pytest.raises(CodecUnavailable, match=expected):
        qatzip.bind(libc)


# -- paths --------------------------------------------------------------------------------
def test_hardware_path_writes_gzip_members_any_reader_decodes(fake_qatzip):
    memory = _memory()
    codec = QatCodec()
    assert QatCodec.probe().path == "hardware"
    encoded = codec.encode(Batch(memory, [(0, 64)]))
    assert encoded.stats.path == "hardware"
    assert encoded.stats.device_s is None  # real hardware: nothing modelled
    assert codec.counters.hardware == 1 and codec.counters.fallbacks == 0
    nonzero = np.delete(memory, 3, axis=0).tobytes()
    members = _gzip_members(encoded.payload)
    assert len(members) == 4  # one gzip member per 64 KiB hardware buffer, as QATzip writes
    assert b"".join(members) == nonzero
    assert gzip.decompress(encoded.payload) == nonzero
    _round_trip(codec, memory, [(0, 64)])


def test_quickassist_software_backup_is_reported(fake_qatzip):
    fake_qatzip.fake_qz_set_mode(1)
    codec = QatCodec()
    encoded = codec.encode(Batch(_memory(8), [(0, 8)]))
    assert encoded.stats.path == "software"
    assert codec.counters.software == 1
    assert codec.path_reason == (
        "QATzip runs its software backup: QZ_NO_HW (11): no QAT hardware; using software"
    )


def test_request_run_in_software_is_reported_per_request(fake_qatzip):
    codec = QatCodec()
    assert codec.encode(Batch(_memory(8), [(0, 8)])).stats.path == "hardware"
    fake_qatzip.fake_qz_set_mode(5)  # qzCompressExt flags QZ_SW_EXECUTION
    assert codec.encode(Batch(_memory(8), [(0, 8)])).stats.path == "software"
    assert (codec.counters.hardware, codec.counters.software) == (1, 1)


def test_no_hardware_and_no_backup_falls_back_to_emulated(fake_qatzip):
    fake_qatzip.fake_qz_set_mode(2)
    codec = QatCodec()
    memory = _memory(16)
    encoded = codec.encode(Batch(memory, [(0, 16)]))
    assert encoded.stats.path == "emulated"
    assert encoded.stats.device_s == device_model("qat").request_time(15 * PAGE, 15)
    assert codec.counters.fallbacks == 1 and codec.counters.emulated == 1
    assert codec.counters.last_error == (
        "qzInit returned QZ_NOSW_NO_HW (-101): no QAT hardware and no software backup; "
        "enable a device"
    )
    assert codec.path_reason.startswith("QATzip session could not be set up (qzInit returned")
    assert gzip.decompress(encoded.payload) == np.delete(memory, 3, axis=0).tobytes()


def test_failed_request_falls_back_and_the_next_uses_hardware(fake_qatzip):
    codec = QatCodec()
    memory = _memory(8)
    fake_qatzip.fake_qz_set_mode(3)
    encoded = codec.encode(Batch(memory, [(0, 8)]))
    assert encoded.stats.path == "emulated" and encoded.stats.device_s > 0
    assert codec.counters.fallbacks == 1
    assert "qzCompress returned QZ_FAIL (-2)" in codec.counters.last_error
    fake_qatzip.fake_qz_set_mode(0)
    assert codec.encode(Batch(memory, [(0, 8)])).stats.path == "hardware"
    _round_trip(codec, memory, [(0, 8)])


def test_library_without_device_runs_emulated(fake_qatzip, monkeypatch):
    monkeypatch.setenv("MIGCODEC_QAT_DEVICES", "0")
    probe = QatCodec.probe()
    assert probe.path == "emulated" and probe.available
    assert probe.reason.startswith("QATzip ")
    assert probe.reason.endswith(
        "loaded but no QAT device (MIGCODEC_QAT_DEVICES=0); "
        "zlib-ng writes the same gzip format; device time modelled"
    )
    encoded = QatCodec().encode(Batch(_memory(4), [(0, 4)]))
    assert encoded.stats.path == "emulated"


def test_emulated_path_without_library(no_accelerators):
    probe = QatCodec.probe()
    assert probe.path == "emulated"
    assert probe.reason.startswith("MIGCODEC_QATZIP_LIBRARY is empty, so libqatzip.so.3")
    memory = _memory(8)
    encoded = QatCodec().encode(Batch(memory, [(0, 8)]))
    assert (encoded.stats.path, encoded.stats.device_s > 0) == ("emulated", True)
    assert encoded.stats.cpu_s > 0
    assert gzip.decompress(encoded.payload) == np.delete(memory, 3, axis=0).tobytes()


# -- cross-decoding -----------------------------------------------------------------------
def test_emulated_output_decodes_on_the_fake_hardware(
    no_accelerators, fake_qatzip_path, monkeypatch
):
    memory = _memory(32)
    encoded = QatCodec().encode(Batch(memory, [(0, 32)]))
    assert encoded.stats.path == "emulated"
    monkeypatch.setenv("MIGCODEC_QATZIP_LIBRARY", str(fake_qatzip_path))
    monkeypatch.setenv("MIGCODEC_QAT_DEVICES", "1")
    destination = QatCodec()
    dest = np.zeros_like(memory)
    destination.decode(encoded, dest)
    np.testing.assert_array_equal(dest, memory)
    assert destination.probe_path() == "hardware"
    assert destination.counters.decode_fallbacks == 0  # the library decoded it


def test_hardware_output_decodes_without_the_library(fake_qatzip, monkeypatch):
    memory = _memory(32)
    encoded = QatCodec().encode(Batch(memory, [(0, 32)]))
    assert encoded.stats.path == "hardware"
    monkeypatch.setenv("MIGCODEC_QATZIP_LIBRARY", "")
    dest = np.zeros_like(memory)
    QatCodec().decode(encoded, dest)
    np.testing.assert_array_equal(dest, memory)


def test_library_decode_error_is_rechecked_by_migcodec(fake_qatzip):
    memory = _memory(8)
    codec = QatCodec()
    encoded = codec.encode(Batch(memory, [(0, 8)]))
    fake_qatzip.fake_qz_set_mode(4)  # qzDecompress -> QZ_DATA_ERROR
    dest = np.zeros_like(memory)
    codec.decode(encoded, dest)  # the stream is fine: migcodec's inflater decodes it
    np.testing.assert_array_equal(dest, memory)
    assert codec.counters.decode_fallbacks == 1
    assert "qzDecompress returned QZ_DATA_ERROR (-4)" in codec.counters.last_error


def test_corrupt_stream_is_a_decode_error_on_both_paths(fake_qatzip):
    memory = _memory(8)
    codec = QatCodec()
    encoded = codec.encode(Batch(memory, [(0, 8)]))
    damaged = bytearray(encoded.payload)
    damaged[len(damaged) // 2] ^= 0xFF
    encoded.segments = (bytes(damaged),)
    with pytest.raises(DecodeError):
        codec.decode(encoded, np.zeros_like(memory))
    assert codec.counters.decode_fallbacks == 1


# -- strict gzip decoding -----------------------------------------------------------------
def test_inflate_gzip_members_is_strict():
    page = bytes(range(256)) * 16
    one = gzip.compress(page)
    buffer = gzip.compress(page * 16)  # a whole 64 KiB hardware buffer
    assert inflate_gzip_members(buffer + one, 17 * PAGE) == page * 17
    short = (
        "qat gzip member 1 inflates to 4096 bytes but is not the last; QATzip fills every "
        "member but the last with a whole 65536-byte hardware buffer, so this payload was not "
        "written by QATzip or migcodec"
    )
    cases = [
        (b"", PAGE, "qat payload is empty where 4096 bytes of pages were expected"),
        (one[:-12], PAGE,
         "qat gzip member 0 ends before the end of the 4096 bytes the batch names"),
        (one, 2048, "qat gzip member 0 inflates past the 2048 bytes the batch names"),
        (one + b"xyz", PAGE,
         "qat payload has 3 bytes after the gzip member that completed all 4096 bytes"),
        (one, 2 * PAGE, "qat payload inflates to 4096 bytes, not 8192"),
        (buffer + one[:-1], 17 * PAGE,
         "qat gzip member 1 ends before the end of the 69632 bytes the batch names"),
        (buffer + one + one, 18 * PAGE, short),
        (gzip.compress(b"") + one, PAGE,
         "qat gzip member 0 is empty; QATzip writes no empty members"),
    ]  # fmt: skip
    for blob, expected, message in cases:
        with pytest.raises(DecodeError) as info:
            inflate_gzip_members(blob, expected)
        assert str(info.value) == message
    with pytest.raises(DecodeError, match="qat gzip member 0 is corrupt"):
        inflate_gzip_members(zlib.compress(page), PAGE)  # zlib container, not gzip


class _CountingInflaters:
    """Stands in for ``zlib_ng.decompressobj``: counts inflaters and the bytes handed to
    them, the work a decode does whatever the machine's speed."""

    def __init__(self, real) -> None:
        self.real = real
        self.created = 0
        self.fed = 0

    def __call__(self, wbits: int):
        self.created += 1
        counter, inner = self, self.real(wbits)

        class Inflater:
            def decompress(self, data, max_length=0):
                counter.fed += memoryview(data).nbytes
                return inner.decompress(data, max_length)

            def __getattr__(self, name):
                return getattr(inner, name)

        return Inflater()


@pytest.fixture
def counting(monkeypatch) -> _CountingInflaters:
    from zlib_ng import zlib_ng

    counter = _CountingInflaters(zlib_ng.decompressobj)
    monkeypatch.setattr(zlib_ng, "decompressobj", counter)
    return counter


EMPTY_MEMBER = gzip.compress(b"", mtime=0)  # 20 bytes that inflate to nothing


def test_empty_members_naming_1024_pages_fail_after_one_member(counting):
    payload = EMPTY_MEMBER * (1024 * PAGE // len(EMPTY_MEMBER))
    with pytest.raises(DecodeError) as info:
        inflate_gzip_members(payload, 1024 * PAGE)
    assert str(info.value) == "qat gzip member 0 is empty; QATzip writes no empty members"
    assert counting.created == 1
    assert counting.fed <= len(payload)


_BUFFER = 64 * 1024


@settings(max_examples=40, deadline=None)
@given(
    members=st.lists(st.sampled_from(["zeros", "text", "short", "empty"]), min_size=1, max_size=24),
    tail=st.sampled_from([b"", b"\0" * 7, EMPTY_MEMBER, b"garbage"]),
    extra_pages=st.integers(0, 40),
)
def test_decode_work_is_linear_in_the_payload(members, tail, extra_pages):
    # members a hostile sender might string together; whatever the verdict, the bytes
    # handed to inflaters stay within a small multiple of the payload, and there is at most
    # one inflater per hardware buffer the batch could fill
    blobs = {
        "zeros": gzip.compress(bytes(_BUFFER), mtime=0),
        "text": gzip.compress((b"migcodec " * 8192)[:_BUFFER], mtime=0),
        "short": gzip.compress(b"x" * 1000, mtime=0),
        "empty": EMPTY_MEMBER,
    }
    payload = b"".join(blobs[m] for m in members) + tail
    expected = len(members) * _BUFFER + extra_pages * PAGE
    from zlib_ng import zlib_ng

    counter = _CountingInflaters(zlib_ng.decompressobj)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(zlib_ng, "decompressobj", counter)
        with contextlib.suppress(DecodeError):
            inflate_gzip_members(payload, expected)
    assert counter.created <= expected // _BUFFER + 1
    assert counter.fed <= 3 * len(payload) + 64 * counter.created


def test_hostile_members_cost_no_more_than_a_valid_frame(no_accelerators):
    # 1024 pages: a payload of empty members against a valid frame of the same size.
    # Best of several runs each, and a wide margin: the hostile payload is refused at its
    # first member, so it takes less time than the valid one, not ten times more
    pages = 1024
    rng = np.random.default_rng(0)
    valid_pages = rng.integers(0, 256, (pages, PAGE), dtype=np.uint8)
    valid_pages[:, PAGE // 2 :] = 7  # half a page of noise: gzip halves it, no more
    valid = QatCodec().encode(Batch(valid_pages, [(0, pages)], max_pages=pages))
    assert (valid.modes == PageMode.ENCODED).all()
    hostile = _qat_frame(EMPTY_MEMBER * (len(valid.payload) // len(EMPTY_MEMBER)), pages)
    codec = QatCodec()
    dest = np.zeros((pages, PAGE), np.uint8)

    def best(encoded) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            with contextlib.suppress(DecodeError):
                codec.decode(encoded, dest)
            times.append(time.perf_counter() - start)
        return min(times)

    assert best(hostile) < 10 * best(valid)


def _qat_frame(payload: bytes, pages: int) -> Encoded:
    modes = np.full(pages, PageMode.ENCODED, np.uint8)
    return Encoded("qat", PAGE, np.array([[0, pages]]), modes, (payload,))


def test_incompressible_batch_goes_raw(no_accelerators):
    memory = np.random.default_rng(5).integers(0, 256, (4, PAGE), dtype=np.uint8)
    encoded = QatCodec().encode(Batch(memory, [(0, 4)]))
    assert (encoded.modes == PageMode.RAW).all()
    assert encoded.payload == memory.tobytes()


def test_config_round_trips_and_rejects_bad_levels():
    assert QatCodec.from_config(QatCodec(level=4).get_config()) == QatCodec(level=4)
    with pytest.raises(ValueError, match=re.escape("qat level must be an integer 1..9, got 0")):
        QatCodec(level=0)


# -- device detection ---------------------------------------------------------------------
def test_device_scan(tmp_path, monkeypatch):
    monkeypatch.delenv("MIGCODEC_QAT_DEVICES", raising=False)
    assert qat_devices(str(tmp_path)).count == 0
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "qat_adf_ctl").touch()
    (tmp_path / "dev" / "qat_dev_processes").touch()
    assert qat_devices(str(tmp_path)).count == 1
    for bdf in ("0000:6b:00.0", "0000:70:00.0"):
        (tmp_path / "sys/bus/pci/devices" / bdf / "qat").mkdir(parents=True)
    scan = qat_devices(str(tmp_path))
    assert (scan.count, scan.where) == (2, "/sys/bus/pci/devices/*/qat")
    monkeypatch.setenv("MIGCODEC_QAT_DEVICES", "many")
    with pytest.raises(ValueError, match="MIGCODEC_QAT_DEVICES='many' is not a device count"):
        qat_devices(str(tmp_path))


# -- round trips --------------------------------------------------------------------------


_fixtures_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@_fixtures_ok
@given(kinds=page_kinds, seed=st.integers(0, 2**16), level=st.integers(1, 9))
def test_emulated_round_trip(no_accelerators, kinds, seed, level):
    memory = build_pages(kinds, seed)
    _round_trip(QatCodec(level=level), memory, [(0, len(kinds))])


@_fixtures_ok
@given(kinds=page_kinds, seed=st.integers(0, 2**16), fail=st.booleans())
def test_hardware_round_trip(fake_qatzip, kinds, seed, fail):
    fake_qatzip.fake_qz_set_mode(3 if fail else 0)
    memory = build_pages(kinds, seed)
    _round_trip(QatCodec(), memory, [(0, len(kinds))])


# -- the real library, where installed ----------------------------------------------------
def test_real_libqatzip_when_installed(monkeypatch):
    try:
        ctypes.CDLL(qatzip.SONAME)
    except OSError:
        pytest.skip("libqatzip.so.3 is not installed (Debian 12 does not package QATzip)")
    monkeypatch.setenv("MIGCODEC_QATZIP_LIBRARY", qatzip.SONAME)
    monkeypatch.setenv("MIGCODEC_QAT_DEVICES", "1")  # session set-up decides the real path
    memory = _memory(16)
    codec = QatCodec()
    encoded = codec.encode(Batch(memory, [(0, 16)]))
    assert encoded.stats.path in ("hardware", "software", "emulated")
    assert gzip.decompress(encoded.payload) == np.delete(memory, 3, axis=0).tobytes()
    _round_trip(codec, memory, [(0, 16)])


def test_all_zero_batches_probe_the_device_once_not_per_batch(monkeypatch):
    calls = []
    probe = QatCodec.probe.__func__

    def counting(cls):
        calls.append(1)
        return probe(cls)

    monkeypatch.setattr(QatCodec, "probe", classmethod(counting))
    codec = QatCodec()
    zero = np.zeros((8, PAGE), dtype=np.uint8)
    for _ in range(5):
        assert codec.encode(Batch(zero, [(0, 8)])).stats.path == "emulated"
    assert len(calls) == 1
