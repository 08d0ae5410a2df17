"""``migcodec migrate``, ``send`` and ``receive``: the reference pre-copy migration."""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from migcodec.cli import args as types
from migcodec.cli.args import (
    CommandLineError,
    Given,
    check_plot_path,
    draw_after_report,
    given,
    json_document,
)
from migcodec.cli.migrate_progress import ProgressDisplay
from migcodec.codecs import Codec
from migcodec.codecs.bounded import Watch, run_bounded, stuck_in, watch_this_thread
from migcodec.codecs.stuck import leave_running
from migcodec.datasets import GENERATORS
from migcodec.datasets.workload import PATTERNS, WRITE_STYLES
from migcodec.engine import (
    GuestMemory,
    GuestMemoryError,
    MigrationConfig,
    MigrationReport,
    MigrationSource,
    make_guest,
    open_guest_memory,
    receive_migration,
    run_loopback,
)
from migcodec.engine.chooser import CodecChooser, make_chooser
from migcodec.engine.destination import RECEIVE_TIMEOUT_S, MemoryOpener
from migcodec.engine.guest_memory import (
    DEFAULT_SIZE,
    check_available,
    check_backing,
    shm_file,
)
from migcodec.engine.source import STOP_GRACE_S
from migcodec.engine.sweep import largest_converging_rate
from migcodec.plots import PlotUnavailable
from migcodec.plots.migration import plot_migration, plot_sweep
from migcodec.units import counted, format_size, parse_rate
from migcodec.wire import PeerTimeout, StreamSummary, WireError, one_line
from migcodec.wire.io import TimedSocket

#: ``send``: seconds to reach ``migcodec receive``; ``receive``: seconds to wait for a source
SEND_CONNECT_TIMEOUT_S = 30.0
RECEIVE_CONNECT_TIMEOUT_S = 600.0
#: seconds a whole migration may take from connection to verdict, whatever the peer does
DEADLINE_S = 3600.0
#: the guest's dirty rate when none is given: enough that pre-copy has pages to chase, low
#: enough that the default guest (256 MiB, ``auto``, 1 Gbit/s) converges within the default
#: downtime limit with room to spare, also with ``--codec none``. With ``--keep-contents``
#: the default is 0: a real memory image is not written to unless that is asked for.
DEFAULT_DIRTY_RATE = "5MB/s"


def _dirty_rate(args: argparse.Namespace) -> float:
    """``--dirty-rate``, or its default: :data:`DEFAULT_DIRTY_RATE`, 0 with --keep-contents."""
    if args.dirty_rate is not None:
        return args.dirty_rate
    return 0.0 if args.keep_contents else parse_rate(DEFAULT_DIRTY_RATE)


def _config(args: argparse.Namespace) -> MigrationConfig:
    return MigrationConfig(
        workers=args.workers,
        link_rate=args.link,
        downtime_limit_s=args.downtime_ms / 1000,
        max_iterations=args.max_iterations,
        max_time_s=args.max_time,
    )


def _progress(args: argparse.Namespace, label: str = "") -> ProgressDisplay:
    return ProgressDisplay(enabled=not (args.json or args.quiet), label=label)


def _judged(report: MigrationReport) -> MigrationReport:
    """The command's verdict, kept in the report: a migration whose stop-and-copy took
    longer than the downtime limit failed, although its memory arrived verified. So the
    summary, ``--json`` (``succeeded``, ``error``), the exit status and a
    ``--sweep-dirty-rate`` search all count it as the failure it is."""
    if report.succeeded and report.downtime_exceeded:
        report.error = (
            f"downtime {report.downtime_s * 1000:.0f} ms exceeded the "
            f"{report.downtime_limit_s * 1000:g} ms limit; the memory arrived and was verified"
        )
    return report


def _verdict(args: argparse.Namespace, report: MigrationReport) -> int:
    """The exit status of one migration, with its failure in one line on stderr (the
    report, on stdout, may be JSON or silenced by ``--quiet``'s reader)."""
    if report.succeeded:
        return 0
    print(f"migcodec {args.command}: the migration failed: {report.error}", file=sys.stderr)
    return 1


#: a guest that dirtied less than this share of the rate asked is said to have
_SHORTFALL = 0.9


def _fell_short(report: MigrationReport) -> bool:
    """Whether the guest dirtied well under the rate asked: a small guest dirties each
    page at most once a tick, and a rate beyond that was reported as migrated at the rate
    asked (a 1 MiB guest "at least 2048 MB/s" where it dirtied 126). A guest that dirtied
    nothing did not run long enough to (a migration that failed before its first pass,
    over a link of a few bytes a second): more memory would not change that."""
    achieved = report.dirty_rate_achieved
    return 0 < achieved < _SHORTFALL * report.dirty_rate


def _row(report: MigrationReport) -> str:
    down = f"{report.downtime_s * 1000:.0f} ms" if report.downtime_s is not None else "-"
    state = "ok" if report.succeeded else f"FAILED ({report.error})"
    modelled = " (accelerator cost modelled)" if report.modelled else ""
    # a codec that fails sends its batches raw (the migration goes on): said, or a codec
    # that failed on every batch read as a migration at ratio 1.00 that succeeded
    failed = report.fallback_batches
    fallbacks = ""
    if failed:
        batches = (
            "1 batch sent raw after its"
            if failed == 1
            else f"{failed} batches sent raw after their"
        )
        fallbacks = f", {batches} codec failed"
    return (
        f"{report.codec}: {state}; {report.throughput_pages_s:,.0f} pages/s, total "
        f"{report.total_time_s:.2f} s, downtime {down}, extra CPU "
        f"{report.extra_cpu_percent:.0f}% of a core{modelled}, ratio {report.ratio:.2f}, "
        f"{report.wire_bytes / 1e6:.1f} MB on the wire, {counted(report.iterations, 'iteration')}"
        f"{fallbacks}{_shortfall(report)}"
    )


def _shortfall(report: MigrationReport) -> str:
    """What a row adds where the guest dirtied well under the rate asked (else nothing)."""
    if not _fell_short(report):
        return ""
    return (
        f"; the guest dirtied {report.dirty_rate_achieved / 1e6:.1f} MB/s of the "
        f"{report.dirty_rate / 1e6:.1f} asked (each page at most once a tick: give it more "
        "--memory for a higher rate)"
    )


def _check_plot(args: argparse.Namespace) -> None:
    """Fail before migrating, not after, when ``--plot`` cannot be drawn or written: a
    migration's report must not be lost to a typo in a path."""
    if args.plot is not None:  # an empty --plot is refused, not taken as no plot
        check_plot_path(args.plot)


def _source_memory(args: argparse.Namespace, page_size: int, copies: int) -> GuestMemory:
    """The guest's memory: ``--memory-file``, ``--shm``, or anonymous. ``copies``: how many
    times its size this process holds in RAM besides a file's mapping (``migrate`` also
    holds the destination's copy), checked against the RAM available before allocating."""
    check_backing(args.memory_file, args.shm)  # an empty name is refused, not taken as none
    backed = args.memory_file or args.shm
    if args.keep_contents and not backed:
        raise GuestMemoryError(
            "--keep-contents needs --memory-file or --shm: anonymous memory holds nothing to keep"
        )
    if not backed:
        size = args.memory or DEFAULT_SIZE
        held = "the guest" + (" and the destination's copy of it" if copies > 1 else "")
        check_available(copies * size, f"--memory {format_size(size)} ({held})")
    elif copies > 1 and args.memory:  # before a file or region of that size is made
        check_available(args.memory, "the destination's copy of the guest")
    memory = open_guest_memory(
        args.memory,
        page_size,
        path=args.memory_file,
        shm_name=args.shm,
        must_exist=args.keep_contents,
    )
    if backed and copies > 1:
        try:
            check_available(memory.pages.nbytes, "the destination's copy of the guest")
        except GuestMemoryError:
            memory.close()
            raise
    return memory


def _chooser(args: argparse.Namespace, config: MigrationConfig) -> CodecChooser:
    """The chooser ``--codec`` means, built on a bounded unit: a plugin whose import, probe
    or constructor never returns ends the command naming it (``--codec auto`` builds every
    arm), where it held the command forever."""
    chooser = run_bounded(
        make_chooser, args.codec, config.link_rate, args.workers, instead="choose another --codec"
    )
    # a damaged or unwritable calibration cache: said, as evaluate says it, since every
    # run then calibrates again for seconds, silently
    note = getattr(getattr(chooser, "selector", None), "calibration_note", None)
    if note is not None:
        print(f"migcodec {args.command}: note: {note}", file=sys.stderr)
    return chooser


def _check_codec(args: argparse.Namespace, config: MigrationConfig) -> None:
    """Refuse an unknown or unavailable ``--codec`` before memory is allocated, created or
    filled (``auto`` is built when the migration starts)."""
    if args.codec != "auto":
        _chooser(args, config)


def run_migrate(args: argparse.Namespace) -> int:
    if args.sweep_dirty_rate and args.dirty_rate is not None:  # else ignored without a word
        raise CommandLineError(
            "--sweep-dirty-rate chooses the dirty rates it tries; drop --dirty-rate, or drop "
            "--sweep-dirty-rate to migrate at that rate"
        )
    if args.sweep_dirty_rate and args.keep_contents:
        # each rate's guest wrote the image, and the next run migrated another one
        raise CommandLineError(
            "--sweep-dirty-rate has the guest dirty its memory at each rate it tries, and "
            "--keep-contents migrates an image as it is: the image would be written by "
            "each run and the next would migrate another; drop one of them"
        )
    if given(args, "repeats") and not args.sweep_dirty_rate:  # else ignored without a word
        raise CommandLineError(
            "--repeats applies to --sweep-dirty-rate (migrations per rate tried); drop "
            "--repeats, or add --sweep-dirty-rate"
        )
    _check_plot(args)
    config = _config(args)
    _check_codec(args, config)
    with _source_memory(args, config.page_size, copies=2) as memory:

        def migrate_at(rate: float) -> MigrationReport:
            chooser = _chooser(args, config)
            label = f"dirty {rate / 1e6:g} MB/s" if args.sweep_dirty_rate else ""
            with _progress(args, label) as progress:
                report = run_loopback(
                    memory.pages,
                    chooser,
                    config,
                    rate,
                    args.workload,
                    args.pattern,
                    args.style,
                    args.seed,
                    progress=progress,
                    fill=not args.keep_contents,
                    fill_progress=progress.fill,
                )
            return _judged(report)

        if not args.sweep_dirty_rate:
            report = migrate_at(_dirty_rate(args))
            print(json_document(report.as_dict()) if args.json else _row(report))
            if args.plot:
                draw_after_report(plot_migration, report, path=args.plot)
            return _verdict(args, report)
        best, runs = largest_converging_rate(migrate_at, repeats=args.repeats)
    # every rate tried converged: the search stopped at its own top, not at a failure
    unbounded = bool(runs) and all(r.succeeded for r in runs)
    # none did (in most of its runs, with --repeats): no rate was shown to migrate, not
    # even the lowest (0.0 would say one was)
    migrated = best > 0
    # the rates the guest reached, where it fell short of those asked: the largest shown
    # is one it dirtied, not one it was asked for
    reached = [r.dirty_rate_achieved for r in runs if r.succeeded and r.dirty_rate <= best]
    capped = any(_fell_short(r) for r in runs if r.succeeded and r.dirty_rate <= best)
    shown = min(best, max(reached)) if capped and reached else best
    if args.json:
        document = {
            "largest_dirty_rate": best if migrated else None,
            "largest_dirty_rate_achieved": shown if migrated else None,
            "every_rate_converged": unbounded,
            "runs": [r.as_dict() for r in runs],
        }
        print(json_document(document))
    else:
        for r in runs:
            print(f"  dirty {r.dirty_rate / 1e6:8.1f} MB/s -> {_row(r)}")
        if migrated and capped:
            print(
                f"largest migratable dirty rate with {args.codec}: at least {shown / 1e6:.1f} "
                f"MB/s, the most this guest dirtied ({best / 1e6:.1f} MB/s asked; it dirties "
                "each page at most once a tick: give it more --memory to try higher rates)"
            )
        elif migrated:
            at_least = "at least " if unbounded else ""
            print(
                f"largest migratable dirty rate with {args.codec}: {at_least}{best / 1e6:.1f} "
                "MB/s"
                + (" (every rate tried converged; the search goes no higher)" if unbounded else "")
            )
    if args.plot:
        draw_after_report(plot_sweep, runs, best, path=args.plot)
    if not migrated:
        lowest = min(r.dirty_rate for r in runs) / 1e6
        print(
            f"migcodec {args.command}: no dirty rate tried migrated with {args.codec}"
            f"{' in most of its runs' if args.repeats > 1 else ''}: even {lowest:.1f} MB/s "
            "failed (each run says why); give it more --max-time, a faster --link or less "
            "--memory",
            file=sys.stderr,
        )
        return 1
    return 0


def _peer_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` to connect to: a host named, and a port a listener can have (an empty
    host, ``4444``, was looked up as the name ''; port 0, which a listener takes to mean
    any free port, was tried and refused)."""
    host, port = _address(text)
    if not host or port == 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not the HOST:PORT of a listener (e.g. 127.0.0.1:4444): give "
            "the host `migcodec receive` runs on and the port it printed"
        )
    return host, port


def _address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) for --listen and --connect."""
    host, _, port = text.rpartition(":")
    # ASCII digits: str.isdigit takes any script's ("٨٠" listened on port 80)
    if not (port.isascii() and port.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:4444)")
    if int(port) > 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r} names port {int(port)}; a port is 0 to 65535 (e.g. 127.0.0.1:4444)"
        )
    bracketed = host.startswith("[") or host.endswith("]")
    if bracketed and not (host.startswith("[") and host.endswith("]") and ":" in host):
        # "[::1:0" was taken as host "::1", port 0
        raise argparse.ArgumentTypeError(
            f"{text!r} is not HOST:PORT: an IPv6 address goes in brackets before the port "
            "(e.g. [::1]:4444)"
        )
    host = host[1:-1] if bracketed else host
    try:  # as the resolver is given it: "a..b" or a label over 63 letters fails there with
        # a UnicodeError that is no socket error
        host.encode("idna")
    except UnicodeError as exc:
        raise argparse.ArgumentTypeError(
            f"{host!r} in {text!r} is not a host name ({exc.__cause__ or exc}); give a name "
            "or address such as 127.0.0.1:4444"
        ) from exc
    return host, int(port)


def _receive(args: argparse.Namespace, memory: MemoryOpener | None) -> tuple[StreamSummary, str]:
    """Serve one migration; the received array is not returned, so it cannot outlive its
    mapping when the caller closes the memory. Waiting for the source is bounded by
    ``--connect-timeout``; once it connected, every read by ``--timeout`` and the whole
    migration by ``--deadline``."""
    host, port = args.listen
    # an IPv6 address ([::1]:PORT, as --listen takes it) needs a socket of its family: one
    # of IPv4 refused it as "Address family for hostname not supported"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        server = socket.create_server((host or "0.0.0.0", port), family=family)
    except OSError as exc:  # an unknown host name, an address not ours, a port in use
        raise CommandLineError(
            f"cannot listen on {host or '0.0.0.0'}:{port} ({_reason(exc)}); give --listen "
            "an address of this host and a free port"
        ) from exc
    with server:  # closed once a source connected: another is refused at once, not
        # left queued until its own timeout while this one migrates
        where = f"{server.getsockname()[0]}:{server.getsockname()[1]}"
        print(f"listening on {where}", flush=True)
        server.settimeout(args.connect_timeout)
        try:
            conn, peer = server.accept()
        except TimeoutError as exc:
            raise PeerTimeout(
                f"no source connected to {where} within {args.connect_timeout:g} s "
                "(--connect-timeout); start `migcodec send --connect` sooner, or wait longer"
            ) from exc
    with TimedSocket.adopt(conn, args.timeout, args.deadline) as timed:
        summary = _received_by_the_deadline(timed, memory, args)
    return summary, peer[0]


class DestinationStuck(Exception):
    """A codec's decode never returned at the destination: the migration failed (exit
    status 1, as for a stream that broke), naming the codec (its
    :class:`~migcodec.codecs.CodecStuck` message)."""


class _Receiving:
    """The thread receiving a migration, as :mod:`migcodec.codecs.stuck` knows threads
    left inside codec calls: until it ends, the memory it writes must stay mapped."""

    def __init__(self, thread: threading.Thread, watch: Watch, memory: list[np.ndarray]):
        self.thread, self.watch, self.memory = thread, watch, memory

    def memory_read(self) -> list[np.ndarray]:
        return list(self.memory) if self.thread.is_alive() else []

    def codecs_in_calls(self) -> list[Codec | str]:
        call = self.watch.call
        return [] if call is None else [call[0]]


def _received_by_the_deadline(
    timed: TimedSocket, memory: MemoryOpener | None, args: argparse.Namespace
) -> StreamSummary:
    """:func:`receive_migration` on a watched thread of its own, waited for to its end: the
    connection's timeouts bound every read, but not a codec whose decode never returns,
    which held the command forever. A call that has not returned for ``--timeout`` (or
    ``--deadline``, if shorter; at least :data:`STOP_GRACE_S`) is named
    (:class:`~migcodec.codecs.CodecStuck`), and the thread inside it left running, with
    the memory it writes kept mapped (so is it when Ctrl-C ends the wait)."""
    written: list[np.ndarray] = []

    def opened(n_pages: int, page_size: int) -> np.ndarray:  # memory another may unmap
        pages = memory(n_pages, page_size)
        written.append(pages)
        return pages

    watch = Watch()
    outcome: dict = {}

    def receive() -> None:
        watch_this_thread(watch)
        try:
            given = None if memory is None else opened  # numpy's own: nothing unmaps it
            # a file or a region is refused where it has no room (open_guest_memory), not
            # at half of this machine's RAM, which it does not take
            limit = None if memory is None else math.inf
            outcome["summary"] = receive_migration(
                timed, given, max_memory_bytes=limit, timeout_s=args.timeout
            )[0]
        except BaseException as exc:  # raised on the waiting thread
            outcome["error"] = exc

    thread = threading.Thread(target=receive, name="migcodec-receive", daemon=True)
    receiving = _Receiving(thread, watch, written)
    thread.start()
    try:  # to the end, or a codec call that has not returned for --timeout (or --deadline)
        # a decode that never returns reads nothing from the source: past --timeout it is
        # named as a silent source would be (it waited for the whole --deadline, an hour
        # by default); a slow destination whose calls return is waited for to the end
        bound = max(STOP_GRACE_S, min(args.timeout, args.deadline))
        stuck = stuck_in(thread, watch, 0.0, bound, "send with another --codec")
    finally:
        if thread.is_alive():
            leave_running(receiving)
    if stuck is not None:  # the migration failed: the source's codec does not run here
        raise DestinationStuck(str(stuck))
    if "error" in outcome:
        raise outcome["error"]
    return outcome["summary"]


def _reason(exc: OSError) -> str:
    """``Name or service not known``: the system's words for a socket error, without the
    errno and the address Python adds to them."""
    return (exc.strerror or str(exc)).split(" (while attempting")[0]


def _held_before(args: argparse.Namespace) -> str | None:
    """``--memory-file PATH`` or ``--shm NAME`` where it holds data before anything is
    received (a file or region not empty), else ``None``: a stream that fails leaves the
    pages it wrote there, and said nothing of it (only a file made for it is removed)."""
    if args.memory_file is not None:
        path = Path(args.memory_file)
        if path.is_file() and path.stat().st_size > 0:
            return f"--memory-file {args.memory_file}"
    if args.shm is not None:
        region = shm_file(args.shm)
        if region.is_file() and region.stat().st_size > 0:
            return f"--shm {args.shm}"
    return None


def run_receive(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:
        opened: list[GuestMemory] = []

        def open_destination(n_pages: int, page_size: int) -> np.ndarray:
            memory = open_guest_memory(
                n_pages * page_size,
                page_size,
                path=args.memory_file,
                shm_name=args.shm,
                staged=True,
                smaller="the size is the source's guest: send a smaller one",
            )
            stack.callback(memory.empty_again)  # after it is closed (last in, first out)
            opened.append(stack.enter_context(memory))
            return memory.pages

        backed = args.memory_file is not None or args.shm is not None
        check_backing(args.memory_file, args.shm)  # before listening, not once a source came
        held = _held_before(args)
        try:
            summary, peer = _receive(args, open_destination if backed else None)
        except BaseException:
            # a file made for this migration holds only part of it: not left to pass for
            # a migrated image (one that existed before is the user's, and stays, an empty
            # one emptied again once closed)
            for memory in opened:
                memory.discard()
            if opened and held is not None:  # the user's data, written over in part
                print(
                    f"migcodec receive: note: {held} held data before; it now holds any pages "
                    "the failed stream wrote into it, unverified",
                    file=sys.stderr,
                )
            raise
    cut = ""
    for memory in opened:  # closed and whole: the image at its own name, and of its size
        memory.commit()
        if memory.trim():  # said, not done silently: the user's file lost its tail
            cut = f" (cut to the guest's {format_size(memory.size)})"
    into = f" into {opened[0].description}{cut}" if opened else ""
    print(
        # pages sent again after the guest dirtied them count once per send: "received 1065
        # pages" of a 1024-page guest read as pages it did not have
        f"received {summary.pages} page sends from {peer} in {summary.frames} frames and "
        f"{summary.iterations} iterations{into}; memory digest verified"
    )
    return 0


def _send(args: argparse.Namespace, config: MigrationConfig, memory: np.ndarray) -> MigrationReport:
    with _progress(args) as progress:
        guest = make_guest(
            memory,
            _dirty_rate(args),
            args.workload,
            args.pattern,
            args.style,
            args.seed,
            fill=not args.keep_contents,
            fill_progress=progress.fill,
        )
    with _connect(args) as sock, _progress(args) as progress:
        chooser = _chooser(args, config)
        source = MigrationSource(memory, chooser, config, guest.dirty, guest, progress)
        report = source.migrate(sock)
    report.downtime_limit_s = config.downtime_limit_s
    return _judged(report)


def _connect(args: argparse.Namespace) -> TimedSocket:
    """The connection to ``migcodec receive``: reached within ``--connect-timeout``, then
    every send and read bounded by ``--timeout`` and the whole migration by ``--deadline``."""
    host, port = args.connect
    try:
        sock = socket.create_connection((host, port), timeout=args.connect_timeout)
    except socket.gaierror as exc:
        raise CommandLineError(
            f"cannot find host {host!r} ({_reason(exc)}); check the name in --connect"
        ) from exc
    except TimeoutError as exc:
        raise PeerTimeout(
            f"could not connect to {host}:{port} within {args.connect_timeout:g} s "
            "(--connect-timeout); is `migcodec receive` listening there and reachable?"
        ) from exc
    except OSError as exc:
        raise WireError(
            f"cannot connect to {host}:{port} ({exc.strerror or exc}); is `migcodec receive` "
            "listening there?"
        ) from exc
    return TimedSocket.adopt(sock, args.timeout, args.deadline)


def run_send(args: argparse.Namespace) -> int:
    _check_plot(args)
    config = _config(args)
    _check_codec(args, config)
    with _source_memory(args, config.page_size, copies=1) as memory:
        report = _send(args, config, memory.pages)
    print(json_document(report.as_dict()) if args.json else _row(report))
    if args.plot:
        draw_after_report(plot_migration, report, path=args.plot)
    return _verdict(args, report)


def _memory_options(
    p: argparse.ArgumentParser, what: str, sized_by: str, cut: bool = False
) -> None:
    """Where memory lives: mapped from a file or a region, never copied, so the guest's
    writes (or the decoded pages) land in it. ``cut``: a larger file is cut to the size
    once the memory in it is whole (a destination's: see ``GuestMemory.trim``)."""
    backing = p.add_mutually_exclusive_group()
    sized = f"grown to {sized_by} if smaller" + (
        ", and cut to it once received if larger" if cut else ""
    )
    backing.add_argument(
        "--memory-file",
        metavar="PATH",
        help=f"{what} in this file (created, or {sized})",
    )
    backing.add_argument(
        "--shm",
        metavar="NAME",
        help=f"{what} in this POSIX shared-memory region: attached if it exists (it must "
        f"hold {sized_by}), else created and removed again when the command ends",
    )


def _source_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workload", default="memcached", choices=sorted(GENERATORS), help="guest page contents"
    )
    p.add_argument(
        "--pattern", default="uniform", choices=list(PATTERNS), help="which pages the guest dirties"
    )
    p.add_argument(
        "--style",
        default="whole",
        choices=list(WRITE_STYLES),
        help="whole-page rewrites or a few 8-byte words per page",
    )
    p.add_argument(
        "--memory",
        type=types.memory_size,
        metavar="SIZE",
        help="guest memory size, a whole number of 4096-byte pages, e.g. 1GiB (default: all "
        "of an existing --memory-file or --shm, else 256MiB)",
    )
    _memory_options(p, "guest memory", "--memory")
    p.add_argument(
        "--keep-contents",
        action="store_true",
        help="migrate what --memory-file or --shm already holds (a real memory image, which "
        "must exist) instead of filling it with --workload pages first; the guest still "
        "dirties it",
    )
    p.add_argument(
        "--dirty-rate",
        type=types.rate,
        metavar="RATE",
        help="bytes/s the guest dirties while it migrates, e.g. 200MB/s; 0: a guest that "
        f"writes nothing (default: {DEFAULT_DIRTY_RATE}, and 0 with --keep-contents, so that a "
        "memory image is written only when asked)",
    )
    p.add_argument(
        "--link",
        type=types.link_rate,
        default="1Gbit",
        metavar="RATE",
        help="sender rate limit, e.g. 1Gbit or 200MB/s, or 'unlimited'",
    )
    p.add_argument(
        "--codec", default="auto", help="auto, none, or a codec plugin name (see `migcodec codecs`)"
    )
    p.add_argument(
        "--workers", type=types.workers, default=2, metavar="N", help="codec engines per codec"
    )
    p.add_argument(
        "--downtime-ms",
        type=types.milliseconds,
        default=300,
        metavar="MS",
        help="downtime limit: pre-copy stops once the rest should take no longer, and a "
        "stop-and-copy that takes longer fails the migration",
    )
    p.add_argument(
        "--max-iterations",
        type=types.positive_int,
        default=30,
        metavar="N",
        help="give up after this many pre-copy iterations",
    )
    p.add_argument(
        "--max-time",
        type=types.seconds,
        default=120,
        metavar="SECONDS",
        help="give up after this many seconds",
    )
    p.add_argument(
        "--seed",
        type=types.seed,
        default=0,
        metavar="N",
        help="seed of the guest's contents and writes",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress on stderr (a bar on a terminal, a line per iteration otherwise)",
    )
    p.add_argument(
        "--plot",
        metavar="PNG",
        help="draw the migration's iterations (with --sweep-dirty-rate: the sweep) to a PNG",
    )


def _time_limits(p: argparse.ArgumentParser, connect: float, connecting: str, peer: str) -> None:
    """``--connect-timeout``, ``--timeout`` (idle) and ``--deadline``: however the peer
    behaves (silent, trickling, never answering), the command ends by their sum."""
    p.add_argument(
        "--connect-timeout",
        type=types.seconds,
        default=connect,
        metavar="SECONDS",
        help=f"seconds to {connecting} (default %(default)g)",
    )
    p.add_argument(
        "--timeout",
        type=types.seconds,
        default=RECEIVE_TIMEOUT_S,
        metavar="SECONDS",
        help=f"give up when the {peer} sends or takes nothing for this long (default %(default)g)",
    )
    p.add_argument(
        "--deadline",
        type=types.seconds,
        default=DEADLINE_S,
        metavar="SECONDS",
        help="give up when the migration has not finished this long after connecting, even "
        "if bytes still trickle in (default %(default)g)",
    )


def _reported(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Errors a user acts on get one line on stderr, not a traceback: exit status 2 when the
    command line must change, 1 when the migration failed."""

    @functools.wraps(run)
    def guarded(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except (PlotUnavailable, GuestMemoryError, WireError, DestinationStuck) as exc:
            # one line whatever the message embeds (a peer's text is already quoted)
            print(f"migcodec {args.command}: {one_line(str(exc))}", file=sys.stderr)
            # a wire error, or a decode that never returned: the stream failed, which no
            # change to this command line would have prevented
            return 1 if isinstance(exc, WireError | DestinationStuck) else 2
        # the connection failed under the stream (a reset, a deadline); a broken pipe is
        # left to main(), which tells a closed stdout from it
        except (ConnectionResetError, ConnectionAbortedError, TimeoutError) as exc:
            why = exc.strerror or str(exc)  # the system's words, without "[Errno N]"
            print(
                f"migcodec {args.command}: the connection failed: {one_line(why)}", file=sys.stderr
            )
            return 1

    return guarded


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("migrate", help="migrate a dirtying guest over loopback and measure it")
    _source_options(p)
    p.add_argument(
        "--sweep-dirty-rate",
        action="store_true",
        help="search for the largest dirty rate that still converges",
    )
    p.add_argument(
        "--repeats",
        type=types.sweep_repeats,
        default=1,
        action=Given,
        metavar="N",
        help="with --sweep-dirty-rate: migrations per rate",
    )
    p.set_defaults(func=_reported(run_migrate))

    p = sub.add_parser("send", help="the source side of a two-host migration")
    _source_options(p)
    p.add_argument(
        "--connect", required=True, type=_peer_address, help="HOST:PORT of `migcodec receive`"
    )
    _time_limits(p, SEND_CONNECT_TIMEOUT_S, "reach `migcodec receive`", "destination")
    p.set_defaults(func=_reported(run_send))

    p = sub.add_parser("receive", help="the destination side of a two-host migration")
    p.add_argument(
        "--listen", default="127.0.0.1:4444", type=_address, help="HOST:PORT to listen on"
    )
    _time_limits(p, RECEIVE_CONNECT_TIMEOUT_S, "wait for a source to connect", "source")
    _memory_options(p, "destination memory", "the size the source announces", cut=True)
    p.set_defaults(func=_reported(run_receive))
