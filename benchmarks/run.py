"""migcodec benchmarks: ratios measured side by side in one run, medians over repeats.

    python benchmarks/run.py [--pages N] [--repeats R] [--json]

(a) framework / raw library call, 64-page batches, zlib-ng, lz4, zstd on memcached and seq
(b) one 64-page batch / 64 one-page batches (throughput and compression ratio)
(c) 2 engines / 1 engine through CodecEngines (zlib-ng, lz4, zstd), beside 2 / 1 plain
    threads of raw library calls (the machine's own scaling), ratios per round
(d) zero-page detection GB/s (all-zero pages: the full-scan worst case; mixed pages)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time

import lz4.block
import numpy as np
import zstandard
from timing import median_rate  # benchmarks/timing.py (the script directory)
from zlib_ng import zlib_ng

from migcodec.codecs import Batch, CodecEngines, get_codec, zero_page_mask
from migcodec.codecs.zero import ZERO_SCAN
from migcodec.datasets import generate_pages

PAGE = 4096
BATCH = 64


def _raw_calls(name: str):
    zc = zstandard.ZstdCompressor(level=1, write_content_size=False, write_checksum=False)
    return {
        "zlib-ng": lambda b: zlib_ng.compress(b, 1, -15),
        "lz4": lambda b: lz4.block.compress(b, mode="fast", acceleration=1, store_size=False),
        "zstd": zc.compress,
    }[name]


def _paired_times(framework, raw, batches, views) -> tuple[float, float]:
    """Total seconds of framework and raw calls, timed in pairs batch by batch.

    Pairing puts both calls under the same machine conditions; alternating which goes
    first splits the benefit of a cache the other call has just warmed.
    """
    fw_total = raw_total = 0.0
    clock = time.perf_counter
    for i, (batch, view) in enumerate(zip(batches, views, strict=True)):
        if i % 2:
            t0 = clock()
            framework(batch)
            t1 = clock()
            raw(view)
            t2 = clock()
            fw_total += t1 - t0
            raw_total += t2 - t1
        else:
            t0 = clock()
            raw(view)
            t1 = clock()
            framework(batch)
            t2 = clock()
            raw_total += t1 - t0
            fw_total += t2 - t1
    return fw_total, raw_total


def bench_framework_vs_raw(memories: dict, repeats: int) -> list[dict]:
    rows = []
    for workload, mem in memories.items():
        batches = [Batch(mem, [(i, BATCH)]) for i in range(0, mem.shape[0], BATCH)]
        views = [mem[i : i + BATCH] for i in range(0, mem.shape[0], BATCH)]
        for name in ("zlib-ng", "lz4", "zstd"):
            codec, raw = get_codec(name), _raw_calls(name)
            _paired_times(codec.encode, raw, batches, views)  # warm-up
            runs = [_paired_times(codec.encode, raw, batches, views) for _ in range(repeats)]
            fw = statistics.median(mem.nbytes / f for f, _ in runs)
            rw = statistics.median(mem.nbytes / r for _, r in runs)
            ratio = statistics.median(r / f for f, r in runs)
            rows.append(
                {
                    "workload": workload,
                    "codec": name,
                    "framework_mb_s": fw / 1e6,
                    "raw_mb_s": rw / 1e6,
                    "framework_over_raw": ratio,
                }
            )
    return rows


def bench_batch_vs_page(mem: np.ndarray, repeats: int) -> list[dict]:
    rows = []
    n = mem.shape[0]
    for name in ("zlib-ng", "lz4", "zstd"):
        codec = get_codec(name)
        batches = [Batch(mem, [(i, BATCH)]) for i in range(0, n, BATCH)]
        singles = [Batch(mem, [(i, 1)]) for i in range(n)]
        b_rate = median_rate(
            lambda c=codec, bs=batches: [c.encode(b) for b in bs], mem.nbytes, repeats
        )
        p_rate = median_rate(
            lambda c=codec, bs=singles: [c.encode(b) for b in bs], mem.nbytes, repeats
        )
        b_out = sum(codec.encode(b).stats.output_bytes for b in batches)
        p_out = sum(codec.encode(b).stats.output_bytes for b in singles)
        rows.append(
            {
                "codec": name,
                "batch_mb_s": b_rate / 1e6,
                "per_page_mb_s": p_rate / 1e6,
                "speed_batch_over_page": b_rate / p_rate,
                "ratio_batch": mem.nbytes / b_out,
                "ratio_per_page": mem.nbytes / p_out,
            }
        )
    return rows


def _engine_rate(codec, mem: np.ndarray, engines: int, duration: float) -> float:
    """Steady-state encode bytes/s of ``engines`` workers fed by one submitting thread.

    The thread keeps the pool full the way a consumer of several engines should: it waits
    for half the pool's requests at once (``wait_many``: one wake-up for all of them, where
    waiting per request woke it once per batch), releases them and submits as many batches
    in one call. Requests left in flight keep every engine busy meanwhile."""
    batches = [Batch(mem, [(i, BATCH)]) for i in range(0, mem.shape[0], BATCH)]
    n_batches = len(batches)
    done_bytes = 0
    with CodecEngines(codec, engines=engines, depth=4, max_pages=BATCH) as eng:
        size = eng.pool.size
        half = max(1, size // 2)
        t0 = time.perf_counter()
        eng.submit_many([batches[i % n_batches] for i in range(size)])
        i = size
        while time.perf_counter() - t0 < duration:
            done = eng.wait_many(half)
            for req in done:
                req.result()
                done_bytes += req.batch.nbytes
                req.release()
            eng.submit_many([batches[(i + k) % n_batches] for k in range(len(done))])
            i += len(done)
        for req in eng.completions():
            done_bytes += req.batch.nbytes
            req.release()
        return done_bytes / (time.perf_counter() - t0)


def _thread_rate(name: str, mem: np.ndarray, threads: int, duration: float) -> float:
    """Bytes/s of ``threads`` plain threads calling the raw library on the same batches for
    ``duration`` seconds, each with its own compressor: what this machine's cores give C
    calls that release the interpreter lock, with no framework around them."""
    views = [memoryview(mem[i : i + BATCH]).cast("B") for i in range(0, mem.shape[0], BATCH)]
    done = [0] * threads
    start = threading.Barrier(threads + 1)

    def work(k: int) -> None:
        call = _raw_calls(name)
        start.wait()
        t_end = time.perf_counter() + duration
        i = k
        while time.perf_counter() < t_end:
            view = views[i % len(views)]
            call(view)
            done[k] += view.nbytes
            i += 1

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    start.wait()
    t0 = time.perf_counter()
    for w in workers:
        w.join()
    return sum(done) / (time.perf_counter() - t0)


def bench_engines(mem: np.ndarray, repeats: int, duration: float) -> list[dict]:
    """2 engines against 1, and beside them 2 plain threads of raw library calls against 1
    (the scaling this machine's cores give C calls alone: two vCPUs of a VM may share a
    core's caches, or their host, and give well under 2x). Each repeat is a round of all
    four, in an order that rotates from round to round, and every ratio is taken per round:
    on a shared machine the parts of a round meet the same load."""
    rows = []
    for name in ("zlib-ng", "lz4", "zstd"):
        codec = get_codec(name)
        runs: dict[tuple[str, int], list[float]] = {}
        kinds = [("engines", 1), ("engines", 2), ("threads", 1), ("threads", 2)]
        for r in range(repeats):
            for kind, n in kinds[r % 4 :] + kinds[: r % 4]:
                rate = (
                    _engine_rate(codec, mem, n, duration)
                    if kind == "engines"
                    else _thread_rate(name, mem, n, duration)
                )
                runs.setdefault((kind, n), []).append(rate)
        engines = [b / a for a, b in zip(runs["engines", 1], runs["engines", 2], strict=True)]
        threads = [b / a for a, b in zip(runs["threads", 1], runs["threads", 2], strict=True)]
        rows.append(
            {
                "codec": name,
                "one_engine_mb_s": statistics.median(runs["engines", 1]) / 1e6,
                "two_engines_mb_s": statistics.median(runs["engines", 2]) / 1e6,
                "two_over_one": statistics.median(engines),
                "raw_threads_two_over_one": statistics.median(threads),
                "engines_scaling_over_raw_threads": statistics.median(
                    [e / t for e, t in zip(engines, threads, strict=True)]
                ),
            }
        )
    return rows


def bench_zero_detection(pages: int, repeats: int) -> list[dict]:
    rows = []
    zero = np.zeros((pages, PAGE), dtype=np.uint8)
    mixed = generate_pages("mixed", pages, 3)
    for label, mem in (("zero", zero), ("mixed", mixed)):
        whole = median_rate(lambda m=mem: zero_page_mask(m), mem.nbytes, repeats)
        per_batch = median_rate(
            lambda m=mem: [zero_page_mask(m[i : i + BATCH]) for i in range(0, pages, BATCH)],
            mem.nbytes,
            repeats,
        )
        rows.append(
            {"pages": label, "whole_gb_s": whole / 1e9, "per_64_page_batch_gb_s": per_batch / 1e9}
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=4096, help="pages per workload (4 KiB)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--duration", type=float, default=1.0, help="seconds per engine-scaling measurement"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    memories = {w: generate_pages(w, args.pages, 1) for w in ("memcached", "seq")}
    report = {
        "pages": args.pages,
        "repeats": args.repeats,
        "zero_scan": ZERO_SCAN,
        "framework_vs_raw": bench_framework_vs_raw(memories, args.repeats),
        "batch_vs_page": bench_batch_vs_page(memories["memcached"], args.repeats),
        "engines_2_vs_1": bench_engines(memories["seq"], args.repeats, args.duration),
        "zero_detection": bench_zero_detection(max(args.pages, 16384), args.repeats),
    }
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return 0
    print(f"medians of {args.repeats} runs, {args.pages} pages per workload, 64-page batches")
    print("\n(a) framework / raw library call")
    for r in report["framework_vs_raw"]:
        print(
            f"  {r['workload']:<10} {r['codec']:<8} {r['framework_mb_s']:8.0f} MB/s vs "
            f"{r['raw_mb_s']:8.0f} MB/s  ratio {r['framework_over_raw']:.3f}"
        )
    print("\n(b) 64-page batch / one call per page (memcached)")
    for r in report["batch_vs_page"]:
        print(
            f"  {r['codec']:<8} speed {r['speed_batch_over_page']:.2f}x  compression ratio "
            f"{r['ratio_batch']:.3f} vs {r['ratio_per_page']:.3f}"
        )
    print("\n(c) 2 engines / 1 engine (seq), beside 2 / 1 plain threads of raw library calls")
    for r in report["engines_2_vs_1"]:
        print(
            f"  {r['codec']:<8} {r['one_engine_mb_s']:8.0f} -> {r['two_engines_mb_s']:8.0f}"
            f" MB/s  ratio {r['two_over_one']:.2f}; raw threads "
            f"{r['raw_threads_two_over_one']:.2f}; engines' scaling / raw threads' "
            f"{r['engines_scaling_over_raw_threads']:.2f}"
        )
    print(f"\n(d) zero-page detection ({ZERO_SCAN})")
    for r in report["zero_detection"]:
        print(
            f"  {r['pages']:<6} whole array {r['whole_gb_s']:6.1f} GB/s, per 64-page batch "
            f"{r['per_64_page_batch_gb_s']:6.1f} GB/s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
