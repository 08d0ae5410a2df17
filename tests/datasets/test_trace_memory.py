"""Reading a trace larger than 1 GiB keeps memory near one window's size."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from migcodec.datasets import TraceWriter, Window, generate_pages

READER = """
import sys
from migcodec.datasets import TraceReader
n = 0
for w in TraceReader(sys.argv[1]):
    n += w.n_pages
status = open("/proc/self/status").read()
hwm = next(l for l in status.splitlines() if l.startswith("VmHWM:")).split()[1]
print(n, hwm)
"""


@pytest.mark.slow
def test_streaming_a_trace_over_1_gib_keeps_peak_rss_bounded(tmp_path: Path) -> None:
    per_window, windows = 8192, 36  # 32 MiB of random (incompressible) pages per window
    with TraceWriter(tmp_path, memory_pages=per_window * windows) as writer:
        for i in range(windows):
            pages = generate_pages("random", per_window, seed=i)
            indices = np.arange(i * per_window, (i + 1) * per_window, dtype=np.int64)
            writer.write(Window(i, indices, pages))
    on_disk = sum(f.stat().st_size for f in tmp_path.iterdir())
    assert on_disk > 2**30
    run = subprocess.run(
        [sys.executable, "-c", READER, str(tmp_path)], capture_output=True, text=True, check=True
    )
    pages, hwm_kib = map(int, run.stdout.split())
    assert pages == per_window * windows
    assert hwm_kib < 300 * 1024, f"peak RSS {hwm_kib / 1024:.0f} MiB while streaming"
