"""Selector must-show: adaptive policies vs the per-window oracle and the best fixed arm on
synthetic phased traces, several seeds, 1 and 10 Gbit/s, throughput objective.

    python benchmarks/selector_eval.py [--seeds 0 1 2] [--windows 48] [--pages 2048] [--json]

Windows come from ``tests/selector/standins.py``'s six-phase generator (zero fill,
memcached rewrites, sparse counter updates, text, random, sparse random), kept so these
figures stay comparable with the README's; ``migcodec evaluate --workload phases`` runs the
datasets preset instead. The delta arm is ``dsa-delta``. Tables are built once per seed and
replayed for every link speed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from migcodec.selector import (
    DEFAULT_ARMS,
    DEFAULT_POLICIES,
    Arm,
    make_objective,
    parse_policy,
)
from migcodec.selector.evaluation import build_table, cached_table, evaluate
from migcodec.selector.evaluation.table import table_key
from tests.selector.standins import phased_windows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--windows", type=int, default=48)
    ap.add_argument("--pages", type=int, default=2048, help="dirty pages per window")
    ap.add_argument("--links", nargs="+", default=["1Gbit", "10Gbit"])
    ap.add_argument("--workers", type=float, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--policies", nargs="+", default=list(DEFAULT_POLICIES))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--cache", help="directory to keep the measured tables in (reused)")
    args = ap.parse_args(argv)

    arms = [Arm.of(a) for a in DEFAULT_ARMS] + [Arm.of("dsa-delta")]
    rows = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        path = None
        if args.cache:
            key = table_key(
                f"standin:{args.windows}:{args.pages}:{seed}", arms, args.repeats, 64, 16
            )
            path = Path(args.cache) / f"selector-table-{key}.npz"
        table, _ = cached_table(
            path,
            lambda seed=seed: build_table(
                phased_windows(args.windows, args.pages, seed), arms, args.repeats
            ),
        )
        built = time.perf_counter() - t0
        for link in args.links:
            objective = make_objective("throughput", link=link, workers=args.workers)
            ev = evaluate(table, [parse_policy(p) for p in args.policies], objective)
            headroom = 1 / ev.scores[ev.best_fixed].vs_oracle
            for s in ev.scores:
                rows.append(
                    {
                        "seed": seed,
                        "link": link,
                        "table_s": built,
                        "best_fixed": ev.labels[ev.best_fixed],
                        "headroom": headroom,
                        **s.as_dict(),
                    }
                )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"{len(args.seeds)} seeds x {args.windows} windows x {args.pages} pages, "
        f"workers={args.workers}, arms: {', '.join(a.label for a in arms)}"
    )
    for link in args.links:
        print(
            f"\nthroughput @ {link}: mean (min) over seeds of total/oracle and "
            "total/best fixed (total = guest bytes / time); sum of per-window rewards / oracle"
        )
        print(
            f"{'policy':<52} {'vs oracle':>16} {'vs best fixed':>16} {'sum/oracle':>10} "
            f"{'switches':>8}"
        )
        at_link = [r for r in rows if r["link"] == link]
        best = {r["seed"]: r["best_fixed"] for r in at_link}
        heads = {r["seed"]: r["headroom"] for r in at_link}
        print(
            f"best fixed arm per seed: {best}; oracle / best fixed per seed (the most any "
            f"policy can gain over it): " + ", ".join(f"{h:.3f}" for h in heads.values())
        )
        labels = dict.fromkeys(r["label"] for r in at_link)
        for label in labels:
            sel = [r for r in rows if r["link"] == link and r["label"] == label]
            vo = [r["vs_oracle"] for r in sel]
            vf = [r["vs_best_fixed"] for r in sel]
            tv = [r["sum_vs_oracle"] for r in sel]
            print(
                f"{label[:52]:<52} {statistics.mean(vo):>8.3f} ({min(vo):.3f}) "
                f"{statistics.mean(vf):>8.3f} ({min(vf):.3f}) {statistics.mean(tv):>10.3f} "
                f"{statistics.mean(r['switches'] for r in sel):>8.1f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
