"""The seed talk's experiment in shape: guests x codecs over a rate-limited loopback link.

    python benchmarks/migration.py [--memory 128MiB] [--link 1Gbit] [--dirty-rate 50MB/s]
                                   [--guests ones,seq,memcached]
                                   [--codecs none,zlib-ng,lz4,zstd,auto,qat]
                                   [--reversals 6] [--head-to-head 16] [--json]

For every guest and codec: one migration at ``--dirty-rate`` (throughput, total time,
downtime, extra host CPU, ratio) and an estimate of the largest dirty rate that still
converges: the rate at which half the migrations do, from an up-down staircase
(``StaircaseSearch``), printed with its standard error. The codecs' staircases run
interleaved trial by trial (trial i of every codec runs guest seed i) so the machine's drift
does not favour one codec. Codecs whose device cost is modelled (emulated accelerators) are
marked.

Then, per guest, ``auto`` against the best fixed codec in fresh trials on new guest seeds
(``head_to_head``): ``--head-to-head`` trials, each migrating both at one shared rate that
starts at that codec's 50 % rate and steps up when both converge, down when neither does.
The staircase estimate of the best of several codecs is biased upwards (a maximum of noisy
estimates), so ``auto`` is compared with it on new trials, not on the estimate that picked
it; the trials where only one converged are the ones that tell them apart.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from functools import partial

from migcodec.engine import MigrationConfig, run_loopback
from migcodec.engine.chooser import make_chooser
from migcodec.engine.sweep import StaircaseSearch, compare_largest_rates, head_to_head
from migcodec.units import parse_rate, parse_size

#: guest seeds of the head-to-head trials start here: workloads the staircases never saw
DUEL_SEEDS = 1 << 20


def _migrate_at(guest: str, codec: str, memory: int, config: MigrationConfig, first_seed=0):
    """``rate -> report`` for one codec; trial i of every codec sees the same guest (seed
    ``first_seed + i``), so codecs are compared on the same sequence of workloads."""
    trial = itertools.count(first_seed)

    def run(rate: float):
        chooser = make_chooser(codec, config.link_rate, config.workers)
        return run_loopback(memory, chooser, config, rate, guest, seed=next(trial))

    return run


def measure_guest(
    guest: str,
    codecs: list[str],
    memory: int,
    config: MigrationConfig,
    dirty: float,
    reversals: int,
) -> list[dict]:
    """Every codec on one guest: one migration at ``dirty``, then the searches for the
    largest migratable rate, interleaved across codecs (``compare_largest_rates``)."""
    fixed = {codec: _migrate_at(guest, codec, memory, config)(dirty) for codec in codecs}
    searches = compare_largest_rates(
        {codec: _migrate_at(guest, codec, memory, config) for codec in codecs},
        partial(StaircaseSearch, start=64e6, limit=2048e6, reversals=reversals),
    )
    return [
        {
            "guest": guest,
            "codec": codec,
            "succeeded": fixed[codec].succeeded,
            "throughput_pages_s": fixed[codec].throughput_pages_s,
            "total_time_s": fixed[codec].total_time_s,
            "downtime_s": fixed[codec].downtime_s,
            "extra_cpu_percent": fixed[codec].extra_cpu_percent,
            "ratio": fixed[codec].ratio,
            "modelled": fixed[codec].modelled,
            "largest_dirty_rate": searches[codec].good,
            "largest_dirty_rate_spread": searches[codec].spread,
            "largest_dirty_rate_censored": searches[codec].censored,
            "sweep": [(r.dirty_rate, r.succeeded) for r in searches[codec].runs],
        }
        for codec in codecs
    ]


def auto_against_best_fixed(
    guest: str, rows: list[dict], memory: int, config: MigrationConfig, trials: int
) -> dict | None:
    """Fresh trials (new guest seeds) of ``auto`` and the best fixed codec at that codec's
    50 % rate (the search's cap if it reached it); ``None`` when there is no ``auto`` row,
    no fixed codec ever converged, or both reached the cap (nothing to separate)."""
    auto = next((r for r in rows if r["codec"] == "auto"), None)
    fixed = [r for r in rows if r["codec"] != "auto"]
    if auto is None or not fixed or trials < 1:
        return None
    best = max(fixed, key=lambda r: r["largest_dirty_rate"])
    if best["largest_dirty_rate"] <= 0 or (
        best["largest_dirty_rate_censored"] and auto["largest_dirty_rate_censored"]
    ):
        return None
    rate = best["largest_dirty_rate"]
    runs = {
        c: _migrate_at(guest, c, memory, config, first_seed=DUEL_SEEDS)
        for c in ("auto", best["codec"])
    }
    seen = head_to_head(runs, rate, trials)
    return {
        "guest": guest,
        "best": best["codec"],
        "start_rate": rate,
        "at_cap": best["largest_dirty_rate_censored"],
        "rates": seen.rates,
        "converged": seen.converged,
        "only": seen.only,
    }


def _duel_line(duel: dict) -> str:
    best, n = duel["best"], len(duel["rates"])
    why = "the search's cap" if duel["at_cap"] else f"{best}'s 50 % rate"
    low, high = min(duel["rates"]) / 1e6, max(duel["rates"]) / 1e6
    ok, only = duel["converged"], duel["only"]
    return (
        f"head to head from {duel['start_rate'] / 1e6:.0f} MB/s ({why}), {n} trials at "
        f"{low:.0f}-{high:.0f} MB/s: converged auto {ok['auto']}, {best} {ok[best]}; "
        f"alone auto {only['auto']}, {best} {only[best]}"
    )


def _largest(row: dict) -> str:
    """``412 MB/s +-4%``; ``>= 2048 MB/s`` when the search hit its limit."""
    rate = row["largest_dirty_rate"] / 1e6
    if row["largest_dirty_rate_censored"]:
        return f">= {rate:.0f} MB/s"
    return f"{rate:.0f} MB/s +-{(row['largest_dirty_rate_spread'] - 1) * 100:.0f}%"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory", default="128MiB")
    parser.add_argument("--link", default="1Gbit")
    parser.add_argument("--dirty-rate", default="50MB/s")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--guests", default="ones,seq,memcached")
    parser.add_argument("--codecs", default="none,zlib-ng,lz4,zstd,auto,qat")
    parser.add_argument(
        "--reversals", type=int, default=6, help="staircase reversals per codec (more: surer)"
    )
    parser.add_argument(
        "--head-to-head",
        type=int,
        default=16,
        help="fresh trials of auto and the best fixed codec at its 50%% rate (0: none)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    config = MigrationConfig(
        workers=args.workers,
        link_rate=parse_rate(args.link),
        max_time_s=40.0,
        stall_iterations=3,
    )
    memory = parse_size(args.memory)
    rows, duels = [], []
    codecs = args.codecs.split(",")
    for guest in args.guests.split(","):
        guest_rows = measure_guest(
            guest, codecs, memory, config, parse_rate(args.dirty_rate), args.reversals
        )
        rows.extend(guest_rows)
        if not args.json:
            for r in guest_rows:
                down = f"{r['downtime_s'] * 1e3:.0f}" if r["downtime_s"] is not None else "-"
                label = f"{r['codec']} (modelled)" if r["modelled"] else r["codec"]
                print(
                    f"{guest:<10} {label:<16} {r['throughput_pages_s']:>10,.0f} pages/s "
                    f"{_largest(r):>14} max dirty "
                    f"{r['extra_cpu_percent']:>5.0f}% CPU  ratio {r['ratio']:>6.2f}  "
                    f"total {r['total_time_s']:>5.2f} s  downtime {down} ms",
                    flush=True,
                )
        duel = auto_against_best_fixed(guest, guest_rows, memory, config, args.head_to_head)
        if duel is not None:
            duels.append(duel)
            if not args.json:
                print(f"{guest:<10} {_duel_line(duel)}", flush=True)
    if args.json:
        json.dump(
            {
                "memory": memory,
                "link": args.link,
                "dirty_rate": args.dirty_rate,
                "rows": rows,
                "head_to_head": duels,
            },
            sys.stdout,
            indent=2,
        )
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
