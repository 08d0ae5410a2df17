"""End-to-end pre-copy over loopback TCP, and the fault cases the engine must survive."""

import contextlib
import re
import socket
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from migcodec.codecs import Batch, Codec, CodecUnavailable, DestinationMirror, get_codec
from migcodec.codecs.plugins.dsa_delta import DsaDeltaCodec
from migcodec.codecs.plugins.lz4 import Lz4Codec
from migcodec.codecs.plugins.raw import RawCodec
from migcodec.codecs.stuck import still_read
from migcodec.engine import (
    DirtyLog,
    FixedChooser,
    GuestWorkload,
    MigrationConfig,
    MigrationReport,
    MigrationSource,
    parse_rate,
    receive_migration,
    run_loopback,
)
from migcodec.engine import runner as runner_module
from migcodec.engine import source as source_module
from migcodec.engine.runs import batch_runs
from migcodec.engine.source import _Sender
from migcodec.wire import CodecMissing, FrameReader, WireError
from migcodec.wire.handshake import send_reply
from migcodec.wire.io import TimedSocket
from tests.hang_guard import within

MiB = 1 << 20


@pytest.mark.parametrize("codec", ["raw", "lz4", "zlib-ng", "zstd"])
def test_migration_with_a_dirtying_guest_ends_with_equal_memories(codec):
    config = MigrationConfig(workers=2, link_rate=parse_rate("2Gbit"), max_time_s=30)
    report = run_loopback(16 * MiB, FixedChooser(get_codec(codec)), config, 20e6, "mixed")
    assert report.succeeded, report.error
    assert report.verified and report.converged
    assert report.pages_sent >= 16 * MiB // 4096
    assert report.downtime_s is not None and report.downtime_s < 5
    assert report.pages_by_codec[codec] == report.pages_sent


@pytest.mark.parametrize("codec", ["xbzrle", "zstd"])
def test_no_migration_finishes_faster_than_its_link_allows(codec):
    """The link was made before the destination mirror's set-up, and its bucket filled to
    its burst meanwhile: the codecs with a mirror sent up to 4 MiB unpaced, finishing a
    migration in less time than its wire bytes take over the link."""
    config = MigrationConfig(workers=2, link_rate=parse_rate("100Mbit"), max_time_s=30)
    report = run_loopback(16 * MiB, FixedChooser(get_codec(codec)), config, 0.0, "text")
    assert report.succeeded, report.error
    assert report.total_time_s >= report.wire_bytes / report.link_rate


def test_an_iteration_cut_short_logs_the_pages_it_sent_not_those_it_collected():
    """Over a link too slow for the time limit, the first iteration logged all 256 pages
    it collected, where 64 went out (the report's total said 64)."""
    config = MigrationConfig(workers=1, link_rate=parse_rate("100kB/s"), max_time_s=2)
    report = run_loopback(1 * MiB, FixedChooser(get_codec("zstd")), config, 0.0, "random")
    assert not report.succeeded
    assert report.pages_sent < 256
    assert sum(r.pages_sent for r in report.iteration_log) == report.pages_sent
    for record in report.iteration_log:
        assert record.pages_sent == sum(record.pages_by_codec.values())


def test_a_stop_and_copy_cut_short_still_measures_the_downtime():
    """The guest was paused, and the time limit ended the stop-and-copy: the downtime was
    left out (null), as if no stop-and-copy had begun."""
    # a first pass of about 1 s, then every page again in a stop-and-copy the limit cuts
    config = MigrationConfig(
        workers=1, link_rate=parse_rate("50MB/s"), max_time_s=1.5, downtime_limit_s=1e4
    )
    report = run_loopback(48 * MiB, FixedChooser(get_codec("raw")), config, 1e9, "random")
    assert not report.succeeded
    assert report.iteration_log[-1].stop_and_copy
    assert report.downtime_s is not None and report.downtime_s > 0


@pytest.mark.parametrize(("page_size", "inline"), [(4096, 256), (512 << 10, 256), (4096, 10**6)])
def test_raw_batches_framed_by_the_sender_stay_within_what_the_wire_allows(page_size, inline):
    """The sender frames raw batches of up to ``inline_batch_pages``, bounded by the
    wire's frame limits (64 MiB, 4096 pages): large pages or a large setting still migrate
    and verify, in frames the destination accepts."""
    config = MigrationConfig(
        page_size=page_size, max_batch_pages=64, inline_batch_pages=inline, max_time_s=30
    )
    rng = np.random.default_rng(0)
    memory = rng.integers(1, 256, (32 * MiB // page_size, page_size), dtype=np.uint8)
    report = run_loopback(memory, FixedChooser(get_codec("raw")), config, 0.0, fill=False)
    assert report.succeeded, report.error
    assert report.verified and report.pages_sent == memory.shape[0]


def test_guest_dirtying_faster_than_the_link_does_not_converge_and_says_so():
    config = MigrationConfig(link_rate=parse_rate("80Mbit"), max_time_s=20, stall_iterations=2)
    report = run_loopback(8 * MiB, FixedChooser(get_codec("raw")), config, 40e6, "random")
    assert not report.succeeded
    assert report.error.startswith("did not converge: ")
    assert report.downtime_s is None


def test_batches_merge_adjacent_pages_and_respect_the_maximum():
    pages = np.array([0, 1, 2, 5, 6, 9, *range(100, 200)], dtype=np.int64)
    batches = batch_runs(pages, 64)
    assert batches[0].tolist() == [[0, 3], [5, 2], [9, 1], [100, 58]]
    assert batches[1].tolist() == [[158, 42]]
    assert sum(int(b[:, 1].sum()) for b in batches) == pages.size


class _FlakyLz4(Lz4Codec):
    """lz4 on the wire, but every third batch fails to encode (with ``failure``)."""

    calls = 0
    failure: type[BaseException] = RuntimeError

    def encode_pages(self, pages):
        type(self).calls += 1
        if type(self).calls % 3 == 0:
            raise self.failure("injected codec failure")
        return super().encode_pages(pages)


# a codec's own SystemExit or KeyboardInterrupt (no signal raises one in an engine's
# thread) ended the migration as "sender failed", naming no codec
@pytest.mark.parametrize("failure", [RuntimeError, SystemExit, KeyboardInterrupt])
def test_a_failing_codec_batch_is_re_encoded_with_the_fallback_and_counted(failure):
    config = MigrationConfig(workers=1, link_rate=None)
    codec = _FlakyLz4()
    codec.failure = failure
    report = run_loopback(4 * MiB, FixedChooser(codec), config, 0.0, "seq")
    assert report.succeeded, report.error
    assert report.fallback_batches > 0
    assert report.pages_by_codec["raw"] == report.fallback_batches * 64
    assert report.pages_by_codec["lz4"] + report.pages_by_codec["raw"] == report.pages_sent


class _Request:
    def __init__(self, batch):
        self.batch = batch
        self.staging = np.empty((batch.max_pages, batch.page_size), np.uint8)

    def done(self):
        return True

    def result(self):
        raise RuntimeError("injected codec failure")


class _Writer:
    def __init__(self, codecs):
        self.codecs = dict(enumerate(codecs))
        self.written = []

    def codec_id(self, codec):
        return next(i for i, c in self.codecs.items() if c is codec)

    def write_batch(self, encoded, codec_id):
        self.written.append((encoded.codec, codec_id))


@pytest.mark.parametrize("recording", [True, False])
def test_after_a_failed_batch_the_mirror_holds_what_the_fallback_sent(recording):
    """A delta codec's batch fails; the fall-back re-encodes a fresher snapshot. The mirror
    must then hold that snapshot (recording) or nothing (not recording), never the version
    it held before: a later delta against it would be applied to the wrong base."""
    memory = np.random.default_rng(0).integers(0, 256, (64, 4096), dtype=np.uint8)
    delta, fallback = DsaDeltaCodec(), get_codec("raw")
    mirror = DestinationMirror(4096)
    batch = Batch(memory, [(8, 16)], 4096, 64)
    delta.encode(batch, destination=mirror)  # the destination holds this version
    memory[8:24, :8] ^= 0xFF  # the guest writes; the next batch fails, raw resends it
    mirror.recording = recording
    writer = _Writer([delta, fallback])
    report = MigrationReport(codec="x")
    sender = _Sender(writer, FixedChooser(delta), fallback, report, mirror)
    sender._frame(_Request(batch), 0)
    assert writer.written == [("raw", 1)]
    hit, held = mirror.held(np.arange(8, 24))
    if recording:
        assert hit.all() and np.array_equal(held, memory[8:24])
    else:
        assert not hit.any()


def _source(n_pages=1024, codec="lz4"):
    memory = np.zeros((n_pages, 4096), np.uint8)
    dirty = DirtyLog(n_pages)
    guest = GuestWorkload(memory, dirty, 0.0, "memcached")
    guest.fill()
    config = MigrationConfig(link_rate=None)
    return MigrationSource(memory, FixedChooser(get_codec(codec)), config, dirty, guest)


def test_destination_lacking_a_codec_refuses_at_the_handshake():
    def lacks_lz4(config):
        if config["name"] == "lz4":
            raise CodecUnavailable("codec 'lz4' failed to load; pip install lz4")
        return get_codec(config)

    src, dst = socket.socketpair()
    outcome = {}

    def destination():
        with dst:
            try:
                FrameReader(dst, resolve=lacks_lz4, reply_to=dst)
            except WireError as exc:
                outcome["error"] = exc

    thread = threading.Thread(target=destination)
    thread.start()
    with src, pytest.raises(WireError, match="pip install lz4"):
        _source().migrate(src)
    thread.join(timeout=10)
    assert isinstance(outcome["error"], CodecMissing)


def _cutting_proxy(a: socket.socket, b: socket.socket, limit: int) -> list[threading.Thread]:
    """Relay a<->b; after ``limit`` bytes from a to b, cut both connections."""
    cut = threading.Event()

    def cut_both():
        cut.set()
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def forward():
        sent = 0
        while sent < limit:
            chunk = a.recv(min(65536, limit - sent))
            if not chunk:
                break
            b.sendall(chunk)
            sent += len(chunk)
        cut_both()

    def backward():
        while not cut.is_set():
            try:
                chunk = b.recv(4096)
                if not chunk:
                    break
                a.sendall(chunk)
            except OSError:
                break

    return [threading.Thread(target=forward), threading.Thread(target=backward)]


def test_connection_dropped_mid_stream_fails_both_ends_without_hanging():
    src, proxy_a = socket.socketpair()
    proxy_b, dst = socket.socketpair()
    outcome = {}

    def destination():
        memory = np.zeros((4096, 4096), np.uint8)
        try:
            FrameReader(dst, reply_to=dst).receive(memory)
            outcome["completed"] = True
        except WireError as exc:
            outcome["error"] = exc

    threads = [*_cutting_proxy(proxy_a, proxy_b, 300_000), threading.Thread(target=destination)]
    for t in threads:
        t.start()
    report = _source(4096, "raw").migrate(src)
    for t in threads:
        t.join(timeout=20)
        assert not t.is_alive()
    for s in (src, proxy_a, proxy_b, dst):
        s.close()
    assert not report.succeeded
    assert report.error is not None
    assert "completed" not in outcome
    assert isinstance(outcome["error"], WireError)


def test_emulated_accelerator_counts_modelled_offload_cost_not_emulation_cpu():
    config = MigrationConfig(workers=1, link_rate=None)
    report = run_loopback(4 * MiB, FixedChooser(get_codec("qat")), config, 0.0, "seq")
    assert report.succeeded, report.error
    assert report.paths["qat"] == "emulated"
    assert report.modelled and report.as_dict()["modelled"]
    assert report.emulation_cpu_s > 0.0
    assert report.modelled_host_cpu_s > 0.0
    assert report.codec_cpu_s == 0.0  # its engines' clocks: the model's cost counts instead
    busy = report.codec_cpu_s + report.sender_cpu_s + report.modelled_host_cpu_s
    assert report.extra_cpu_percent == pytest.approx(100 * busy / report.total_time_s)


def test_an_emulated_accelerator_beside_a_software_codec_leaves_its_cpu_counted(monkeypatch):
    """The stand-in's estimated CPU (batch times sampled one call in 64, scaled by wall
    time) was taken off every engine's clock, and with 32 engines on 2 cores it took the
    zstd engines' CPU with it: codec_cpu_s read 0 where they had run 0.12 s."""
    from migcodec.codecs.pool import CodecEngines

    clocks = {}
    real_stop = CodecEngines.stop

    def stop(self, timeout=0.0):
        stuck = real_stop(self, timeout)
        clocks[self.codec.name] = self.cpu_s()
        return stuck

    monkeypatch.setattr(CodecEngines, "stop", stop)
    config = MigrationConfig(workers=8, link_rate=None, window_batches=4)
    report = run_loopback(16 * MiB, _AlternatingChooser(["zstd", "qat"]), config, 0.0, "text")
    assert report.succeeded, report.error
    assert report.paths["qat"] == "emulated" and clocks["zstd"] > 0.0
    assert report.codec_cpu_s == clocks["zstd"]


class _AlternatingChooser(FixedChooser):
    """Switches codec every window: the mirror must hear of what every codec sent."""

    def __init__(self, names):
        super().__init__(get_codec(names[0]))
        self.codecs = [get_codec(n) for n in names]
        self.label = "alternating"
        self.turn = -1

    def choose(self, window):
        self.turn += 1
        return self.turn % len(self.codecs)


@pytest.mark.parametrize("delta", ["xbzrle", "dsa-delta"])
def test_switching_between_delta_and_compression_codecs_keeps_memories_equal(delta):
    config = MigrationConfig(workers=2, link_rate=None, window_batches=2, max_time_s=30)
    chooser = _AlternatingChooser([delta, "lz4", "zstd"])
    report = run_loopback(8 * MiB, chooser, config, 30e6, "mixed", style="words")
    assert report.succeeded, report.error
    assert report.pages_by_codec[delta] > 0
    assert report.iterations >= 2


class _SplittingChooser(FixedChooser):
    """Plays codec 1 on the first batch of every window and codec 0 on the rest, and
    counts the pages each batch report names."""

    def __init__(self, names):
        super().__init__(get_codec(names[0]))
        self.codecs = [get_codec(n) for n in names]
        self.label = "split"
        self.split = None
        self.reported = [0, 0]

    def choose(self, window):
        self.split = (0, 1)
        return 1

    def report(self, index, stats):
        self.reported[index] += stats.input_bytes // 4096


@pytest.mark.parametrize("trial", ["xbzrle", "zstd"])
def test_a_split_window_encodes_its_first_batches_with_one_codec_and_the_rest_with_another(
    trial,
):
    """A trial of a codec on a part of a window: its first batch goes to the trial codec,
    the rest to the other; the destination ends with the source's memory either way."""
    config = MigrationConfig(workers=2, link_rate=None, window_batches=4, max_time_s=30)
    chooser = _SplittingChooser(["lz4", trial])
    report = run_loopback(8 * MiB, chooser, config, 30e6, "mixed", style="words")
    assert report.succeeded, report.error
    # one batch of every window of 4 went to the trial codec, three to lz4
    assert report.pages_by_codec[trial] > 0 and report.pages_by_codec["lz4"] > 0
    assert chooser.reported == [report.pages_by_codec["lz4"], report.pages_by_codec[trial]]
    first = report.iteration_log[0]  # 2048 pages: 8 windows of 4 batches of 64 pages
    assert first.pages_by_codec == {trial: 8 * 64, "lz4": 8 * 3 * 64}


class _CountingMirror(DestinationMirror):
    """Counts the pages it records from codecs that do not read the destination."""

    recorded = 0

    def sent(self, indices, pages, zero, copy, lent=None):
        if copy:
            type(self).recorded += len(indices)
        super().sent(indices, pages, zero, copy, lent)


def test_the_mirror_records_other_codecs_pages_from_the_second_pass_on(monkeypatch):
    """The first pass sends every page once: recording it all would cost the engines a copy
    of memory for nothing (QEMU's XBZRLE rule). Later passes record every page."""
    monkeypatch.setattr(source_module, "DestinationMirror", _CountingMirror)
    chooser = FixedChooser(get_codec("lz4"))
    chooser.codecs.append(DsaDeltaCodec())  # in the stream's table, never chosen
    config = MigrationConfig(workers=2, link_rate=parse_rate("1Gbit"), window_batches=2)
    report = run_loopback(8 * MiB, chooser, config, 40e6, "mixed")
    assert report.succeeded, report.error
    later = report.pages_sent - report.iteration_log[0].pages_sent
    assert later > 0
    assert _CountingMirror.recorded == later


class _BrokenReportChooser(FixedChooser):
    def report(self, index, stats):
        raise IndexError("chooser bug")


def test_a_failing_chooser_fails_the_migration_instead_of_hanging():
    config = MigrationConfig(workers=1, link_rate=None)
    outcome = {}

    def run():
        outcome["report"] = run_loopback(
            2 * MiB, _BrokenReportChooser(get_codec("lz4")), config, 0.0, "seq"
        )

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    report = outcome["report"]
    assert not report.succeeded
    assert "chooser bug" in report.error


def test_the_iteration_log_accounts_for_every_page_and_ends_with_stop_and_copy():
    config = MigrationConfig(workers=2, link_rate=parse_rate("1Gbit"), window_batches=2)
    chooser = _AlternatingChooser(["lz4", "zstd"])
    report = run_loopback(8 * MiB, chooser, config, 30e6, "mixed")
    assert report.succeeded, report.error
    log = report.iteration_log
    assert [r.iteration for r in log] == list(range(report.iterations))
    assert sum(r.pages_sent for r in log) == report.pages_sent
    for r in log:
        assert sum(r.pages_by_codec.values()) == r.pages_sent
    assert log[0].pages_sent == 8 * MiB // 4096  # the first pass sends everything
    assert set(log[0].pages_by_codec) == {"lz4", "zstd"}
    assert [r.stop_and_copy for r in log] == [False] * (len(log) - 1) + [True]
    assert log[-1].dirty_pages_left == 0
    starts = [r.start_s for r in log]
    assert starts == sorted(starts) and all(r.end_s >= r.start_s for r in log)
    assert log[-1].end_s <= report.total_time_s
    # everything but the end-of-stream frame was written inside some iteration
    assert 0 < report.wire_bytes - sum(r.wire_bytes for r in log) < 4096
    listed = report.as_dict()["iteration_log"]
    assert listed[0]["pages_sent"] == log[0].pages_sent
    assert listed[-1]["stop_and_copy"] is True


class _FirstOfTwins(FixedChooser):
    """Two lz4 arms with equal config; always picks the first and records its reports."""

    def __init__(self):
        super().__init__(get_codec("lz4"))
        self.codecs.append(get_codec("lz4"))
        self.reported = set()

    def report(self, index, stats):
        self.reported.add(index)


def test_arms_of_equal_config_keep_their_own_codec_ids():
    chooser = _FirstOfTwins()
    report = run_loopback(1 * MiB, chooser, MigrationConfig(link_rate=None), 0.0, "mixed")
    assert report.succeeded, report.error
    assert chooser.reported == {0}  # not folded into the other arm by config


def test_guest_bytes_sent_follows_the_pages_sent_and_stays_in_the_json():
    report = MigrationReport(codec="raw", pages_sent=10, page_size=4096, wire_bytes=20480)
    assert report.guest_bytes_sent == 40960
    assert report.as_dict()["guest_bytes_sent"] == 40960
    assert report.ratio == 2.0


@pytest.mark.parametrize("guest", [False, True])
def test_raw_batches_are_encoded_by_the_sender_without_engines(monkeypatch, guest):
    """The raw codec needs no engine: the sender encodes its batches, from memory where it
    lies when nothing can write it (no guest), from a snapshot otherwise; either way the
    destination ends with the source's memory, verified by its digest."""

    def no_engines(*args, **kwargs):
        raise AssertionError("the raw codec was handed to engines")

    monkeypatch.setattr(source_module, "CodecEngines", no_engines)
    memory = np.random.default_rng(5).integers(0, 256, (1024, 4096), dtype=np.uint8)
    memory[::7] = 0  # zero pages travel as markers
    config = MigrationConfig(link_rate=None)
    if guest:
        source = _source(1024, "raw")
        memory = source.memory
    else:
        source = MigrationSource(memory, FixedChooser(get_codec("raw")), config)
    src, dst = socket.socketpair()
    received = {}

    def destination():
        received["memory"] = np.zeros_like(memory)
        reader = FrameReader(dst, reply_to=dst)
        reader.receive(received["memory"])
        send_reply(dst, True, "memory verified", reader.replies_checksummed)

    thread = threading.Thread(target=destination)
    thread.start()
    report = source.migrate(src)
    thread.join(timeout=20)
    src.close()
    dst.close()
    assert report.succeeded and report.verified, report.error
    np.testing.assert_array_equal(received["memory"], memory)
    assert report.pages_by_codec == {"raw": report.pages_sent}


class _PreparingChooser(FixedChooser):
    """Records the windows the engine asks it to read ahead and to choose for, in order."""

    def __init__(self, codec):
        super().__init__(codec)
        self.events = []

    def prepare(self, window):
        self.events.append(("prepare", window))

    def choose(self, window):
        self.events.append(("choose", window))
        return 0


@pytest.mark.parametrize("codec", ["lz4", "raw"])
def test_the_engine_reads_each_next_window_ahead_while_the_current_one_is_in_flight(codec):
    """The chooser's reading of window k+1 runs while window k's requests fill the pool (a
    thread that would wait anyway): after window k was chosen and before window k+1 is,
    for the very window object then chosen."""
    chooser = _PreparingChooser(get_codec(codec))
    config = MigrationConfig(
        workers=1, depth=2, link_rate=parse_rate("1Gbit"), window_batches=4, max_time_s=30
    )
    report = run_loopback(4 * MiB, chooser, config, 0.0, "seq")
    assert report.succeeded, report.error
    events = chooser.events
    assert sum(what == "choose" for what, _ in events) == (4 * MiB // 4096) // (64 * 4)
    assert any(what == "prepare" for what, _ in events)
    for i, (what, window) in enumerate(events):
        if what == "prepare":
            assert events[i - 1][0] == "choose"  # during the window just chosen
            assert events[i + 1][0] == "choose" and events[i + 1][1] is window


class _WrongChooser(FixedChooser):
    """Names a codec it does not have, by its choice or by its split."""

    def __init__(self, choice, split=None):
        super().__init__(get_codec("lz4"))
        self.choice, self.split = choice, split

    def choose(self, window):
        return self.choice


@pytest.mark.parametrize(
    ("choice", "split", "named"),
    [
        (1, None, "chose codec 1"),
        (-1, None, "chose codec -1"),
        (0, (5, 1), "to codec 5"),
        (0, (0, 1.5), "after 1.5 batches; give a whole number of batches$"),
    ],
)
def test_a_chooser_naming_a_codec_it_does_not_have_is_refused_by_name(choice, split, named):
    """An index past its codecs failed deep in the engine, and -1 named its last codec."""
    config = MigrationConfig(workers=1, link_rate=None, window_batches=2, max_time_s=30)
    with pytest.raises(ValueError, match=named) as raised:
        run_loopback(4 * MiB, _WrongChooser(choice, split), config, 0.0, "seq")
    if "batches" not in named:
        assert str(raised.value).endswith("which is not an index of its 1 codec (0 to 0)")


def _migrate_to(destination, pages: int = 1024) -> MigrationReport:
    """Migrate random memory of ``pages`` raw pages to ``destination(dst, memory)``, run on
    the other end of a socket pair; return the source's report."""
    memory = np.random.default_rng(9).integers(0, 256, (pages, 4096), dtype=np.uint8)
    source = MigrationSource(memory, FixedChooser(get_codec("raw")), MigrationConfig())
    src, dst = socket.socketpair()
    src.settimeout(10)
    thread = threading.Thread(target=destination, args=(dst, memory))
    thread.start()
    try:
        report = source.migrate(src)
    finally:
        src.close()
        thread.join(timeout=20)
        dst.close()
    return report


@pytest.mark.parametrize(
    ("accepted", "reason", "error"),
    [
        # an acceptance of the preamble sent again before any frame, 4 MiB still to come:
        # no verdict on memory that had not arrived
        (
            True,
            "memory verified",
            "destination reported success before the stream ended, so it did not verify the "
            "memory; check that `migcodec receive` is what listens there",
        ),
        (
            False,
            "frame 3: checksum mismatch",
            "destination refused the stream: 'frame 3: checksum mismatch'",
        ),
    ],
)
def test_an_answer_sent_before_the_stream_ended_is_not_taken_for_the_verdict(
    accepted, reason, error
):
    """The destination answers mid-stream, then reads the stream and never answers its
    end: an acceptance is no verdict, and a refusal is reported with its reason."""

    def destination(dst, memory):
        reader = FrameReader(dst, reply_to=dst)
        send_reply(dst, accepted, reason, reader.replies_checksummed)
        with contextlib.suppress(WireError):  # the source ends the stream without its end
            reader.receive(np.zeros_like(memory))

    report = _migrate_to(destination)
    assert not report.succeeded and not report.verified
    assert report.error == f"destination did not confirm the migration: {error}"


def _to_a_destination_that_stops_reading(idle_s: float, deadline_s: float) -> MigrationReport:
    """Migrate 16 MiB to a destination that accepts the preamble, then reads nothing, over
    a socket with those limits."""
    memory = np.random.default_rng(9).integers(0, 256, (4096, 4096), dtype=np.uint8)
    source = MigrationSource(memory, FixedChooser(get_codec("raw")), MigrationConfig())
    src, dst = socket.socketpair()
    done = threading.Event()

    def destination():
        FrameReader(dst, reply_to=dst)  # reads the preamble and accepts it
        done.wait(20)  # then reads nothing more

    thread = threading.Thread(target=destination)
    thread.start()
    timed = TimedSocket.adopt(src, idle_s=idle_s, deadline_s=deadline_s)
    try:
        report = source.migrate(timed)
    finally:
        done.set()
        timed.close()
        thread.join(timeout=20)
        dst.close()
    return report


def test_a_destination_that_stops_reading_is_named_with_what_to_do():
    """The destination accepts the preamble, then reads nothing: once the socket's buffers
    are full, the source's sends wait out the idle timeout, and the report says what
    stopped and what to do, not only the timeout's type."""
    report = _to_a_destination_that_stops_reading(idle_s=0.2, deadline_s=30.0)
    assert not report.succeeded
    assert report.error == (
        "the destination stopped reading the stream: the peer took no data for 0.2 s (the "
        "idle timeout); check that it is still running and that the network between them "
        "is up, or allow it longer (--timeout)"
    )


def test_a_deadline_that_passes_mid_stream_is_named_with_what_to_change():
    """It read "link failed: DeadlinePassed: the connection's deadline of 0.3 s passed",
    naming an exception class and no option."""
    report = _to_a_destination_that_stops_reading(idle_s=30.0, deadline_s=0.3)
    assert not report.succeeded
    assert report.error == (
        "the migration did not finish in time: the connection's deadline of 0.3 s passed; "
        "allow it longer (--deadline), or send less (a faster --link, a lower --dirty-rate)"
    )


def test_a_garbled_verdict_is_named_as_the_answer_to_the_end_of_the_stream():
    def destination(dst, memory):
        FrameReader(dst, reply_to=dst).receive(np.zeros_like(memory))
        dst.sendall(b"\xff" * 7)

    report = _migrate_to(destination, pages=16)
    assert not report.succeeded and not report.verified
    assert report.error == (
        "destination did not confirm the migration: destination answered the end of the "
        "stream with garbage (b'\\xff\\xff\\xff\\xff\\xff\\xff\\xff')"
    )


def test_the_destination_memory_is_allocated_and_touched_before_the_stream(monkeypatch):
    """A page's first write costs a fault, several microseconds on a virtual machine's host:
    left in the stream, the same for every codec, it took most of a first pass."""
    from migcodec.engine import runner

    given = []
    real = runner.receive_migration

    def receive(conn, memory=None, **kwargs):
        given.append(memory)
        return real(conn, memory, **kwargs)

    monkeypatch.setattr(runner, "receive_migration", receive)
    config = MigrationConfig(max_time_s=30)
    report = run_loopback(2 * MiB, FixedChooser(get_codec("lz4")), config, 0.0, "seq")
    assert report.verified, report.error
    (memory,) = given
    assert memory.shape == (512, 4096) and memory.dtype == np.uint8
    given.clear()
    report = run_loopback(
        2 * MiB, FixedChooser(get_codec("lz4")), config, 0.0, "seq", prefault_destination=False
    )
    assert report.verified and given == [None]


class _Stuck:
    """Codecs whose encode never returns, as a plugin's endless loop or a hung library
    call, until the test ends: then they return, so that no thread outlives it."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()  # set once a codec is inside encode

    def codec(self, base: type[Codec]) -> Codec:
        """A codec of ``base``'s name and format that never returns from encode."""
        gate, started = self.gate, self.started

        class Stuck(base):
            def encode_pages(self, pages):
                started.set()
                gate.wait()
                return super().encode_pages(pages)

        return Stuck()


@pytest.fixture
def stuck() -> Iterator[_Stuck]:
    codecs = _Stuck()
    yield codecs
    codecs.gate.set()


#: how the migration fails when a codec's encode has not returned by its 1 s time limit
_STUCK_AT_THE_TIME_LIMIT = (
    r"did not finish within its 1 s time limit: codec '{name}' has not returned from encode "
    r"after \d+\.\d s: the codec is stuck; choose another --codec"
)


@pytest.mark.parametrize(
    "base",
    [Lz4Codec, RawCodec],  # encoded by the engines; by the sender itself (raw codecs)
)
def test_a_codec_whose_encode_never_returns_fails_the_migration_at_its_time_limit(stuck, base):
    """The sender waited for it forever, and the migration thread for the sender; the
    thread inside the codec is left running, and the memory it may read is known."""
    memory = np.zeros((512, 4096), np.uint8)
    config = MigrationConfig(workers=1, max_time_s=1.0)
    chooser = FixedChooser(stuck.codec(base))
    report = within(30, run_loopback, memory, chooser, config, 0.0, "memcached")
    assert stuck.started.is_set() and not report.succeeded
    assert re.fullmatch(_STUCK_AT_THE_TIME_LIMIT.format(name=base.name), report.error)
    assert still_read(memory)


class _InterruptedChooser(FixedChooser):
    """Ctrl-C at the second window, once the codec is inside encode on the first."""

    def __init__(self, codec: Codec, started: threading.Event) -> None:
        super().__init__(codec)
        self.started = started
        self.windows = 0

    def choose(self, window):
        self.windows += 1
        if self.windows == 2:
            assert self.started.wait(10)
            raise KeyboardInterrupt
        return 0


def test_ctrl_c_while_a_codec_never_returns_ends_the_migration_after_a_grace_period(
    stuck, monkeypatch
):
    """The teardown after Ctrl-C stopped every thread before returning, and waited for
    the codec inside encode until SIGKILL (signals are held there); it now waits for it
    for STOP_GRACE_S at most, whatever the time limit, and leaves it running."""
    monkeypatch.setattr(source_module, "STOP_GRACE_S", 0.5)
    memory = np.zeros((512, 4096), np.uint8)
    config = MigrationConfig(workers=1, depth=2, window_batches=1, max_time_s=600)
    chooser = _InterruptedChooser(stuck.codec(Lz4Codec), stuck.started)
    with pytest.raises(KeyboardInterrupt):
        within(30, run_loopback, memory, chooser, config, 0.0, "memcached")
    assert still_read(memory)


def test_a_migration_the_encoders_pace_ends_at_its_time_limit(monkeypatch):
    """Over an unlimited link the encoders set the pace, and nothing but the end of an
    iteration checked the time limit: a first pass through zlib-ng on one engine ran to
    6.8 s under a 2 s limit. Each batch here takes 50 ms, 256 batches a pass; the
    destination is told why the stream ends."""

    class Slow(Lz4Codec):
        def encode_pages(self, pages):
            time.sleep(0.05)
            return super().encode_pages(pages)

    told = []
    real_receive = runner_module.receive_migration

    def receive(*args, **kwargs):
        try:
            return real_receive(*args, **kwargs)
        except WireError as exc:
            told.append(exc)
            raise

    monkeypatch.setattr(runner_module, "receive_migration", receive)
    config = MigrationConfig(workers=1, link_rate=None, max_time_s=1.0)
    report = within(60, run_loopback, 64 * MiB, FixedChooser(Slow()), config, 0.0)
    assert not report.succeeded
    assert report.error == (
        "did not finish within its 1 s time limit (the time was up with frames still to send)"
    )
    assert report.total_time_s < 3.0  # a pass takes 12.8 s
    assert 0 < report.pages_sent < 16384
    assert len(told) == 1 and report.error in str(told[0])


@pytest.mark.parametrize("link", [None, "10Gbit"])
def test_a_destination_that_stops_reading_ends_the_migration_at_its_time_limit(monkeypatch, link):
    """A destination that accepted the stream and then read nothing (a stopped process)
    filled the send buffer, and a write then blocked for the socket's own timeout: a
    minute for ``send``, forever on a plain socket, where the time limit was seconds."""
    monkeypatch.setattr(source_module, "STOP_GRACE_S", 0.5)
    released = threading.Event()
    with socket.create_server(("127.0.0.1", 0)) as server:

        def destination() -> None:
            conn, _ = server.accept()
            with conn:
                FrameReader(conn, reply_to=conn)  # the preamble, accepted
                released.wait(60)  # and nothing more read

        threading.Thread(target=destination, daemon=True).start()
        pages = np.random.default_rng(0).integers(0, 256, (8192, 4096), dtype=np.uint8)
        config = MigrationConfig(workers=1, link_rate=link and parse_rate(link), max_time_s=1.0)
        source = MigrationSource(pages, FixedChooser(get_codec("raw")), config)
        try:
            with socket.create_connection(server.getsockname()) as sock:
                began = time.perf_counter()
                report = within(60, source.migrate, sock)
                took = time.perf_counter() - began
        finally:
            released.set()
    assert not report.succeeded
    assert report.error == (
        "did not finish within its 1 s time limit (the destination took no more of the "
        "stream before the time limit)"
    )
    assert took < 1.0 + 0.5 + 1.0  # the limit, the abort's grace, and slack


def test_a_stream_ended_at_the_time_limit_is_aborted_once(monkeypatch):
    """Pre-copy ended at the time limit and told the destination why; the sender's next
    frame (the iteration's end, written a moment later) was then refused at the deadline,
    and that refusal was taken for a reason to abort again: two abort frames, and a
    destination that stopped reading waited for twice."""
    from migcodec.engine import progress as progress_module
    from migcodec.wire.writer import FrameWriter

    aborts = []
    real_abort, real_end = FrameWriter.abort, FrameWriter.end_iteration
    real_tick = progress_module.ProgressTicker.end

    def abort(self, reason):
        aborts.append(reason)
        return real_abort(self, reason)

    def late_end(self, *args):  # the sender reaches it after the migration thread's check
        time.sleep(0.2)
        return real_end(self, *args)

    def slow_tick(self, *args):
        time.sleep(0.1)
        return real_tick(self, *args)

    monkeypatch.setattr(FrameWriter, "abort", abort)
    monkeypatch.setattr(FrameWriter, "end_iteration", late_end)
    monkeypatch.setattr(progress_module.ProgressTicker, "end", slow_tick)
    pages = np.random.default_rng(0).integers(0, 256, (256, 4096), dtype=np.uint8)
    # a first pass of about 0.97 s over the link, within the 1 s limit
    config = MigrationConfig(workers=1, link_rate=1.08e6, max_time_s=1.0)
    with socket.create_server(("127.0.0.1", 0)) as server:

        def destination() -> None:
            conn, _ = server.accept()
            with conn:
                FrameReader(conn, reply_to=conn)
                while conn.recv(1 << 16):
                    pass

        thread = threading.Thread(target=destination, daemon=True)
        thread.start()
        source = MigrationSource(pages, FixedChooser(get_codec("raw")), config)
        with socket.create_connection(server.getsockname()) as sock:
            report = within(60, source.migrate, sock)
        thread.join(10)
    assert report.error.startswith("did not finish within its 1 s time limit")
    assert aborts == [report.error]


def _slow_decodes(monkeypatch, codec: Codec, seconds: float) -> None:
    """``codec``'s class decodes every frame ``seconds`` late (a busy destination host):
    slow, but every call returns."""
    real = type(codec).decode_checked

    def slow(self, *args, **kwargs):
        time.sleep(seconds)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(codec), "decode_checked", slow)


def test_a_destination_slow_past_the_time_limit_is_not_called_stuck(monkeypatch):
    """The source stops waiting for the verdict a little past its time limit; the loopback
    then waits for its destination while the destination's decodes return, and the
    migration fails in the source's words. It was named a stuck codec, of a decode a
    moment old."""
    monkeypatch.setattr(source_module, "STOP_GRACE_S", 0.5)
    monkeypatch.setattr(runner_module, "STOP_GRACE_S", 0.5)
    codec = get_codec("zstd")
    _slow_decodes(monkeypatch, codec, 0.2)
    config = MigrationConfig(max_time_s=1.0)
    report = within(60, run_loopback, 4 * MiB, FixedChooser(codec), config, 0.0, "memcached")
    assert not report.verified
    assert report.error == (
        "did not finish within its 1 s time limit: the destination had not confirmed the "
        "migration 0.5 s after it"
    )


def test_a_timed_socket_s_own_timeout_is_named_when_the_verdict_is_late(monkeypatch):
    """A socket that bounds its own calls (``send``'s, with --timeout) is left to them, and
    its error says which bound passed: the time limit was blamed instead."""
    codec = get_codec("zstd")
    _slow_decodes(monkeypatch, codec, 0.3)
    pages = np.zeros((512, 4096), dtype=np.uint8)
    pages[:, :100] = np.random.default_rng(0).integers(0, 255, (512, 100), dtype=np.uint8)
    with socket.create_server(("127.0.0.1", 0)) as server:

        def destination() -> None:
            conn, _ = server.accept()
            with conn, contextlib.suppress(Exception):
                receive_migration(conn, np.zeros_like(pages))

        threading.Thread(target=destination, daemon=True).start()
        connection = socket.create_connection(server.getsockname())
        with TimedSocket.adopt(connection, 1.0, 100.0) as sock:
            source = MigrationSource(pages, FixedChooser(codec), MigrationConfig())
            report = within(60, source.migrate, sock)
    assert not report.verified
    assert report.error.endswith("the peer sent nothing for 1 s (the idle timeout)"), report.error
