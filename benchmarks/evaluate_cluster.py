"""Table measurement of a corpus on a Dask cluster against the same measurement in process.

    python benchmarks/evaluate_cluster.py [--corpus corpus/traces] [--scheduler local:2]
                                          [--rounds 5] [--repeats 3] [--json]

Every round measures every trace's table (default arms, ``--repeats`` timings each) twice,
in process (``build_table``, what ``migcodec evaluate`` runs without ``--scheduler``) and
as tasks on the cluster (``Cluster.build_tables``, what ``--scheduler`` runs), in
alternating order; it checks that the two give the same byte counts and features, and
prints each time and their ratio, then the medians. The cluster starts once, before the
rounds (its start is printed, not counted), and runs a warm-up build first: a long-lived
cluster's workers have their modules imported and their codecs built.

The machine's own parallel capacity is measured in the same command, before and after the
rounds: the time of two processes each compressing the same data against one alone. It
moves with other load on the machine and bounds what any split of the work into 2
processes can reach at that moment. The CPU time the cluster spends (its workers, and this
process's client and scheduler) against the in-process run's does not move with load: it
is the split's own cost, and with W workers bounds the speed-up at W / that ratio.

``decode_share`` is decoding's part of the in-process measurement: what each extra worker
helping with one range of ``--task-windows`` windows pays again, since a range is decoded
once per worker (``WindowCache``). Scaling stays near linear while each worker has several
ranges, and flattens once workers outnumber ranges (smaller ``--task-windows`` makes more
ranges, at the cost of more tasks).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import time
import zlib
from pathlib import Path

import numpy as np

from migcodec.datasets import generate_pages
from migcodec.datasets.trace import TraceReader
from migcodec.selector import parse_arms
from migcodec.selector.costmodel import machine_cost_model
from migcodec.selector.evaluation import build_table, read_trace
from migcodec.selector.evaluation.cluster import (
    TASK_WINDOWS,
    Cluster,
    TableSettings,
    TraceSource,
    window_ranges,
)
from migcodec.selector.evaluation.windows import trace_identity

ROOT = Path(__file__).resolve().parents[1]
#: arrays of a table computed from its windows alone: the two builds must agree on them
EXACT = ("input_bytes", "output_bytes", "stored_out", "context", "probe_out", "delta_bytes")


def _burn(data: bytes) -> float:
    """CPU-bound work of a fixed size: seconds to compress ``data`` a few times."""
    t0 = time.perf_counter()
    for _ in range(12):
        zlib.compress(data, 6)
    return time.perf_counter() - t0


def machine_scaling(pool: multiprocessing.pool.Pool, data: bytes) -> float:
    """How many times one process's work two processes do in the same time, now."""
    one = min(pool.apply(_burn, (data,)) for _ in range(2))
    t0 = time.perf_counter()
    pool.map(_burn, [data, data])
    return 2 * one / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=str(ROOT / "corpus" / "traces"))
    ap.add_argument("--scheduler", default="local:2", help="local:N or tcp://HOST:PORT")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3, help="timings per (window, arm)")
    ap.add_argument("--task-windows", type=int, default=TASK_WINDOWS)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    arms = parse_arms(None)
    traces = sorted(p.parent for p in Path(args.corpus).glob("*/manifest.json"))
    if not traces:
        ap.error(f"{args.corpus} holds no trace")
    sources = [
        TraceSource(t.name, str(t.resolve()), trace_identity(t), len(TraceReader(t)))
        for t in traces
    ]
    settings = TableSettings.of(arms, repeats=args.repeats)
    calibration = machine_cost_model(arms)  # calibrated now if missing, outside the timings
    tasks = sum(len(window_ranges(s.windows, args.task_windows)) for s in sources)
    tasks *= len(arms) + 1

    def serial() -> list:
        return [
            build_table(read_trace(t), arms, args.repeats, calibration=calibration) for t in traces
        ]

    t0 = time.perf_counter()
    for t in traces:
        for _ in read_trace(t):
            pass
    decode_s = time.perf_counter() - t0

    data = generate_pages("text", 256).tobytes()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        scaling = [machine_scaling(pool, data)]
        t0 = time.perf_counter()
        with Cluster(args.scheduler) as cluster:
            start_s = time.perf_counter() - t0
            cluster.check_workers(settings)
            workers = cluster.n_workers
            cluster.build_tables(sources[:1], settings, calibration, args.task_windows)
            rounds = []
            for r in range(args.rounds):
                order = ("serial", "cluster") if r % 2 == 0 else ("cluster", "serial")
                times, cpu, built = {}, {}, {}
                for which in order:
                    t0, c0 = time.perf_counter(), time.process_time()
                    w0 = cluster.client.run(time.process_time)
                    if which == "serial":
                        built[which] = serial()
                    else:
                        built[which] = cluster.build_tables(
                            sources, settings, calibration, args.task_windows
                        )
                    times[which] = time.perf_counter() - t0
                    cpu[which] = time.process_time() - c0
                    if which == "cluster":  # its workers' CPU too (this process: client
                        # and, for local:N, the scheduler)
                        w1 = cluster.client.run(time.process_time)
                        cpu[which] += sum(w1[w] - w0[w] for w in w1 if w in w0)
                for a, b in zip(built["serial"], built["cluster"], strict=True):
                    for name in EXACT:
                        if not np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True):
                            raise SystemExit(f"the cluster's {name} differs from the serial one")
                rounds.append(
                    {
                        **times,
                        "ratio": times["serial"] / times["cluster"],
                        "cpu_serial": cpu["serial"],
                        "cpu_cluster": cpu["cluster"],
                        "first": order[0],
                    }
                )
                if not args.json:
                    print(
                        f"round {r + 1}: in process {times['serial']:.2f} s, {args.scheduler} "
                        f"{times['cluster']:.2f} s: {rounds[-1]['ratio']:.2f}x; CPU "
                        f"{cpu['serial']:.2f} s and {cpu['cluster']:.2f} s"
                    )
        scaling.append(machine_scaling(pool, data))

    serial_s = statistics.median(r["serial"] for r in rounds)
    cluster_s = statistics.median(r["cluster"] for r in rounds)
    doc = {
        "corpus": str(args.corpus),
        "traces": len(traces),
        "windows": sum(s.windows for s in sources),
        "arms": [a.label for a in arms],
        "repeats": args.repeats,
        "scheduler": args.scheduler,
        "workers": workers,
        "table_tasks": tasks,
        "task_windows": args.task_windows,
        "cluster_start_s": start_s,
        "machine_scaling_2_processes": scaling,
        "decode_share": decode_s / serial_s,
        "rounds": rounds,
        "serial_s": serial_s,
        "cluster_s": cluster_s,
        "ratio": serial_s / cluster_s,
        "ratio_median_of_rounds": statistics.median(r["ratio"] for r in rounds),
        "cpu_overhead": statistics.median(r["cpu_cluster"] / r["cpu_serial"] for r in rounds),
    }
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(
        f"corpus: {doc['traces']} traces, {doc['windows']} windows, {len(arms)} arms, "
        f"{args.repeats} timings each; {args.scheduler}: {workers} workers, "
        f"{tasks} table tasks of <= {args.task_windows} windows"
    )
    print(
        f"machine: 2 processes did {scaling[0]:.2f}x one process's work before the rounds, "
        f"{scaling[1]:.2f}x after (what any 2-way split could reach)"
    )
    print(f"decoding the corpus: {doc['decode_share']:.1%} of the in-process measurement")
    print(
        f"CPU of the cluster's measurement (workers, client, scheduler) / in process: "
        f"{doc['cpu_overhead']:.2f} (bounds the speed-up at {workers} / that, "
        f"{workers / doc['cpu_overhead']:.2f}x, on an idle machine)"
    )
    print(
        f"table measurement, median of {args.rounds} rounds: in process {serial_s:.2f} s, "
        f"{args.scheduler} {cluster_s:.2f} s: {doc['ratio']:.2f}x "
        f"(cluster start {start_s:.1f} s, not counted)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
