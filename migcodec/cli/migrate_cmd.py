"""``migcodec migrate``, ``send`` and ``receive``: the reference pre-copy migration."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import socket
import sys
from collections.abc import Callable

import numpy as np

from migcodec.cli.migrate_progress import ProgressDisplay
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
from migcodec.engine.chooser import make_chooser
from migcodec.engine.destination import RECEIVE_TIMEOUT_S, MemoryOpener
from migcodec.engine.plot import plot_migration, plot_sweep
from migcodec.engine.sweep import largest_converging_rate
from migcodec.plotting import PlotUnavailable, pyplot
from migcodec.units import parse_rate, parse_size
from migcodec.wire import PeerTimeout, StreamSummary, WireError, one_line
from migcodec.wire.io import TimedSocket

#: ``send``: seconds to reach ``migcodec receive``; ``receive``: seconds to wait for a source
SEND_CONNECT_TIMEOUT_S = 30.0
RECEIVE_CONNECT_TIMEOUT_S = 600.0
#: seconds a whole migration may take from connection to verdict, whatever the peer does
DEADLINE_S = 3600.0


def _config(args: argparse.Namespace) -> MigrationConfig:
    link = parse_rate(args.link) if args.link and args.link != "unlimited" else None
    return MigrationConfig(
        workers=args.workers,
        link_rate=link,
        downtime_limit_s=args.downtime_ms / 1000,
        max_iterations=args.max_iterations,
        max_time_s=args.max_time,
    )


def _progress(args: argparse.Namespace, label: str = "") -> ProgressDisplay:
    return ProgressDisplay(enabled=not (args.json or args.quiet), label=label)


def _row(report: MigrationReport) -> str:
    down = f"{report.downtime_s * 1000:.0f} ms" if report.downtime_s is not None else "-"
    state = "ok" if report.succeeded else f"FAILED ({report.error})"
    modelled = " (accelerator cost modelled)" if report.modelled else ""
    return (
        f"{report.codec}: {state}; {report.throughput_pages_s:,.0f} pages/s, total "
        f"{report.total_time_s:.2f} s, downtime {down}, extra CPU "
        f"{report.extra_cpu_percent:.0f}% of a core{modelled}, ratio {report.ratio:.2f}, "
        f"{report.wire_bytes / 1e6:.1f} MB on the wire, {report.iterations} iterations"
    )


def _check_plot(args: argparse.Namespace) -> None:
    """Fail before migrating, not after, when ``--plot`` cannot be drawn."""
    if args.plot:
        pyplot()


def _source_memory(args: argparse.Namespace, page_size: int) -> GuestMemory:
    """The guest's memory: ``--memory-file``, ``--shm``, or anonymous."""
    backed = args.memory_file or args.shm
    if args.keep_contents and not backed:
        raise GuestMemoryError(
            "--keep-contents needs --memory-file or --shm: anonymous memory holds nothing to keep"
        )
    size = parse_size(args.memory) if args.memory else None
    return open_guest_memory(size, page_size, path=args.memory_file, shm_name=args.shm)


def run_migrate(args: argparse.Namespace) -> int:
    _check_plot(args)
    config = _config(args)
    with _source_memory(args, config.page_size) as memory:

        def migrate_at(rate: float) -> MigrationReport:
            chooser = make_chooser(args.codec, config.link_rate, args.workers)
            label = f"dirty {rate / 1e6:g} MB/s" if args.sweep_dirty_rate else ""
            with _progress(args, label) as progress:
                return run_loopback(
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
                )

        if not args.sweep_dirty_rate:
            report = migrate_at(parse_rate(args.dirty_rate))
            if args.plot:
                plot_migration(report, args.plot)
            print(json.dumps(report.as_dict(), indent=2) if args.json else _row(report))
            return 0 if report.succeeded else 1
        best, runs = largest_converging_rate(migrate_at, repeats=args.repeats)
    if args.plot:
        plot_sweep(runs, best, args.plot)
    if args.json:
        print(
            json.dumps({"largest_dirty_rate": best, "runs": [r.as_dict() for r in runs]}, indent=2)
        )
    else:
        for r in runs:
            print(f"  dirty {r.dirty_rate / 1e6:8.1f} MB/s -> {_row(r)}")
        print(f"largest migratable dirty rate with {args.codec}: {best / 1e6:.1f} MB/s")
    return 0


def _address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) for --listen and --connect."""
    host, _, port = text.rpartition(":")
    if not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:4444)")
    return host.strip("[]"), int(port)


def _seconds(text: str) -> float:
    """A time limit: a positive, finite number of seconds (refused while parsing)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a positive, finite number of seconds (e.g. 30 or 0.5)"
        )
    return value


def _receive(args: argparse.Namespace, memory: MemoryOpener | None) -> tuple[StreamSummary, str]:
    """Serve one migration; the received array is not returned, so it cannot outlive its
    mapping when the caller closes the memory. Waiting for the source is bounded by
    ``--connect-timeout``; once it connected, every read by ``--timeout`` and the whole
    migration by ``--deadline``."""
    host, port = args.listen
    with socket.create_server((host or "0.0.0.0", port)) as server:
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
            summary, _ = receive_migration(timed, memory, timeout_s=args.timeout)
    return summary, peer[0]


def run_receive(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:
        opened: list[GuestMemory] = []

        def open_destination(n_pages: int, page_size: int) -> np.ndarray:
            memory = open_guest_memory(
                n_pages * page_size, page_size, path=args.memory_file, shm_name=args.shm
            )
            opened.append(stack.enter_context(memory))
            return memory.pages

        backed = args.memory_file or args.shm
        summary, peer = _receive(args, open_destination if backed else None)
    into = f" into {opened[0].description}" if opened else ""
    print(
        f"received {summary.pages} pages from {peer} in {summary.frames} frames{into}; "
        "memory digest verified"
    )
    return 0


def _send(args: argparse.Namespace, config: MigrationConfig, memory: np.ndarray) -> MigrationReport:
    guest = make_guest(
        memory,
        parse_rate(args.dirty_rate),
        args.workload,
        args.pattern,
        args.style,
        args.seed,
        fill=not args.keep_contents,
    )
    with _connect(args) as sock, _progress(args) as progress:
        chooser = make_chooser(args.codec, config.link_rate, args.workers)
        source = MigrationSource(memory, chooser, config, guest.dirty, guest, progress)
        return source.migrate(sock)


def _connect(args: argparse.Namespace) -> TimedSocket:
    """The connection to ``migcodec receive``: reached within ``--connect-timeout``, then
    every send and read bounded by ``--timeout`` and the whole migration by ``--deadline``."""
    host, port = args.connect
    try:
        sock = socket.create_connection((host, port), timeout=args.connect_timeout)
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
    with _source_memory(args, config.page_size) as memory:
        report = _send(args, config, memory.pages)
    if args.plot:
        plot_migration(report, args.plot)
    print(json.dumps(report.as_dict(), indent=2) if args.json else _row(report))
    return 0 if report.succeeded else 1


def _memory_options(p: argparse.ArgumentParser, what: str, sized_by: str) -> None:
    """Where memory lives: mapped from a file or a region, never copied, so the guest's
    writes (or the decoded pages) land in it."""
    backing = p.add_mutually_exclusive_group()
    backing.add_argument(
        "--memory-file",
        metavar="PATH",
        help=f"{what} in this file (created, or grown to {sized_by} if smaller)",
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
    p.add_argument("--pattern", default="uniform", choices=list(PATTERNS))
    p.add_argument(
        "--style",
        default="whole",
        choices=list(WRITE_STYLES),
        help="whole-page rewrites or a few 8-byte words per page",
    )
    p.add_argument(
        "--memory",
        help="guest memory size, e.g. 1GiB (default: all of an existing --memory-file or "
        "--shm, else 256MiB)",
    )
    _memory_options(p, "guest memory", "--memory")
    p.add_argument(
        "--keep-contents",
        action="store_true",
        help="migrate what --memory-file or --shm already holds (a real memory image) instead "
        "of filling it with --workload pages first; the guest still dirties it",
    )
    p.add_argument("--dirty-rate", default="0", help="guest dirty rate, e.g. 200MB/s")
    p.add_argument("--link", default="1Gbit", help="sender rate limit, e.g. 1Gbit, unlimited")
    p.add_argument(
        "--codec", default="auto", help="auto, none, or a codec plugin name (see `migcodec codecs`)"
    )
    p.add_argument("--workers", type=int, default=2, help="codec engines per codec")
    p.add_argument("--downtime-ms", type=float, default=300.0)
    p.add_argument("--max-iterations", type=int, default=30)
    p.add_argument("--max-time", type=float, default=120.0, help="give up after seconds")
    p.add_argument("--seed", type=int, default=0)
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
        type=_seconds,
        default=connect,
        metavar="SECONDS",
        help=f"seconds to {connecting} (default %(default)g)",
    )
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=RECEIVE_TIMEOUT_S,
        metavar="SECONDS",
        help=f"give up when the {peer} sends or takes nothing for this long (default %(default)g)",
    )
    p.add_argument(
        "--deadline",
        type=_seconds,
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
        except (PlotUnavailable, GuestMemoryError, WireError) as exc:
            # one line whatever the message embeds (a peer's text is already quoted)
            print(f"migcodec {args.command}: {one_line(str(exc))}", file=sys.stderr)
            # a wire error: the other end refused or broke the stream, not a usage error
            return 1 if isinstance(exc, WireError) else 2

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
        "--repeats", type=int, default=1, help="with --sweep-dirty-rate: migrations per rate"
    )
    p.set_defaults(func=_reported(run_migrate))

    p = sub.add_parser("send", help="the source side of a two-host migration")
    _source_options(p)
    p.add_argument(
        "--connect", required=True, type=_address, help="HOST:PORT of `migcodec receive`"
    )
    _time_limits(p, SEND_CONNECT_TIMEOUT_S, "reach `migcodec receive`", "destination")
    p.set_defaults(func=_reported(run_send))

    p = sub.add_parser("receive", help="the destination side of a two-host migration")
    p.add_argument(
        "--listen", default="127.0.0.1:4444", type=_address, help="HOST:PORT to listen on"
    )
    _time_limits(p, RECEIVE_CONNECT_TIMEOUT_S, "wait for a source to connect", "source")
    _memory_options(p, "destination memory", "the size the source announces")
    p.set_defaults(func=_reported(run_receive))
