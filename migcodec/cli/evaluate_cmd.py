"""``migcodec evaluate``: score codec-selection policies on traces, exactly.

Every arm runs on every window once (full information; timings are medians of repeats),
the table is cached beside the trace, and each policy is replayed against it seeing only
the outcome of the arm it chose. Reports each policy against the per-window oracle and the
best fixed arm, per trace and link, and over a whole corpus.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from migcodec.cli import args as types
from migcodec.cli.args import CommandLineError, check_output_path
from migcodec.datasets import TraceError, TraceReader
from migcodec.plotting import pyplot
from migcodec.selector import DEFAULT_POLICIES, make_objective, parse_arms, parse_policy
from migcodec.selector.costmodel import CostModel, machine_cost_model
from migcodec.selector.evaluation import (
    build_table,
    cached_table,
    check_windows,
    evaluate,
    read_trace,
    workload_windows,
)
from migcodec.selector.evaluation.replay import Evaluation
from migcodec.selector.evaluation.table import Table, table_key
from migcodec.selector.evaluation.windows import trace_identity
from migcodec.units import parse_rate


@dataclass
class Source:
    """Where one table's windows come from."""

    name: str
    identity: str
    windows: object  # a callable returning an iterator of windows
    table_dir: Path | None


@dataclass
class Result:
    source: Source
    link: str
    table: Table
    cached: bool
    path: Path | None
    evaluation: Evaluation


def _sources(args: argparse.Namespace) -> list[Source]:
    given = sum(bool(x) for x in (args.trace, args.corpus, args.workload))
    if given != 1:
        raise CommandLineError(
            "give TRACE directories, --corpus DIR or --workload NAME (exactly one of them)"
        )
    if args.workload:
        ident = f"workload:{args.workload}:{args.windows}:{args.pages}:{args.seed}"
        ident += f":{args.phase_windows}"

        def windows():
            return workload_windows(
                args.workload, args.windows, args.pages, args.seed, args.phase_windows
            )

        return [Source(args.workload, ident, windows, None)]
    if args.corpus:
        root = Path(args.corpus)
        if not root.is_dir():
            raise CommandLineError(f"corpus {root} is not a directory")
        traces = sorted(p.parent for p in root.glob("*/manifest.json"))
        if (root / "manifest.json").exists():
            traces.insert(0, root)
        if not traces:
            raise CommandLineError(
                f"corpus {root} holds no trace (no */manifest.json); make traces with "
                "`migcodec trace capture` or `migcodec trace synth`"
            )
    else:
        traces = [Path(t) for t in args.trace]
    sources = []
    for trace in traces:
        if not trace.is_dir():
            raise CommandLineError(f"trace {trace} is not a directory")
        sources.append(
            Source(
                trace.name or str(trace),
                f"trace:{trace_identity(trace)}",
                lambda trace=trace: read_trace(trace),
                trace,
            )
        )
    return sources


def _table(args: argparse.Namespace, source: Source, arms, several: bool):
    key = table_key(source.identity, arms, args.repeats, args.batch_pages, args.sample_pages)
    if args.table and not several:
        path = Path(args.table)
    elif args.table:
        path = Path(args.table) / f"selector-table-{source.name}-{key}.npz"
    elif source.table_dir is not None:
        path = source.table_dir / f"selector-table-{key}.npz"
    else:
        path = None

    def build():
        with _progress_bar(args, source) as bar:
            return build_table(
                check_windows(source.windows()),
                arms,
                args.repeats,
                args.batch_pages,
                args.sample_pages,
                lambda n: bar.update(n - bar.n),
            )

    return cached_table(path, build, rebuild=args.rebuild), path


def _progress_bar(args: argparse.Namespace, source: Source):
    """A bar over the windows measured, on stderr when it is a terminal (not with --json)."""
    from tqdm import tqdm

    total = args.windows if source.table_dir is None else None
    if source.table_dir is not None:
        try:
            total = TraceReader(source.table_dir).info().windows
        except (TraceError, OSError):
            total = None  # reading the windows will say what is wrong
    return tqdm(
        desc=f"{source.name}: measuring arms",
        total=total,
        unit=" windows",
        file=sys.stderr,
        disable=True if args.json else None,  # None: off unless stderr is a terminal
        leave=False,
    )


def _cost_model(args: argparse.Namespace, arms) -> CostModel | None:
    """``measured``: none; ``calibrated``: this machine's (calibrated now if missing);
    otherwise a cost model file."""
    if args.cost_model == "measured":
        return None
    if args.cost_model == "calibrated":
        if not args.json and sys.stderr.isatty():
            print("cost model: this machine's calibration (made now if missing)", file=sys.stderr)
        return machine_cost_model(arms, batch_pages=args.batch_pages)
    return CostModel.load(args.cost_model)


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (ValueError, RuntimeError, OSError, TraceError) as exc:  # each says what and the fix
        print(f"migcodec evaluate: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.plot:  # before any table is measured, not after
        pyplot()
        check_output_path(args.plot, "--plot")
    arms = parse_arms(args.arms)
    names = (args.policies or " ".join(DEFAULT_POLICIES)).replace(";", " ").split()
    for name in names:
        parse_policy(name)  # refused before any table is measured
    links = [link.strip() for link in args.link.split(",") if link.strip()]
    for link in links:
        parse_rate(link)
    sources = _sources(args)
    model = _cost_model(args, arms)
    several = len(sources) > 1 or len(links) > 1
    if args.plot and several:
        raise CommandLineError("--plot draws one trace at one link")
    results = []
    for source in sources:
        (table, cached), path = _table(args, source, arms, len(sources) > 1)
        scored = table.modelled(model) if model is not None else table
        for link in links:
            params = {"link": link, "workers": args.workers}
            objective = make_objective(
                args.objective, **(params if args.objective == "throughput" else {})
            )
            ev = evaluate(scored, [parse_policy(p) for p in names], objective)
            results.append(Result(source, link, table, cached, path, ev))
    if args.plot:
        from migcodec.selector.evaluation.plot import plot_evaluation

        plot_evaluation(results[0].evaluation, args.plot)
    cost = "measured" if model is None else f"cost model ({args.cost_model})"
    if args.json:
        doc = [_result_doc(r, cost) for r in results]
        out = doc[0] if not several else {"results": doc, "overall": _overall(results)}
        print(json.dumps(out, indent=2))
        return 0
    for r in results:
        _print_result(r, cost, args)
    if several:
        _print_overall(results)
    return 0


def _result_doc(r: Result, cost: str) -> dict:
    doc = r.evaluation.as_dict()
    doc["trace"] = r.source.name
    doc["link"] = r.link
    doc["timings"] = cost
    doc["table"] = {
        "path": str(r.path) if r.path else None,
        "cached": r.cached,
        "windows": r.table.n_windows,
        "timing_spread": dict(zip(r.table.labels, r.table.spread().tolist(), strict=True)),
        **{k: v for k, v in r.table.meta.items() if k != "costs"},
    }
    return doc


def _print_result(r: Result, cost: str, args: argparse.Namespace) -> None:
    ev, table = r.evaluation, r.table
    where = f"{r.path} ({'cached' if r.cached else 'built'})" if r.path else "not cached"
    print(f"== {r.source.name} at {r.link}: {table.n_windows} windows; table {where}")
    print(
        f"timings: {cost}; oracle switches arm "
        f"{int((ev.oracle_arms[1:] != ev.oracle_arms[:-1]).sum())} times; best fixed arm: "
        f"{ev.labels[ev.best_fixed]}"
    )
    spread = table.spread()
    if np.isfinite(spread).any() and args.repeats > 1:
        parts = ", ".join(f"{label} {s:.0%}" for label, s in zip(table.labels, spread, strict=True))
        print(f"measured timing spread between repeats (median over windows): {parts}")
    print(
        f"{'policy':<50} {'total':>12} {'/oracle':>8} {'/fixed':>7} {'sum/oracle':>10} "
        f"{'switches':>8} {'feature ms':>10}"
    )
    for s in ev.scores:
        print(
            f"{s.label[:50]:<50} {s.total:>12.4g} {s.vs_oracle:>8.3f} {s.vs_best_fixed:>7.3f} "
            f"{s.sum_vs_oracle:>10.3f} {s.switches:>8d} {s.feature_s * 1e3:>10.2f}"
        )
    objective = ev.objective
    print(
        f"total = {objective.name} over the whole trace ({objective.unit}; for throughput "
        "guest bytes / total time); sum/oracle = sum of per-window rewards / oracle's\n"
    )


def _overall(results: list[Result]) -> list[dict]:
    """Per link and policy: mean and minimum of total/oracle and total/best fixed arm."""
    rows = []
    for link in dict.fromkeys(r.link for r in results):
        at = [r for r in results if r.link == link]
        labels = [s.label for s in at[0].evaluation.scores if not s.label.startswith("fixed")]
        for label in labels:
            scores = [next(s for s in r.evaluation.scores if s.label == label) for r in at]
            oracle = [s.vs_oracle for s in scores]
            fixed = [s.vs_best_fixed for s in scores]
            rows.append(
                {
                    "link": link,
                    "policy": label,
                    "traces": len(at),
                    "vs_oracle_mean": float(np.mean(oracle)),
                    "vs_oracle_min": float(np.min(oracle)),
                    "vs_best_fixed_mean": float(np.mean(fixed)),
                    "vs_best_fixed_min": float(np.min(fixed)),
                }
            )
    return rows


def _print_overall(results: list[Result]) -> None:
    print("== overall: total/oracle and total/best fixed arm over every trace, mean (min)")
    print(f"{'link':<8} {'policy':<40} {'/oracle':>16} {'/fixed':>16}")
    for row in _overall(results):
        print(
            f"{row['link']:<8} {row['policy'][:40]:<40} "
            f"{row['vs_oracle_mean']:>8.3f} ({row['vs_oracle_min']:.3f}) "
            f"{row['vs_best_fixed_mean']:>8.3f} ({row['vs_best_fixed_min']:.3f})"
        )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score codec-selection policies on traces, a corpus or a workload",
    )
    p.add_argument("trace", nargs="*", help="trace directories (read by migcodec.datasets)")
    p.add_argument("--corpus", help="a directory of traces: every */manifest.json under it")
    p.add_argument(
        "--workload",
        help="synthetic windows instead of a trace: a page generator, "
        "or several comma-separated for phases (zero,memcached,text,random)",
    )
    p.add_argument("--windows", type=types.positive_int, default=64, help="windows of --workload")
    p.add_argument(
        "--pages", type=types.positive_int, default=1024, help="dirty pages per --workload window"
    )
    p.add_argument("--seed", type=types.seed, default=0, help="seed of --workload")
    p.add_argument(
        "--phase-windows",
        type=types.positive_int,
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
        help="policies separated by ';' or spaces, each name[:key=value,...] (e.g. "
        "'auto;d-ucb:gamma=0.9'); `auto` is what `--codec auto` runs; default: "
        + " ".join(DEFAULT_POLICIES),
    )
    p.add_argument(
        "--objective",
        default="throughput",
        choices=["throughput", "cpu", "wire"],
        help="what a policy maximises",
    )
    p.add_argument(
        "--link",
        type=types.link_rates,
        default="10Gbit",
        help="link rate(s) for throughput, comma-separated",
    )
    p.add_argument("--workers", type=types.positive_number, default=2, help="parallel encoders")
    p.add_argument(
        "--repeats", type=types.positive_int, default=3, help="timings per (window, arm)"
    )
    p.add_argument(
        "--cost-model",
        default="measured",
        help="'measured' (each window's timings), 'calibrated' (this machine's cost model of "
        "every arm, the same numbers on every run) or a cost model JSON file",
    )
    p.add_argument(
        "--batch-pages", type=types.positive_int, default=64, help="pages per encoded batch"
    )
    p.add_argument(
        "--sample-pages",
        type=types.positive_int,
        default=32,
        help="pages the cheap features read",
    )
    p.add_argument("--table", help="table file (a directory with several traces)")
    p.add_argument("--rebuild", action="store_true", help="re-measure even if cached")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--plot", help="write a PNG of choices and cumulative reward")
    p.set_defaults(func=run)
