"""The iaa codec's history check and software decode on the C walk beside the Python walk.

Medians over interleaved rounds, one thread.

    python benchmarks/deflate_scan.py [--pages N] [--repeats R] [--json]

Pages of 64 KiB (the largest iaa describes) of each workload are compressed as the iaa codec
writes them without a device (fixed Huffman, 4 KiB window: the device's format); pages that
do not shrink go raw and are left out. Rows:

* ``check``: ``scan_deflate(stream, 4096, max_blocks(65536))`` on every page's stream, what
  decoding runs on each page after zlib has inflated it;
* ``decode``: the codec's ``decode_pages`` of the same blob in software (zlib's inflate and
  the check, page by page).

Each row runs on the C walk (``_deflatescan.c``) and on the Python walk, once per round in
an order that rotates from round to round; C/Python is the median of per-round ratios
(both sides of a ratio met the same machine).

MB/s counts page bytes (10^6 bytes per second), as decoding delivers them.
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Callable
from unittest import mock

import numpy as np
from timing import interleaved_seconds, median_ratio, rounds_parser  # benchmarks/timing.py

from migcodec.codecs import PageMode, deflate_scan
from migcodec.codecs.deflate_scan import DEFLATE_SCAN, scan_deflate
from migcodec.codecs.plugins.iaa import HISTORY, IaaCodec, max_blocks
from migcodec.datasets import GENERATORS

PAGE = 65536
WORKLOADS = ("memcached", "text", "seq")


def _on_python(fn: Callable[[], object]) -> Callable[[], object]:
    def run() -> None:
        with mock.patch.object(deflate_scan, "native", None):
            fn()

    return run


def _rows(memory: np.ndarray) -> tuple[dict[str, Callable[[], object]], int]:
    """The rows over the pages of ``memory`` that shrink, and how many bytes they hold."""
    codec = IaaCodec()
    encoding = codec.encode_pages(memory)
    blob, n = encoding.blob, int(np.count_nonzero(encoding.modes == PageMode.ENCODED))
    lengths = np.frombuffer(blob[: 2 * n], "<u2")
    ends = 2 * n + np.cumsum(lengths)
    streams = [memoryview(blob)[e - k : e] for e, k in zip(ends, lengths, strict=True)]
    limit = max_blocks(PAGE)

    def check():
        for stream in streams:
            scan_deflate(stream, HISTORY, limit)

    def decode():
        codec.decode_pages(blob, n, PAGE)

    rows: dict[str, Callable[[], object]] = {}
    for name, fn in (("check", check), ("decode", decode)):
        if deflate_scan.native is not None:
            rows[name] = fn
        rows[f"{name} [Python]"] = _on_python(fn)
    return rows, n * PAGE


def _measure(workload: str, pages: int, repeats: int, rng: np.random.Generator) -> dict:
    """One workload's line: each row's MB/s on both walks, and the C walk's speed-up."""
    rows, nbytes = _rows(GENERATORS[workload](rng, pages, PAGE))
    seconds = interleaved_seconds(rows, repeats)
    line: dict = {"workload": workload, "pages_checked": nbytes // PAGE}
    for name in ("check", "decode"):
        python = seconds[f"{name} [Python]"]
        line[f"{name}_python_mb_s"] = round(nbytes / statistics.median(python) / 1e6, 2)
        c = seconds.get(name)  # None: the C walk was not built
        line[f"{name}_c_mb_s"] = c and round(nbytes / statistics.median(c) / 1e6, 2)
        line[f"{name}_c_over_python"] = c and round(median_ratio(python, c), 1)
    return line


def main(argv: list[str] | None = None) -> int:
    args = rounds_parser(__doc__, 16, "workload", repeats=5).parse_args(argv)
    os.environ.setdefault("MIGCODEC_QPL_LIBRARY", "")  # software: what the check runs in
    rng = np.random.default_rng(1)
    lines = [_measure(w, args.pages, args.repeats, rng) for w in WORKLOADS]
    if args.json:
        print(json.dumps({"page_size": PAGE, "repeats": args.repeats,
                          "deflate_scan": DEFLATE_SCAN, "workloads": lines}, indent=2))  # fmt: skip
        return 0
    print(f"up to {args.pages} pages of {PAGE // 1024} KiB per workload, MB/s, median of "
          f"{args.repeats} interleaved rounds, 1 thread; DEFLATE walk: {DEFLATE_SCAN}")  # fmt: skip
    print(f"{'':<10} {'history check':^29} {'software decode':^29}")
    print(f"{'workload':<10}" + f" {'C':>9} {'Python':>9} {'C/Python':>9}" * 2)
    for line in lines:
        cells = [f"{line['workload']:<10}"]
        for name in ("check", "decode"):
            for key in ("c_mb_s", "python_mb_s", "c_over_python"):
                value = line[f"{name}_{key}"]
                cells.append(f"{'-' if value is None else f'{value:.1f}':>9}")
        print(" ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
