"""Selector evaluation on real programs: every policy against the per-window oracle and the
best fixed arm, per corpus trace and link, over several measurements of the tables.

    python benchmarks/selector_eval.py [--corpus corpus/traces] [--tables 3] [--loto] [--json]
        [--objective throughput|cpu|wire] [--markdown docs/results/selector.md]
        [--from-json RESULTS.json]

For each trace, ``--tables`` tables are measured (every arm on every window, ``--repeats``
timings each); every policy is replayed on each at 1 and 10 Gbit/s with 2 workers, and each
score is printed as the median with its min-max over the tables (measured timings move with
machine load). A last block replays the same tables with this machine's calibrated cost
model (one number: the cost model makes repeated runs agree). ``--loto`` replays a grid of
``auto`` configurations on the calibrated tables and reports, per trace, the configuration
chosen on the other traces and its score on the one left out. A last table says how far
the calibrated model is from the measured CPU time of every arm on every trace (the median
over windows of at least a batch of measured over modelled encode time, per table), which
is how far the calibrated columns may be from what this machine measures.

``--objective cpu`` or ``wire`` scores under that objective instead of throughput at each
link (one column, named by the objective). ``--markdown PATH`` writes the results document
(the per-trace, per-link table, the leave-one-trace-out table and the command and commit
that produced them); ``--from-json`` writes it from a saved ``--json`` run instead of
measuring again.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

import numpy as np
from provenance import commit  # benchmarks/provenance.py (the script directory)

from migcodec.files import read_small_file
from migcodec.selector import DEFAULT_POLICIES, make_objective, parse_arms, parse_policy
from migcodec.selector.arms import DEFAULT_ARMS, DELTA_ARMS
from migcodec.selector.costmodel import machine_cost_model
from migcodec.selector.evaluation import build_table, evaluate, read_trace
from migcodec.selector.evaluation.grid import grid_configs, leave_one_trace_out, score_grid

ROOT = Path(__file__).resolve().parents[1]
#: the corpus the defaults were chosen on, which the documents name when given no other
DEFAULT_CORPUS = "corpus/traces"
#: the auto configurations ``--loto`` chooses between. ``upkeep`` and ``value`` are not
#: among them: they set how much work beyond the codecs a stream does (rereading features;
#: probes, trials), and what that work costs a migration beyond its CPU time (its Python
#: work holds the interpreter lock the encoders' threads need) is in no table. On tables
#: alone the grid favours more of it; their defaults come from migrations
#: (``docs/results/migration.md``)
LOTO_GRID = {
    "policy": "auto",
    "params": {
        "drift": [0.05, 0.1, 0.2],
        "change": [0.5, 1.0, 2.0],
        "negligible": [0.001, 0.003, 0.01],
        "balance": [0.02, 0.05, 0.1],
    },
}


def _r(ratio: float) -> str:
    """A ratio to three decimals, or as many more (up to six) as it takes to tell it from
    1 when it is not 1: rounded to 1.000, a cell 0.02 % behind its best fixed arm read as
    level with it."""
    for digits in range(3, 7):
        text = f"{ratio:.{digits}f}"
        if ratio == 1 or text.rstrip("0") != "1.":
            return text
    # nearer 1 than six decimals: rounded away from it, on the side it lies
    scaled = ratio * 1e6
    return f"{(math.floor(scaled) if ratio < 1 else math.ceil(scaled)) / 1e6:.6f}"


def _fmt(values: list[float]) -> str:
    if len(values) == 1:
        return _r(values[0])
    return f"{_r(statistics.median(values))} ({_r(min(values))}-{_r(max(values))})"


def _machine(machine: dict | None) -> str:
    if not machine:
        return ""
    return f" on {machine.get('cores', '?')} cores of {machine.get('cpu', 'an unnamed CPU')}"


_LINK_NAMES = {"1Gbit": "1 Gbit/s", "10Gbit": "10 Gbit/s", "cpu": "CPU", "wire": "wire"}


#: the objectives ``--objective`` scores under besides throughput, as the documents name them
_OBJECTIVE_NAMES = {"cpu": "host CPU (`cpu`)", "wire": "wire bytes (`wire`)"}


def cpu_against_model(measured, modelled, least_pages: int) -> dict[str, float]:
    """Per arm, the median over windows of at least ``least_pages`` pages of the measured
    table's encode CPU time over the modelled table's (the same windows, priced by the cost
    model): 1 where the calibration prices real memory as this machine encodes it. Windows
    of fewer pages are mostly fixed cost and clock noise; an arm no such window measured
    is left out."""
    pages = measured.input_bytes[:, 0] / measured.page_size
    rows = pages >= least_pages
    result = {}
    for a, label in enumerate(measured.labels):
        model = modelled.cpu_s[rows, a]
        kept = model > 0
        if kept.any():
            result[label] = float(np.median(measured.cpu_s[rows, a][kept] / model[kept]))
    return result


def _shown_path(path: str) -> str:
    """``path`` as the documents name it: relative to the repository when inside it."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)


def render_markdown(doc: dict) -> str:
    """The results document of one run: ``auto`` against the per-window oracle and the best
    fixed arm per trace and link (calibrated and measured), a context-free bandit for
    scale, and the leave-one-trace-out table when the run has one."""
    calibrated = {(r["trace"], r["link"], r["policy"]): r for r in doc["calibrated"]}
    measured = {(r["trace"], r["link"], r["policy"]): r for r in doc["measured"]}
    cells = sorted({(t, link) for t, link, _ in calibrated}, key=lambda c: (c[0], len(c[1]), c[1]))
    links = doc.get("links") or sorted({link for _, link in cells}, key=len)
    name = lambda link: _LINK_NAMES.get(link, link)  # noqa: E731
    corpus = doc.get("corpus", DEFAULT_CORPUS)
    objective = doc.get("objective", "throughput")
    # a column per link under the throughput objective; one, named, under another
    column = "link" if objective == "throughput" else "objective"
    lines = [
        "# Selector results on the memory of real programs"
        + ("" if corpus == DEFAULT_CORPUS else f": `{corpus}/`"),
        "",
        f"Written by `{doc.get('command', 'python benchmarks/selector_eval.py')}` at commit "
        f"`{doc.get('commit', 'unknown')}`{_machine(doc.get('machine'))}: every trace under "
        f"`{corpus}/`, the default "
        + (
            f"arms, {doc.get('workers', 2):g} workers, the throughput objective"
            if objective == "throughput"
            else f"arms, the {_OBJECTIVE_NAMES.get(objective, objective)} objective"
        )
        + ", features, probes and the decision of which probes to buy charged to the "
        "policy that reads them.",
        "",
        "*Calibrated* columns replay the tables with this machine's calibrated cost model (one "
        "number each: the model makes runs agree); *measured* ones are the median (min-max) over "
        f"{doc['tables']} measured tables of {doc['repeats']} timings per window and arm. The "
        "best fixed arm is the one with the largest calibrated total; `d-ucb` is a "
        "context-free bandit, for scale. The oracle plays the best single arm of every "
        "window"
        + (
            "; `auto` can go past it by sharing a window between an arm that keeps the "
            "encoders busy and one that fills the link (its `balance`)."
            if objective == "throughput"
            else "."
        ),
        "",
        f"| trace | {column} | best fixed arm (/ oracle) | `auto` / oracle | `auto` / best fixed "
        "| measured: `auto` / oracle | measured: `auto` / best fixed | `d-ucb` / oracle |",
        "|---|---|---|---|---|---|---|---|",
    ]
    columns: dict[str, list[float]] = {"o": [], "f": [], "mo": [], "mf": []}
    for trace, link in cells:
        fixed = [r for (t, lk, p), r in calibrated.items() if (t, lk) == (trace, link)]
        fixed = [r for r in fixed if r["policy"].startswith("fixed")]
        best = max(fixed, key=lambda r: r["vs_oracle"])
        arm = best["policy"].removeprefix("fixed ")
        auto = calibrated[(trace, link, "auto")]
        m_auto = measured[(trace, link, "auto")]
        ucb = calibrated.get((trace, link, "d-ucb"))
        ucb_text = _r(ucb["vs_oracle"]) if ucb else "-"
        columns["o"].append(auto["vs_oracle"])
        columns["f"].append(auto["vs_best_fixed"])
        columns["mo"].append(statistics.median(m_auto["vs_oracle"]))
        columns["mf"].append(statistics.median(m_auto["vs_best_fixed"]))
        lines.append(
            f"| {trace} | {name(link)} | {arm} ({_r(best['vs_oracle'])}) "
            f"| {_r(auto['vs_oracle'])} | {_r(auto['vs_best_fixed'])} "
            f"| {_fmt(m_auto['vs_oracle'])} | {_fmt(m_auto['vs_best_fixed'])} "
            f"| {ucb_text} |"
        )
    lines.append(
        "| mean (min) | | | "
        + " | ".join(
            f"{_r(statistics.fmean(columns[k]))} ({_r(min(columns[k]))})"
            for k in ("o", "f", "mo", "mf")
        )
        + " | |"
    )
    if doc.get("loto"):
        lines += [
            "",
            "## Leave one trace out",
            "",
            "`auto`'s parameters chosen by the same run on the other traces (the grid in "
            "`benchmarks/selector_eval.py`, calibrated costs), scored on the one left out:",
            "",
            "| held-out trace | configuration chosen on the others | "
            + " | ".join(f"{name(link)}: / oracle, / best fixed" for link in links)
            + " |",
            "|---|---|" + "---|" * len(links),
        ]
        held: dict[str, list[tuple[float, float]]] = {link: [] for link in links}
        for row in doc["loto"]:
            params = ", ".join(f"{k}={v}" for k, v in row["config"].items() if k != "name")
            for link in links:
                held[link].append((row[f"{link} vs_oracle"], row[f"{link} vs_best_fixed"]))
            scores = " | ".join(
                f"{_r(held[link][-1][0])}, {_r(held[link][-1][1])}" for link in links
            )
            lines.append(f"| {row['held_out']} | {params} | {scores} |")
        summary = []
        for link in links:
            o, f = zip(*held[link], strict=True)
            mean_o, mean_f = statistics.fmean(o), statistics.fmean(f)
            summary.append(f"{_r(mean_o)} ({_r(min(o))}), {_r(mean_f)} ({_r(min(f))})")
        lines.append("| mean (min) | | " + " | ".join(summary) + " |")
    if doc.get("cpu_vs_model"):
        lines += _fidelity_lines(doc)
    return "\n".join(lines) + "\n"


def _fidelity_lines(doc: dict) -> list[str]:
    """The section on how far the calibrated model's CPU times are from the measured."""
    rows = doc["cpu_vs_model"]
    arms = list(dict.fromkeys(r["arm"] for r in rows))
    traces = list(dict.fromkeys(r["trace"] for r in rows))
    cells = {(r["trace"], r["arm"]): r["ratios"] for r in rows}
    lines = [
        "",
        "## Measured CPU time against the calibrated model",
        "",
        "Per trace and arm, the median over windows of at least one batch of the measured "
        "encode CPU time over the calibrated model's for the same window: the median "
        f"(min-max) over the {doc['tables']} measured tables. The calibration times "
        "synthetic windows of every content class; where a program's memory costs an arm "
        "more or less than its class does, the calibrated columns above price that arm off "
        "by that factor, while `auto` learns the factor from the windows it plays (its CPU "
        "factors).",
        "",
        "| trace | " + " | ".join(arms) + " |",
        "|---|" + "---|" * len(arms),
    ]
    for trace in traces:
        cells_text = [_fmt(cells[(trace, arm)]) if (trace, arm) in cells else "-" for arm in arms]
        lines.append(f"| {trace} | " + " | ".join(cells_text) + " |")
    return lines


def parse_args(argv: list[str] | None = None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=str(ROOT / DEFAULT_CORPUS))
    ap.add_argument("--tables", type=int, default=3, help="table measurements per trace")
    ap.add_argument("--repeats", type=int, default=3, help="timings per (window, arm)")
    # extended, not replaced, when given again (--links 1Gbit --links 10Gbit: both)
    ap.add_argument("--links", nargs="+", action="extend", help="default: 1Gbit 10Gbit")
    ap.add_argument("--workers", type=float, help="default: 2")
    ap.add_argument(
        "--objective",
        choices=["throughput", *_OBJECTIVE_NAMES],
        default="throughput",
        help="score under another objective than throughput at each link (one column)",
    )
    ap.add_argument("--policies", nargs="+", action="extend", help="default: every policy")
    ap.add_argument("--loto", action="store_true", help="leave-one-trace-out auto defaults")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--markdown", metavar="PATH", help="write the results document here")
    ap.add_argument("--from-json", metavar="FILE", help="a saved --json run to write up")
    args = ap.parse_args(argv)
    if args.objective != "throughput" and (args.links or args.workers is not None):
        ap.error(
            f"--links and --workers set the throughput objective; the {args.objective} "
            "objective has neither: drop them, or score --objective throughput"
        )
    args.links = args.links or ["1Gbit", "10Gbit"]
    args.workers = 2.0 if args.workers is None else args.workers
    args.policies = args.policies or list(DEFAULT_POLICIES)
    return ap, args


def write_document(ap: argparse.ArgumentParser, path: str, text: str) -> None:
    """Write the results document at ``path`` (its directory made if missing), or end in
    one line saying why it cannot be (a directory there was a traceback)."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
    except OSError as exc:
        ap.error(f"--markdown {path}: cannot write the document ({exc.strerror or exc})")


def main(argv: list[str] | None = None) -> int:
    ap, args = parse_args(argv)
    if args.from_json:
        if not args.markdown:
            ap.error("--from-json writes a document: give --markdown PATH")
        try:  # a regular file of at most 64 MiB (a FIFO waited for a writer forever)
            data = read_small_file(args.from_json, "--from-json", 64 << 20, "give a file")
            text = render_markdown(json.loads(data))
        except (OSError, ValueError, KeyError, TypeError, IndexError, RecursionError) as exc:
            ap.error(
                f"--from-json {args.from_json}: not a document this script wrote with --json "
                f"({type(exc).__name__}: {exc}); write it again with --json"
            )
        write_document(ap, args.markdown, text)
        return 0

    arms = parse_arms(";".join(DEFAULT_ARMS + DELTA_ARMS))
    traces = sorted(p.parent for p in Path(args.corpus).glob("*/manifest.json"))
    if not traces:
        ap.error(f"{args.corpus} holds no trace")
    if args.loto and len(traces) < 2:  # each trace's choice is made on the others: none
        ap.error(
            f"--loto chooses each trace's configuration on the others, and {args.corpus} "
            "holds one trace; give a corpus of two or more"
        )
    model = machine_cost_model(arms)
    if args.objective == "throughput":
        objectives = {
            link: make_objective("throughput", link=link, workers=args.workers)
            for link in args.links
        }
    else:  # no link: one column, named by the objective
        objectives = {args.objective: make_objective(args.objective)}
    measured: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    calibrated: dict[tuple[str, str, str], dict[str, float]] = {}
    modelled_tables = {}
    cpu_vs_model: dict[tuple[str, str], list[float]] = {}
    for trace in traces:
        for n in range(args.tables):
            print(f"{trace.name}: table {n + 1}/{args.tables}", file=sys.stderr)
            table = build_table(read_trace(trace), arms, args.repeats, calibration=model)
            if n == 0:
                modelled_tables[trace.name] = table.modelled(model)
            against = cpu_against_model(table, modelled_tables[trace.name], model.batch_pages)
            for label, ratio in against.items():
                cpu_vs_model.setdefault((trace.name, label), []).append(ratio)
            for link, objective in objectives.items():
                ev = evaluate(table, [parse_policy(p) for p in args.policies], objective)
                for s in ev.scores:
                    cell = measured.setdefault((trace.name, link, s.label), {"o": [], "f": []})
                    cell["o"].append(s.vs_oracle)
                    cell["f"].append(s.vs_best_fixed)
        for link, objective in objectives.items():
            ev = evaluate(
                modelled_tables[trace.name], [parse_policy(p) for p in args.policies], objective
            )
            for s in ev.scores:
                calibrated[(trace.name, link, s.label)] = {"o": s.vs_oracle, "f": s.vs_best_fixed}

    doc = {
        "command": " ".join(["python benchmarks/selector_eval.py", *(argv or sys.argv[1:])]),
        "commit": commit(),
        "corpus": _shown_path(args.corpus),
        "machine": model.machine,
        "tables": args.tables,
        "repeats": args.repeats,
        "links": list(objectives),
        "objective": args.objective,
        "workers": args.workers,
        "measured": [
            {"trace": t, "link": link, "policy": p, "vs_oracle": v["o"], "vs_best_fixed": v["f"]}
            for (t, link, p), v in measured.items()
        ],
        "calibrated": [
            {"trace": t, "link": link, "policy": p, "vs_oracle": v["o"], "vs_best_fixed": v["f"]}
            for (t, link, p), v in calibrated.items()
        ],
        "cpu_vs_model": [
            {"trace": t, "arm": arm, "ratios": ratios} for (t, arm), ratios in cpu_vs_model.items()
        ],
    }
    if args.loto:
        configs = grid_configs(LOTO_GRID)
        cells = {
            (name, link): (table, objective)
            for name, table in modelled_tables.items()
            for link, objective in objectives.items()
        }
        print(f"loto: {len(configs)} auto configurations", file=sys.stderr)
        scores = score_grid(configs, cells)
        chosen = leave_one_trace_out(configs, scores)
        doc["loto"] = [
            {
                "held_out": held,
                "config": config,
                **{f"{link} vs_oracle": s.vs_oracle for link, s in cell.items()},
                **{f"{link} vs_best_fixed": s.vs_best_fixed for link, s in cell.items()},
            }
            for held, (config, cell) in chosen.items()
        ]
    if args.markdown:
        write_document(ap, args.markdown, render_markdown(doc))
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(
        f"measured timings: median (min-max) over {args.tables} tables, {args.repeats} repeats each"
    )
    print(f"{'trace':<10} {'link':<7} {'policy':<34} {'total/oracle':>22} {'total/best fixed':>22}")
    for (t, link, p), v in measured.items():
        if p.startswith("fixed"):
            continue
        print(f"{t:<10} {link:<7} {p[:34]:<34} {_fmt(v['o']):>22} {_fmt(v['f']):>22}")
    print("\ncalibrated cost model (this machine's)")
    for (t, link, p), v in calibrated.items():
        if p.startswith("fixed"):
            continue
        print(f"{t:<10} {link:<7} {p[:34]:<34} {v['o']:>22.3f} {v['f']:>22.3f}")
    print("\nmeasured CPU time / calibrated model's, median over windows: median (min-max)")
    for (t, arm), ratios in cpu_vs_model.items():
        print(f"{t:<10} {arm[:34]:<34} {_fmt(ratios):>22}")
    if args.loto:
        print("\nleave one trace out: auto's configuration chosen on the other traces")
        for row in doc["loto"]:
            scores = " ".join(
                f"{link}: {row[f'{link} vs_oracle']:.3f}/{row[f'{link} vs_best_fixed']:.3f}"
                for link in objectives
            )
            params = ",".join(f"{k}={v}" for k, v in row["config"].items() if k != "name")
            print(f"{row['held_out']:<10} {params:<60} {scores}  (oracle/fixed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
