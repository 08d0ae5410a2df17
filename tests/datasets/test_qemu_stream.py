"""QEMU's migration stream as a trace: exact windows of forged streams, typed errors at the
right byte for anything else, and a real QEMU 7.2 stream (tests/datasets/data, recorded by
corpus/qemu_stream.py) whose XBZRLE pages migcodec decodes and re-encodes byte for byte."""

from __future__ import annotations

import gzip
import json
import lzma
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from migcodec.cli import main
from migcodec.datasets import TraceReader
from migcodec.datasets import qemu_stream as q
from migcodec.datasets.qemu_stream import (
    ImportStats,
    NotQemuStream,
    QemuStream,
    QemuStreamCorrupt,
    QemuStreamError,
    QemuStreamTruncated,
    QemuStreamUnsupported,
    qemu_windows,
)
from migcodec.hashing import seal
from tests.datasets.qemu_forge import PAGE, Forge, name, sample_stream, text_page

DATA = Path(__file__).resolve().parent / "data"
FIXTURE_STREAM = DATA / "qemu-xbzrle.stream.xz"
FIXTURE_INFO = DATA / "qemu-xbzrle.json"
SAMPLE, SAMPLE_WINDOWS = sample_stream()
#: the sample's device state (a FULL section's type byte and junk) is never read past its
#: first byte: every shorter prefix is a truncated stream
SAMPLE_NEEDED = len(SAMPLE) - 32


def windows(data: bytes, points=None, stats=None) -> list:
    return list(qemu_windows(QemuStream(data), points, stats))


def expected_contents(window_records: list[list[tuple[int, str]]]) -> list[dict[int, bytes]]:
    """Replays the sample's sends: per window, each page's content before and after."""
    forge_pages = {  # what each (window, page) record carried, from the forge's inputs
        (0, p): (text_page(p) if kind == "page" else np.zeros(PAGE, np.uint8))
        for p, kind in window_records[0]
    }
    forge_pages |= {(1, 0): text_page(0, 1), (1, 4): text_page(4, 1), (1, 6): text_page(6, 1)}
    forge_pages |= {(1, 9): np.zeros(PAGE, np.uint8), (2, 3): text_page(3, 2)}
    forge_pages |= {(2, 6): text_page(6, 2), (3, 0): text_page(0, 3), (3, 15): text_page(15, 3)}
    return [
        {p: forge_pages[i, p].tobytes() for p, _ in recs} for i, recs in enumerate(window_records)
    ]


# -- exact windows of a forged stream --------------------------------------------------------
def test_each_pass_is_a_window_with_what_the_destination_held_before() -> None:
    stats = ImportStats()
    got = windows(SAMPLE, None, stats)
    after = expected_contents(SAMPLE_WINDOWS)
    assert [w.phase for w in got] == ["bulk", "precopy", "precopy", "stop-copy"]
    held = {p: bytes(PAGE) for p in range(16)}  # a destination starts with zeroed RAM
    for w, records, contents in zip(got, SAMPLE_WINDOWS, after, strict=True):
        assert w.page_indices.tolist() == sorted(p for p, _ in records)
        for page, new, old in zip(w.page_indices, w.pages, w.previous, strict=True):
            assert new.tobytes() == contents[int(page)]
            assert old.tobytes() == held[int(page)]
        held |= contents
        kinds = [k for _, k in records]
        meta = w.meta["qemu"]
        assert (meta["zero"], meta["page"], meta["xbzrle"]) == tuple(
            kinds.count(k) for k in ("zero", "page", "xbzrle")
        )
    assert got[2].meta["qemu"]["sections"] == [3, 4]  # the third pass spans two sections
    assert (stats.windows, stats.pages, stats.zero, stats.normal, stats.xbzrle) == (4, 24, 11, 8, 5)
    assert stats.xbzrle_mismatches == 0
    assert stats.sections == 5
    assert stats.stream_bytes == SAMPLE_NEEDED - 1  # the device state begins there


def test_sync_points_cut_windows_at_qemu_s_syncs() -> None:
    # syncs: at setup (0 sections), after sections 1 and 3, and inside the END section (5)
    got = windows(SAMPLE, [0, 1, 3, 5])
    assert [w.page_indices.tolist() for w in got] == [
        list(range(16)),
        [0, 3, 4, 6, 9],
        [6],
        [0, 15],
    ]
    assert [w.meta["qemu"]["sections"] for w in got] == [[1, 1], [2, 3], [4, 4], [5, 5]]
    assert got[1].pages[1].tobytes() == text_page(3, 2).tobytes()
    assert got[1].previous[1].tobytes() == text_page(3).tobytes()  # sent in the bulk pass
    with pytest.raises(QemuStreamError, match="sync point after 9 RAM sections"):
        windows(SAMPLE, [0, 9])
    with pytest.raises(ValueError, match="non-decreasing"):
        windows(SAMPLE, [3, 1])


def test_an_import_that_fails_leaves_no_trace_and_the_one_it_replaces_as_it_was(
    tmp_path, capsys
) -> None:
    """Sync points of another stream are found wrong at the stream's end: the import had
    written two windows by then, left them unclosed, and with ``--force`` had already
    deleted the trace it was to replace. It stages the trace beside ``--out``."""
    stream, points = tmp_path / "stream", tmp_path / "points.json"
    stream.write_bytes(SAMPLE)
    points.write_text("[0, 9]")
    out = tmp_path / "t"
    argv = ["trace", "import-qemu", str(stream), "--out", str(out)]
    assert main(argv) == 0
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    for target, force in ((tmp_path / "u", []), (out, ["--force"])):
        command = [*argv[:4], str(target), "--sync-points", str(points), *force]
        assert main(command) == 2
        assert "a sync point after 9 RAM sections" in capsys.readouterr().err
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before
    assert sorted(f.name for f in tmp_path.iterdir()) == ["points.json", "stream", "t"]


def test_the_stop_and_copy_pages_are_one_window_even_where_the_scan_wraps() -> None:
    f = Forge().header().start().section().page(5, text_page(5)).page(9, text_page(9)).eos()
    f.section(q.SECTION_END).page(12, text_page(12)).xbzrle(5, text_page(5, 1)).eos()
    got = windows(f.device_state())
    assert [(w.phase, w.page_indices.tolist()) for w in got] == [
        ("bulk", [5, 9]),
        ("stop-copy", [5, 12]),
    ]
    assert got[1].previous[0].tobytes() == text_page(5).tobytes()


def test_a_page_sent_twice_between_two_syncs_keeps_its_first_previous() -> None:
    f = Forge().header().start().section().page(1, text_page(1)).eos()
    f.section().xbzrle(1, text_page(1, 1)).zero(2).eos()
    f.section().xbzrle(1, text_page(1, 2)).page(2, text_page(2, 1)).eos()
    f.section(q.SECTION_END).eos()
    stats = ImportStats()
    got = windows(f.device_state(), [0, 1], stats)
    assert [w.page_indices.tolist() for w in got] == [[1], [1, 2]]
    assert got[1].previous[0].tobytes() == text_page(1).tobytes()
    assert got[1].pages[0].tobytes() == text_page(1, 2).tobytes()
    assert got[1].pages[1].tobytes() == text_page(2, 1).tobytes()
    assert not got[1].previous[1].any()
    assert (stats.xbzrle, stats.xbzrle_mismatches) == (2, 0)


def test_a_stream_without_configuration_or_footers_reads_the_same() -> None:
    f = Forge(footers=False).header(config=False).start()
    f.section().page(2, text_page(2)).zero(3).eos()
    f.section(q.SECTION_END).xbzrle(2, text_page(2, 1)).eos()
    got = windows(f.device_state())
    assert [w.page_indices.tolist() for w in got] == [[2, 3], [2]]
    assert got[1].pages[0].tobytes() == text_page(2, 1).tobytes()


def test_pages_of_several_blocks_are_numbered_end_to_end_and_zero_pages_fill() -> None:
    f = Forge(blocks=[("pc.ram", 4 * PAGE), ("pc.rom", 2 * PAGE)]).header().start()
    f.section().zero(1, "pc.ram", fill=0xAB).page(1, text_page(7), "pc.rom").eos()
    f.section(q.SECTION_END).eos()
    stream = QemuStream(f.device_state())
    (w,) = list(qemu_windows(stream))
    assert [(b.name, b.length, b.first_page) for b in stream.info.blocks] == [
        ("pc.ram", 4 * PAGE, 0),
        ("pc.rom", 2 * PAGE, 4),
    ]
    assert w.page_indices.tolist() == [1, 5]
    assert (w.pages[0] == 0xAB).all()
    assert stream.info.machine == "pc-i440fx-7.2" and stream.info.memory_pages == 6


def test_configuration_subsections_are_read() -> None:
    subs = bytes([q.SUBSECTION]) + name("configuration/capabilities") + struct.pack(">I", 1)
    subs += struct.pack(">I", 1) + name("x-ignore-shared")
    subs += bytes([q.SUBSECTION]) + name("configuration/uuid") + struct.pack(">I", 1) + bytes(16)
    f = Forge().header(subsections=subs)
    # with x-ignore-shared, each block of the list also carries its address
    f.out += (
        bytes([q.SECTION_START]) + struct.pack(">I", 2) + name("ram") + struct.pack(">II", 0, 4)
    )
    f.out += struct.pack(">Q", PAGE * 2 | q.FLAG_MEM_SIZE) + name("pc.ram")
    f.out += struct.pack(">QQ", PAGE * 2, 0)
    f.eos().section(q.SECTION_END).page(1, text_page(1)).eos()
    stream = QemuStream(f.device_state())
    assert [w.page_indices.tolist() for w in qemu_windows(stream)] == [[1]]
    assert stream.info.capabilities == ["x-ignore-shared"]


def test_a_list_of_more_capabilities_than_qemu_has_is_refused_where_it_is_counted() -> None:
    """Each capability's name takes a byte of the stream, but of the decompressed stream: a
    gzip file of 130 KB listing 4 billion empty names kept the reader appending them for
    a minute and a gigabyte. QEMU lists a few dozen."""
    subs = bytes([q.SUBSECTION]) + name("configuration/capabilities") + struct.pack(">I", 1)
    at = len(Forge().header().out) + len(subs)
    subs += struct.pack(">I", 0xFFFFFFFF) + bytes(64)
    err = _error(bytes(Forge().header(subsections=subs).out))
    assert isinstance(err, QemuStreamCorrupt) and err.offset == at
    assert str(err) == (
        f"4294967295 capabilities in the configuration section (at most 1024) "
        f"(at byte {at} of the stream)"
    )


def test_a_huge_announced_ram_allocates_only_what_the_stream_sends() -> None:
    f = Forge(blocks=[("pc.ram", 1 << 50)]).header().start()
    f.section().zero(5).page((1 << 38) - 1, text_page(1)).eos().section(q.SECTION_END).eos()
    tracemalloc.start()
    try:
        got = windows(f.device_state())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got[0].page_indices.tolist() == [5, (1 << 38) - 1]
    assert peak < 4 << 20


def test_zero_records_of_one_fill_share_one_page_of_memory() -> None:
    """A zero record of 9 bytes with a non-zero fill held a page of its own: a stream of a
    megabyte of them made an import hold gigabytes."""
    f = Forge(blocks=[("pc.ram", 4096 * PAGE)]).header().start().section()
    for p in range(4096):
        f.zero(p, fill=1 + p % 2)
    f.eos().section(q.SECTION_END).eos()
    tracemalloc.start()
    try:
        (w,) = windows(f.device_state())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (w.pages[::2] == 1).all() and (w.pages[1::2] == 2).all()
    assert peak < 2.5 * w.pages.nbytes  # the window's pages and what they replaced


def test_a_window_larger_than_the_machine_can_hold_is_refused_before_it_is_made(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    f = Forge(blocks=[("pc.ram", 64 * PAGE)]).header().start().section()
    for p in range(64):
        f.zero(p, fill=3)
    f.eos().section(q.SECTION_END).eos()
    monkeypatch.setattr("migcodec.ram.available_memory", lambda: 512 << 10)
    with pytest.raises(q.QemuStreamTooLarge) as caught:
        windows(f.device_state())
    assert str(caught.value) == (
        "window 0 of the stream sends 64 pages (256 KiB), and reading it holds up to 4 "
        "times that at once (1 MiB: its pages, what they replaced and their encoding), but "
        "this machine has 512 KiB available; read the stream on a machine with more free memory"
    )
    stream = tmp_path / "s"
    stream.write_bytes(f.device_state())
    assert main(["trace", "import-qemu", str(stream), "--out", str(tmp_path / "t")]) == 2
    assert capsys.readouterr().err == f"migcodec trace import-qemu: {caught.value}\n"


def test_a_window_is_refused_for_room_while_it_grows_not_once_it_closes(monkeypatch) -> None:
    """The window's room was checked when it closed: its own bookkeeping, a few hundred
    bytes a page, grew unchecked before that (300 MB for a gzip file of 4 MB). Checked at
    each doubling from 65536 pages, it is refused there: before the damage that follows."""
    n = 1 << 16
    f = Forge(blocks=[("pc.ram", (n + 1) * PAGE)]).header().start().section()
    for p in range(n):
        f.zero(p)
    f.out += b"\xee" * 16  # damage the reader would find next
    monkeypatch.setattr("migcodec.ram.available_memory", lambda: 64 << 20)
    with pytest.raises(q.QemuStreamTooLarge, match=r"^window 0 of the stream sends 65536 pages"):
        windows(bytes(f.out))


def test_the_start_section_s_pages_are_read_as_they_are_asked_for(monkeypatch) -> None:
    """QEMU's START section holds the block list; pages after it were all read into a list
    before start() returned, 200 bytes a record: a gzip file of 35 KB of 9-byte zero
    records made 421 MB. They are read as records() asks for them."""
    n = 20_000
    f = Forge(blocks=[("pc.ram", 2 * n * PAGE)]).header()
    f.out += bytes([q.SECTION_START]) + struct.pack(">I", 2) + name("ram")
    f.out += struct.pack(">II", 0, q.RAM_VERSION) + struct.pack(
        ">Q", 2 * n * PAGE | q.FLAG_MEM_SIZE
    )
    f.out += name("pc.ram") + struct.pack(">Q", 2 * n * PAGE)
    for p in range(n):
        f.zero(p, fill=2)
    f.eos().section(q.SECTION_END).page(n + 5, text_page(5)).eos()
    stream = QemuStream(f.device_state())
    tracemalloc.start()
    try:
        stream.start()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 256 << 10  # 20,000 records kept were 4 MB
    got = list(qemu_windows(stream))
    assert [w.page_indices.tolist() for w in got] == [list(range(n)), [n + 5]]
    assert (got[0].pages == 2).all()


def test_a_stream_of_more_commands_than_qemu_sends_is_refused() -> None:
    """Each command is 5 bytes of the decompressed stream: a gzip file of 24 KB of empty
    ones held a reader 30 s."""
    f = Forge().header()
    command = bytes([q.COMMAND]) + struct.pack(">HH", 1, 0)
    at = len(f.out) + q.MAX_COMMANDS * len(command)
    f.out += command * (q.MAX_COMMANDS + 1) + bytes(64)
    err = _error(bytes(f.out))
    assert isinstance(err, QemuStreamCorrupt) and err.offset == at
    assert err.args[0].startswith("more than 4096 commands in the stream (QEMU sends a few)")


def test_a_scan_that_wraps_twice_in_one_section_is_refused_where_it_does() -> None:
    """QEMU sends a dirty page once between two syncs, which fall between sections: its
    scan wraps at most once in a section. A stream of 9-byte zero records of one page
    made a window of each (a gzip file of 17 KB ran for minutes and wrote hundreds of
    megabytes); it is refused at the second wrap, and one wrap per section still cuts."""
    f = Forge().header().start().section().zero(3).zero(1)  # one wrap: two windows
    at = len(f.out)
    f.zero(1)  # the second wrap of the same section
    err = _error(bytes(f.out) + bytes(64))
    assert isinstance(err, QemuStreamCorrupt) and err.offset == at
    assert str(err).startswith("a RAM section whose pages go around RAM a second time")
    f = Forge().header().start().section().zero(3).zero(1).eos().section().zero(0).eos()
    f.section(q.SECTION_END).eos()
    assert [w.page_indices.tolist() for w in windows(f.device_state())] == [[3], [1], [0]]


def test_a_stream_of_more_windows_than_allowed_is_refused_as_the_one_past_them_starts(
    tmp_path, capsys
) -> None:
    """One zero record per section wraps once per section, as QEMU's scan may: a window per
    22 bytes of the stream, which gzip compresses ten-thousandfold (an 8 KB file of
    150,000 sections ran for 45 s and wrote 46 MiB). The import writes up to
    ``max_windows`` (``--max-windows``) and refuses the stream at the one past them."""

    f = Forge().header().start()
    for _ in range(6):
        f.section().zero(0).eos()
    data = f.section(q.SECTION_END).eos().device_state()
    assert len(windows(data)) == 6
    made = []
    with pytest.raises(q.QemuStreamTooManyWindows) as caught:
        made.extend(qemu_windows(QemuStream(data), max_windows=4))
    assert len(made) == 4
    assert str(caught.value).startswith(
        "the stream makes more than 4 windows (the window past them starts in RAM section 5); "
        "a QEMU migration makes a few or tens before it converges"
    )
    stream = tmp_path / "stream"
    stream.write_bytes(data)
    out = ["trace", "import-qemu", str(stream), "--out", str(tmp_path / "t")]
    assert main([*out, "--max-windows", "5"]) == 2
    assert capsys.readouterr().err == (
        "migcodec trace import-qemu: the stream makes more than 5 windows (the window past "
        "them starts in RAM section 6); a QEMU migration makes a few or tens before it "
        "converges, so the stream is damaged or was not written by QEMU, or its migration "
        "never converged: allow more windows if it is one you want whole (--max-windows N)\n"
    )
    assert main([*out, "--max-windows", "6", "--force"]) == 0
    assert len(TraceReader(tmp_path / "t")) == 6
    assert "--max-windows 6" in TraceReader(tmp_path / "t").info().command


def test_a_block_list_of_more_blocks_than_qemu_has_is_refused() -> None:
    """A trace keeps every block's name in its manifest: a stream of 5 KB that announced
    70,000 blocks was imported into a trace no reader would open."""
    blocks = [(f"b{i}", PAGE) for i in range(q.MAX_RAM_BLOCKS + 1)]
    f = Forge(blocks=blocks).header().start().eos()
    err = _error(f.device_state())
    assert isinstance(err, QemuStreamCorrupt)
    assert str(err).startswith(
        f"more than {q.MAX_RAM_BLOCKS} RAM blocks in the block list (QEMU has a few, and "
        "one per memory device) (at byte "
    )


@pytest.mark.parametrize("damage", ["page", "crc", "truncated", "xz"])
def test_a_compressed_stream_failing_its_own_check_is_refused_before_it_is_read(
    tmp_path: Path, damage: str, capsys
) -> None:
    """The reader stops at the device state after the RAM sections, and gzip's CRC at the
    end of the file was never checked: a flipped bit in a stored page was imported as a
    different page, with no error. The whole file is checked first, and nothing written."""
    if damage == "xz":
        data = bytearray(lzma.compress(SAMPLE))
        data[-20] ^= 1
    elif damage == "page":  # a stored deflate block: the page's bytes are there as they are
        data = bytearray(gzip.compress(SAMPLE, compresslevel=0))
        data[data.find(text_page(0).tobytes()[:32]) + 2] ^= 1
    else:
        data = bytearray(gzip.compress(SAMPLE))
        if damage == "crc":
            data[-6] ^= 1
        else:
            del data[-3:]
    source = tmp_path / "s"
    source.write_bytes(data)
    with pytest.raises(QemuStreamError) as caught:
        QemuStream(source)
    err = caught.value
    assert err.offset is None
    kind, text = (
        (QemuStreamTruncated, "the compressed file ends before its end-of-stream marker, so ")
        if damage == "truncated"
        else (QemuStreamCorrupt, "the compressed file fails its integrity check (")
    )
    assert type(err) is kind and str(err).startswith(text)
    out = tmp_path / "t"
    assert main(["trace", "import-qemu", str(source), "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"migcodec trace import-qemu: {err}\n"
    assert not out.exists()
    source.write_bytes(gzip.compress(SAMPLE))  # whole, it reads as the plain stream does
    assert [w.pages.tobytes() for w in qemu_windows(QemuStream(source))] == [
        w.pages.tobytes() for w in windows(SAMPLE)
    ]


def test_more_ram_than_a_trace_describes_is_refused_where_it_is_announced() -> None:
    """The trace writer refused it, with a ValueError that blamed the output trace."""
    f = Forge(blocks=[("pc.ram", (1 << 64) - PAGE)]).header().start().eos()
    err = _error(f.device_state())
    assert isinstance(err, q.QemuStreamUnsupported)
    assert str(err).startswith(
        f"{(1 << 64) - PAGE} bytes of RAM announced, more than the 1099511627776 pages of "
        "4096 bytes a trace describes (at byte "
    )


# -- errors, each at its byte ----------------------------------------------------------------
def _error(data: bytes) -> QemuStreamError:
    with pytest.raises(QemuStreamError) as caught:
        windows(data)
    return caught.value


def _broken(**what) -> tuple[bytes, int]:
    """The sample's first sections, then one broken record; returns the stream and the
    offset of the broken record."""
    f = Forge().header().start().section().page(0, text_page(0))
    at = len(f.out)
    if "flags" in what:
        f.out += struct.pack(">Q", what["flags"]) + name("pc.ram")
    elif "block" in what:
        f.out += struct.pack(">Q", q.FLAG_PAGE) + name(what["block"])
    elif "xbzrle" in what:
        f.out += struct.pack(">Q", PAGE | q.FLAG_XBZRLE | q.FLAG_CONTINUE) + what["xbzrle"]
    f.out += bytes(PAGE + 64)
    return bytes(f.out), at


def test_what_is_not_a_qemu_stream_is_refused_at_byte_0() -> None:
    err = _error(b"\x7fELF" + bytes(64))
    assert isinstance(err, NotQemuStream) and err.offset == 0
    assert "not a QEMU migration stream" in str(err) and "at byte 0" in str(err)


def test_another_file_version_is_refused_at_byte_4() -> None:
    err = _error(struct.pack(">II", q.MAGIC, 2) + bytes(64))
    assert isinstance(err, QemuStreamUnsupported) and err.offset == 4
    assert "version 2" in str(err)


@pytest.mark.parametrize(
    ("flags", "error", "text"),
    [
        (q.FLAG_COMPRESS_PAGE, QemuStreamUnsupported, "compressed page"),
        (q.FLAG_HOOK | q.FLAG_PAGE, QemuStreamUnsupported, "RDMA"),
        (q.FLAG_MULTIFD_FLUSH, QemuStreamUnsupported, "multifd"),
        (q.FLAG_ZERO | q.FLAG_PAGE, QemuStreamCorrupt, "flags 0xa"),
        (0x400, QemuStreamCorrupt, "flags 0x400"),
        (q.FLAG_MEM_SIZE | PAGE, QemuStreamCorrupt, "block list outside"),
        (64 * PAGE | q.FLAG_PAGE, QemuStreamCorrupt, "offset 0x40000 of RAM block 'pc.ram'"),
    ],
)
def test_a_record_qemu_would_refuse_is_named_at_its_offset(flags, error, text) -> None:
    data, at = _broken(flags=flags)
    err = _error(data)
    assert type(err) is error and err.offset == at
    assert text in str(err)


def test_a_page_of_an_unannounced_block_is_refused() -> None:
    data, at = _broken(block="pc.bios")
    err = _error(data)
    assert isinstance(err, QemuStreamCorrupt) and err.offset == at
    assert "'pc.bios'" in str(err)


def test_xbzrle_records_are_checked_as_qemu_checks_them() -> None:
    data, at = _broken(xbzrle=bytes([2]) + struct.pack(">H", 4))
    err = _error(data)
    assert isinstance(err, QemuStreamCorrupt) and err.offset == at + 8  # the encoding flag
    data, at = _broken(xbzrle=bytes([1]) + struct.pack(">H", PAGE + 1))
    err = _error(data)
    assert err.offset == at + 9 and f"{PAGE + 1} bytes" in str(err)
    # a zero run past the end of the page: a valid record that does not decode
    data, at = _broken(xbzrle=bytes([1]) + struct.pack(">H", 4) + b"\xff\x7f\x01\x00")
    err = _error(data)
    assert isinstance(err, QemuStreamCorrupt) and err.offset == at
    assert "does not decode" in str(err)


def test_other_iterative_state_and_unfinished_migrations_are_refused() -> None:
    f = Forge().header()
    f.out += bytes([q.SECTION_START]) + struct.pack(">I", 3) + name("block")
    f.out += struct.pack(">II", 0, 1) + bytes(16)
    err = _error(bytes(f.out))
    assert isinstance(err, QemuStreamUnsupported) and "'block'" in str(err)
    f = Forge().header().start().section().page(0, text_page(0)).eos()
    at = len(f.out)
    err = _error(f.device_state())
    assert isinstance(err, QemuStreamCorrupt) and err.offset == at
    assert "before the RAM END section" in str(err)
    f = Forge().header(subsections=bytes([q.SUBSECTION]) + name("configuration/new"))
    err = _error(bytes(f.out) + bytes(8))
    assert isinstance(err, QemuStreamUnsupported) and "'configuration/new'" in str(err)


def test_target_pages_other_than_4_kib_are_refused_where_announced() -> None:
    sub = bytes([q.SUBSECTION]) + name("configuration/target-page-bits") + struct.pack(">I", 1)
    f = Forge().header(subsections=sub + struct.pack(">I", 16))
    err = _error(bytes(f.out) + bytes(8))
    assert isinstance(err, QemuStreamUnsupported) and err.offset == len(f.out) - 4
    assert "2^16 bytes" in str(err)


@given(cut=st.integers(0, SAMPLE_NEEDED - 1))
def test_every_truncation_is_reported_where_the_stream_ends(cut: int) -> None:
    err = _error(SAMPLE[:cut])
    assert isinstance(err, QemuStreamTruncated)
    assert err.offset == cut
    assert f"at byte {cut} of the stream" in str(err)


def test_a_truncation_says_how_much_of_the_read_arrived() -> None:
    """It said "ends 1 bytes into the file magic (it needs 4)" of a stream of 3 bytes."""
    assert str(_error(SAMPLE[:3])) == (
        "the stream ends after 3 of the 4 bytes of the file magic; it is truncated: record it "
        "again, or copy the whole file (at byte 3 of the stream)"
    )


def test_a_stream_that_stops_at_each_record_boundary_is_truncated() -> None:
    boundaries = {0, 4, 8, SAMPLE_NEEDED - 1}
    stats = ImportStats()
    for _ in qemu_windows(QemuStream(SAMPLE), None, stats):
        pass
    stream = QemuStream(SAMPLE)
    boundaries |= {rec.offset for rec in stream.records()}
    for cut in sorted(boundaries):
        assert isinstance(_error(SAMPLE[:cut]), QemuStreamTruncated), cut


@given(
    edits=st.lists(
        st.tuples(st.integers(0, len(SAMPLE) - 1), st.integers(0, 255), st.sampled_from("rid")),
        min_size=1,
        max_size=4,
    )
)
def test_a_mutated_stream_reads_or_fails_with_a_typed_error(edits) -> None:
    data = bytearray(SAMPLE)
    for at, value, how in edits:
        at = min(at, len(data) - 1)
        if how == "r":
            data[at] = value
        elif how == "i":
            data.insert(at, value)
        else:
            del data[at]
    try:
        got = windows(bytes(data))
    except QemuStreamError as exc:
        assert 0 <= exc.offset <= len(data)
    else:
        for w in got:  # whatever was read is well formed
            assert (np.diff(w.page_indices) > 0).all()
            assert w.pages.shape == w.previous.shape == (w.n_pages, PAGE)


# -- the command line ------------------------------------------------------------------------
def test_import_qemu_writes_a_trace_and_says_what_it_read(tmp_path: Path, capsys) -> None:
    stream = tmp_path / "sample.stream"
    stream.write_bytes(SAMPLE)
    out = tmp_path / "trace"
    assert main(["trace", "import-qemu", str(stream), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "4 windows (passes of QEMU's RAM scan)" in text
    assert "24 pages sent: 8 whole, 11 zero, 5 XBZRLE (0 re-encoded differently" in text
    reader = TraceReader(out)
    info = reader.info()
    assert (info.windows, info.memory_pages, info.totals["pages"]) == (4, 16, 24)
    assert info.meta["qemu"]["xbzrle"] == 5 and info.meta["sync_points"] is None
    assert info.command.startswith("migcodec trace import-qemu ")
    expected = windows(SAMPLE)
    for got, want in zip(reader, expected, strict=True):
        assert np.array_equal(got.pages, want.pages)
        assert np.array_equal(got.previous, want.previous)
        assert got.phase == want.phase and got.meta == want.meta
    points = tmp_path / "points.json"
    points.write_text(json.dumps(seal({"sync_points": [0, 1, 3, 5]})))
    argv = ["trace", "import-qemu", str(stream), "--out", str(out), "--sync-points", str(points)]
    assert main(argv) == 2  # the trace exists: the command line must change
    assert "already holds a trace" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0
    assert "(QEMU's dirty-bitmap syncs)" in capsys.readouterr().out
    assert TraceReader(out).info().meta["sync_points"] == [0, 1, 3, 5]


def test_a_recording_s_sync_points_must_hold_their_seal(tmp_path: Path) -> None:
    """A flipped bit turned the recording's count 22 into 23, and the import wrote another
    trace (a window of 1538 pages where QEMU sent 1936) with exit status 0. A recording
    (an object, as corpus/qemu_stream.py writes) is sealed; a list of counts, as a person
    writes them, is taken as it is."""
    recording = json.loads(FIXTURE_INFO.read_text())
    assert q.read_sync_points(FIXTURE_INFO) == recording["sync_points"]
    damaged = tmp_path / "damaged.json"
    damaged.write_text(FIXTURE_INFO.read_text().replace("\n  22,\n", "\n  23,\n", 1))
    assert damaged.read_text() != FIXTURE_INFO.read_text()
    with pytest.raises(ValueError) as caught:
        q.read_sync_points(damaged)
    assert str(caught.value).startswith(
        f"the sync points file {damaged} is a recording whose seal does not hold (its content "
        "does not match its checksum ("
    )
    assert str(caught.value).endswith(
        "record it again with corpus/qemu_stream.py, or give the counts you trust as a JSON list"
    )
    unsealed = tmp_path / "unsealed.json"
    unsealed.write_text(json.dumps({"sync_points": [0, 22]}))
    with pytest.raises(ValueError, match="whose seal does not hold \\(it has no 'checksum'"):
        q.read_sync_points(unsealed)
    typed = tmp_path / "typed.json"
    typed.write_text("[0, 23, 77]")
    assert q.read_sync_points(typed) == [0, 23, 77]


def test_import_qemu_refuses_an_empty_name_not_taken_as_no_file(tmp_path: Path, capsys) -> None:
    """``--sync-points ''`` was taken as no sync points: the trace was written, exit status
    0, with windows cut at passes of the RAM scan instead of QEMU's iterations."""
    stream = tmp_path / "sample.stream"
    stream.write_bytes(SAMPLE)
    out = tmp_path / "trace"
    argv = ["trace", "import-qemu", str(stream), "--out", str(out), "--sync-points", ""]
    assert main(argv) == 2
    assert capsys.readouterr() == (
        "",
        "migcodec trace import-qemu: --sync-points '' names no file; give the JSON file of "
        "sync points, or leave --sync-points out\n",
    )
    assert main(["trace", "import-qemu", "", "--out", str(out)]) == 2
    assert capsys.readouterr() == (
        "",
        "migcodec trace import-qemu: the stream '' names no file; give the file QEMU saved "
        'the stream to (migrate "exec:cat > FILE")\n',
    )
    assert not out.exists()


def test_import_qemu_reports_a_bad_stream_in_one_line(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad"
    bad.write_bytes(SAMPLE[:5000])
    assert main(["trace", "import-qemu", str(bad), "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("migcodec trace import-qemu: the stream ends ")
    assert "at byte 5000 of the stream" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    missing = tmp_path / "missing"
    assert main(["trace", "import-qemu", str(missing), "--out", str(tmp_path / "u")]) == 2
    assert "No such file" in capsys.readouterr().err


# -- a real QEMU stream ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def recorded() -> tuple[dict, list, ImportStats, q.StreamInfo]:
    info = json.loads(FIXTURE_INFO.read_text())
    stats = ImportStats()
    stream = QemuStream(FIXTURE_STREAM)
    with stream:
        got = list(qemu_windows(stream, info["sync_points"], stats))
    return info, got, stats, stream.info


def test_the_recorded_stream_has_several_iterations(recorded) -> None:
    _, got, stats, stream = recorded
    assert stream.machine == "pc-i440fx-7.2"
    assert stream.blocks[0].name == "pc.ram" and stream.blocks[0].length == 128 << 20
    assert len(got) >= 6
    assert got[0].phase == "bulk" and got[-1].phase == "stop-copy"
    assert {w.phase for w in got[1:-1]} == {"precopy"}
    assert got[0].n_pages == stream.memory_pages  # the first pass sends every page
    assert sum(w.n_pages for w in got) == stats.pages
    assert stats.xbzrle >= 1000
    assert sum(w.meta["qemu"]["xbzrle"] > 0 for w in got) >= 4


def test_migcodec_decodes_and_re_encodes_every_xbzrle_page_of_qemu(recorded) -> None:
    _, _, stats, _ = recorded
    assert stats.xbzrle_mismatches == 0


def test_the_stream_s_counts_are_qemu_s_own(recorded) -> None:
    """QEMU 7.2 counts as XBZRLE pages every cache hit (sent encoded, overflowed and sent
    whole, or skipped as unchanged) and as XBZRLE bytes each sent encoding plus its 3-byte
    header, and a page size per overflow."""
    info, _, stats, _ = recorded
    final = info["query_migrate"][-1]
    assert final["status"] == "completed"
    assert stats.normal == final["ram"]["normal"]
    assert stats.zero == final["ram"]["duplicate"]
    cache = final["xbzrle"]
    assert stats.xbzrle_bytes + 3 * stats.xbzrle + PAGE * cache["overflow"] == cache["bytes"]
    assert stats.xbzrle + cache["overflow"] <= cache["pages"]


def test_with_a_small_downtime_limit_qemu_s_passes_are_its_iterations(recorded) -> None:
    """QEMU then syncs only when its scan has found no dirty page left: the stream alone
    cuts the same windows as QEMU's trace log."""
    _, got, _, _ = recorded
    with QemuStream(FIXTURE_STREAM) as stream:
        passes = [w.page_indices for w in qemu_windows(stream)]
    assert len(passes) == len(got)
    assert all(np.array_equal(a, w.page_indices) for a, w in zip(passes, got, strict=True))


def test_each_window_s_previous_is_what_earlier_windows_sent(recorded) -> None:
    _, got, _, _ = recorded
    held: dict[int, bytes] = {}
    zero = bytes(PAGE)
    for w in got:
        assert (np.diff(w.page_indices) > 0).all()
        for page, new, old in zip(w.page_indices.tolist(), w.pages, w.previous, strict=True):
            assert old.tobytes() == held.get(page, zero)
            held[page] = new.tobytes()


def test_qemu_s_destination_restored_the_ram_migcodec_reconstructs(recorded) -> None:
    """corpus/qemu_stream.py --check-destination loaded the stream into a second QEMU and
    compared its RAM (pmemsave) with migcodec's reconstruction, page by page."""
    info = recorded[0]
    check = info["destination"]
    assert check["pages_compared"] > 32000
    assert check["pages_differing"] == 0
    assert check["stream"]["xbzrle_mismatches"] == 0
