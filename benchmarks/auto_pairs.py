"""Two configurations of ``auto`` in paired single migrations over a paced loopback link.

    python benchmarks/auto_pairs.py A B [--guest seq] [--dirty-rate 550MB/s] [--link 1Gbit]
                                        [--memory 128MiB] [--seeds 8] [--pause 1] [--json]

``A`` and ``B`` are policy specifications (``auto``, ``auto:balance=1``): the chooser behind
``--codec auto`` runs each (``auto_chooser(..., policy=...)``). Every seed's guest is
migrated once with each, one right after the other, at the same dirty rate: a single
migration moves by 10 % or more between runs of one build, and a pair of runs shares most
of what moves it. Which of the two goes first alternates from seed to seed (A B, B A, ...),
and the runs are ``--pause`` seconds apart, because on this machine the second of two runs
in a row often runs faster than the first. Each migration runs in a process of its own,
so nothing (allocations, caches, a calibration in memory) carries from one to the next.

Prints one line per migration (converged, throughput in MB/s of guest memory, total time,
passes, pages per codec), then per configuration the median throughput and the migrations
that converged, the median of the paired differences ``B - A`` with the pairs where B was
faster, and the pairs where only one converged.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from migcodec.cli import args as types
from migcodec.cli.args import Parser

#: the migration of each run: 2 encoders, downtime aimed at 300 ms, as ``migcodec migrate``
WORKERS = 2


def migrate_once(policy: str, guest: str, rate: float, link: float, memory: int, seed: int):
    """One loopback migration with ``auto`` under ``policy``; its figures as a dict."""
    from migcodec.engine import MigrationConfig, run_loopback
    from migcodec.selector.adaptive_chooser import auto_chooser

    config = MigrationConfig(workers=WORKERS, link_rate=link, max_time_s=120.0)
    chooser = auto_chooser(link, WORKERS, policy=policy)
    report = run_loopback(memory, chooser, config, rate, guest, seed=seed)
    return {
        "policy": policy,
        "seed": seed,
        "converged": report.converged,
        "throughput_mb_s": report.throughput_pages_s * report.page_size / 1e6,
        "total_time_s": report.total_time_s,
        "passes": report.iterations,
        "pages_by_codec": report.pages_by_codec,
    }


def _run_child(policy: str, seed: int, args) -> dict:
    """:func:`migrate_once` of guest ``seed`` in a process of its own (see the module
    docstring); the child takes the seed as its ``--first-seed``."""
    command = [
        sys.executable,
        __file__,
        "--one",
        policy,
        "--guest",
        args.guest,
        "--dirty-rate",
        str(args.dirty_rate),
        "--link",
        "unlimited" if args.link is None else str(args.link),
        "--memory",
        str(args.memory),
        "--first-seed",
        str(seed),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the migration with {policy!r} failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def summarize(runs: list[dict], a: str, b: str) -> dict:
    """Per configuration, the median throughput and how many converged; over the seeds
    both ran, the paired differences ``b - a``: their median, in how many ``b`` was faster,
    and in how many only one of them converged."""
    by_seed: dict[int, dict[str, dict]] = {}
    for run in runs:
        by_seed.setdefault(run["seed"], {})[run["policy"]] = run
    pairs = [(seed, runs_[a], runs_[b]) for seed, runs_ in by_seed.items() if len(runs_) == 2]
    if not pairs:
        raise ValueError("no seed was migrated with both configurations")
    differences = [rb["throughput_mb_s"] - ra["throughput_mb_s"] for _, ra, rb in pairs]
    return {
        "pairs": len(pairs),
        "median_mb_s": {
            a: statistics.median(ra["throughput_mb_s"] for _, ra, _ in pairs),
            b: statistics.median(rb["throughput_mb_s"] for _, _, rb in pairs),
        },
        "converged": {
            a: sum(ra["converged"] for _, ra, _ in pairs),
            b: sum(rb["converged"] for _, _, rb in pairs),
        },
        "median_difference_mb_s": statistics.median(differences),
        "pairs_b_faster": sum(d > 0 for d in differences),
        "converged_alone": {
            a: sum(ra["converged"] and not rb["converged"] for _, ra, rb in pairs),
            b: sum(rb["converged"] and not ra["converged"] for _, ra, rb in pairs),
        },
    }


def _line(run: dict) -> str:
    codecs = ", ".join(f"{k} {v}" for k, v in sorted(run["pages_by_codec"].items()))
    return (
        f"seed {run['seed']:3d}  {run['policy']:<24} "
        f"{'converged' if run['converged'] else 'did not converge':<17} "
        f"{run['throughput_mb_s']:7.1f} MB/s  {run['total_time_s']:6.2f} s  "
        f"{run['passes']:2d} passes  {codecs}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="auto_pairs.py", description=__doc__.splitlines()[0])
    parser.add_argument("a", nargs="?", help="the first policy specification")
    parser.add_argument("b", nargs="?", help="the second policy specification")
    parser.add_argument("--guest", default="seq", help="guest page contents")
    parser.add_argument("--dirty-rate", type=types.rate, default="550MB/s")
    parser.add_argument("--link", type=types.link_rate, default="1Gbit")
    parser.add_argument("--memory", type=types.memory_size, default="128MiB")
    parser.add_argument("--seeds", type=types.positive_int, default=8, help="pairs to run")
    parser.add_argument("--first-seed", type=types.nonnegative_int, default=0)
    parser.add_argument(
        "--pause", type=types.seconds, default=1.0, help="seconds between migrations"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--one", metavar="POLICY", help=argparse.SUPPRESS)  # a child run
    args = parser.parse_args(argv)
    if args.one is not None:
        seed = args.first_seed
        run = migrate_once(args.one, args.guest, args.dirty_rate, args.link, args.memory, seed)
        json.dump(run, sys.stdout)
        return 0
    if args.a is None or args.b is None or args.a == args.b:
        parser.error("give two different policy specifications, e.g. auto auto:balance=1")
    runs = []
    for i in range(args.seeds):
        seed = args.first_seed + i
        order = (args.a, args.b) if i % 2 == 0 else (args.b, args.a)
        for policy in order:
            time.sleep(args.pause)
            run = _run_child(policy, seed, args)
            runs.append(run)
            if not args.json:
                print(_line(run), flush=True)
    summary = summarize(runs, args.a, args.b)
    if args.json:
        json.dump({"runs": runs, "summary": summary}, sys.stdout, indent=1)
        print()
        return 0
    for policy in (args.a, args.b):
        print(
            f"{policy}: median {summary['median_mb_s'][policy]:.1f} MB/s, converged in "
            f"{summary['converged'][policy]} of {summary['pairs']}"
        )
    print(
        f"{args.b} - {args.a}: median {summary['median_difference_mb_s']:+.1f} MB/s, faster in "
        f"{summary['pairs_b_faster']} of {summary['pairs']} pairs; converged alone: "
        f"{summary['converged_alone'][args.a]} and {summary['converged_alone'][args.b]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
