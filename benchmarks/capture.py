"""What a snapshot-diff capture costs per window, against a bare read of the same memory.

Usage: python benchmarks/capture.py [--mib 400] [--windows 12] [--interval-ms 200]
    [--mappings N] [--json]

A child process holds ``--mib`` MiB of written pages and rewrites a word of 2000 random
pages every 50 ms; with ``--mappings N``, its memory is N mappings (every so many pages one
made inaccessible between them, as a JVM's heap regions and thread stacks are thousands of
mappings), and the first snapshot's time is the cost of numbering them.
:class:`~migcodec.datasets.capture.ProcessCapture` (snapshot diffing, the
method that works on any kernel) takes a window every ``--interval-ms``; each window's
capture time is timed, and so is one ``preadv`` of the child's whole array into a buffer
already faulted in (the floor: what reading the memory costs at all). A capture that takes
longer than the interval stretches its windows past it, so the last column says whether
the windows kept their length. Needs root (or ptrace rights over the child); medians over
the windows after the first two (which allocate the snapshot buffers).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

CHILD = """
import ctypes, mmap, numpy as np, os, sys, time
rows = int(sys.argv[1]) * 256
buf = mmap.mmap(-1, rows * 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
a = np.frombuffer(buf, dtype=np.uint8).reshape(rows, 4096)
a[:] = 1
writable = np.arange(rows)
splits = int(sys.argv[2])
if splits > 1:  # an inaccessible page between each two mappings keeps them apart
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    step = rows // splits
    for row in range(step - 1, rows - 1, step):
        if libc.mprotect(a[row].ctypes.data, 4096, 0):  # PROT_NONE
            raise OSError(ctypes.get_errno(), "mprotect")
    writable = writable[(writable + 1) % step != 0]
print(a.__array_interface__["data"][0], a.nbytes, flush=True)
rng = np.random.default_rng(0)
while True:
    a[rng.choice(writable, 2000), :8] += 1
    time.sleep(0.05)
"""


def bare_read_s(pid: int, address: int, nbytes: int, repeats: int = 5) -> float:
    """Median seconds of one ``preadv`` of the child's array into a reused buffer."""
    buf = np.ones(nbytes, dtype=np.uint8)  # faulted in before the first read
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    try:
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            os.preadv(fd, [memoryview(buf)], address)
            times.append(time.perf_counter() - t)
    finally:
        os.close(fd)
    return statistics.median(times)


def measure(mib: int, windows: int, interval_s: float, mappings: int = 1) -> dict:
    from migcodec.datasets.capture import MappingFilter, ProcessCapture

    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(mib), str(mappings)], stdout=subprocess.PIPE, text=True
    )
    try:
        address, nbytes = map(int, child.stdout.readline().split())
        select = MappingFilter(address_range=(address, address + nbytes))
        cap = ProcessCapture(child.pid, select=select, method="snapshot-diff", max_pages=64)
        t = time.perf_counter()
        cap.start()
        start_s = time.perf_counter() - t
        capture_s, lengths = [], []
        t0 = time.monotonic()
        for i in range(windows):
            delay = t0 + (i + 1) * interval_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            t = time.perf_counter()
            window = cap.next_window()
            capture_s.append(time.perf_counter() - t)
            lengths.append(window.duration_s)
        captured = len(cap.mappings_seen)
        cap.close()
        floor = bare_read_s(child.pid, address, nbytes)
    finally:
        child.kill()
        child.wait()
    steady = capture_s[2:] or capture_s
    median = statistics.median(steady)
    return {
        "mib": mib,
        "mappings": mappings,
        "mappings_captured": captured,
        "interval_s": interval_s,
        "start_s": start_s,
        "capture_s": median,
        "bare_read_s": floor,
        "capture_over_bare_read": median / floor,
        "snapshot_gb_per_s": nbytes / median / 1e9,
        "window_s_median": statistics.median(lengths[2:] or lengths),
        "window_s_max": max(lengths[2:] or lengths),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=400, help="memory of the child (default 400)")
    ap.add_argument("--windows", type=int, default=12, help="windows captured (default 12)")
    ap.add_argument("--interval-ms", type=float, default=200.0, help="default 200")
    ap.add_argument(
        "--mappings", type=int, default=1, help="mappings the memory is split into (default 1)"
    )
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args()
    if not 1 <= args.mappings <= args.mib * 128:
        ap.error(f"--mappings must be from 1 to {args.mib * 128} (two pages a mapping)")
    r = measure(args.mib, args.windows, args.interval_ms / 1000, args.mappings)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(
        f"{r['mib']} MiB child in {r['mappings_captured']} mappings, first snapshot "
        f"{r['start_s'] * 1e3:.0f} ms, windows every {r['interval_s'] * 1e3:.0f} ms: capture "
        f"{r['capture_s'] * 1e3:.0f} ms a window ({r['snapshot_gb_per_s']:.1f} GB/s), a bare "
        f"read {r['bare_read_s'] * 1e3:.0f} ms, capture / bare read "
        f"{r['capture_over_bare_read']:.1f}x; windows lasted {r['window_s_median']:.3f} s "
        f"(median), {r['window_s_max']:.3f} s (longest)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
