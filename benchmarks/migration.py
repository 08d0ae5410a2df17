"""Guests x codecs over a rate-limited loopback link: the accelerator-migration experiment.

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
it; the trials where only one converged are the ones that tell them apart. The best fixed
codec is chosen among measured codecs only: an emulated accelerator's row counts modelled
device costs, not what ran, so ``auto`` is not compared against it.

A terminal gets a progress bar on stderr (one tick per migration, naming the guest, codec
and rate); stdout keeps the table (or the JSON document) only.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Callable
from functools import partial

from migcodec.cli import args as types
from migcodec.cli.args import Parser
from migcodec.engine import MigrationConfig, MigrationReport, run_loopback
from migcodec.engine.chooser import make_chooser
from migcodec.engine.sweep import StaircaseSearch, compare_largest_rates, head_to_head

#: guest seeds of the head-to-head trials start here: workloads the staircases never saw
DUEL_SEEDS = 1 << 20

#: ``progress(guest, codec, rate)`` after each migration
Progress = Callable[[str, str, float], None]


def _no_progress(guest: str, codec: str, rate: float) -> None:
    return None


def _migrate_at(
    guest: str,
    codec: str,
    memory: int,
    config: MigrationConfig,
    first_seed: int = 0,
    progress: Progress = _no_progress,
) -> Callable[[float], MigrationReport]:
    """``rate -> report`` for one codec; trial i of every codec sees the same guest (seed
    ``first_seed + i``), so codecs are compared on the same sequence of workloads."""
    trial = itertools.count(first_seed)

    def run(rate: float) -> MigrationReport:
        chooser = make_chooser(codec, config.link_rate, config.workers)
        report = run_loopback(memory, chooser, config, rate, guest, seed=next(trial))
        progress(guest, codec, rate)
        return report

    return run


def measure_guest(
    guest: str,
    codecs: list[str],
    memory: int,
    config: MigrationConfig,
    dirty: float,
    reversals: int,
    progress: Progress = _no_progress,
) -> list[dict]:
    """Every codec on one guest: one migration at ``dirty``, then the searches for the
    largest migratable rate, interleaved across codecs (``compare_largest_rates``)."""
    fixed = {
        codec: _migrate_at(guest, codec, memory, config, progress=progress)(dirty)
        for codec in codecs
    }
    searches = compare_largest_rates(
        {codec: _migrate_at(guest, codec, memory, config, progress=progress) for codec in codecs},
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
    guest: str,
    rows: list[dict],
    memory: int,
    config: MigrationConfig,
    trials: int,
    progress: Progress = _no_progress,
) -> dict | None:
    """Fresh trials (new guest seeds) of ``auto`` and the best fixed codec at that codec's
    50 % rate (the search's cap if it reached it); ``None`` when there is no ``auto`` row,
    no measured fixed codec ever converged, or both reached the cap (nothing to separate).
    Rows whose costs are modelled (emulated accelerators) are not candidates: their CPU is
    the device model's, not what ran."""
    auto = next((r for r in rows if r["codec"] == "auto"), None)
    fixed = [r for r in rows if r["codec"] != "auto" and not r["modelled"]]
    if auto is None or not fixed or trials < 1:
        return None
    best = max(fixed, key=lambda r: r["largest_dirty_rate"])
    if best["largest_dirty_rate"] <= 0 or (
        best["largest_dirty_rate_censored"] and auto["largest_dirty_rate_censored"]
    ):
        return None
    rate = best["largest_dirty_rate"]
    runs = {
        c: _migrate_at(guest, c, memory, config, first_seed=DUEL_SEEDS, progress=progress)
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


def _row_line(guest: str, r: dict) -> str:
    """One table row. An emulated accelerator's row mixes sources, and says so: its
    throughput, times, ratio and rates are measured with the software stand-in that ran,
    its CPU is the device model's host cost of offloading the same work."""
    down = f"{r['downtime_s'] * 1e3:.0f}" if r["downtime_s"] is not None else "-"
    label = f"{r['codec']} (emulated)" if r["modelled"] else r["codec"]
    cpu = "CPU (device model)" if r["modelled"] else "CPU"
    return (
        f"{guest:<10} {label:<16} {r['throughput_pages_s']:>10,.0f} pages/s "
        f"{_largest(r):>14} max dirty "
        f"{r['extra_cpu_percent']:>5.0f}% {cpu}  ratio {r['ratio']:>6.2f}  "
        f"total {r['total_time_s']:>5.2f} s  downtime {down} ms"
    )


def _measure(
    guest: str,
    codecs: list[str],
    memory: int,
    config: MigrationConfig,
    args: argparse.Namespace,
    rows: list[dict],
    duels: list[dict],
    progress: Progress,
    bar,
) -> None:
    """One guest: its rows, then ``auto`` against the best measured fixed codec."""
    guest_rows = measure_guest(
        guest, codecs, memory, config, args.dirty_rate, args.reversals, progress
    )
    rows.extend(guest_rows)
    if not args.json:
        for r in guest_rows:
            bar.write(_row_line(guest, r), file=sys.stdout)  # above the bar, not through it
        sys.stdout.flush()
    duel = auto_against_best_fixed(guest, guest_rows, memory, config, args.head_to_head, progress)
    if duel is not None:
        duels.append(duel)
        if not args.json:
            bar.write(f"{guest:<10} {_duel_line(duel)}", file=sys.stdout)
            sys.stdout.flush()


def _reversals(text: str) -> int:
    """At least 3: the estimate is the mean of the reversals after the first two."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 3:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number >= 3 (the estimate averages the reversals after "
            "the first two)"
        )
    return value


def _progress_bar():
    """A bar on stderr when it is a terminal: one tick per migration, since how many a
    staircase needs is known only when it ends."""
    from tqdm import tqdm

    return tqdm(desc="migrations", unit=" migrations", file=sys.stderr, disable=None)


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="migration.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--memory", type=types.memory_size, default="128MiB", help="guest memory per migration"
    )
    parser.add_argument(
        "--link", type=types.link_rate, default="1Gbit", help="sender rate limit, or unlimited"
    )
    parser.add_argument(
        "--dirty-rate",
        type=types.rate,
        default="50MB/s",
        help="the dirty rate of the single migration per guest and codec",
    )
    parser.add_argument(
        "--workers", type=types.positive_int, default=2, help="codec engines per codec"
    )
    parser.add_argument("--guests", default="ones,seq,memcached", help="guest page contents")
    parser.add_argument(
        "--codecs", default="none,zlib-ng,lz4,zstd,auto,qat", help="codecs compared"
    )
    parser.add_argument(
        "--reversals",
        type=_reversals,
        default=6,
        help="staircase reversals per codec (more: surer)",
    )
    parser.add_argument(
        "--head-to-head",
        type=types.nonnegative_int,
        default=16,
        help="fresh trials of auto and the best measured fixed codec at its 50%% rate (0: none)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    config = MigrationConfig(
        workers=args.workers,
        link_rate=args.link,
        max_time_s=40.0,
        stall_iterations=3,
    )
    memory = args.memory
    rows, duels = [], []
    codecs = args.codecs.split(",")
    with _progress_bar() as bar:

        def progress(guest: str, codec: str, rate: float) -> None:
            bar.set_postfix_str(f"{guest}, {codec} at {rate / 1e6:.0f} MB/s", refresh=False)
            bar.update()

        for guest in args.guests.split(","):
            _measure(guest, codecs, memory, config, args, rows, duels, progress, bar)
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
