"""Peak memory while streaming a trace larger than 1 GiB, and window generation speed.

Usage: python benchmarks/trace_memory.py DIR [--gib 1.2] [--json]
Writes a trace of random pages (incompressible, so the files really are that large),
then reads it back in a fresh process and reports that process's peak RSS
(``resource.getrusage``): reading must stay near one window's size, not the trace's.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec, so a child started by
# a big parent would report the parent's peak.
READER = """
import sys, time
from migcodec.datasets import TraceReader
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
base = hwm()
t = time.perf_counter()
n = pages = 0
for w in TraceReader(sys.argv[1]):
    n += 1
    pages += w.n_pages
print(n, pages, base, hwm(), time.perf_counter() - t)
"""


def generation_ms(pages: int = 10_000, repeats: int = 5) -> dict[str, float]:
    from migcodec.datasets import Phase, Workload, WorkloadSpec

    out = {}
    for content in ("memcached", "random", "ones", "text", "zero"):
        for write in ("whole", "words"):
            spec = WorkloadSpec(
                name="g",
                n_pages=65536,
                pages_per_window=pages,
                phases=(Phase("p", repeats + 1, pattern="hotset", write=write, content=content),),
            )
            it = iter(Workload(spec))
            next(it)
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                next(it)
                times.append(time.perf_counter() - t)
            out[f"{content}/{write}"] = float(np.median(times) * 1e3)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir")
    p.add_argument("--gib", type=float, default=1.2, help="dirty pages to write, GiB")
    p.add_argument("--json", action="store_true")
    p.add_argument("--read-only", action="store_true", help="only read an existing trace")
    args = p.parse_args()
    from migcodec.datasets import TraceWriter, Workload, get_workload

    path = Path(args.dir)
    per_window = 8192  # 32 MiB of pages per window
    windows = int(args.gib * 2**30 / (per_window * 4096)) + 1
    spec = get_workload("random", n_pages=65536, n_windows=windows, pages_per_window=per_window)
    t = time.perf_counter()
    if not args.read_only:
        with TraceWriter(path, memory_pages=spec.n_pages, overwrite=True) as writer:
            writer.write_all(Workload(spec))
    write_s = time.perf_counter() - t
    on_disk = sum(f.stat().st_size for f in path.iterdir())
    run = subprocess.run(
        [sys.executable, "-c", READER, str(path)], capture_output=True, text=True, check=True
    )
    n, pages, base_kib, peak_kib, read_s = run.stdout.split()
    result = {
        "windows": int(n),
        "dirty_pages_gib": int(pages) * 4096 / 2**30,
        "on_disk_gib": on_disk / 2**30,
        "write_s": write_s,
        "read_s": float(read_s),
        "reader_rss_after_import_mib": int(base_kib) / 1024,
        "reader_peak_rss_mib": int(peak_kib) / 1024,
        "window_mib": per_window * 4096 / 2**20,
        "writer_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "writer_note": "the writer holds the workload's whole memory (256 MiB) by design",
        "generation_ms_10k_pages": generation_ms(),
    }
    print(
        json.dumps(result, indent=2)
        if args.json
        else "\n".join(f"{k}: {v}" for k, v in result.items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
