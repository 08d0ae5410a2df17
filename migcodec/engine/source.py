"""The source side of a pre-copy migration.

The calling thread is the migration thread: it drains the dirty log, cuts dirty pages into
multi-page batches, asks the chooser for a codec per window and submits batches to that
codec's engines, which also build each batch's frame (header and checksum, in parallel). A
sender thread takes requests in submission order, waits for each, and writes its frame onto
the link (the split between a migration thread and a device-polling
thread). Frames go out in submission order and each iteration is drained before the next
starts, so a page sent twice always arrives newest last and delta caches see pages in
order.
"""

from __future__ import annotations

import contextlib
import operator
import queue
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np

from migcodec.codecs import (
    Batch,
    Codec,
    CodecEngines,
    CodecKind,
    CodecPath,
    CodecStuck,
    DestinationMirror,
    Encoded,
    get_codec,
)
from migcodec.codecs.mirror import DEFAULT_MIRROR_BYTES
from migcodec.codecs.stuck import leave_running, stuck_codec
from migcodec.engine.chooser import CodecChooser
from migcodec.engine.dirty import DirtyLog
from migcodec.engine.guest import GuestError, GuestWorkload
from migcodec.engine.link import LinkTimeLimit, PacedSocket
from migcodec.engine.progress import ProgressCallback, ProgressTicker
from migcodec.engine.report import IterationRecord, MigrationReport
from migcodec.engine.runs import batch_runs
from migcodec.hashing import RunningDigest
from migcodec.interrupts import from_signal, interrupts_held
from migcodec.units import counted
from migcodec.wire import FrameWriter, PeerTimeout, WireError, memory_digest
from migcodec.wire.format import MAX_BATCH_BYTES, MAX_BATCH_PAGES
from migcodec.wire.handshake import read_reply
from migcodec.wire.io import DeadlinePassed, PeerIdle, Source, TimedSocket

_ITERATION_END = "iteration-end"
_STOP = "stop"

#: seconds a migration that ends early (Ctrl-C, SIGTERM, a failure) still waits for a codec
#: call to return, before it leaves the thread inside it running (see migcodec.codecs.stuck)
STOP_GRACE_S = 3.0
#: how often a thread waiting for a codec call reads again until when it may wait (the
#: migration thread brings that forward when it ends early)
_WAIT_SLICE_S = 0.25

#: how a report begins that saw only the destination close the connection: a caller that
#: ran the destination itself (:func:`migcodec.engine.runner.run_migration`) says its reason
DESTINATION_CLOSED = "the destination closed the connection"


def _whole(value) -> int | None:
    """``value`` as an int if it is a whole number (an int, or numpy's), else ``None``."""
    try:
        return operator.index(value)
    except TypeError:
        return None


@dataclass
class MigrationConfig:
    page_size: int = 4096
    max_batch_pages: int = 64
    #: batches of a codec the sender encodes itself (raw): such a frame costs little beyond
    #: its per-frame work (a system call, a checksum, the destination's hand-offs), so
    #: larger frames carry the same pages for less of it
    inline_batch_pages: int = 256
    workers: int = 2
    depth: int = 4
    window_batches: int = 64  # one codec decision per 4096 pages: selection cost amortised
    downtime_limit_s: float = 0.3  # QEMU's default downtime-limit
    max_iterations: int = 30
    max_time_s: float = 120.0
    link_rate: float | None = None  # bytes/s; None = unlimited
    fallback_codec: str = "raw"
    stall_iterations: int = 4  # give up after this many iterations without progress
    #: what the source may spend on its mirror of the destination's pages (delta codecs)
    mirror_bytes: int = DEFAULT_MIRROR_BYTES


class _Sender(threading.Thread):
    """Frames completed requests in submission order; keeps draining after a link error so
    the migration thread never blocks on a full request pool.

    Waiting for a codec ends at ``give_up_at``: a request still being encoded then ends
    this thread with :class:`CodecStuck`, the request left to its engine. A codec call of
    this thread's own (an inline codec, the fall-back) that outlasts it is noticed by the
    migration thread, which leaves this thread to it (:meth:`_abandon_if_stuck`).
    """

    def __init__(
        self,
        writer: FrameWriter,
        chooser: CodecChooser,
        fallback,
        report,
        destination: DestinationMirror | None,
    ) -> None:
        super().__init__(name="migcodec-sender", daemon=True)
        self.writer = writer
        self.chooser = chooser
        self.fallback = fallback
        self.report = report
        self.destination = destination
        self.items: queue.SimpleQueue = queue.SimpleQueue()
        self.error: BaseException | None = None
        self.drained = threading.Condition()
        self.submitted = 0
        self.done = 0
        # the migration thread waits (wait_in_flight) until at most this many requests are
        # in flight; -1: nobody waits, so finishing a request wakes nobody
        self._wake_at = -1
        # frames queued so far (data and iteration ends): the next one's index in the stream
        self.queued_frames = 0
        self.cpu_s = 0.0
        # the CPU seconds emulated accelerators' batches took here, and the codecs whose
        # batches engines encoded on an emulated accelerator (see _account)
        self.emulated_here_s = 0.0
        self.emulated_codecs: set[int] = set()
        # memory that holds still: its digest, hashed here as frames go out in memory order
        # (see _hash_sent), read when the stream ends (after this thread has joined)
        self.digest: RunningDigest | None = None
        # batches encoded here (inline codecs): from a snapshot in this buffer while memory
        # may change under them (set per iteration by the migration thread)
        self.snapshot = True
        self._staging: np.ndarray | None = None
        # when waiting for a codec ends (a time.perf_counter() value): the run's time limit,
        # brought forward by hurry()
        self.give_up_at = float("inf")
        # the codec call this thread is in (codec, batch, since), else None; changed to None
        # under _call_lock, under which the migration thread abandons this thread
        self._in_codec: tuple[Codec, Batch, float] | None = None
        self._call_lock = threading.Lock()
        self.abandoned = False

    def run(self) -> None:
        cpu0 = time.thread_time()
        while not self.abandoned:
            item = self.items.get()
            if item is _STOP:
                break
            if item[0] == _ITERATION_END:
                if self.error is None:
                    self._guard(self.writer.end_iteration, item[1], item[2])
                continue
            request, codec_id = item
            try:
                if type(request) is Batch:
                    self._frame_here(request, codec_id)
                else:
                    self._frame(request, codec_id)
            except CodecStuck as exc:
                # its request stays with the engine stuck in it, and what is queued behind
                # it cannot go out in order: this thread ends
                self._fail(exc)
                break
            except BaseException as exc:  # never die: the migration thread waits on us
                self._fail(exc)
            finally:
                self._settle(request)
        self.cpu_s = time.thread_time() - cpu0
        with self.drained:  # a migration thread waiting for room sees this one end now
            self.drained.notify_all()

    def _fail(self, exc: BaseException) -> None:
        """Keep the first error: what went wrong first is why the migration failed. The
        migration is over then, and codecs are not waited for longer (:meth:`hurry`)."""
        if self.error is None:
            self.error = exc
            self.hurry()

    def _settle(self, request) -> None:
        """Count an item framed (waking the migration thread if it waits for that) and give
        a request back to its pool, unless its engine still encodes it: a request whose
        codec is stuck (see :meth:`_await`) stays with its engine."""
        if type(request) is not Batch and request.done():
            request.release()
        with self.drained:
            self.done += 1
            if self.submitted - self.done <= self._wake_at:
                self.drained.notify_all()

    def _await(self, request, codec_id: int) -> None:
        """Wait until the engine is done with ``request``, and no later than
        ``give_up_at``, which is read again every slice (:meth:`hurry` brings it forward);
        a codec that has not returned by then is stuck."""
        if request.done():
            return
        began = time.perf_counter()
        while not request.wait(_WAIT_SLICE_S):
            now = time.perf_counter()
            if now >= self.give_up_at:
                raise stuck_codec(self.writer.codecs[codec_id], now - began)

    def _encode_here(self, codec: Codec, batch: Batch, staging: np.ndarray | None) -> Encoded:
        """``codec.encode`` in this thread, known as this thread's codec call while it runs
        (see :meth:`_abandon_if_stuck`)."""
        self._in_codec = (codec, batch, time.perf_counter())
        try:
            return codec.encode(batch, staging, self.destination)
        finally:
            with self._call_lock:
                self._in_codec = None

    def memory_read(self) -> list[np.ndarray]:
        """The memory that this thread's codec call, if it is in one, may read (see
        :mod:`migcodec.codecs.stuck`)."""
        call = self._in_codec
        return [] if call is None else [call[1].memory]

    def codecs_in_calls(self) -> list[Codec]:
        call = self._in_codec
        return [] if call is None else [call[0]]

    def _abandon_if_stuck(self) -> bool:
        """Whether this thread is left to a codec call of its own: one it has been in past
        ``give_up_at`` is stuck, so the migration stops waiting for it and fails with
        :class:`CodecStuck`; the thread is left running (see :mod:`migcodec.codecs.stuck`)
        and, if its codec ever returns, touches neither the stream nor the report again
        (see :meth:`_account`)."""
        with self._call_lock:
            call = self._in_codec
            now = time.perf_counter()
            if not self.abandoned and call is not None and now >= self.give_up_at:
                self.abandoned = True
                self._fail(stuck_codec(call[0], now - call[2]))
                leave_running(self)
            return self.abandoned

    def hurry(self) -> None:
        """Wait for codecs no more than :data:`STOP_GRACE_S` from now: the migration ends
        early (Ctrl-C, SIGTERM, a failure), and a codec call that does not return within
        a few seconds is not waited for (a stuck one never returns)."""
        self.give_up_at = min(self.give_up_at, time.perf_counter() + STOP_GRACE_S)

    def stop(self) -> None:
        """End this thread once it has framed what is queued, or given up on a codec; one
        stuck in a codec call of its own is left to it."""
        self.items.put(_STOP)
        while self.is_alive() and not self._abandon_if_stuck():
            self.join(_WAIT_SLICE_S)

    def _guard(self, fn, *args) -> None:
        try:
            fn(*args)
        except (OSError, WireError) as exc:
            self.error = exc

    def _frame_here(self, batch: Batch, codec_id: int) -> None:
        """Encode a batch of a codec that needs no engine (see ``MigrationSource.inline``)
        in this thread, from a snapshot in the sender's own staging buffer unless memory
        holds still (``self.snapshot``), and frame it."""
        staging = None
        if self.snapshot:
            if self._staging is None:
                shape = (self.writer.max_batch_pages, self.writer.page_size)
                self._staging = np.empty(shape, dtype=np.uint8)
            staging = self._staging
        encoded = self._encode_here(self.writer.codecs[codec_id], batch, staging)
        self._account(encoded, codec_id, codec_id < len(self.chooser.codecs), None, here=True)

    def _frame(self, request, codec_id: int) -> None:
        reported = codec_id < len(self.chooser.codecs)
        self._await(request, codec_id)
        try:
            encoded = request.result()
        except BaseException as exc:
            if from_signal(exc):
                raise
            # a codec failed: re-encode from a fresh snapshot with the fall-back, count it;
            # the mirror then hears what the destination gets instead. Its SystemExit or
            # KeyboardInterrupt too: they ended the migration as "sender failed", naming no
            # codec
            encoded = self._encode_here(self.fallback, request.batch, request.staging)
            codec_id = self.writer.codec_id(self.fallback)
            self.report.fallback_batches += 1
            self._account(encoded, codec_id, False, None, here=True)
        else:
            # framed and checksummed by the engine (see MigrationSource._send_pages)
            self._account(encoded, codec_id, reported, request.finished, here=False)

    def _account(self, encoded, codec_id: int, reported: bool, prepared, *, here: bool) -> None:
        """Count an encoded batch in the report, tell the chooser, and write its frame;
        nothing once the migration has left this thread (:meth:`_abandon_if_stuck`): the
        report, the chooser and the stream are no longer its own. ``here``: this thread
        encoded it (else an engine did).

        A batch's CPU time is counted with its thread's (this thread's clock, the engines'
        clocks: ``CodecEngines.cpu_s``), except an emulated accelerator's, which counts
        with the model's cost of offloading it: its engines' clocks are not counted
        (:attr:`emulated_codecs`), and what its stand-in spent here is taken off this
        thread's (:attr:`emulated_here_s`, an estimate: a batch's ``stats.cpu_s`` samples
        the clock on one call in 64). Taking the stand-in's estimate off every engine's
        clock instead took other codecs' CPU with it, down to none."""
        if self.abandoned:
            return
        stats = encoded.stats
        model = getattr(self.writer.codecs[codec_id], "model", None)
        if stats.path == CodecPath.EMULATED and model is not None:
            self.report.emulation_cpu_s += stats.cpu_s
            self.report.modelled_host_cpu_s += model.host_cpu_s(stats.input_bytes)
            self.report.modelled_device_s += stats.device_s or 0.0
            if here:
                self.emulated_here_s += stats.cpu_s
            else:
                self.emulated_codecs.add(codec_id)
        self.report.paths[encoded.codec] = stats.path
        if reported:
            self.chooser.report(codec_id, stats)
        if self.error is None:
            if prepared is not None and prepared.index == self.writer.frames:
                self._guard(self.writer.write_prepared, prepared)
            else:
                self._guard(self.writer.write_batch, encoded, codec_id)
            if self.error is not None:  # the frame did not go out: its pages were not sent
                return
            if self.digest is not None:
                self._hash_sent(encoded.runs)
            name = encoded.codec
            self.report.pages_by_codec[name] = (
                self.report.pages_by_codec.get(name, 0) + encoded.n_pages
            )

    def _hash_sent(self, runs: np.ndarray) -> None:
        """Hash a sent frame's pages into the digest when they continue its hashed prefix,
        as a first pass sends them: a raw frame's pages are in cache from its checksum, and
        hashing them here spares the end of the stream (or a thread competing with the
        encoders for the cores) a pass over all of memory. Other pages are hashed when the
        stream ends."""
        if runs.shape[0] == 1:
            first, count = runs[0].tolist()
            page_size = self.writer.page_size
            self.digest.extend(first * page_size, (first + count) * page_size)

    def wait_drained(self) -> None:
        self.wait_in_flight(0)

    def wait_in_flight(self, limit: int) -> None:
        """Wait until at most ``limit`` submitted requests are not framed yet (or the
        sender died). The sender wakes this thread once, when that is so, not per frame."""
        with self.drained:
            self._wake_at = limit
            while self.submitted - self.done > limit and self.is_alive():
                if self._abandon_if_stuck():
                    break
                self.drained.wait(_WAIT_SLICE_S)
            self._wake_at = -1


def _no_early_answer(sock, checksummed: bool) -> None:
    """Raise if the destination has answered before the end of the stream. Its verdict
    answers the end-of-stream frame, and is worth nothing before it: an acceptance already
    waiting here was sent before the memory all arrived, and would otherwise be taken for
    the verdict; a refusal is raised with the destination's reason."""
    if not isinstance(sock, socket.socket) or not Source(sock).pending():
        return  # a socket only: anything else would be read, not peeked at
    read_reply(sock, "the stream before its end", checksummed)
    raise WireError(
        "destination reported success before the stream ended, so it did not verify the "
        "memory; check that `migcodec receive` is what listens there"
    )


@contextlib.contextmanager
def _verdict_bounded(sock, deadline: float) -> Iterator[bool]:
    """Wait for the destination's verdict, on a socket with no timeout of its own (a
    loopback's, a library caller's), until :data:`STOP_GRACE_S` past the time limit, and
    say whether this bounded it: a destination whose decode never returns never answers,
    and the source waited for it forever. A socket that bounds its own calls (a
    :class:`~migcodec.wire.io.TimedSocket`: its idle timeout and deadline, which its
    errors name) or has a timeout is left as it is, and a socket bounded here is given
    back without a timeout."""
    if not isinstance(sock, socket.socket) or isinstance(sock, TimedSocket):
        yield False
        return
    if sock.gettimeout() is not None:
        yield False
        return
    sock.settimeout(max(deadline - time.perf_counter(), 0.0) + STOP_GRACE_S)
    try:
        yield True
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(None)


class MigrationSource:
    """Migrates ``memory`` (``(n_pages, page_size)`` uint8) over a connected socket."""

    def __init__(
        self,
        memory: np.ndarray,
        chooser: CodecChooser,
        config: MigrationConfig | None = None,
        dirty: DirtyLog | None = None,
        guest: GuestWorkload | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.memory = memory
        self.config = config or MigrationConfig(page_size=memory.shape[1])
        self.chooser = chooser
        self.dirty = dirty or DirtyLog(memory.shape[0])
        # no guest and no dirty log of the caller's: nothing can change memory while it
        # migrates (a change would have to be logged to be resent), so its digest, which
        # the end of the stream carries, can be hashed as the pages go out (_Sender.digest)
        self._still = guest is None and dirty is None
        self.guest = guest
        self.fallback = get_codec(self.config.fallback_codec)
        for codec in [*chooser.codecs, self.fallback]:
            codec.check_page_size(self.config.page_size)  # refused before any page moves
        self._engines: dict[int, CodecEngines] = {}
        self._destination: DestinationMirror | None = None
        self._link: PacedSocket | None = None  # the stream's link, while it runs
        self._aborted = False  # the stream's abort frame was written (see _abort)
        self._teach = False  # the mirror may record other codecs' pages (not in pass 0)
        self.progress = progress  # called rarely: see ProgressTicker

    def _engines_for(self, index: int) -> CodecEngines:
        if index not in self._engines:
            cfg = self.config
            self._engines[index] = CodecEngines(
                self.chooser.codecs[index],
                cfg.workers,
                cfg.depth,
                cfg.page_size,
                cfg.max_batch_pages,
                self._destination,
            )
        return self._engines[index]

    def _inline(self, codec_id: int) -> bool:
        """Whether the sender encodes this codec's batches itself: a raw codec's encode is
        no work beyond a copy, and handing each batch to an engine thread and back would
        cost more thread switches and lock hand-offs than the encode itself."""
        return self.chooser.codecs[codec_id].kind == CodecKind.RAW

    def _inline_pages(self) -> int:
        """Pages per batch of a codec framed by the sender (``inline_batch_pages``, within
        what the wire lets a stream announce, and never fewer than ``max_batch_pages``)."""
        cfg = self.config
        bound = min(cfg.inline_batch_pages, MAX_BATCH_BYTES // cfg.page_size, MAX_BATCH_PAGES)
        return max(cfg.max_batch_pages, bound)

    def _queue_here(self, sender: _Sender, window, codec_id: int, ticker, ahead):
        """Queue a window of batches for the sender to encode and frame (see
        :meth:`_inline`), never more pages in flight than the engines' request pool would
        hold. ``ahead``: see :meth:`_wait_for_room`; returns what is left of it."""
        cfg = self.config
        limit = max(2, cfg.workers * cfg.depth * cfg.max_batch_pages // self._inline_pages())
        for batch in window:
            if sender.submitted - sender.done >= limit:
                ahead = self._wait_for_room(sender, limit // 2, ahead)
                if sender.error is not None:  # it ended, or frames nothing more
                    break
            sender.submitted += 1
            sender.queued_frames += 1
            sender.items.put((batch, codec_id))
            ticker.batch(batch.n_pages)
        return ahead

    @staticmethod
    def _wait_for_room(sender: _Sender, limit: int, ahead):
        """Wait until at most ``limit`` requests are in flight. The first time in a window
        that the thread would wait, it runs ``ahead`` (the chooser's reading of the next
        window) instead: requests are queued then, as many as can be, so that work costs
        the encoders and the link nothing. Returns what is left to run ahead (``None``)."""
        if ahead is not None:
            ahead()
        sender.wait_in_flight(limit)
        return None

    def _window(self, batches: list, start: int) -> list[Batch] | None:
        """The window of batches from ``batches[start]`` (``None`` past the end)."""
        cfg = self.config
        if start >= len(batches):
            return None
        return [
            Batch(self.memory, runs, cfg.page_size, cfg.max_batch_pages)
            for runs in batches[start : start + cfg.window_batches]
        ]

    def _send_pages(self, sender: _Sender, pages: np.ndarray, ticker: ProgressTicker) -> int:
        """Submit ``pages`` window by window and wait until all are framed. With
        ``sender.snapshot`` engines copy each batch to a staging buffer first (memory may
        change under them). A chooser that splits a window (its optional ``split``, read
        after each choice: ``(rest, k)``) has its first ``k`` batches encoded with the codec
        chosen and the others with codec ``rest``."""
        cfg = self.config
        batches = batch_runs(pages, cfg.max_batch_pages)
        prepare = getattr(self.chooser, "prepare", None)  # optional in the protocol
        following = self._window(batches, 0)
        for start in range(0, len(batches), cfg.window_batches):
            if sender.error is not None:
                break
            window = following
            # the stream's codec table starts with the chooser's codecs, in order, so the
            # chooser's index is the codec id (two arms of equal config keep their own ids)
            codec_id = self._checked(self.chooser.choose(window), "chose")
            split = getattr(self.chooser, "split", None)  # optional in the protocol
            if split is not None:
                split = self._checked_split(split)
            if self._destination is not None:
                self._destination.recording = self._teach and self.chooser.wants_teaching
            following = self._window(batches, start + cfg.window_batches)
            ahead = None
            if prepare is not None and following is not None:
                ahead = partial(prepare, following)
            parts = [(window, start, codec_id)]
            if split is not None and 0 < split[1] < len(window):
                rest, k = split
                parts = [(window[:k], start, codec_id), (window[k:], start + k, rest)]
            for part, first, part_codec in parts:
                ahead = self._submit(sender, part, first, part_codec, pages, ticker, ahead)
        sender.wait_drained()
        return int(pages.shape[0])

    def _checked(self, index, what: str) -> int:
        """``index``, a codec the chooser named, if it is one of its codecs (a negative one
        would silently name another, counting from the end)."""
        n = len(self.chooser.codecs)
        number = _whole(index)
        if number is None or not 0 <= number < n:
            raise ValueError(
                f"chooser {self.chooser.label!r} {what} codec {index!r}, which is not an index "
                f"of its {counted(n, 'codec')} (0 to {n - 1})"
            )
        return number

    def _checked_split(self, split) -> tuple[int, int]:
        """A chooser's ``split``, ``(rest, k)``, with ``rest`` one of its codecs and ``k`` a
        whole number of batches."""
        rest, k = split
        batches = _whole(k)
        if batches is None:
            raise ValueError(
                f"chooser {self.chooser.label!r} split a window after {k!r} batches; give a "
                "whole number of batches"
            )
        return self._checked(rest, "split a window to"), batches

    def _submit(
        self,
        sender: _Sender,
        window: list[Batch],
        start: int,
        codec_id: int,
        pages: np.ndarray,
        ticker: ProgressTicker,
        ahead,
    ):
        """Submit ``window``, the batches from the iteration's ``start``-th on, encoded with
        ``codec_id``. ``ahead``: see :meth:`_wait_for_room`; returns what is left of it."""
        cfg = self.config
        if self._inline(codec_id):
            # the window's pages again, in the larger batches of a codec framed here
            lo = start * cfg.max_batch_pages
            hi = lo + sum(batch.n_pages for batch in window)
            size = self._inline_pages()
            merged = [
                Batch(self.memory, runs, cfg.page_size, size)
                for runs in batch_runs(pages[lo:hi], size)
            ]
            return self._queue_here(sender, merged, codec_id, ticker, ahead)
        engines = self._engines_for(codec_id)
        prepare_batch = sender.writer.prepare_batch
        # a page is in one batch per iteration and iterations drain, so no batch encodes
        # a page before the mirror has heard of its previous send
        done = 0
        while done < len(window):
            free = engines.pool.free_count()
            if not free:
                # every request is in flight: wait until half of them are framed, then
                # submit that many at once; waking up per freed request (and so the
                # engines and the sender, one request at a time) costs a thread switch
                # per frame each
                ahead = self._wait_for_room(sender, engines.pool.size // 2, ahead)
                if sender.error is not None:
                    # it ended (a codec stuck, whose request never comes back to the pool),
                    # or frames nothing more: waiting for a request could last forever
                    break
                free = max(1, engines.pool.free_count())
            group = window[done : done + free]
            # the engine frames and checksums its batch too, in parallel with the others
            # (the checksum is seeded with the frame's index: frames go out in order)
            first = sender.queued_frames
            finish = [
                partial(prepare_batch, codec_id=codec_id, index=first + k)
                for k in range(len(group))
            ]
            requests = engines.submit_many(
                group, notify=False, snapshot=sender.snapshot, finish=finish
            )
            for request, batch in zip(requests, group, strict=True):
                sender.submitted += 1
                sender.queued_frames += 1
                sender.items.put((request, codec_id))
                ticker.batch(batch.n_pages)
            done += len(group)
        return ahead

    def migrate(self, sock) -> MigrationReport:
        """Run pre-copy to completion (or give up) and return what was measured.

        A codec whose encode does not return is waited for until the time limit, and on
        Ctrl-C or SIGTERM for :data:`STOP_GRACE_S`; the migration then fails naming it, and
        the thread inside it is left running: memory it may read must stay mapped while
        :func:`~migcodec.codecs.stuck.still_read` says so."""
        cfg = self.config
        report = MigrationReport(
            codec=self.chooser.label,
            workload=self.guest.content if self.guest else "",
            memory_bytes=self.memory.nbytes,
            page_size=cfg.page_size,
            link_rate=cfg.link_rate,
            dirty_rate=self.guest.rate if self.guest else 0.0,
        )
        table = list(self.chooser.codecs)  # codec id == chooser index (see _send_pages)
        if all(c != self.fallback for c in table):
            table.append(self.fallback)
        # a new stream: the destination holds nothing yet, and was told nothing
        self._destination = None
        self._aborted = False
        if any(codec.reads_destination for codec in table):
            # never larger than the memory it mirrors
            budget = max(min(cfg.mirror_bytes, self.memory.nbytes), cfg.page_size)
            self._destination = DestinationMirror(cfg.page_size, budget, recording=False)
            self._destination.prefault()
        self.chooser.start_stream(self._destination)
        # paced from here: made before the mirror's set-up, the link's bucket filled to its
        # burst meanwhile, and the codecs with a mirror (delta codecs, auto) sent up to
        # 4 MiB unpaced, finishing faster than the link allows (0.091 s where 16 MiB over
        # 100 Mbit/s takes 0.133 s at least)
        link = self._link = PacedSocket(sock, cfg.link_rate)
        start = time.perf_counter()
        # the link gives up at the time limit: one iteration over a slow link can outlast
        # it many times, and the limit is otherwise checked between iterations
        link.deadline = start + cfg.max_time_s
        try:  # the preamble's exchange: a peer that refuses it ends the stream here
            writer = FrameWriter(
                link,
                cfg.page_size,
                self.memory.shape[0],
                table,
                self._inline_pages(),
                await_reply_from=sock,
            )
        except LinkTimeLimit as exc:  # the preamble alone outlasts the limit over this link
            self.chooser.close()
            report.error = self._out_of_time(exc)
            report.total_time_s = time.perf_counter() - start
            return report
        except BaseException:
            self.chooser.close()
            raise
        sender = _Sender(writer, self.chooser, self.fallback, report, self._destination)
        ticker = ProgressTicker(
            self.progress, cfg.page_size, self.dirty, lambda: writer.bytes_written
        )
        if self._still:
            sender.digest = RunningDigest(self.memory)
        sender.give_up_at = link.deadline
        sender.start()
        try:
            self._precopy(sock, sender, report, start, ticker)
        except BaseException:  # Ctrl-C, SIGTERM: a frame being paced is not waited for
            sender.hurry()
            link.stop()
            raise
        finally:
            # every thread that reads or writes the guest's memory is stopped before this
            # returns, Ctrl-C or not: the caller may unmap that memory next
            with interrupts_held():
                self._stop_threads(sender, report)
        report.wire_bytes = writer.bytes_written
        if sender.error is not None:  # pages queued behind a frame that never went out
            report.pages_sent = sum(report.pages_by_codec.values())
        report.total_time_s = time.perf_counter() - start
        if sender.error is not None and report.error is None:
            err = sender.error
            if isinstance(err, LinkTimeLimit):
                report.error = self._out_of_time(err)
            elif isinstance(err, CodecStuck):  # waited for until the time limit
                report.error = f"{self._time_limit()}: {err}"
            elif isinstance(err, BrokenPipeError | ConnectionResetError):
                report.error = (
                    f"{DESTINATION_CLOSED} ({err.strerror}): it stopped, or refused the "
                    "stream; its own output says why"
                )
            elif isinstance(err, PeerIdle):
                report.error = (
                    f"the destination stopped reading the stream: {err}; check that it is "
                    "still running and that the network between them is up, or allow it "
                    "longer (--timeout)"
                )
            elif isinstance(err, DeadlinePassed):  # not "link failed: DeadlinePassed: ..."
                report.error = (
                    f"the migration did not finish in time: {err}; allow it longer "
                    "(--deadline), or send less (a faster --link, a lower --dirty-rate)"
                )
            else:
                what = "link failed" if isinstance(err, OSError | WireError) else "sender failed"
                report.error = f"{what}: {type(err).__name__}: {err}"
        if isinstance(sender.error, LinkTimeLimit | CodecStuck):
            # the refused frame, or the stuck codec's, was not begun (and an abandoned
            # sender writes nothing more): the stream is at a frame's edge, and the
            # destination is told why it ends (unpaced: the time is up)
            self._abort(sender, report.error)
        return report

    def _stop_threads(self, sender: _Sender, report: MigrationReport) -> None:
        """Stop the sender, the codec engines, the chooser and the guest's writer, in that
        order: the sender's last frame is encoded from the guest's pages. A codec call is
        waited for no later than the sender's ``give_up_at``, and left running after it."""
        sender.stop()
        engines_cpu_s = 0.0
        for index, engines in self._engines.items():
            engines.stop(max(0.0, sender.give_up_at - time.perf_counter()))
            if index not in sender.emulated_codecs:  # its model's cost counts instead
                engines_cpu_s += engines.cpu_s()
        self._engines.clear()
        report.codec_cpu_s = engines_cpu_s
        report.sender_cpu_s = max(0.0, sender.cpu_s - sender.emulated_here_s)
        self.chooser.close()  # an adaptive chooser finishes (and learns from) its last window
        if self.guest is not None:
            self.guest.stop()
            if self.guest.active_s:
                report.dirty_rate_achieved = self.guest.bytes_dirtied / self.guest.active_s
            failure = self.guest.failure
            if failure is not None:  # the guest stopped writing: nothing measured holds
                report.converged = False
                report.error = f"the guest's writer failed: {type(failure).__name__}: {failure}"

    def _time_limit(self) -> str:
        return f"did not finish within its {self.config.max_time_s:g} s time limit"

    def _out_of_time(self, err: LinkTimeLimit) -> str:
        return f"{self._time_limit()} ({err})"

    def _precopy(
        self,
        sock,
        sender: _Sender,
        report: MigrationReport,
        start: float,
        ticker: ProgressTicker,
    ) -> None:
        cfg = self.config
        writer = sender.writer
        self.dirty.mark_all()
        if self.guest is not None:
            self.guest.start()
        best_remaining, stalled = float("inf"), 0
        out_of_time = False
        for _ in range(cfg.max_iterations):
            done = self._iteration(sender, report, start, ticker)
            if sender.error is not None:
                return
            # past the limit, pre-copy ends here, converged or not: whether a migration
            # keeps its limit must not depend on whether the link's pacing happened to
            # reach the deadline inside the iteration (LinkTimeLimit) or only after it
            out_of_time = time.perf_counter() - start > cfg.max_time_s
            if out_of_time:
                break
            sent_bytes = done.pages_sent * cfg.page_size
            rate = sent_bytes / max(done.duration_s, 1e-6) if sent_bytes else float("inf")
            remaining = done.dirty_pages_left * cfg.page_size
            if remaining / rate <= cfg.downtime_limit_s:
                report.converged = True
                break
            # pre-copy that stops shrinking the dirty set will never converge
            stalled = stalled + 1 if remaining >= 0.95 * best_remaining else 0
            best_remaining = min(best_remaining, remaining)
            if stalled >= cfg.stall_iterations:
                break
        if not report.converged:
            why = self._time_limit() if out_of_time else "did not converge"
            report.error = (
                f"{why}: {counted(report.iterations, 'iteration')}, "
                f"{counted(self.dirty.count(), 'page')} still dirty"
            )
            self._abort(sender, report.error)
            return
        if self.guest is not None:
            try:
                self.guest.pause()
            except GuestError as exc:
                report.error = str(exc)
                self._abort(sender, report.error)
                return
        paused = time.perf_counter()
        self._iteration(sender, report, start, ticker, stop_and_copy=True)
        sender.stop()
        if sender.error is not None:
            # the guest was paused all the same: its downtime is measured (it was left
            # out, as if no stop-and-copy had begun)
            report.downtime_s = time.perf_counter() - paused
            return
        try:
            _no_early_answer(sock, writer.replies_checksummed)
            digest = sender.digest.digest() if sender.digest else memory_digest(self.memory)
            writer.end_stream(digest)
            with _verdict_bounded(sock, start + cfg.max_time_s) as bounded:
                try:
                    read_reply(sock, "the end of the stream", writer.replies_checksummed)
                    report.verified = True
                except PeerTimeout:
                    if not bounded:
                        raise  # the socket's own timeout: its error says which
                    report.error = (
                        f"{self._time_limit()}: the destination had not confirmed the "
                        f"migration {STOP_GRACE_S:g} s after it"
                    )
        except LinkTimeLimit as exc:  # the last frames' pacing reached the time limit
            report.error = self._out_of_time(exc)
        except (OSError, WireError) as exc:
            report.error = f"destination did not confirm the migration: {exc}"
        report.downtime_s = time.perf_counter() - paused

    def _iteration(
        self,
        sender: _Sender,
        report: MigrationReport,
        start: float,
        ticker: ProgressTicker,
        stop_and_copy: bool = False,
    ) -> IterationRecord:
        """Send what is dirty now, as one iteration, and log what it took."""
        number = report.iterations
        wire0 = sender.writer.bytes_written
        by_codec0 = dict(report.pages_by_codec)
        t0 = time.perf_counter()
        pages = self.dirty.collect()
        # QEMU's XBZRLE rule: the mirror records other codecs' pages from the second pass
        # on. A delta pays only for pages dirtied again, which the second pass is made of;
        # copying all of memory in the first would cost the engines a copy per page.
        self._teach = number > 0
        ticker.begin(number, int(pages.shape[0]), stop_and_copy)
        # memory that holds still (nothing writes it, or the guest is paused) is framed where
        # it lies: a snapshot would only copy every page once more
        still = self._still or (stop_and_copy and self.guest is not None)
        sender.snapshot = not still  # the sender is idle: the last iteration drained
        sent = self._send_pages(sender, pages, ticker)  # drained: counts are whole
        by_codec = {
            name: n - by_codec0.get(name, 0)
            for name, n in report.pages_by_codec.items()
            if n != by_codec0.get(name, 0)
        }
        if sender.error is not None:
            # stopped midway: the pages framed, not all those collected (the log, the
            # progress line and the plot counted pages that never went out)
            sent = sum(by_codec.values())
        sender.items.put((_ITERATION_END, number, sent))
        sender.queued_frames += 1
        record = IterationRecord(
            iteration=number,
            start_s=t0 - start,
            end_s=time.perf_counter() - start,
            pages_sent=sent,
            wire_bytes=sender.writer.bytes_written - wire0,
            dirty_pages_left=self.dirty.count(),
            pages_by_codec=by_codec,
            stop_and_copy=stop_and_copy,
        )
        report.iterations += 1
        report.pages_sent += sent
        report.iteration_log.append(record)
        ticker.end(sent)
        return record

    def _abort(self, sender: _Sender, reason: str) -> None:
        """Stop the sender, then tell the destination why the stream ends, unpaced and
        past the time limit (the link refuses any other frame once it is up: the reason
        is what the destination prints), within :data:`STOP_GRACE_S` (a destination that
        stopped reading takes nothing more)."""
        sender.stop()
        link = self._link
        if link.partial_frame or self._aborted:
            # the stream is not at a frame's edge (the destination could not read it), or
            # it was told already: pre-copy's abort at the time limit left the sender's
            # next frame refused, and that refusal was the reason for a second abort
            return
        self._aborted = True
        link.rate = None
        link.deadline = time.perf_counter() + STOP_GRACE_S
        with contextlib.suppress(OSError, WireError):
            sender.writer.abort(reason)
