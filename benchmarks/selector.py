"""Selector hot path: decision + update per window, and what features cost.

    python benchmarks/selector.py [--windows N] [--processes N] [--pages N] [--json]
        [--markdown PATH]

(a) per policy, median microseconds of one ``Selector.choose(features=...)`` plus
    ``Selector.finish(...)`` (the per-window decision and update; features precomputed,
    without probe outputs), against ``BUDGET_US``, on windows of a later pass (pages the
    destination holds, a few words changed: delta arms play) and of a first pass (nothing
    held: compressors play), and on windows played without features; for policies that
    buy probes, also the median of deciding which probes to buy (``probe_mask`` on the
    cheap features: the value of each probe) and of the decision and update on a window
    whose probes of every arm were bought (the filter update of each probe included).
    Each policy is timed in ``--processes`` fresh processes, the policies taking turns,
    and the median over them is printed with its range: on a shared machine one
    process's timings of the same code can sit at twice another's for its whole life
    (where its memory landed), which a median within one process does not remove;
(b) feature extraction on windows of ``--pages`` pages: cheap features (zero fraction,
    entropy, changed words) and one probe per arm, median microseconds and as a share of
    encoding the window with that arm.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from provenance import commit  # benchmarks/provenance.py (the script directory)

from migcodec.datasets import Window, generate_pages
from migcodec.selector import (
    DEFAULT_POLICIES,
    Arm,
    FeatureExtractor,
    Outcome,
    Selector,
    Throughput,
    make_objective,
    parse_arms,
    parse_policy,
)
from migcodec.selector.evaluation.table import encode_window
from migcodec.selector.policies import Policy
from migcodec.selector.policies.auto import PROBE_VALUES
from migcodec.selector.policies.kalman import FILTER_UPDATE

BUDGET_US = 20.0


def window_features(arms: list[Arm], first_pass: bool = False) -> list:
    """Features of five windows of 256 pages of varied content, every arm probed: pages
    the destination holds with a few words of each changed (a later pass), or with
    ``first_pass`` pages it holds none of."""
    extractor = FeatureExtractor([a.codec for a in arms])
    pool = []
    for kind in ("memcached", "text", "random", "zero", "seq"):
        pages = generate_pages(kind, 256, seed=1)
        previous = None
        if not first_pass:
            previous = pages.copy()
            previous[:, :64] ^= 1
        pool.append(extractor.extract(pages, previous, probe=True))
    return pool


def decision_latency(
    policy_name: str,
    arms: list[Arm],
    windows: int,
    first_pass: bool = False,
    objective: str = "throughput",
) -> tuple[float, float, float, float]:
    """Median seconds of choose + finish over ``windows`` windows of varied features without
    probe outputs, of the probe decision before them, of choose + finish with every arm's
    probe output (both 0 for policies that buy no probes), and of choose + finish of a
    window played without features, each after a window with them (a run of its own; 0 for
    policies that never skip them).

    The windows' pages are held by the destination with a few words changed (a later
    pass: the delta arms' windows), or with ``first_pass`` held nowhere (the compressors'
    windows, whose update moves the compressors' ratio filter); under the throughput
    objective at 10 Gbit/s with 2 workers, or another ``objective`` by name."""

    def chosen_objective():
        if objective == "throughput":
            return Throughput(1.25e9, 2)
        return make_objective(objective)

    selector = Selector(parse_policy(policy_name), arms, chosen_objective())
    pool = window_features(arms, first_pass)
    rng = np.random.default_rng(0)
    times, probe_times, probed_times, blind_times = [], [], [], []
    policy = selector.policy
    buys = policy.needs == "probe"
    skips = type(policy).wants_features is not Policy.wants_features
    # a window's outcome carries its zero-page count, as an engine's and a replay's do
    window_bytes = 4 << 20
    outcomes = [
        Outcome(
            window_bytes,
            window_bytes / rng.uniform(1, 4),
            4e-3,
            4e-3 * rng.uniform(0.5, 1.5),
            zero_pages=window_bytes // 4096 * float(pool[w // 20 % len(pool)].context[1]),
        )
        for w in range(windows)
    ]
    for w, outcome in enumerate(outcomes):
        feats = pool[w // 20 % len(pool)]
        if buys:
            cheap = feats.cheap()
            t0 = time.perf_counter()
            policy.probe_mask(cheap)
            probe_times.append(time.perf_counter() - t0)
            times.append(selector.timed_step(cheap, outcome))
            probed_times.append(selector.timed_step(feats, outcome))
        else:
            times.append(selector.timed_step(feats, outcome))
    if skips:
        selector = Selector(parse_policy(policy_name), arms, chosen_objective())
        for w, outcome in enumerate(outcomes):
            cheap = pool[w // 20 % len(pool)].cheap()
            selector.policy.probe_mask(cheap)
            selector.timed_step(cheap, outcome)
            blind_times.append(selector.timed_step(None, outcome))

    def median(values: list[float]) -> float:
        return statistics.median(values[windows // 10 :]) if values else 0.0

    return median(times), median(probe_times), median(probed_times), median(blind_times)


def feature_costs(arms: list[Arm], pages: int, repeats: int) -> list[dict]:
    codecs = [a.codec for a in arms]
    extractor = FeatureExtractor(codecs)
    rows = []
    for kind in ("memcached", "text", "random"):
        data = generate_pages(kind, pages, seed=2)
        previous = data.copy()
        previous.view(np.uint64)[:, ::50] += np.uint64(1)
        runs = [extractor.extract(data, previous, probe=True) for _ in range(repeats + 1)][1:]
        window = Window(0, np.arange(pages), data, previous, kind)
        encode = [
            statistics.median(encode_window(c, window, 64).cpu_s for _ in range(3)) for c in codecs
        ]
        cheap = statistics.median(f.cheap_s for f in runs)
        probes = np.median([f.probe_s for f in runs], axis=0)
        rows.append(
            {
                "workload": kind,
                "pages": pages,
                "cheap_us": cheap * 1e6,
                "cheap_share_of_lz4_encode": cheap / encode[[a.name for a in arms].index("lz4")],
                "probe_us": {a.label: float(p) * 1e6 for a, p in zip(arms, probes, strict=True)},
                "probe_share_of_own_encode": {
                    a.label: float(p) / e for a, p, e in zip(arms, probes, encode, strict=True)
                },
            }
        )
    return rows


def render(doc: dict) -> str:
    """The results document: each policy's decision and update per kind of window against
    the budget, what deciding which probes to buy costs, and what features cost."""
    m = doc["machine"]
    kinds = [
        ("later pass", doc["decision_update_median_us"]),
        ("first pass", doc["first_pass_decision_update_median_us"]),
        ("later pass, no features", doc["decision_update_without_features_median_us"]),
        ("first pass, no features", doc["first_pass_decision_update_without_features_median_us"]),
    ]
    lines = [
        "# Selector decision and update latency",
        "",
        f"Written by `{doc['command'].strip()}` at commit `{doc['commit']}` on {m['cores']} "
        f"cores (Python {m['python']}, numpy {m['numpy']}; `auto`'s Kalman filter update: "
        f"{m['filter_update']}; its probe valuation: {m.get('probe_valuation', 'Python')}), "
        f"{len(doc['arms'])} arms ({', '.join(doc['arms'])}).",
        "",
        f"Each cell: median microseconds of one `Selector.choose(features=...)` plus "
        f"`Selector.finish(...)`, over {doc['windows']} windows of precomputed features "
        "without probe outputs; the median (min-max) over "
        f"{doc['processes']} fresh processes. A later pass's windows hold pages the "
        "destination holds with a few words changed (delta arms play); a first pass's, pages "
        "it holds none of (compressors play); `no features`: a window played on the last "
        "features read, after one that read them (policies that skip features only). "
        "Under the throughput objective at 10 Gbit/s with 2 workers, but for the rows that "
        "name another (`--objective cpu` or `wire`). "
        f"Budget: {doc['budget_us']:g} µs per window without probes, on every kind.",
        "",
        "| policy | " + " | ".join(k for k, _ in kinds) + " | within budget |",
        "|---|" + "---|" * len(kinds) + "---|",
    ]
    for name in doc["decision_update_median_us"]:
        cells = [_spread(col[name]) if name in col else "" for _, col in kinds]
        ok = all(
            statistics.median(col[name]) <= doc["budget_us"] for _, col in kinds if name in col
        )
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {'yes' if ok else 'no'} |")
    probe, probed = doc["probe_decision_median_us"], doc["decision_update_with_probes_median_us"]
    if probe:
        lines += [
            "",
            "Policies that buy probes, microseconds: deciding which probes to buy "
            "(`probe_mask` on the cheap features), and the decision and update of a window "
            "whose probes of every arm were bought.",
            "",
            "| policy | deciding which probes to buy | decision + update, every arm probed |",
            "|---|---|---|",
        ]
        lines += [f"| {n} | {_spread(probe[n])} | {_spread(probed[n])} |" for n in probe]
    lines += [
        "",
        f"Features of {doc['features'][0]['pages']}-page windows, median CPU microseconds "
        "(share of encoding the window: with lz4 for the cheap features, with the arm for "
        "its probe):",
        "",
        "| content | cheap features | " + " | ".join(doc["features"][0]["probe_us"]) + " |",
        "|---|---|" + "---|" * len(doc["features"][0]["probe_us"]),
    ]
    for row in doc["features"]:
        shares = row["probe_share_of_own_encode"]
        probes = " | ".join(f"{v:.0f} ({shares[k]:.1%})" for k, v in row["probe_us"].items())
        lines.append(
            f"| {row['workload']} | {row['cheap_us']:.0f} "
            f"({row['cheap_share_of_lz4_encode']:.1%}) | {probes} |"
        )
    return "\n".join(lines)


#: the rows timed under an objective other than throughput, by name: (policy, objective)
OTHER_OBJECTIVES = {
    "auto, cpu objective": ("auto", "cpu"),
    "auto, wire objective": ("auto", "wire"),
}


def _in_fresh_processes(rows: list[str], windows: int, processes: int) -> dict:
    """Each row's :func:`decision_latency` (a policy's name, or an entry of
    :data:`OTHER_OBJECTIVES`) in ``processes`` fresh processes (one per row and round, the
    rows taking turns), as lists of the six numbers (the four of a later pass, then a first
    pass's decision and update with and without features)."""
    runs: dict[str, list[list[float]]] = {row: [] for row in rows}
    for _ in range(processes):
        for row in rows:
            policy, objective = OTHER_OBJECTIVES.get(row, (row, "throughput"))
            command = [sys.executable, __file__, "--one", policy, "--objective", objective]
            out = subprocess.run(
                [*command, "--windows", str(windows)],
                capture_output=True,
                text=True,
                check=True,
            )
            runs[row].append(json.loads(out.stdout))
    return runs


def _spread(values: list[float]) -> str:
    """``median (min-max)`` of microseconds, or the one value."""
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=3000)
    ap.add_argument("--processes", type=int, default=3, help="fresh processes per policy")
    ap.add_argument("--pages", type=int, default=2048, help="pages per window for (b)")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--markdown", type=Path, help="write the results document here")
    ap.add_argument("--one", metavar="POLICY", help=argparse.SUPPRESS)  # a run of (a)
    ap.add_argument("--objective", default="throughput", help=argparse.SUPPRESS)  # its
    args = ap.parse_args(argv)
    arms = parse_arms(None)  # the default set: CPU arms and the installed delta arms
    if args.one:
        later = decision_latency(args.one, arms, args.windows, objective=args.objective)
        first = decision_latency(args.one, arms, args.windows, True, args.objective)
        print(json.dumps([x * 1e6 for x in (*later, first[0], first[3])]))
        return 0
    t0 = time.perf_counter()
    rows = ["fixed", *DEFAULT_POLICIES, "sgd:background=true", *OTHER_OBJECTIVES]
    runs = _in_fresh_processes(rows, args.windows, max(args.processes, 1))

    def column(i: int) -> dict[str, list[float]]:
        return {p: [r[i] for r in rs] for p, rs in runs.items() if all(r[i] for r in rs)}

    latency, probe_latency, probed_latency, blind_latency, first_latency, first_blind = (
        column(i) for i in range(6)
    )
    costs = feature_costs(arms, args.pages, args.repeats)
    doc = {
        "arms": [a.label for a in arms],
        "budget_us": BUDGET_US,
        "decision_update_median_us": latency,
        "probe_decision_median_us": probe_latency,
        "decision_update_with_probes_median_us": probed_latency,
        "decision_update_without_features_median_us": blind_latency,
        "first_pass_decision_update_median_us": first_latency,
        "first_pass_decision_update_without_features_median_us": first_blind,
        "features": costs,
        "windows": args.windows,
        "processes": max(args.processes, 1),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "filter_update": FILTER_UPDATE,
            "probe_valuation": PROBE_VALUES,
        },
        "commit": commit(),
        "command": "python benchmarks/selector.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "seconds": time.perf_counter() - t0,
    }
    if args.markdown:
        args.markdown.write_text(render(doc) + "\n")
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(
        f"(a) decision + update without probes, median us per window ({len(arms)} arms, "
        f"budget {BUDGET_US}): later passes' windows (pages held, a few words changed), "
        "first-pass windows (nothing held), and each played without features"
    )
    print(f"    (median over {max(args.processes, 1)} fresh processes, with their range)")
    for name, values in latency.items():
        timed = [values, first_latency[name]]
        extra = f"; first pass {_spread(first_latency[name])}"
        for kind, blind in (("", blind_latency), ("first pass ", first_blind)):
            if name in blind:
                timed.append(blind[name])
                extra += f"; {kind}without features {_spread(blind[name])}"
        if name in probe_latency:
            extra += (
                f"  (+ {_spread(probe_latency[name])} deciding which probes to buy; "
                f"{_spread(probed_latency[name])} deciding and updating with every arm probed)"
            )
        over = any(statistics.median(t) > BUDGET_US for t in timed)
        print(f"    {name:<20} {_spread(values):>18} {'OVER BUDGET' if over else 'ok'}{extra}")
    print(f"(b) features on {args.pages}-page windows, median CPU us (share of encoding)")
    for row in costs:
        probes = ", ".join(
            f"{k} {v:.0f} ({row['probe_share_of_own_encode'][k]:.1%})"
            for k, v in row["probe_us"].items()
        )
        print(
            f"    {row['workload']:<10} cheap {row['cheap_us']:.0f} "
            f"({row['cheap_share_of_lz4_encode']:.1%} of lz4's encode); probes: {probes}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
