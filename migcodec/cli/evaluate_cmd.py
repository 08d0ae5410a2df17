"""``migcodec evaluate``: score codec-selection policies on a trace, exactly.

Every arm runs on every window once (full information; timings are medians of repeats),
the table is cached beside the trace, and each policy is replayed against it seeing only
the outcome of the arm it chose. Reports each policy against the per-window oracle and the
best fixed arm.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from migcodec.selector import DEFAULT_POLICIES, make_objective, parse_arms, parse_policy
from migcodec.selector.evaluation import (
    build_table,
    cached_table,
    check_windows,
    evaluate,
    read_trace,
    workload_windows,
)
from migcodec.selector.evaluation.table import table_key
from migcodec.selector.evaluation.windows import trace_identity


def _table(args: argparse.Namespace, arms):
    if args.trace is None and args.workload is None:
        raise SystemExit("migcodec evaluate: give a TRACE directory or --workload NAME")
    if args.trace is not None:
        trace = Path(args.trace)
        if not trace.is_dir():
            raise SystemExit(f"migcodec evaluate: trace {trace} is not a directory")
        source = f"trace:{trace_identity(trace)}"

        def windows():
            return read_trace(trace)

        default_dir = trace
    else:
        source = (
            f"workload:{args.workload}:{args.windows}:{args.pages}:{args.seed}:{args.phase_windows}"
        )

        def windows():
            return workload_windows(
                args.workload, args.windows, args.pages, args.seed, args.phase_windows
            )

        default_dir = None
    key = table_key(source, arms, args.repeats, args.batch_pages, args.sample_pages)
    if args.table:
        path = Path(args.table)
    elif default_dir is not None:
        path = default_dir / f"selector-table-{key}.npz"
    else:
        path = None

    def build():
        def progress(n: int) -> None:
            if not args.json and sys.stderr.isatty():
                print(f"\rmeasuring arms: window {n}", end="", file=sys.stderr, flush=True)

        table = build_table(
            check_windows(windows()),
            arms,
            args.repeats,
            args.batch_pages,
            args.sample_pages,
            progress,
        )
        if not args.json and sys.stderr.isatty():
            print(file=sys.stderr)
        return table

    return cached_table(path, build, rebuild=args.rebuild), path


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (ValueError, RuntimeError) as exc:  # our errors say what went wrong and the fix
        print(f"migcodec evaluate: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    arms = parse_arms(args.arms)
    names = (args.policies or " ".join(DEFAULT_POLICIES)).replace(";", " ").split()
    policies = [parse_policy(p) for p in names]
    params = {"link": args.link, "workers": args.workers} if args.objective == "throughput" else {}
    objective = make_objective(args.objective, **params)
    (table, cached), path = _table(args, arms)
    ev = evaluate(table, policies, objective)
    if args.plot:
        from migcodec.selector.evaluation.plot import plot_evaluation

        plot_evaluation(ev, args.plot)
    if args.json:
        doc = ev.as_dict()
        doc["table"] = {
            "path": str(path) if path else None,
            "cached": cached,
            "windows": table.n_windows,
            **table.meta,
        }
        print(json.dumps(doc, indent=2))
        return 0
    where = f"{path} ({'cached' if cached else 'built'})" if path else "not cached"
    print(f"{table.n_windows} windows, arms: {', '.join(ev.labels)}; table {where}")
    print(
        f"objective {objective.get_config()}; oracle switches arm "
        f"{int((ev.oracle_arms[1:] != ev.oracle_arms[:-1]).sum())} times; best fixed arm: "
        f"{ev.labels[ev.best_fixed]}"
    )
    print(
        f"{'policy':<50} {'total':>12} {'/oracle':>8} {'/fixed':>7} {'sum/oracle':>10} "
        f"{'switches':>8} {'feature ms':>10}"
    )
    for s in ev.scores:
        print(
            f"{s.label[:50]:<50} {s.total:>12.4g} {s.vs_oracle:>8.3f} {s.vs_best_fixed:>7.3f} "
            f"{s.sum_vs_oracle:>10.3f} {s.switches:>8d} {s.feature_s * 1e3:>10.2f}"
        )
    print(
        f"total = {objective.name} over the whole trace ({objective.unit}; for throughput "
        "guest bytes / total time); sum/oracle = sum of per-window rewards / oracle's"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score codec-selection policies on a trace or workload")
    p.add_argument("trace", nargs="?", help="trace directory (read by migcodec.datasets)")
    p.add_argument(
        "--workload",
        help="synthetic windows instead of a trace: a page generator, "
        "or several comma-separated for phases (zero,memcached,text,random)",
    )
    p.add_argument("--windows", type=int, default=64, help="windows of --workload")
    p.add_argument("--pages", type=int, default=1024, help="dirty pages per --workload window")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--phase-windows",
        type=int,
        default=16,
        help="windows per phase of a comma-separated --workload",
    )
    p.add_argument(
        "--arms",
        help="arms separated by ';' or spaces, each codec[:key=value,...] "
        "(default: raw;lz4;zstd:level=1;zstd:level=3;zlib-ng:level=1 and the installed "
        "delta codecs dsa-delta;xbzrle)",
    )
    p.add_argument(
        "--policies",
        help="policies separated by ';' or spaces, each "
        "name[:key=value,...] (e.g. 'd-ucb:gamma=0.9;predictive'); default: "
        + " ".join(DEFAULT_POLICIES),
    )
    p.add_argument("--objective", default="throughput", choices=["throughput", "cpu", "wire"])
    p.add_argument("--link", default="10Gbit", help="link rate for throughput (e.g. 1Gbit)")
    p.add_argument("--workers", type=float, default=2, help="parallel encoders")
    p.add_argument("--repeats", type=int, default=3, help="timings per (window, arm)")
    p.add_argument("--batch-pages", type=int, default=64)
    p.add_argument("--sample-pages", type=int, default=16, help="pages a probe encodes")
    p.add_argument("--table", help="table file (default: beside the trace)")
    p.add_argument("--rebuild", action="store_true", help="re-measure even if cached")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--plot", help="write a PNG of choices and cumulative reward")
    p.set_defaults(func=run)
