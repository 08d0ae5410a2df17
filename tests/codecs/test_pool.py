"""CodecEngines: engines sharing one queue, completions, back-pressure, the request pool.

Threads are synchronised with events and semaphores only: a gated codec blocks inside
``encode`` until the test opens its gate, so "every request is in flight" is a state the
test creates, not a race it hopes to win.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from migcodec.codecs import (
    Batch,
    Codec,
    CodecEngines,
    CodecError,
    DecodeError,
    InvalidBatch,
    PageSizeUnsupported,
    get_codec,
)
from migcodec.codecs.stuck import left_running_note, still_read
from migcodec.datasets import generate_pages

PAGE = 4096
WAIT = 10.0  # generous bound for events that must happen; never reached when tests pass
POISON = 0xEE  # first byte of a page that makes the gated codec fail


class GatedCodec(Codec):
    """Sends pages raw, but only once ``gate`` is open; records which thread ran each batch.

    Its engines share the gate and the log through ``clone`` (the hook codecs with shared
    state override), so one ``set()`` releases every engine.
    """

    name = "test-gated"
    kind = "raw"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Semaphore(0)  # released once per batch entering encode
        self.log: list[tuple[int, str]] = []  # (first byte of first page, thread name)
        self._lock = threading.Lock()

    def clone(self) -> GatedCodec:
        twin = GatedCodec()
        twin.gate, twin.started, twin.log, twin._lock = (
            self.gate,
            self.started,
            self.log,
            self._lock,
        )
        return twin

    def encode_pages(self, pages: np.ndarray) -> None:
        with self._lock:
            self.log.append((int(pages[0, 0]), threading.current_thread().name))
        self.started.release()
        if not self.gate.wait(WAIT):
            raise TimeoutError("test gate never opened")
        if pages[0, 0] == POISON:
            raise ValueError("poisoned page")
        return None  # every page raw

    def decode_pages(self, blob, n_pages, page_size):
        raise DecodeError("gated codec sends raw pages only")


@contextmanager
def running(codec: Codec, **kwargs) -> Iterator[CodecEngines]:
    """Engines that are always closed, with any gate opened first so close() cannot hang."""
    engines = CodecEngines(codec, page_size=PAGE, **kwargs)
    try:
        yield engines
    finally:
        gate = getattr(codec, "gate", None)
        if gate is not None:
            gate.set()
        for request in engines.poll():
            request.release()
        engines.close()


def marked_memory(n_pages: int) -> np.ndarray:
    """Page ``i`` starts with byte ``i + 1``, so the codec's log says which batch it saw."""
    memory = np.ones((n_pages, PAGE), np.uint8)
    memory[:, 0] = np.arange(1, n_pages + 1)
    return memory


def test_engines_take_requests_in_submission_order_from_one_queue():
    """Each engine takes the oldest queued request when it is free: with every engine held
    inside encode, the first three requests run on three engines and the rest wait, taken
    by none; each request then names the engine that ran it."""
    codec = GatedCodec()
    memory = marked_memory(12)
    with running(codec, engines=3, depth=2) as engines:
        requests = [engines.submit(Batch(memory, [(i, 1)])) for i in range(6)]
        assert [r.sequence for r in requests] == list(range(6))
        for _ in range(3):
            assert codec.started.acquire(timeout=WAIT)
        assert sorted(first for first, _ in codec.log) == [1, 2, 3]
        assert sorted(r.engine for r in requests[:3]) == [0, 1, 2]
        assert [r.engine for r in requests[3:]] == [-1, -1, -1]
        codec.gate.set()
        done = list(engines.completions(timeout=WAIT))
        assert sorted(r.sequence for r in done) == list(range(6))
        ran_on = dict(codec.log)
        for request in done:
            first = int(request.batch.runs[0, 0]) + 1
            assert ran_on[first] == f"migcodec-test-gated-{request.engine}"
            request.release()


def test_completions_are_collected_by_poll_wait_and_iteration():
    codec = GatedCodec()
    memory = marked_memory(8)
    with running(codec, engines=2, depth=2) as engines:
        requests = [engines.submit(Batch(memory, [(i, 1)])) for i in range(4)]
        for _ in range(engines.engines):
            assert codec.started.acquire(timeout=WAIT)
        assert engines.poll() == []  # both engines are inside encode, two batches queued
        assert engines.in_flight == 4
        assert not any(r.done() for r in requests)
        with pytest.raises(TimeoutError) as info:
            requests[0].result(timeout=0.01)
        assert str(info.value) == "request 0 not complete after 0.01 s"
        with pytest.raises(TimeoutError) as info:
            engines.wait(timeout=0.01)
        assert str(info.value) == "no request completed within 0.01 s"

        codec.gate.set()
        first = engines.wait(timeout=WAIT)
        collected = [first, *engines.completions(timeout=WAIT)]
        assert engines.in_flight == 0
        assert sorted(r.sequence for r in collected) == [0, 1, 2, 3]
        assert engines.poll() == []
        for request in collected:
            encoded = request.result(timeout=0)
            first_page = int(encoded.runs[0, 0])
            assert encoded.payload == memory[first_page].tobytes()
            request.release()


def test_one_engine_completes_in_submission_order():
    codec = GatedCodec()
    memory = marked_memory(4)
    with running(codec, engines=1, depth=4) as engines:
        for i in range(3):
            engines.submit(Batch(memory, [(i, 1)]))
        codec.gate.set()
        done = [engines.wait(timeout=WAIT) for _ in range(3)]
        assert [r.sequence for r in done] == [0, 1, 2]
        assert [int(r.result().runs[0, 0]) for r in done] == [0, 1, 2]
        for request in done:
            request.release()


def test_submit_applies_back_pressure_when_every_request_is_in_flight():
    codec = GatedCodec()
    memory = marked_memory(8)
    with running(codec, engines=1, depth=2) as engines:
        assert engines.pool.size == 2
        held = [engines.submit(Batch(memory, [(i, 1)])) for i in range(2)]
        assert engines.pool.free_count() == 0
        with pytest.raises(TimeoutError) as info:
            engines.submit(Batch(memory, [(2, 1)]), timeout=0.01)
        assert str(info.value) == (
            "all 2 requests are in flight after 0.01 s; collect completions and release "
            "requests before submitting more"
        )
        assert engines.in_flight == 2  # the refused batch was never queued

        # a producer without a timeout blocks until a request comes back
        submitted = threading.Event()
        late: list = []

        def producer() -> None:
            late.append(engines.submit(Batch(memory, [(3, 1)])))
            submitted.set()

        thread = threading.Thread(target=producer)
        thread.start()
        assert not submitted.wait(0.05)  # still blocked: nothing was released
        codec.gate.set()
        engines.wait(timeout=WAIT).release()
        assert submitted.wait(WAIT)
        thread.join(WAIT)
        collected = [*engines.completions(timeout=WAIT)]
        assert sorted(r.sequence for r in collected) == [1, 2]
        assert late[0].sequence == 2
        for request in collected:
            request.release()
        assert held[0].slot != held[1].slot


def test_request_pool_reuses_requests_and_staging_buffers():
    """Scattered batches are gathered into the request's own staging buffer; over many
    submissions the same few buffers come back, never new ones."""
    memory = generate_pages("random", 64, 3)
    codec = get_codec("raw")  # random pages go raw: the payload *is* the staging buffer
    requests, buffers = set(), set()
    with running(codec, engines=2, depth=1, max_pages=8) as engines:
        for i in range(20):
            runs = [((3 * i) % 60, 2), ((3 * i + 30) % 60 + 2, 1)]
            request = engines.submit(Batch(memory, runs, max_pages=8))
            done = engines.wait(timeout=WAIT)
            assert done is request
            encoded = done.result()
            assert np.shares_memory(np.frombuffer(encoded.segments[0], np.uint8), done.staging)
            assert encoded.payload == memory[Batch(memory, runs).page_indices].tobytes()
            requests.add(id(done))
            buffers.add(done.staging.__array_interface__["data"][0])
            done.release()
        assert engines.pool.free_count() == 2
    assert len(requests) <= 2 and len(buffers) <= 2
    assert done.staging.shape == (8, PAGE)


def test_an_exception_in_the_codec_is_delivered_through_result():
    codec = GatedCodec()
    codec.gate.set()
    memory = marked_memory(4)
    memory[1, 0] = POISON
    with running(codec, engines=1, depth=2) as engines:
        bad = engines.submit(Batch(memory, [(1, 1)]))
        assert engines.wait(timeout=WAIT) is bad
        with pytest.raises(ValueError) as info:
            bad.result()
        assert str(info.value) == "poisoned page"
        assert info.value is bad.error  # the engine's own exception, not a wrapper
        bad.release()
        good = engines.submit(Batch(memory, [(2, 1)]))  # the engine survived
        assert engines.wait(timeout=WAIT).result().payload == memory[2].tobytes()
        good.release()


def test_batches_that_do_not_fit_the_engines_are_refused():
    memory = marked_memory(32)
    with running(get_codec("raw"), engines=1, depth=1, max_pages=16) as engines:
        with pytest.raises(InvalidBatch) as info:
            engines.submit(Batch(memory, [(0, 20)]))
        assert str(info.value) == (
            "batch of 20 pages of 4096 bytes does not fit engines sized for 16 pages of 4096 bytes"
        )
        engines.close()
        with pytest.raises(CodecError) as closed:
            engines.submit(Batch(memory, [(0, 1)]))
        assert str(closed.value) == "engines are closed"


@pytest.mark.parametrize("name", ["raw", "lz4", "zlib-ng", "zstd"])
def test_scattered_batches_round_trip_through_engines(name):
    """Every page of memory, in scattered runs, through 2 engines with a small pool: the
    destination ends up byte-for-byte equal, and pages outside the runs untouched."""
    memory = generate_pages("mixed", 200, 5)
    order = np.random.default_rng(11).permutation(190)  # pages 190.. never sent
    batches = [
        [(int(p), 1) for p in order[i : i + 7]] + [(int(order[i + 7]), 1)] for i in range(0, 184, 8)
    ]
    batches.append([(int(p), 1) for p in order[184:]])
    dest = np.full_like(memory, 0xA5)
    codec = get_codec(name)

    def drain_one() -> None:
        request = engines.wait(timeout=WAIT)
        codec.decode(request.result(), dest)  # before release: segments view the pool
        request.release()

    with running(codec, engines=2, depth=2) as engines:
        for runs in batches:
            if engines.pool.free_count() == 0:
                drain_one()
            engines.submit(Batch(memory, runs))
        while engines.in_flight:
            drain_one()
    np.testing.assert_array_equal(dest[:190], memory[:190])
    assert (dest[190:] == 0xA5).all()


def test_engines_hand_transforms_a_snapshot_never_live_guest_memory():
    """Compressing memory that changes underneath can corrupt pages that never changed (an
    LZ match against new bytes emitted as a reference to old, already-sent bytes), so the
    engines' transforms must only ever see the request's private staging copy."""
    from migcodec.codecs import Batch, CodecEngines
    from migcodec.codecs.plugins.lz4 import Lz4Codec

    memory = np.arange(64 * 4096, dtype=np.uint32).view(np.uint8)[: 64 * 4096].reshape(64, 4096)
    memory = memory.copy()
    seen = []

    class Watching(Lz4Codec):
        def encode_pages(self, pages):
            seen.append(np.shares_memory(pages, memory))
            return super().encode_pages(pages)

    with CodecEngines(Watching(), engines=2) as engines:
        for runs in ([(0, 64)], [(0, 8), (20, 8)], [(40, 1)]):
            engines.submit(Batch(memory, runs))
        for request in engines.completions(timeout=10):
            with request:
                request.result()
    assert seen == [False, False, False]


def _engines_and_batch():
    from migcodec.codecs import Batch, CodecEngines, get_codec

    memory = np.ones((8, 4096), np.uint8)
    return CodecEngines(get_codec("lz4"), engines=1, depth=2), Batch(memory, [(0, 8)])


def _used_and_released(engines, batch):
    """A request that encoded ``batch``, was collected through ``result()`` and released."""
    request = engines.submit(batch)
    request.result(timeout=10)
    request.release()
    return request


def test_a_request_collected_through_result_is_not_handed_out_again_by_wait():
    engines, batch = _engines_and_batch()
    with engines:
        _used_and_released(engines, batch)
        assert engines.in_flight == 0
        # in flight but never queued for wait: wait would find only the stale completion,
        # and waited forever without a timeout
        pending = engines.submit(batch, notify=False)
        for timeout in (None, 0.05):
            with pytest.raises(CodecError, match=r"^every request in flight was submitted"):
                engines.wait(timeout=timeout)
        notified = engines.submit(batch)  # one that does arrive
        assert engines.wait(timeout=10) is notified
        notified.release()
        pending.result(timeout=10)
        pending.release()
        assert list(engines.completions(timeout=1)) == []


def test_releasing_a_request_twice_is_refused():
    from migcodec.codecs import CodecError

    engines, batch = _engines_and_batch()
    with engines:
        request = _used_and_released(engines, batch)
        with pytest.raises(CodecError, match=r"request 0 was already released"):
            request.release()
        assert engines.pool.free_count() == 2


def test_without_a_snapshot_raw_pages_are_views_of_memory_that_round_trip():
    """``snapshot=False`` (memory that holds still) frames pages where they lie: no copy
    into the staging buffer, and the same bytes."""
    memory = generate_pages("memcached", 64, 1)
    memory[memory.sum(axis=1) == 0, 0] = 1  # no zero page: every page goes raw
    with CodecEngines(get_codec("raw"), engines=2) as engines:
        request = engines.submit(Batch(memory, [(8, 16)]), snapshot=False)
        with request:
            encoded = request.result(timeout=10)
            (segment,) = encoded.segments
            assert np.shares_memory(segment, memory)
            assert not np.shares_memory(segment, request.staging)
            assert bytes(segment) == memory[8:24].tobytes()
        request = engines.submit(Batch(memory, [(8, 16)]))  # the default: a snapshot
        with request:
            (segment,) = request.result(timeout=10).segments
            assert not np.shares_memory(segment, memory)
            assert bytes(segment) == memory[8:24].tobytes()


def test_finish_runs_on_the_encoded_batch_and_its_failure_fails_the_request():
    memory = np.ones((8, PAGE), np.uint8)
    with CodecEngines(get_codec("lz4"), engines=1) as engines:
        request = engines.submit(Batch(memory, [(0, 8)]), finish=lambda e: ("done", e.n_pages))
        with request:
            request.result(timeout=10)
            assert request.finished == ("done", 8)
        assert request.finished is None  # a released request forgets it

        def refuse(encoded):
            raise ValueError("no frame for this batch")

        request = engines.submit(Batch(memory, [(0, 8)]), finish=refuse)
        with request, pytest.raises(ValueError, match="no frame for this batch"):
            request.result(timeout=10)


class MeteredCodec(GatedCodec):
    """A gated codec that also takes one permit per batch: the test lets batches through
    one at a time (``permits.release()``), so "some but not all complete" is a state it
    creates."""

    name = "test-metered"

    def __init__(self) -> None:
        super().__init__()
        self.gate.set()
        self.permits = threading.Semaphore(0)

    def clone(self) -> MeteredCodec:
        twin = super().clone()
        twin.__class__ = MeteredCodec
        twin.permits = self.permits
        return twin

    def encode_pages(self, pages: np.ndarray) -> None:
        if not self.permits.acquire(timeout=WAIT):
            raise TimeoutError("test permit never given")
        return super().encode_pages(pages)


def test_wait_many_returns_once_count_requests_completed():
    codec = MeteredCodec()
    memory = marked_memory(8)
    with running(codec, engines=2, depth=2) as engines:
        requests = engines.submit_many([Batch(memory, [(i, 1)]) for i in range(4)])
        assert engines.wait_many(2, timeout=0.01) == []  # nothing completed: empty on timeout
        codec.permits.release()
        partial = engines.wait_many(2, timeout=WAIT / 10)
        assert len(partial) == 1  # one of two on timeout, collected (no longer in flight)
        assert engines.in_flight == 3
        for _ in range(3):
            codec.permits.release()
        got = [*partial, *engines.wait_many(3, timeout=WAIT)]
        assert sorted(r.sequence for r in got) == [r.sequence for r in requests] == [0, 1, 2, 3]
        assert all(r.done() for r in got)
        assert engines.in_flight == 0
        for request in got:
            assert request.result().payload == memory[int(request.batch.runs[0, 0])].tobytes()
            request.release()


def test_wait_many_counts_at_most_the_requests_in_flight():
    codec = GatedCodec()
    codec.gate.set()
    memory = marked_memory(4)
    with running(codec, engines=2, depth=4) as engines:
        engines.submit_many([Batch(memory, [(i, 1)]) for i in range(3)])
        done = engines.wait_many(8, timeout=WAIT)  # returns at 3, not at the timeout
        assert sorted(r.sequence for r in done) == [0, 1, 2]
        for request in done:
            request.release()
        assert engines.wait_many(8, timeout=WAIT) == []  # nothing in flight: at once


def test_wait_many_skips_requests_collected_through_result():
    engines, batch = _engines_and_batch()
    with engines:
        _used_and_released(engines, batch)
        assert engines.wait_many(1, timeout=0.05) == []
        request = engines.submit(batch)
        assert engines.wait_many(1, timeout=10) == [request]
        request.release()


def test_submit_many_queues_in_order_with_a_finish_per_batch():
    memory = generate_pages("mixed", 64, 2)
    codec = get_codec("lz4")
    batches = [Batch(memory, [(i * 8, 8)]) for i in range(8)]
    finishes = [lambda e, i=i: (i, e.n_pages) for i in range(8)]
    dest = np.zeros_like(memory)
    with CodecEngines(codec, engines=2, depth=4) as engines:
        requests = engines.submit_many(batches, finish=finishes)
        assert [r.sequence for r in requests] == list(range(8))
        assert [r.batch for r in requests] == batches
        done = engines.wait_many(8, timeout=WAIT)
        assert sorted(r.finished for r in done) == [(i, 8) for i in range(8)]
        for request in done:
            codec.decode(request.result(), dest)
            request.release()
        assert engines.pool.free_count() == 8
    np.testing.assert_array_equal(dest, memory)


def test_submit_many_queues_all_or_nothing():
    codec = GatedCodec()
    memory = marked_memory(32)
    with running(codec, engines=1, depth=3, max_pages=4) as engines:
        fits, too_big = Batch(memory, [(0, 1)]), Batch(memory, [(0, 8)])
        with pytest.raises(InvalidBatch) as info:
            engines.submit_many([fits, too_big])
        assert str(info.value) == (
            "batch of 8 pages of 4096 bytes does not fit engines sized for 4 pages of 4096 bytes"
        )
        with pytest.raises(ValueError) as info:
            engines.submit_many([fits] * 4)
        assert str(info.value) == (
            "4 batches submitted at once, more than the 3 requests of the pool; submit at "
            "most that many at a time"
        )
        with pytest.raises(ValueError) as info:
            engines.submit_many([fits, fits], finish=[None])
        assert str(info.value) == "1 finish callables for 2 batches"
        with pytest.raises(TypeError) as info:
            engines.submit_many([fits], finish=5)
        assert str(info.value) == (
            "finish must be a callable, or a sequence of one callable (or None) per batch; got int"
        )
        assert (engines.in_flight, engines.pool.free_count()) == (0, 3)

        held = engines.submit_many([Batch(memory, [(i, 1)]) for i in range(2)])
        with pytest.raises(TimeoutError) as info:
            engines.submit_many([Batch(memory, [(i, 1)]) for i in range(2, 4)], timeout=0.01)
        assert str(info.value) == (
            "all 3 requests are in flight after 0.01 s; collect completions and release "
            "requests before submitting more"
        )
        assert (engines.in_flight, engines.pool.free_count()) == (2, 1)  # none was queued
        codec.gate.set()
        done = [*engines.completions(timeout=WAIT)]
        assert sorted(r.sequence for r in done) == [r.sequence for r in held] == [0, 1]
        for request in done:
            request.release()
        late = engines.submit_many([Batch(memory, [(5, 1)])])
        assert late[0].sequence == 2  # the refused batches took no sequence number
        assert engines.wait_many(1, timeout=WAIT) == late
        late[0].release()
    assert [first for first, _ in codec.log] == [1, 2, 6]


def test_wait_many_collects_every_request_exactly_once_under_load():
    """Single-page batches through 2 engines, collected in groups of 1 to 3 while the
    engines keep completing: every wait returns its count (a missed wake-up would return
    short, at the timeout), and every request comes back exactly once."""
    memory = generate_pages("mixed", 64, 4)
    seen: list[int] = []
    submitted = 0
    with CodecEngines(get_codec("lz4"), engines=2, depth=2, max_pages=1) as engines:
        for i in range(400):
            free = engines.pool.free_count()
            if free:
                first = submitted % 60
                engines.submit_many(
                    [Batch(memory, [(first + k, 1)], max_pages=1) for k in range(free)]
                )
                submitted += free
            expected = min(1 + i % 3, engines.in_flight)
            got = engines.wait_many(1 + i % 3, timeout=WAIT)
            assert len(got) >= expected
            for request in got:
                seen.append(request.sequence)
                request.release()
        for request in engines.completions(timeout=WAIT):
            seen.append(request.sequence)
            request.release()
    assert sorted(seen) == list(range(submitted))


def _bounded(fn, timeout: float = WAIT) -> BaseException | object:
    """What ``fn()`` returned or raised in a thread, asserting it finished within
    ``timeout`` (a hang fails the test instead of the suite)."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(fn())
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"still blocked after {timeout} s"
    return outcome[0]


@pytest.mark.parametrize("many", [False, True], ids=["submit", "submit_many"])
def test_a_submit_waiting_for_the_pool_while_engines_close_is_refused(many):
    """A producer blocked on an exhausted pool gets its request only after close(): it
    must raise as a submit after close does, and give the request back, never return one
    that no engine will take."""
    memory = marked_memory(4)
    engines = CodecEngines(get_codec("raw"), engines=1, depth=1, page_size=PAGE)
    first = engines.submit(Batch(memory, [(0, 1)]))
    waiting = threading.Event()
    acquire = engines.pool.acquire

    def acquire_noted(timeout=None):
        waiting.set()  # past the closed check, about to block on the empty pool
        return acquire(timeout)

    engines.pool.acquire = acquire_noted
    late = Batch(memory, [(1, 1)])
    submitted: list = []

    def producer() -> None:
        try:
            submitted.append(engines.submit_many([late]) if many else engines.submit(late))
        except CodecError as exc:
            submitted.append(exc)

    thread = threading.Thread(target=producer, daemon=True)
    thread.start()
    assert waiting.wait(WAIT)
    engines.close()
    first.result(timeout=WAIT)
    first.release()  # the producer's acquire returns now
    thread.join(WAIT)
    assert not thread.is_alive()
    assert isinstance(submitted[0], CodecError), f"a request was queued: {submitted[0]!r}"
    assert str(submitted[0]) == "engines are closed"
    assert engines.pool.free_count() == 1 and engines.in_flight == 0


def test_wait_with_nothing_in_flight_raises_open_or_closed():
    with running(get_codec("raw"), engines=1, depth=1) as engines:
        error = _bounded(engines.wait)
        assert isinstance(error, CodecError)
        assert str(error) == (
            "no request is in flight, so none can complete; submit a batch before waiting for one"
        )
        assert engines.wait_many(1) == [] and list(engines.completions()) == []
        engines.close()
        error = _bounded(engines.wait)
        assert isinstance(error, CodecError)
        assert str(error) == (
            "no request is in flight, so none can complete; the engines are closed"
        )


def test_requests_submitted_before_close_are_still_waited_for_after_it():
    memory = marked_memory(4)
    with running(get_codec("raw"), engines=2, depth=2) as engines:
        requests = [engines.submit(Batch(memory, [(i, 1)])) for i in range(4)]
        engines.close()
        done = [engines.wait(timeout=WAIT) for _ in requests]
        assert sorted(r.sequence for r in done) == [0, 1, 2, 3]
        for request in done:
            request.release()


def test_result_after_release_is_refused():
    engines, batch = _engines_and_batch()
    with engines:
        request = _used_and_released(engines, batch)
        with pytest.raises(CodecError) as info:
            request.result()
        assert str(info.value) == (
            "request 0 was released, and its result with it; take result() before release()"
        )


def test_submit_refuses_what_is_not_a_batch():
    with running(get_codec("raw"), engines=1, depth=1) as engines:
        with pytest.raises(InvalidBatch) as info:
            engines.submit((0, 1))
        assert str(info.value) == "submit takes a Batch, got tuple"


_PAGE_SIZE = "must be a positive multiple of 8 bytes, given as an integer (e.g. 4096)"
_MAX_PAGES = "must be a positive integer: the most pages one batch may name (e.g. 64)"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"codec": "lz4"},
            CodecError,
            "codec must be a Codec, got str 'lz4'; pass get_codec(name) for a registered codec",
        ),
        ({"engines": 2.5}, ValueError, "engines 2.5 must be a positive integer (e.g. 2)"),
        ({"engines": 0}, ValueError, "engines 0 must be a positive integer (e.g. 2)"),
        (
            {"depth": 0},
            ValueError,
            "depth 0 must be a positive integer: requests per engine (e.g. 4)",
        ),
        ({"page_size": 4100}, InvalidBatch, f"page size 4100 {_PAGE_SIZE}"),
        ({"page_size": -8}, InvalidBatch, f"page size -8 {_PAGE_SIZE}"),
        ({"page_size": 4096.0}, InvalidBatch, f"page size 4096.0 {_PAGE_SIZE}"),
        ({"max_pages": 0}, InvalidBatch, f"max_pages 0 {_MAX_PAGES}"),
        ({"max_pages": None}, InvalidBatch, f"max_pages None {_MAX_PAGES}"),
        (
            {"codec": get_codec("xbzrle"), "page_size": 65536},
            PageSizeUnsupported,
            "xbzrle describes pages of at most 16384 bytes, not 65536; use another codec "
            "(e.g. lz4 or zstd) for larger pages",
        ),
    ],
)
def test_engines_refuse_arguments_no_batch_could_use(kwargs, error, message):
    with pytest.raises(error) as info:
        CodecEngines(**{"codec": get_codec("raw"), **kwargs})
    assert type(info.value) is error
    assert str(info.value) == message


def test_engines_whose_staging_buffers_exceed_available_ram_are_refused(monkeypatch):
    monkeypatch.setattr("migcodec.ram.available_memory", lambda: 2**30)
    with pytest.raises(ValueError) as info:
        CodecEngines(get_codec("raw"), engines=2, depth=4, max_pages=10**6)
    assert str(info.value) == (
        "8 requests of 1000000 pages of 4096 bytes need 30.5 GiB of staging buffers, but "
        "this machine has 1 GiB available; use a smaller max_pages, depth or engines"
    )


def test_leaving_the_engines_on_an_error_does_not_wait_for_a_codec_that_never_returns():
    """A codec whose encode never returned held ``migcodec bench`` through SIGTERM, in the
    wait for its engine at the end of the with block, until SIGKILL: leaving it on an
    error (here Ctrl-C) stops the engines without waiting for the codec."""
    codec = GatedCodec()
    memory = marked_memory(4)
    engines = CodecEngines(codec, engines=1, depth=2, page_size=PAGE, max_pages=4)
    left = threading.Event()

    def interrupted_inside() -> None:
        try:
            with engines:
                engines.submit(Batch(memory, [(0, 1)]))
                assert codec.started.acquire(timeout=WAIT)  # the engine is held in encode
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            left.set()

    caller = threading.Thread(target=interrupted_inside)
    caller.start()
    returned = left.wait(WAIT)
    held = engines._threads[0].is_alive()
    codec.gate.set()  # let the codec return, whatever happened, so nothing hangs
    caller.join(WAIT)
    engines._threads[0].join(WAIT)
    assert returned and held  # left while the codec was still inside encode
    with pytest.raises(CodecError, match="closed"):
        engines.submit(Batch(memory, [(1, 1)]))


def test_stopping_engines_leaves_a_codec_that_never_returns_running_and_its_memory_read():
    """``stop`` waits a bounded time, counts the engine still inside encode, answers for
    the memory it may read until it returns, and encodes nothing that was only queued:
    an engine whose codec returns late must not begin to read memory freed since."""
    codec = GatedCodec()
    memory = marked_memory(4)
    with running(codec, engines=1, depth=2) as engines:
        held = engines.submit(Batch(memory, [(0, 1)]))
        queued = engines.submit(Batch(memory, [(1, 1)]))
        assert codec.started.acquire(timeout=WAIT)  # the engine is held in encode
        assert engines.stop(timeout=0.05) == 1
        assert [np.shares_memory(view, memory) for view in engines.memory_read()] == [True]
        assert still_read(memory[2:]) and not still_read(np.ones((4, PAGE), np.uint8))
        # what a command interrupted now says of it, until the codec returns
        note = f"; codec {codec.name!r} had not returned from a call: its library or device"
        assert left_running_note() == note + " may have hung"
        codec.gate.set()
        assert held.result(timeout=WAIT) is not None
        with pytest.raises(CodecError, match="stopped before this batch was encoded"):
            queued.result(timeout=WAIT)
        assert [first for first, _ in codec.log] == [1]  # the queued batch was not begun
        assert engines.memory_read() == [] and not still_read(memory)
        assert left_running_note() == ""
        for request in (held, queued):
            request.release()


class SpinningCodec(Codec):
    """Sends pages raw after running ``spin_s`` seconds of its thread's own CPU time (a
    Python loop, which holds the interpreter lock: engines take turns, as more engines
    than cores take turns on the cores), or, where ``spin_s`` is negative, after
    sleeping as long (time that is no CPU at all)."""

    name = "test-spinning"
    kind = "raw"

    def __init__(self, spin_s: float) -> None:
        self.spin_s = spin_s

    def clone(self) -> SpinningCodec:
        return SpinningCodec(self.spin_s)

    def encode_pages(self, pages: np.ndarray) -> None:
        if self.spin_s < 0:
            time.sleep(-self.spin_s)
            return None
        start = time.thread_time()
        while time.thread_time() - start < self.spin_s:
            pass
        return None

    def decode_pages(self, blob, n_pages, page_size):
        raise DecodeError("sends raw pages only")


@pytest.mark.parametrize(("spin_s", "least", "most"), [(0.02, 0.32, 0.5), (-0.02, 0.0, 0.1)])
def test_the_engines_cpu_time_is_what_their_threads_ran_not_their_wall_time(spin_s, least, most):
    """Eight engines taking turns on the interpreter lock: each batch's wall time is
    several times its CPU time. The engines' CPU time is read from their threads' clocks,
    during their run and after it: 16 batches of 20 ms of CPU are 0.32 s and a little
    more for the engines' own work, where a sum of sampled batch times counted the waits
    (16 engines of zstd on 2 cores summed to 3 cores' worth); batches that sleep cost
    next to nothing."""
    memory = marked_memory(16)
    with running(SpinningCodec(spin_s), engines=8, depth=2) as engines:
        requests = [engines.submit(Batch(memory, [(i, 1)])) for i in range(16)]
        for request in requests:
            request.result(timeout=WAIT)
            request.release()
        running_total = engines.cpu_s()
        engines.close()
        assert running_total <= engines.cpu_s() < most
        assert least <= engines.cpu_s()
