"""``benchmarks/image_migration.py``: a real process's memory dumped to an image, and every
codec's migrations of it interleaved and compared with the best hand-picked codec."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests.benchmark_module import benchmark_module

CHILD = """
import mmap, numpy as np, sys
block = mmap.mmap(-1, 64 * 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
a = np.frombuffer(block, dtype=np.uint8).reshape(64, 4096)  # page-aligned rows
a[:] = np.arange(64, dtype=np.uint8)[:, None] + 1
a[:, :8] = np.frombuffer(b"IMAGEPG!", dtype=np.uint8)
print("ready", flush=True)
sys.stdin.read()
"""


def _module():
    return benchmark_module("image_migration")


def test_the_image_holds_the_process_pages_in_address_order(tmp_path):
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        image = tmp_path / "child.img"
        own = _module().dump_resident_memory(child.pid, 256 << 20, image)
    finally:
        child.communicate("")
    pages = np.fromfile(image, dtype=np.uint8).reshape(-1, 4096)
    assert pages.shape[0] == 65536 and 0 < own <= 256 << 20
    marked = np.flatnonzero((pages[:, :8] == np.frombuffer(b"IMAGEPG!", np.uint8)).all(axis=1))
    ours = marked[np.isin(pages[marked, 8], np.arange(1, 65))]
    # the array's 64 pages, each once, adjacent and in the order the child wrote them
    assert pages[ours, 8].tolist() == list(range(1, 65))
    assert np.all(np.diff(ours) == 1)
    assert not pages[own // 4096 :].any()  # after the process's own pages: zeros


def test_codecs_run_interleaved_and_auto_is_compared_with_the_fastest_hand_picked(monkeypatch):
    module = _module()
    order = []
    seconds = {"none": [3.0, 3.2], "lz4": [1.0, 1.4], "auto": [1.1, 1.3]}

    def migrate(image, codec, link):
        order.append(codec)
        run = sum(1 for c in order if c == codec) - 1
        return {"total_time_s": seconds[codec][run], "pages_by_codec": {codec: 10}}

    monkeypatch.setattr(module, "migrate", migrate)
    results = module.measure("image", ["none", "lz4", "auto"], ["1Gbit"], runs=2)
    assert order == ["none", "lz4", "auto", "auto", "lz4", "none"]
    cell = results["1Gbit"]
    assert cell["best_fixed"] == "lz4"
    auto = cell["codecs"]["auto"]
    assert auto["median_s"] == pytest.approx(1.2)
    assert auto["vs_best_fixed"] == pytest.approx(1.2 / 1.2)
    assert cell["codecs"]["none"]["vs_best_fixed"] == pytest.approx(3.1 / 1.2)
    assert (auto["min_s"], auto["max_s"]) == (1.1, 1.3)


def test_one_migration_of_an_image_is_verified_and_reports_its_codec(tmp_path):
    image = tmp_path / "image.img"
    rng = np.random.default_rng(0)
    rng.integers(0, 4, (256, 4096), dtype=np.uint8).tofile(image)
    report = _module().migrate(image, "lz4", "10Gbit")
    assert report["verified"] and report["pages_by_codec"] == {"lz4": 256}
    assert report["memory_bytes"] == 256 * 4096
    assert (np.fromfile(image, dtype=np.uint8) < 4).all()  # the image was not written
