"""Asynchronous codec use, shaped like the hardware: engines, a request pool, completions.

``CodecEngines`` runs several engines of one codec (a device's engines, or CPU worker
threads: zlib-ng, lz4 and zstd release the GIL while compressing). ``submit`` queues a
batch and returns a :class:`Request`; completions are polled or waited for. Requests
come from a fixed pool of pre-allocated structures with their own staging buffers (a
request cache, as hardware drivers keep), so a producer that outruns the engines blocks in
``submit`` rather than growing memory: back-pressure, not unbounded queues.

The engines take requests from one queue, in submission order, as a device's engines take
descriptors from a shared work queue: an engine that is done takes the next request. With
a queue per engine filled in turn, an engine that ran faster (its core shared with fewer
other threads, say) sat idle while another engine's queue still held work.

Engines scale only as far as the work they do holding the GIL allows: the codecs' own calls
(compressors, the delta kernels, page copies) run without it, and everything around them is
kept to a few C-level operations per request. A request's completion is a plain lock that
the engine releases (a ``threading.Event`` runs a Python-level condition under the GIL on
every set, wait and clear), and requests, queues and counters are reused rather than
rebuilt. ``benchmarks/run.py`` measures 2 engines against 1.

A consumer that wakes per completion pays a thread wake-up per batch, and with as many
engines as cores it takes that CPU time from an engine (it preempts one, whose caches it
then leaves cold). :meth:`CodecEngines.wait_many` wakes it once per several completions
(the engine that completes the last of them signals it), and
:meth:`CodecEngines.submit_many` queues as many batches in one call.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from migcodec.codecs.base import Codec
from migcodec.codecs.batch import DEFAULT_MAX_PAGES, Batch, checked_max_pages
from migcodec.codecs.encoded import Encoded
from migcodec.codecs.errors import CodecError, InvalidBatch
from migcodec.codecs.mirror import DestinationMirror
from migcodec.codecs.page_views import DEFAULT_PAGE_SIZE, checked_page_size, int_or_zero
from migcodec.codecs.stuck import leave_running
from migcodec.ram import refuse_short
from migcodec.units import format_size

_STOP = object()


class Request:
    """One in-flight batch. Its ``Encoded`` may point into the request's staging buffer, so
    consume it, then ``release()`` the request (or use it as a context manager)."""

    def __init__(self, pool: RequestPool, slot: int, staging: np.ndarray) -> None:
        self.slot = slot
        self.staging = staging
        self.batch: Batch | None = None
        self.sequence = -1
        self.engine = -1  # the engine that took it (-1: none yet)
        self.encoded: Encoded | None = None
        self.error: BaseException | None = None
        self.snapshot = True  # encode from a copy in ``staging`` (see CodecEngines.submit)
        self.notify = True  # its completion is queued for poll and wait (see submit)
        self.finish: Callable[[Encoded], Any] | None = None
        self.finished: Any = None  # what ``finish`` made of the encoded batch
        self.generation = 0  # bumped on release: completions of an older use are stale
        # held while an engine owns the request: acquired when it leaves the pool, released
        # by the engine when it is done; waiting is acquiring it (and handing it back)
        self._busy = threading.Lock()
        self._pool = pool
        self._engines: CodecEngines | None = None
        self._collected = False
        self._released = True

    def done(self) -> bool:
        return not self._busy.locked()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the engine is done with this request; ``False`` on timeout."""
        busy = self._busy
        if not busy.locked():
            return True
        if not busy.acquire(timeout=-1 if timeout is None else max(timeout, 0.0)):
            return False
        busy.release()
        return True

    def result(self, timeout: float | None = None) -> Encoded:
        """The encoded batch; re-raises the engine's exception if encoding failed. Not after
        :meth:`release`: the pool may already have handed the request out again."""
        if self._released:
            raise CodecError(
                f"request {self.sequence} was released, and its result with it; take "
                "result() before release()"
            )
        if self._busy.locked() and not self.wait(timeout):
            raise TimeoutError(f"request {self.sequence} not complete after {timeout} s")
        if self.error is not None:
            raise self.error
        assert self.encoded is not None
        return self.encoded

    def release(self) -> None:
        """Return the request and its buffer to the pool; its ``Encoded`` is then invalid.

        Only a completed request can be released (an engine may still be writing its
        staging buffer), and only once: a second release would hand one buffer to two
        requests.
        """
        if self._released:
            raise CodecError(f"request {self.sequence} was already released")
        if self._busy.locked():
            raise CodecError(
                f"request {self.sequence} is still being encoded; release it after result()"
            )
        self._released = True
        self.generation += 1
        if self._engines is not None and not self._collected:
            self._engines._uncount()
        self._engines = None
        self.batch = None
        self.encoded = None
        self.finish = None
        self.finished = None
        self.error = None
        self._pool.release(self)

    def __enter__(self) -> Request:
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


class RequestPool:
    """A fixed set of pre-allocated requests; ``acquire`` blocks when all are in flight."""

    def __init__(self, size: int, max_pages: int, page_size: int) -> None:
        """The staging buffers are allocated here, checked first against the RAM this
        machine has available: numpy would refuse an impossible size with a bare
        ``MemoryError`` and accept a merely too large one, to be killed when it fills."""
        if size < 1:
            raise ValueError("a request pool needs at least one request")
        need = size * max_pages * page_size
        refuse_short(
            need,
            lambda free: ValueError(
                f"{size} requests of {max_pages} pages of {page_size} bytes need "
                f"{format_size(need)} of staging buffers, but this machine has "
                f"{format_size(free)} available; use a smaller max_pages, depth or engines"
            ),
        )
        self.size = size
        self._buffer = np.empty((size, max_pages, page_size), dtype=np.uint8)
        self._free: queue.SimpleQueue[Request] = queue.SimpleQueue()
        self.requests = tuple(Request(self, slot, self._buffer[slot]) for slot in range(size))
        for request in self.requests:
            self._free.put(request)

    def acquire(self, timeout: float | None = None) -> Request:
        try:
            request = self._free.get(timeout=timeout)
        except queue.Empty:
            raise self._exhausted(timeout) from None
        request._released = False
        request._collected = False
        request._busy.acquire()  # free in the pool: never waits
        return request

    def acquire_many(self, n: int, timeout: float | None = None) -> list[Request]:
        """``n`` requests, or none: on timeout (one bound for all of them) those already
        taken go back and ``TimeoutError`` is raised as by :meth:`acquire`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        requests: list[Request] = []
        try:
            for _ in range(n):
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                requests.append(self.acquire(remaining))
        except BaseException as exc:
            self.give_back(requests)
            if isinstance(exc, TimeoutError):
                raise self._exhausted(timeout) from None
            raise
        return requests

    def _exhausted(self, timeout: float | None) -> TimeoutError:
        return TimeoutError(
            f"all {self.size} requests are in flight after {timeout} s; "
            "collect completions and release requests before submitting more"
        )

    def release(self, request: Request) -> None:
        self._free.put(request)

    def give_back(self, requests: Sequence[Request]) -> None:
        """Return requests taken by :meth:`acquire` but never queued for an engine."""
        for request in requests:
            request._busy.release()
            request._released = True
            self._free.put(request)

    def free_count(self) -> int:
        return self._free.qsize()


class CodecEngines:
    """``engines`` workers of one codec behind a bounded request pool.

    ``destination`` is the stream's mirror of what its destination holds, passed to every
    encode (see :meth:`Codec.encode`); several engines of one stream share it.
    """

    def __init__(
        self,
        codec: Codec,
        engines: int = 2,
        depth: int = 4,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_pages: int = DEFAULT_MAX_PAGES,
        destination: DestinationMirror | None = None,
    ) -> None:
        """Arguments are checked here, where a mistake names itself, rather than in every
        ``submit`` after: a page size the codec cannot describe, or a ``max_pages`` no
        batch fits, would fail every request."""
        if not isinstance(codec, Codec):
            raise CodecError(
                f"codec must be a Codec, got {type(codec).__name__} {codec!r}; "
                "pass get_codec(name) for a registered codec"
            )
        if int_or_zero(engines) < 1:
            raise ValueError(f"engines {engines!r} must be a positive integer (e.g. 2)")
        if int_or_zero(depth) < 1:
            raise ValueError(
                f"depth {depth!r} must be a positive integer: requests per engine (e.g. 4)"
            )
        page_size = checked_page_size(page_size)
        codec.check_page_size(page_size)
        max_pages = checked_max_pages(max_pages)
        self.codec = codec
        self.destination = destination
        self.page_size = page_size
        self.max_pages = max_pages
        self.pool = RequestPool(engines * depth, max_pages, page_size)
        self._completed: queue.SimpleQueue[Request] = queue.SimpleQueue()
        self._work: queue.SimpleQueue = queue.SimpleQueue()  # taken by whichever engine is free
        self._sequence = itertools.count()
        self._in_flight = 0
        self._lock = threading.Lock()
        # wait_many's wake-up: the completions its caller waits for (0: nobody waits), and
        # a lock held until the engine that completes the last of them releases it (see
        # _signal_waiter); one caller of wait_many at a time
        self._want = 0
        self._wake = threading.Lock()
        self._wake.acquire()
        self._waiting = threading.Lock()
        self._closed = False
        self._stopped = False  # see stop
        # each engine's thread CPU clock when it started, and its CPU seconds once it ended
        # (see cpu_s)
        self._cpu_start = [0.0] * engines
        self._cpu_spent: list[float | None] = [None] * engines
        self._threads = [
            threading.Thread(
                target=self._run,
                args=(i, codec.clone() if i else codec),
                name=f"migcodec-{codec.name}-{i}",
                daemon=True,
            )
            for i in range(engines)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def engines(self) -> int:
        return len(self._threads)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def cpu_s(self) -> float:
        """CPU seconds the engines' threads have run so far, each read from its own clock
        (an engine that ended: what it had run then): everything they do for their
        requests, the codec calls and what a request's ``finish`` adds. Exact where a sum
        of the batches' ``stats.cpu_s`` is not: those sample the clock on one call in
        :data:`~migcodec.codecs.base.CPU_SAMPLE_EVERY` and scale the others' wall time,
        which with more engines than cores counts the time each waits for a core (16
        engines of zstd on 2 cores summed to 3 cores' worth)."""
        total = 0.0
        for index, thread in enumerate(self._threads):
            spent = self._cpu_spent[index]
            if spent is None:
                try:
                    clock = time.pthread_getcpuclockid(thread.ident)
                    spent = time.clock_gettime(clock) - self._cpu_start[index]
                except (AttributeError, OSError, TypeError):  # ended (or no such clock here)
                    spent = self._cpu_spent[index] or 0.0
            total += spent
        return total

    def _run(self, index: int, codec: Codec) -> None:
        self._cpu_start[index] = time.thread_time()
        try:
            self._serve(index, codec)
        finally:
            self._cpu_spent[index] = time.thread_time() - self._cpu_start[index]

    def _serve(self, index: int, codec: Codec) -> None:
        work, completed, destination = self._work, self._completed, self.destination
        while True:
            request = work.get()
            if request is _STOP:
                return
            request, notify = request
            request.engine = index
            generation = request.generation
            try:
                if self._stopped:
                    raise CodecError("the engines were stopped before this batch was encoded")
                staging = request.staging if request.snapshot else None
                request.encoded = codec.encode(request.batch, staging, destination)
                if request.finish is not None:
                    request.finished = request.finish(request.encoded)
            except BaseException as exc:  # delivered to the caller through the request
                request.error = exc
            request._busy.release()
            if notify:  # an entry of an older use is stale by its generation (_collect)
                completed.put((request, generation))
                if self._want:  # read unlocked: see wait_many for why none is missed
                    self._signal_waiter()

    def _signal_waiter(self) -> None:
        """Wake the caller of :meth:`wait_many` if the completions it waits for are queued."""
        with self._lock:
            if self._want and self._completed.qsize() >= self._want:
                self._want = 0
                self._wake.release()

    def submit(
        self,
        batch: Batch,
        timeout: float | None = None,
        notify: bool = True,
        snapshot: bool = True,
        finish: Callable[[Encoded], Any] | None = None,
    ) -> Request:
        """Queue ``batch`` for the engines; blocks while every pooled request is busy.

        With ``notify=False`` the completion is not queued for ``poll``/``wait``: for a
        consumer that takes requests in submission order through ``result()``.

        ``snapshot=False`` encodes the pages where they lie, without first copying them to
        the request's staging buffer (raw pages in the result are then views of memory):
        only for memory that cannot change until the result is consumed, such as a paused
        guest or one nothing writes to (see :meth:`Codec.encode`).

        ``finish`` runs in the engine thread on the encoded batch, and what it returns is
        the request's ``finished``: work on the result that the consumer would otherwise
        do in its own thread, one request at a time (a sender frames and checksums it),
        done on the engines in parallel instead. If it raises, the request fails as if
        encoding had.
        """
        self._check(batch)
        request = self.pool.acquire(timeout)
        with self._lock:  # see _admit
            self._admit((request,))
            self._in_flight += 1
            self._queue(request, batch, notify, snapshot, finish)
        return request

    def submit_many(
        self,
        batches: Sequence[Batch],
        timeout: float | None = None,
        notify: bool = True,
        snapshot: bool = True,
        finish: Callable[[Encoded], Any] | Sequence[Callable[[Encoded], Any] | None] | None = None,
    ) -> list[Request]:
        """:meth:`submit` for several batches in one call, all or none: each is checked and
        a request taken for each before any is queued, so a batch that does not fit, or a
        pool that stays short of requests for ``timeout`` seconds (the one bound for all of
        them), queues nothing and leaves the pool as it was. Requests are returned, and queued,
        in the order of ``batches``.

        ``finish`` is one callable for every batch, or a sequence of one per batch (``None``
        for none). More batches than the pool holds could never all be in flight at once,
        so they are refused.
        """
        n = len(batches)
        if n > self.pool.size:
            raise ValueError(
                f"{n} batches submitted at once, more than the {self.pool.size} requests "
                "of the pool; submit at most that many at a time"
            )
        for batch in batches:
            self._check(batch)
        if finish is None or callable(finish):
            finishes: Sequence = (finish,) * n
        elif not isinstance(finish, Sequence):
            raise TypeError(
                f"finish must be a callable, or a sequence of one callable (or None) per "
                f"batch; got {type(finish).__name__}"
            )
        elif len(finish) != n:
            raise ValueError(f"{len(finish)} finish callables for {n} batches")
        else:
            finishes = finish
        requests = self.pool.acquire_many(n, timeout)
        with self._lock:  # see _admit
            self._admit(requests)
            self._in_flight += n
            for request, batch, then in zip(requests, batches, finishes, strict=True):
                self._queue(request, batch, notify, snapshot, then)
        return requests

    def _refuse_closed(self) -> None:
        if self._closed:
            raise CodecError("engines are closed")

    def _admit(self, requests: Sequence[Request]) -> None:
        """Give ``requests`` back and raise if the engines closed while a submit waited for
        them; called under ``_lock`` and followed by their queueing under it, as
        :meth:`close` queues the engines' stop under it: a request queued after the stop
        would never be taken, and its ``result()`` would block forever."""
        if self._closed:
            self.pool.give_back(requests)
            self._refuse_closed()

    def _check(self, batch: Batch) -> None:
        self._refuse_closed()
        if not isinstance(batch, Batch):
            raise InvalidBatch(f"submit takes a Batch, got {type(batch).__name__}")
        if batch.page_size != self.page_size or batch.n_pages > self.max_pages:
            raise InvalidBatch(
                f"batch of {batch.n_pages} pages of {batch.page_size} bytes does not fit "
                f"engines sized for {self.max_pages} pages of {self.page_size} bytes"
            )

    def _queue(
        self,
        request: Request,
        batch: Batch,
        notify: bool,
        snapshot: bool,
        finish: Callable[[Encoded], Any] | None,
    ) -> None:
        """Fill in a request taken from the pool (and counted in flight) and queue it for
        the engines."""
        request.batch = batch
        request.snapshot = snapshot
        request.notify = notify
        request.finish = finish
        request.sequence = next(self._sequence)
        request.engine = -1
        request._engines = self
        self._work.put((request, notify))

    def _uncount(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _claim(self, entry: tuple[Request, int]) -> Request | None:
        """The entry's request, marked collected, or ``None`` if that use of it was already
        released or collected (the caller counts it out of flight)."""
        request, generation = entry
        if request.generation != generation or request._collected:
            return None
        request._collected = True
        return request

    def _collect(self, entry: tuple[Request, int]) -> Request | None:
        """:meth:`_claim`, counted out of flight."""
        request = self._claim(entry)
        if request is not None:
            self._uncount()
        return request

    def poll(self, limit: int | None = None) -> list[Request]:
        """Completed requests, without waiting (the device-polling thread's loop body);
        counted out of flight under one lock."""
        done: list[Request] = []
        get = self._completed.get_nowait
        while limit is None or len(done) < limit:
            try:
                request = self._claim(get())
            except queue.Empty:
                break
            if request is not None:
                done.append(request)
        if done:
            with self._lock:
                self._in_flight -= len(done)
        return done

    def wait(self, timeout: float | None = None) -> Request:
        """The next completed request, waiting up to ``timeout`` seconds.

        With no request in flight (closed engines included) it raises :class:`CodecError`
        at once: none can complete, so waiting would last forever or for all of
        ``timeout``. :meth:`wait_many` and :meth:`completions` return nothing there, but
        this returns one request and has none. So it does when every request in flight
        was submitted with ``notify=False``: their completions never arrive here. Another
        thread that collects the last request while this one waits still leaves it
        waiting: a consumer collects its own requests.
        """
        if not self._in_flight:
            raise CodecError(
                "no request is in flight, so none can complete; "
                + (
                    "the engines are closed"
                    if self._closed
                    else "submit a batch before waiting for one"
                )
            )
        if not any(r.notify and not (r._released or r._collected) for r in self.pool.requests):
            raise CodecError(
                "every request in flight was submitted with notify=False, so none "
                "completes here; take each one's result() instead"
            )
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                request = self._collect(self._completed.get(timeout=remaining))
            except queue.Empty:
                raise TimeoutError(f"no request completed within {timeout} s") from None
            if request is not None:
                return request

    def wait_many(self, count: int, timeout: float | None = None) -> list[Request]:
        """Every completed request, once at least ``count`` are (or ``timeout`` seconds
        passed: then the list may be shorter, or empty), waking this thread once for all of
        them rather than once per completion. ``count`` is capped at the requests in
        flight; those submitted with ``notify=False`` never arrive here, as with
        :meth:`wait`. One thread at a time waits here (another waits its turn, within the
        same ``timeout``).

        The engine that completes a request reads ``_want`` without the lock, after it
        queued the completion. That misses no wake-up: this thread sets ``_want`` before it
        counts the queue, so an engine that read it as 0 queued its completion before the
        count, which then includes it; one that read it set counts again under the lock.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._waiting.acquire(timeout=-1 if timeout is None else max(timeout, 0.0)):
            return []
        try:
            count = min(count, self._in_flight)
            done = self.poll()
            while len(done) < count:
                need = count - len(done)
                with self._lock:
                    self._want = need
                    wait = self._completed.qsize() < need
                    if not wait:
                        self._want = 0
                if wait:  # an engine releases _wake once for it, which is taken back here
                    remaining = -1 if deadline is None else max(0.0, deadline - time.monotonic())
                    if not self._wake.acquire(timeout=remaining):
                        with self._lock:
                            if self._want:  # nobody will signal now
                                self._want = 0
                            else:  # an engine signalled after the timeout: take it back
                                self._wake.acquire()
                        return done + self.poll()
                done += self.poll()
            return done
        finally:
            self._waiting.release()

    def completions(self, timeout: float | None = None) -> Iterator[Request]:
        """Completed requests until nothing is in flight."""
        while self._in_flight:
            yield self.wait(timeout)

    def close(self, wait: bool = True) -> None:
        """Stop the engines once they have encoded every request queued before, and (with
        ``wait``) wait until they have; a later ``submit`` raises :class:`CodecError`, as
        does one that was waiting for a request from the pool (see :meth:`_admit`)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for _ in self._threads:
                self._work.put(_STOP)
        if wait:
            for thread in self._threads:
                thread.join()

    def stop(self, timeout: float = 0.0) -> int:
        """Stop the engines now, waiting up to ``timeout`` seconds for those inside a codec
        call, and return how many still are: a codec call cannot be ended from outside, so
        those are left running (daemon threads, which the process does not wait for at
        exit), recorded for :func:`~migcodec.codecs.stuck.still_read` until they return.
        Requests queued but not begun fail with :class:`CodecError` rather than being
        encoded: an engine whose codec returns late must not begin to read memory that its
        owner may have freed since. A later ``submit`` raises as after :meth:`close`."""
        self._stopped = True
        self.close(wait=False)
        deadline = time.monotonic() + min(timeout, threading.TIMEOUT_MAX)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = len(self.memory_read())
        if stuck:
            leave_running(self)
        return stuck

    def memory_read(self) -> list[np.ndarray]:
        """The memory of every batch an engine is encoding now (its codec call may read
        it until it returns)."""
        views = []
        for request in self.pool.requests:
            batch = request.batch  # read first: a request released meanwhile has none
            if batch is not None and request.engine >= 0 and not request.done():
                views.append(batch.memory)
        return views

    def codecs_in_calls(self) -> list[Codec]:
        return [self.codec] if self.memory_read() else []

    def __enter__(self) -> CodecEngines:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        """Close the engines; leaving on an error (a failed codec, Ctrl-C, SIGTERM), stop
        them without waiting (:meth:`stop`). A codec whose encode never returned held
        ``migcodec bench`` through SIGTERM in the wait, until SIGKILL."""
        if exc_type is None:
            self.close()
        else:
            self.stop()
