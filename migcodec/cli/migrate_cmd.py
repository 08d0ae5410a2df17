"""``migcodec migrate``, ``send`` and ``receive``: the reference pre-copy migration."""

from __future__ import annotations

import argparse
import functools
import json
import socket
import sys
from collections.abc import Callable

from migcodec.codecs import get_codec
from migcodec.datasets import GENERATORS
from migcodec.datasets.workload import PATTERNS, WRITE_STYLES
from migcodec.engine import (
    DirtyLog,
    FixedChooser,
    GuestWorkload,
    MigrationConfig,
    MigrationReport,
    MigrationSource,
    parse_rate,
    parse_size,
    receive_migration,
    run_loopback,
)
from migcodec.engine.plot import plot_migration, plot_sweep
from migcodec.engine.progress import MigrationProgress
from migcodec.engine.sweep import largest_converging_rate
from migcodec.plotting import PlotUnavailable, pyplot

CODEC_ALIASES = {"none": "raw"}

#: ``--codec auto``'s arms. Every arm costs probes on the migration thread, which shares the
#: host's cores with the codec engines; these four are the ones that win windows on a
#: CPU-bound host at 1-10 Gbit/s in the evaluation (``migcodec evaluate``). Stronger levels
#: earn their probes only on slow links: pass your own arms to ``Selector`` for those.
ENGINE_AUTO_ARMS = "raw;lz4;zstd:level=1;dsa-delta"


def make_chooser(spec: str, link_rate: float | None, workers: int):
    """A chooser for ``--codec``: one plugin name, or ``auto`` for the adaptive selector."""
    if spec == "auto":
        from migcodec.selector import Selector, make_objective, parse_arms, parse_policy
        from migcodec.selector.chooser import SelectorChooser

        # an unlimited link is modelled as one no pipeline here can fill (100 Gbit/s)
        objective = make_objective("throughput", link=link_rate or 12.5e9, workers=workers)
        arms = parse_arms(ENGINE_AUTO_ARMS)
        chooser = SelectorChooser(Selector(parse_policy("predictive"), arms, objective))
        chooser.label = "auto"
        return chooser
    return FixedChooser(get_codec(CODEC_ALIASES.get(spec, spec)))


def _config(args: argparse.Namespace) -> MigrationConfig:
    link = parse_rate(args.link) if args.link and args.link != "unlimited" else None
    return MigrationConfig(
        workers=args.workers,
        link_rate=link,
        downtime_limit_s=args.downtime_ms / 1000,
        max_iterations=args.max_iterations,
        max_time_s=args.max_time,
    )


def _progress(p: MigrationProgress) -> None:
    if not p.iteration_done:
        return
    print(
        f"\r  iteration {p.iteration:>3}: {p.dirty_pages_left:>9} dirty pages left, "
        f"{p.rate / 1e6:8.1f} MB/s",
        end="",
        file=sys.stderr,
        flush=True,
    )


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


def run_migrate(args: argparse.Namespace) -> int:
    _check_plot(args)
    config = _config(args)
    memory_bytes = parse_size(args.memory)
    progress = None if args.json else _progress

    def migrate_at(rate: float) -> MigrationReport:
        chooser = make_chooser(args.codec, config.link_rate, args.workers)
        report = run_loopback(
            memory_bytes,
            chooser,
            config,
            rate,
            args.workload,
            args.pattern,
            args.style,
            args.seed,
            progress=progress,
        )
        if progress:
            print(file=sys.stderr)
        return report

    if args.sweep_dirty_rate:
        best, runs = largest_converging_rate(migrate_at, repeats=args.repeats)
        if args.plot:
            plot_sweep(runs, best, args.plot)
        if args.json:
            print(
                json.dumps(
                    {"largest_dirty_rate": best, "runs": [r.as_dict() for r in runs]}, indent=2
                )
            )
        else:
            for r in runs:
                print(f"  dirty {r.dirty_rate / 1e6:8.1f} MB/s -> {_row(r)}")
            print(f"largest migratable dirty rate with {args.codec}: {best / 1e6:.1f} MB/s")
        return 0
    report = migrate_at(parse_rate(args.dirty_rate))
    if args.plot:
        plot_migration(report, args.plot)
    print(json.dumps(report.as_dict(), indent=2) if args.json else _row(report))
    return 0 if report.succeeded else 1


def run_receive(args: argparse.Namespace) -> int:
    host, _, port = args.listen.rpartition(":")
    with socket.create_server((host or "0.0.0.0", int(port))) as server:
        print(f"listening on {server.getsockname()[0]}:{server.getsockname()[1]}", flush=True)
        conn, peer = server.accept()
        with conn:
            summary, _ = receive_migration(conn)
    print(
        f"received {summary.pages} pages from {peer[0]} in {summary.frames} frames; "
        "memory digest verified"
    )
    return 0


def run_send(args: argparse.Namespace) -> int:
    _check_plot(args)
    config = _config(args)
    memory_bytes = parse_size(args.memory)
    n_pages = memory_bytes // config.page_size
    import numpy as np

    memory = np.zeros((n_pages, config.page_size), dtype=np.uint8)
    dirty = DirtyLog(n_pages)
    guest = GuestWorkload(
        memory,
        dirty,
        parse_rate(args.dirty_rate),
        args.workload,
        args.pattern,
        args.style,
        args.seed,
    )
    guest.fill()
    host, _, port = args.connect.rpartition(":")
    with socket.create_connection((host, int(port))) as sock:
        chooser = make_chooser(args.codec, config.link_rate, args.workers)
        report = MigrationSource(memory, chooser, config, dirty, guest, _progress).migrate(sock)
    print(file=sys.stderr)
    if args.plot:
        plot_migration(report, args.plot)
    print(json.dumps(report.as_dict(), indent=2) if args.json else _row(report))
    return 0 if report.succeeded else 1


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
    p.add_argument("--memory", default="256MiB", help="guest memory size, e.g. 1GiB")
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
        "--plot",
        metavar="PNG",
        help="draw the migration's iterations (with --sweep-dirty-rate: the sweep) to a PNG",
    )


def _usage_errors(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Errors that mean "change the command line": one line on stderr and exit status 2."""

    @functools.wraps(run)
    def guarded(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except PlotUnavailable as exc:
            print(f"migcodec {args.command}: {exc}", file=sys.stderr)
            return 2

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
    p.set_defaults(func=_usage_errors(run_migrate))

    p = sub.add_parser("send", help="the source side of a two-host migration")
    _source_options(p)
    p.add_argument("--connect", required=True, help="HOST:PORT of `migcodec receive`")
    p.set_defaults(func=_usage_errors(run_send))

    p = sub.add_parser("receive", help="the destination side of a two-host migration")
    p.add_argument("--listen", default="127.0.0.1:4444", help="HOST:PORT to listen on")
    p.set_defaults(func=run_receive)
