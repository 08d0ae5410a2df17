"""The ``iaa`` plugin: QPL binding against a fake libqpl, busy queues, 4 KiB window, format."""

from __future__ import annotations

import ctypes
import re
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migcodec.codecs import Batch, DecodeError, Encoded, PageMode, deflate_scan
from migcodec.codecs.deflate_scan import FIXED, scan_deflate
from migcodec.codecs.device_model import device_model
from migcodec.codecs.plugins import iaa
from migcodec.codecs.plugins.iaa import IaaCodec
from migcodec.codecs.vendor import qpl
from migcodec.codecs.vendor.detect import iaa_work_queues
from tests.codecs.deflate_craft import fixed_stream
from tests.codecs.kernel_paths import WALKS, deflate_walk
from tests.codecs.page_kinds import build_pages, page_kinds

PAGE = 4096


def _memory(n: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    memory = rng.integers(0, 4, (n, PAGE), dtype=np.uint8)
    memory[1] = 0  # zero page: the framework sends a marker
    memory[2] = rng.integers(0, 256, PAGE, dtype=np.uint8)  # does not shrink: raw
    return memory


def _streams(encoded: Encoded, page_size: int = PAGE) -> list[bytes]:
    """The per-page DEFLATE streams of an encoded batch, from its u16 length table."""
    n_raw = encoded.count(PageMode.RAW)
    n = encoded.count(PageMode.ENCODED)
    blob = encoded.payload[n_raw * page_size :]
    lens = np.frombuffer(blob[: 2 * n], "<u2").astype(np.int64)
    offsets = 2 * n + np.concatenate(([0], np.cumsum(lens)[:-1]))
    return [blob[o : o + ln] for o, ln in zip(offsets, lens, strict=True)]


def _counts(lib) -> list[int]:
    out = (ctypes.c_long * 8)()
    lib.fake_qpl_counts(out, 8)
    return list(out)


def _round_trip(codec: IaaCodec, memory: np.ndarray) -> Encoded:
    encoded = codec.encode(Batch(memory, [(0, memory.shape[0])]))
    dest = np.full_like(memory, 0xA5)
    codec.decode(encoded, dest)
    np.testing.assert_array_equal(dest, memory)
    return encoded


# -- binding ------------------------------------------------------------------------------
def test_job_layout_matches_the_c_compiler(fake_qpl):
    values = (ctypes.c_size_t * 14)()
    assert fake_qpl.fake_qpl_layout(values, 14) == 14
    fields = [
        "available_in",
        "total_in",
        "next_out_ptr",
        "total_out",
        "op",
        "flags",
        "level",
        "huffman_table",
        "dictionary",
        "decomp_end_processing",
        "crc64_poly",
        "numa_id",
        "data_ptr",
    ]
    job = qpl.QplJob
    assert [ctypes.sizeof(job)] + [getattr(job, f).offset for f in fields] == list(values)


def test_jobs_carry_op_level_and_flags(fake_qpl):
    codec = IaaCodec()
    encoded = codec.encode(Batch(_memory(), [(0, 16)]))
    assert encoded.stats.path == "hardware"
    hw_jobs, sw_jobs, busy, op, level, flags = _counts(fake_qpl)[:6]
    assert (hw_jobs, sw_jobs, busy) == (15, 0, 0)  # one job per non-zero page
    assert (op, level) == (qpl.qpl_op_compress, 1)
    assert flags == qpl.QPL_FLAG_FIRST | qpl.QPL_FLAG_LAST | qpl.QPL_FLAG_OMIT_VERIFY


@pytest.mark.parametrize(
    ("status", "kind", "text"),
    [
        (qpl.QPL_STS_QUEUES_ARE_BUSY_ERR, qpl.QplQueueBusy, "QPL_STS_QUEUES_ARE_BUSY_ERR (5)"),
        (
            qpl.QPL_STS_INIT_WORK_QUEUES_NOT_AVAILABLE,
            qpl.QplUnavailable,
            "QPL_STS_INIT_WORK_QUEUES_NOT_AVAILABLE (503); enable a shared IAA work queue",
        ),
        (qpl.QPL_STS_PATH_ERR, qpl.QplUnavailable, "QPL_STS_PATH_ERR (54)"),
        (qpl.QPL_STS_BAD_DIST_ERR, qpl.QplError, "QPL_STS_BAD_DIST_ERR (217)"),
        (999, qpl.QplError, "qpl_status 999 (999)"),
    ],
)
def test_status_codes_map_to_exceptions(status, kind, text):
    with pytest.raises(kind, match=re.escape(f"qpl_call returned {text}")) as info:
        qpl.raise_for("qpl_call", status)
    assert info.value.status == status


# -- paths --------------------------------------------------------------------------------
def test_hardware_path_per_page_with_raw_fall_back(fake_qpl):
    memory = _memory()
    codec = IaaCodec()
    encoded = _round_trip(codec, memory)
    assert encoded.stats.path == "hardware" and encoded.stats.device_s is None
    expected = np.full(16, PageMode.ENCODED)
    expected[1], expected[2] = PageMode.ZERO, PageMode.RAW
    np.testing.assert_array_equal(encoded.modes, expected)
    assert encoded.payload[:PAGE] == memory[2].tobytes()  # raw pages travel first
    encoded_rows = np.flatnonzero(expected == PageMode.ENCODED)
    for row, stream in zip(encoded_rows, _streams(encoded), strict=True):
        assert zlib.decompress(stream, -12) == memory[row].tobytes()
    assert codec.counters.hardware == 1  # requests count encodes; decode used the device too


def test_busy_queue_is_retried_then_succeeds(fake_qpl):
    fake_qpl.fake_qpl_set_busy(2)
    codec = IaaCodec()
    encoded = _round_trip(codec, _memory())
    assert encoded.stats.path == "hardware"
    assert (codec.counters.retries, codec.counters.software_pages) == (2, 0)
    assert _counts(fake_qpl)[2] == 2


def test_busy_queue_beyond_retries_sends_pages_through_software(fake_qpl):
    fake_qpl.fake_qpl_set_busy(-1)  # every hardware submission finds the queues full
    memory = _memory()
    codec = IaaCodec()
    encoded = codec.encode(Batch(memory, [(0, 16)]))
    assert encoded.stats.path == "software"
    assert codec.counters.retries == 15 * 3  # QEMU's bound: 3 resubmissions per page
    assert codec.counters.software_pages == 15
    assert codec.counters.fallbacks == 1 and codec.counters.software == 1
    assert codec.counters.last_error == "15 page(s) ran in software after busy queues"
    hw_jobs, sw_jobs = _counts(fake_qpl)[:2]
    assert (hw_jobs, sw_jobs) == (0, 15)
    fake_qpl.fake_qpl_set_busy(0)
    dest = np.zeros_like(memory)
    codec.decode(encoded, dest)
    np.testing.assert_array_equal(dest, memory)


def test_no_work_queue_falls_back_to_emulated(fake_qpl):
    fake_qpl.fake_qpl_set_mode(1)  # qpl_init_job(hardware) -> WORK_QUEUES_NOT_AVAILABLE
    codec = IaaCodec()
    memory = _memory()
    encoded = _round_trip(codec, memory)
    assert encoded.stats.path == "emulated"
    assert encoded.stats.device_s == device_model("iaa").request_time(15 * PAGE, 15)  # raw page too
    assert codec.counters.fallbacks == 1
    assert codec.counters.last_error == (
        "qpl_init_job returned QPL_STS_INIT_WORK_QUEUES_NOT_AVAILABLE (503); enable a shared "
        "IAA work queue with accel-config and give this user access to /dev/iax"
    )


def test_device_decode_error_is_a_decode_error(fake_qpl):
    memory = _memory()
    codec = IaaCodec()
    encoded = codec.encode(Batch(memory, [(0, 16)]))
    fake_qpl.fake_qpl_set_mode(2)  # hardware decompress jobs fail
    with pytest.raises(qpl.QplDataError) as info:
        codec.decode(encoded, np.zeros_like(memory))
    assert isinstance(info.value, DecodeError)
    assert str(info.value) == (
        "qpl_wait_job returned QPL_STS_BAD_DIST_ERR (217): iaa page 0 of 14 does not decode"
    )


def test_device_trouble_on_decode_falls_back_to_software(fake_qpl):
    memory = _memory()
    codec = IaaCodec()
    encoded = codec.encode(Batch(memory, [(0, 16)]))
    fake_qpl.fake_qpl_set_mode(3)  # hardware decompress jobs hit an internal error
    dest = np.zeros_like(memory)
    codec.decode(encoded, dest)
    np.testing.assert_array_equal(dest, memory)
    assert codec.counters.decode_fallbacks == 1
    assert codec.counters.last_error == (
        "qpl_wait_job returned QPL_STS_LIBRARY_INTERNAL_ERR (6): iaa page 0 of 14 does not decode"
    )


def test_truncated_stream_on_the_device_is_a_decode_error(fake_qpl):
    stream = zlib.compressobj(1, zlib.DEFLATED, -12)
    good = stream.compress(b"ab" * 2048) + stream.flush()
    blob = np.array([len(good) - 1], "<u2").tobytes() + good[:-1]
    with pytest.raises(qpl.QplDataError, match=re.escape("QPL_STS_MORE_INPUT_NEEDED (3)")):
        IaaCodec().decode_pages(blob, 1, PAGE)


def test_emulated_path_without_library(no_accelerators):
    probe = IaaCodec.probe()
    assert probe.path == "emulated"
    assert probe.reason == (
        "MIGCODEC_QPL_LIBRARY is empty, so libqpl.so.1 is not loaded; no IAA work queue "
        "(MIGCODEC_IAA_DEVICES=0); zlib-ng writes 4 KiB-window DEFLATE per page; "
        "device time modelled"
    )
    encoded = _round_trip(IaaCodec(), _memory())
    assert encoded.stats.path == "emulated" and encoded.stats.device_s > 0


# -- 4 KiB window -------------------------------------------------------------------------
def _inflate_4k_window(stream: bytes) -> bytes:
    """Inflate with a 4 KiB window that zlib really enforces: one output byte per call, so
    every match must come from the 4 KiB history, as on IAA (test helper only)."""
    inflater, out, data = zlib.decompressobj(-12), [], stream
    while not inflater.eof:
        out.append(inflater.decompress(data, 1))
        data = inflater.unconsumed_tail
    return b"".join(out)


def _far_page() -> bytes:
    """8 KiB that compress well only with a match 5000 bytes back."""
    motif = np.random.default_rng(3).integers(0, 16, 5000, dtype=np.uint8)
    return np.concatenate([motif, motif[:3192]]).tobytes()


def _wide_window_blob() -> bytes:
    wide = zlib.compressobj(1, zlib.DEFLATED, -15)
    far = wide.compress(_far_page()) + wide.flush()
    return np.array([len(far)], "<u2").tobytes() + far


def test_software_output_decodes_with_a_4k_window(no_accelerators):
    page_size = 8192  # large enough that a 32 KiB window could reach past 4 KiB
    memory = np.frombuffer(_far_page(), np.uint8)[None, :].repeat(4, axis=0)
    encoded = IaaCodec().encode(Batch(memory, [(0, 4)], page_size=page_size))
    assert (encoded.modes == PageMode.ENCODED).all()
    for stream in _streams(encoded, page_size):
        assert _inflate_4k_window(stream) == _far_page()
    # the same page with a 32 KiB window reaches 5000 bytes back: IAA cannot decode that
    with pytest.raises(zlib.error, match="invalid distance too far back"):
        _inflate_4k_window(_wide_window_blob()[2:])


def test_device_rejects_a_wide_window_stream(fake_qpl):
    with pytest.raises(qpl.QplDataError, match=re.escape("QPL_STS_BAD_DIST_ERR (217)")):
        IaaCodec().decode_pages(_wide_window_blob(), 1, 8192)


# -- cross-decoding -----------------------------------------------------------------------
def test_emulated_output_decodes_on_the_fake_device(no_accelerators, fake_qpl_path, monkeypatch):
    memory = _memory()
    encoded = IaaCodec().encode(Batch(memory, [(0, 16)]))
    assert encoded.stats.path == "emulated"
    monkeypatch.setenv("MIGCODEC_QPL_LIBRARY", str(fake_qpl_path))
    monkeypatch.setenv("MIGCODEC_IAA_DEVICES", "1")
    lib = ctypes.CDLL(str(fake_qpl_path))
    before = _counts(lib)[0]
    destination = IaaCodec()
    dest = np.zeros_like(memory)
    destination.decode(encoded, dest)
    np.testing.assert_array_equal(dest, memory)
    assert _counts(lib)[0] - before == 14  # 14 hardware decompress jobs
    assert _counts(lib)[3] == qpl.qpl_op_decompress


def test_device_output_decodes_without_the_library(fake_qpl, monkeypatch):
    memory = _memory()
    encoded = IaaCodec().encode(Batch(memory, [(0, 16)]))
    assert encoded.stats.path == "hardware"
    monkeypatch.setenv("MIGCODEC_QPL_LIBRARY", "")
    destination = IaaCodec()
    dest = np.zeros_like(memory)
    destination.decode(encoded, dest)
    np.testing.assert_array_equal(dest, memory)
    assert destination.probe_path() == "emulated"


# -- strict blob validation ---------------------------------------------------------------
def _decode(blob: bytes, n: int = 2):
    return IaaCodec().decode_pages(memoryview(blob), n, PAGE)


def test_length_table_is_validated(no_accelerators):
    stream = zlib.compressobj(1, zlib.DEFLATED, -12)
    good = stream.compress(b"a" * PAGE) + stream.flush()
    table = np.array([len(good), len(good)], "<u2").tobytes()
    assert _decode(table + good + good) == bytearray(b"a" * 2 * PAGE)
    cases = [
        (b"\x01", "iaa blob of 1 bytes is shorter than its length table (2 pages x 2 bytes)"),
        (
            np.array([0, len(good)], "<u2").tobytes() + good,
            "iaa page 0 claims 0 compressed bytes; a compressed page has 1..4095",
        ),
        (
            np.array([len(good), PAGE], "<u2").tobytes() + good,
            "iaa page 1 claims 4096 compressed bytes; a compressed page has 1..4095",
        ),
        (table + good, f"iaa length table adds up to {4 + 2 * len(good)} bytes but the blob "
                       f"has {4 + len(good)}"),
        (table + good + good + b"!", f"iaa length table adds up to {4 + 2 * len(good)} bytes "
                                     f"but the blob has {5 + 2 * len(good)}"),
    ]  # fmt: skip
    for blob, message in cases:
        with pytest.raises(DecodeError, match=re.escape(message)):
            _decode(blob)
    truncated = np.array([len(good) - 2, len(good)], "<u2").tobytes() + good[:-2] + good
    with pytest.raises(DecodeError, match="does not inflate to exactly 4096 bytes"):
        _decode(truncated)
    # a compressor has one encoded form: the framework refuses other modes before decoding
    frame = Encoded(
        "iaa", PAGE, np.array([[0, 2]]), np.array([2, 3], np.uint8), (table + good * 2,)
    )
    with pytest.raises(DecodeError, match="page mode 3 is not one of iaa's modes"):
        IaaCodec().decode(frame, np.zeros((2, PAGE), np.uint8))


def test_work_queue_scan(tmp_path, monkeypatch):
    monkeypatch.delenv("MIGCODEC_IAA_DEVICES", raising=False)
    assert iaa_work_queues(str(tmp_path)).count == 0
    (tmp_path / "dev/iax").mkdir(parents=True)
    for wq in ("wq1.0", "wq3.0"):
        (tmp_path / "dev/iax" / wq).touch()
    scan = iaa_work_queues(str(tmp_path))
    assert (scan.count, scan.where) == (2, "/dev/iax/wq*")


# -- round trips --------------------------------------------------------------------------
_fixtures_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@_fixtures_ok
@given(kinds=page_kinds, seed=st.integers(0, 2**16))
def test_emulated_round_trip(no_accelerators, kinds, seed):
    _round_trip(IaaCodec(), build_pages(kinds, seed))


@_fixtures_ok
@given(kinds=page_kinds, seed=st.integers(0, 2**16), busy=st.integers(-1, 40))
def test_device_round_trip_under_busy_queues(fake_qpl, kinds, seed, busy):
    fake_qpl.fake_qpl_set_busy(busy)
    memory = build_pages(kinds, seed)
    codec = IaaCodec()
    encoded = _round_trip(codec, memory)
    raw = ~memory.any(axis=1)
    np.testing.assert_array_equal(encoded.modes == PageMode.ZERO, raw)
    assert encoded.stats.path in ("hardware", "software")


# -- the device's 4 KiB history, exactly --------------------------------------------------
def _far_stream(page_size: int, at: int, distance: int) -> tuple[bytes, bytes]:
    """A page with one 10-byte match ``distance`` back at byte ``at`` (the rest repeats a
    64-byte motif through short matches, so it compresses), and its stream."""
    motif = np.random.default_rng(at + distance).integers(0, 256, 64, np.uint8).tobytes()
    stream = fixed_stream([motif, *_repeat(at - 64), (10, distance), *_repeat(page_size - at - 10)])
    return zlib.decompress(stream, -15), stream


def _repeat(n: int) -> list:
    """Tokens copying ``n`` bytes from 64 back."""
    tokens: list = [(258, 64)] * (n // 258)
    rest = n % 258
    if rest >= 3:
        tokens.append((rest, 64))
    elif rest:
        tokens.append(b"\0" * rest)
    return tokens


def _one_page_blob(stream: bytes) -> memoryview:
    return memoryview(np.array([len(stream)], "<u2").tobytes() + stream)


_HISTORY_CASES = [
    (page_size, at, distance)
    for page_size in (8192, 16384)
    for distance in (4096, 4097, 5000, 8192)
    for at in (4200, 6000, page_size - 300)
    if at >= distance
]


@pytest.mark.parametrize(("page_size", "at", "distance"), _HISTORY_CASES)
def test_software_decoder_refuses_every_match_beyond_4k(no_accelerators, page_size, at, distance):
    page, stream = _far_stream(page_size, at, distance)
    assert len(page) == page_size  # valid DEFLATE (with zlib's 32 KiB window)
    decode = IaaCodec().decode_pages
    if distance <= 4096:
        assert bytes(decode(_one_page_blob(stream), 1, page_size)) == page
        return
    message = (
        f"iaa page 0 has a match {distance} bytes back at byte {at}; IAA keeps 4096 bytes of "
        "history, so the device refuses this stream (it was not written by an IAA-compatible "
        "encoder)"
    )
    with pytest.raises(DecodeError) as info:
        decode(_one_page_blob(stream), 1, page_size)
    assert str(info.value) == message


@pytest.mark.parametrize(("page_size", "at", "distance"), _HISTORY_CASES)
def test_software_and_device_agree_on_the_history(fake_qpl, page_size, at, distance):
    page, stream = _far_stream(page_size, at, distance)
    if distance <= 4096:
        decoded = IaaCodec().decode_pages(_one_page_blob(stream), 1, page_size)
        assert np.asarray(decoded).tobytes() == page
        return
    with pytest.raises(qpl.QplDataError, match=re.escape("QPL_STS_BAD_DIST_ERR (217)")):
        IaaCodec().decode_pages(_one_page_blob(stream), 1, page_size)


def test_software_decoder_refuses_the_wide_window_stream(no_accelerators):
    with pytest.raises(DecodeError, match=r"^iaa page 0 has a match \d+ bytes back at byte"):
        IaaCodec().decode_pages(memoryview(_wide_window_blob()), 1, 8192)


# -- the device's block type --------------------------------------------------------------
def test_jobs_ask_the_device_for_fixed_huffman(fake_qpl):
    IaaCodec().encode(Batch(_memory(), [(0, 16)]))
    flags = _counts(fake_qpl)[5]
    assert not flags & 0x2000  # QPL_FLAG_DYNAMIC_HUFFMAN: QPL then writes fixed blocks
    assert flags & (qpl.QPL_FLAG_FIRST | qpl.QPL_FLAG_LAST)


@pytest.mark.parametrize("backend", ["zlib-ng", "zlib"])
def test_emulated_path_writes_the_devices_fixed_huffman_blocks(
    no_accelerators, monkeypatch, backend
):
    # whichever DEFLATE library backs the emulation (zlib's level 1 writes dynamic blocks
    # for these 2-bit pages), the blocks are the fixed-Huffman ones the device writes
    if backend == "zlib":
        monkeypatch.setattr("migcodec.codecs.plugins.iaa.zlib_ng", zlib)
    memory = _memory()
    encoded = _round_trip(IaaCodec(), memory)
    streams = _streams(encoded)
    assert len(streams) == 14
    for stream in streams:
        assert set(scan_deflate(stream).block_types) == {FIXED}


def test_emulated_ratio_is_the_devices(fake_qpl, monkeypatch):
    # the fake device runs zlib with the block type QPL picks for these flags; the emulation
    # backed by the same zlib must write the very same streams
    memory = _memory()
    device = IaaCodec().encode(Batch(memory, [(0, 16)]))
    assert device.stats.path == "hardware"
    monkeypatch.setenv("MIGCODEC_QPL_LIBRARY", "")
    monkeypatch.setattr("migcodec.codecs.plugins.iaa.zlib_ng", zlib)
    emulated = IaaCodec().encode(Batch(memory, [(0, 16)]))
    assert emulated.stats.path == "emulated"
    assert emulated.payload == device.payload


def test_pages_larger_than_the_format_describes_are_refused_before_the_stream():
    """IAA's per-page lengths travel as u16: 128 KiB pages are refused by the writer
    before its preamble, and by a reader at the handshake, not at the first batch."""
    import io

    from migcodec.codecs import PageSizeUnsupported, get_codec
    from migcodec.wire import CodecMissing, FrameReader, FrameWriter
    from migcodec.wire.preamble import Preamble

    out = io.BytesIO()
    with pytest.raises(PageSizeUnsupported, match="iaa describes pages of at most 65536 bytes"):
        FrameWriter(out, 131072, 16, [get_codec("iaa")])
    assert not out.getvalue()
    preamble = Preamble(131072, 16, 16, {0: {"name": "iaa"}}).encode()
    with pytest.raises(CodecMissing, match="iaa describes pages of at most 65536 bytes, not 1310"):
        FrameReader(io.BytesIO(preamble))


# -- the cost of checking a page ----------------------------------------------------------
_ZERO_PAGE_TOKENS = [b"\0"] + [(256, 1)] * 31 + [(255, 1)]  # 8192 zero bytes


@pytest.mark.parametrize("walk", WALKS)
def test_a_page_of_more_blocks_than_an_encoder_writes_is_refused_before_they_are_walked(
    no_accelerators, monkeypatch, walk
):
    """Each block costs the history check its code tables: a payload of 12-byte blocks
    that hold nothing took a third of a second per 64 KiB page to check in Python,
    minutes for one frame, whatever the receiving side's deadline."""
    deflate_walk(walk, monkeypatch)
    stream = fixed_stream(_ZERO_PAGE_TOKENS, empty_blocks=600)
    assert zlib.decompressobj(-12).decompress(stream) == bytes(8192)  # valid DEFLATE
    scans, tables = [], []
    real_scan, real_tables = iaa.scan_deflate, deflate_scan._dynamic_codes

    def scan(*args):
        scans.append(real_scan(*args))
        return scans[-1]

    def read_tables(*args):
        tables.append(1)
        return real_tables(*args)

    monkeypatch.setattr(iaa, "scan_deflate", scan)
    monkeypatch.setattr(deflate_scan, "_dynamic_codes", read_tables)
    with pytest.raises(DecodeError) as info:
        IaaCodec().decode_pages(_one_page_blob(stream), 1, 8192)
    assert str(info.value) == (
        "iaa page 0 has more than 16 DEFLATE blocks; IAA-compatible encoders write a few "
        "per page, so it was not written by one"
    )
    [scan] = scans
    assert len(scan.block_types) == 16 and scan.more_blocks  # the walk stopped there
    assert len(tables) == (16 if walk == "Python" else 0)  # the Python walk's tables


def test_a_page_of_a_few_blocks_decodes(no_accelerators):
    stream = fixed_stream(_ZERO_PAGE_TOKENS, empty_blocks=15)
    assert bytes(IaaCodec().decode_pages(_one_page_blob(stream), 1, 8192)) == bytes(8192)
