"""Delta encoding speed, side by side in one run, medians over repeats, one thread.

    python benchmarks/delta.py [--pages N] [--repeats R] [--json]

Workloads (4096-byte pages, 64-page batches): ``20pct`` rewrites ~20 % of the 8-byte words
of every page, ``rewrite`` rewrites whole pages. Rows:

* ``xor-count``: the baseline, numpy compares the batch with its cached versions as uint64
  words and counts changed words (the least any delta encoder must do);
* ``dsa-records``: ``create_delta_records`` (DSA delta records, max 4090 bytes);
* ``xbzrle-encode``: ``xbzrle_encode`` (QEMU's format);
* ``dsa-apply`` / ``xbzrle-decode``: the destination side of the same pages (records made
  without a size limit; XBZRLE only where no page overflowed, so not for rewrites);
* ``dsa-delta codec`` / ``xbzrle codec``: the whole codec through ``Codec.encode``: snapshot,
  cache lookup and update, framework; memory alternates between two versions so every batch
  differs from what the cache holds.

GB/s counts input page bytes (10^9 bytes per second).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from timing import median_rate  # benchmarks/timing.py (the script directory)

from migcodec.codecs import Batch, DestinationMirror, get_codec
from migcodec.codecs.plugins.dsa_delta import apply_delta_records, create_delta_records
from migcodec.codecs.plugins.xbzrle import xbzrle_decode, xbzrle_encode

PAGE = 4096
BATCH = 64


def _versions(n_pages: int, workload: str, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    old = rng.integers(0, 256, (n_pages, PAGE), dtype=np.uint8)
    if workload == "rewrite":
        return old, rng.integers(0, 256, (n_pages, PAGE), dtype=np.uint8)
    new = old.copy()
    words = new.view(np.uint64)
    hit = rng.random(words.shape) < 0.2
    words[hit] = ~words[hit]
    return old, new


def _kernel_rows(old: np.ndarray, new: np.ndarray, repeats: int) -> dict[str, float]:
    spans = [slice(i, i + BATCH) for i in range(0, old.shape[0], BATCH)]
    olds = [old[s] for s in spans]
    news = [new[s] for s in spans]

    def xor_count():
        for o, n in zip(olds, news, strict=True):
            np.count_nonzero(o.view(np.uint64) != n.view(np.uint64), axis=1)

    def dsa():
        for o, n in zip(olds, news, strict=True):
            create_delta_records(o, n, 4090, partial=False)

    def xbz():
        for o, n in zip(olds, news, strict=True):
            xbzrle_encode(o, n)

    records = [create_delta_records(o, n, 1 << 30) for o, n in zip(olds, news, strict=True)]
    encodings = [xbzrle_encode(o, n) for o, n in zip(olds, news, strict=True)]
    targets = [o.copy() for o in olds]

    def dsa_apply():
        for t, (_, sizes, rec) in zip(targets, records, strict=True):
            apply_delta_records(t, rec, sizes)

    def xbz_decode():
        for t, (_, lengths, data) in zip(targets, encodings, strict=True):
            xbzrle_decode(t, data, lengths)

    timed = [
        ("xor-count", xor_count),
        ("dsa-records", dsa),
        ("xbzrle-encode", xbz),
        ("dsa-apply", dsa_apply),
    ]
    if all((results > 0).all() for results, _, _ in encodings):  # rewrites overflow: no row
        timed.append(("xbzrle-decode", xbz_decode))
    return {name: median_rate(fn, new.nbytes, repeats) / 1e9 for name, fn in timed}


def _codec_rows(old: np.ndarray, new: np.ndarray, repeats: int) -> dict[str, float]:
    n_pages = old.shape[0]
    rows = {}
    for name in ("dsa-delta", "xbzrle"):
        codec = get_codec(name)
        mirror = DestinationMirror(PAGE, 2 * n_pages * PAGE)
        memories = [old, new]
        for mem in memories:  # fill the mirror
            for i in range(0, n_pages, BATCH):
                codec.encode(Batch(mem, [(i, BATCH)]), destination=mirror)
        batches = [[Batch(m, [(i, BATCH)]) for i in range(0, n_pages, BATCH)] for m in memories]
        turn = [0]

        def run(codec=codec, batches=batches, turn=turn, mirror=mirror):
            turn[0] ^= 1
            for b in batches[turn[0]]:
                codec.encode(b, destination=mirror)

        rows[f"{name} codec"] = median_rate(run, new.nbytes, repeats) / 1e9
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1024, help="pages per version (default 1024)")
    parser.add_argument("--repeats", type=int, default=9, help="timed repeats (default 9)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    pages = max(BATCH, args.pages // BATCH * BATCH)
    rng = np.random.default_rng(1)
    results = []
    for workload in ("20pct", "rewrite"):
        old, new = _versions(pages, workload, rng)
        changed = float(np.mean(old.view(np.uint64) != new.view(np.uint64)))
        rows = {**_kernel_rows(old, new, args.repeats), **_codec_rows(old, new, args.repeats)}
        base = rows["xor-count"]
        for name, gbps in rows.items():
            results.append(
                {
                    "workload": workload,
                    "words_changed": round(changed, 3),
                    "what": name,
                    "gb_s": round(gbps, 3),
                    "of_xor_count": round(gbps / base, 3),
                }
            )
    if args.json:
        print(json.dumps({"pages": pages, "repeats": args.repeats, "rows": results}, indent=2))
        return 0
    print(f"{pages} pages x 2 versions, {BATCH}-page batches, median of {args.repeats}, 1 thread")
    print(f"{'workload':<9} {'what':<17} {'GB/s':>7} {'x xor-count':>12}")
    for r in results:
        print(f"{r['workload']:<9} {r['what']:<17} {r['gb_s']:>7.2f} {r['of_xor_count']:>12.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
