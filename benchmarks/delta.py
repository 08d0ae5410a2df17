"""Delta encoding speed, side by side in one run, medians over interleaved repeats, one thread.

    python benchmarks/delta.py [--pages N] [--repeats R] [--json]

Workloads (4096-byte pages, 64-page batches): ``20pct`` rewrites ~20 % of the 8-byte words
of every page, ``rewrite`` rewrites whole pages. Rows:

* ``xor-count``: the baseline, numpy compares the batch with its cached versions as uint64
  words and counts changed words (the least any delta encoder must do);
* ``dsa-records``: ``create_delta_records`` (DSA delta records, max 4090 bytes);
* ``xbzrle-encode``: ``xbzrle_encode`` (QEMU's format);
* ``dsa-apply`` / ``xbzrle-decode``: the destination side of the same pages (records made
  without a size limit; XBZRLE only where no page overflowed, so not for rewrites);
* ``dsa-delta record-frame`` / ``xbzrle record-frame``: the C kernel each codec calls when
  its mirror holds the whole batch, which also writes each new page over the version it
  was compared with (the mirror's record of what the destination holds), in the same pass;
* ``dsa-delta codec`` / ``xbzrle codec``: the whole codec through ``Codec.encode``: snapshot,
  mirror lookup and update, framework; memory alternates between two versions so every
  batch differs from what the mirror holds;
* ``... decode``: the codec's frames decoded by ``Codec.decode`` into destination memory.

Each kernel row runs on the C kernels (``_deltas.c``) and, marked ``[numpy]``, on the numpy
fall-back. Every row runs once per round, in an order that rotates from round to round, and
the ratios below the rows are medians of per-round ratios (both sides of a ratio met the
same machine): each codec against its own kernel, and each C kernel against numpy's.

GB/s counts input page bytes (10^9 bytes per second).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable

import numpy as np
from timing import interleaved_seconds, median_ratio, rounds_parser  # benchmarks/timing.py

from migcodec.codecs import Batch, DestinationMirror, delta_kernels, get_codec
from migcodec.codecs.delta_kernels import DELTA_KERNELS, numpy_kernels
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


def _on_numpy(fn: Callable[[], object]) -> Callable[[], object]:
    def run() -> None:
        with numpy_kernels():
            fn()

    return run


def _kernels(old: np.ndarray, new: np.ndarray) -> dict[str, Callable[[], object]]:
    """The kernel rows, C and numpy, over 64-page batches of ``old`` and ``new``."""
    spans = [slice(i, i + BATCH) for i in range(0, old.shape[0], BATCH)]
    pairs = [(old[s], new[s]) for s in spans]

    def xor_count():
        for o, n in pairs:
            np.count_nonzero(o.view(np.uint64) != n.view(np.uint64), axis=1)

    def dsa():
        for o, n in pairs:
            create_delta_records(o, n, 4090, partial=False)

    def xbz():
        for o, n in pairs:
            xbzrle_encode(o, n)

    records = [create_delta_records(o, n, 1 << 30) for o, n in pairs]
    encodings = [xbzrle_encode(o, n) for o, n in pairs]
    targets = [o.copy() for o, _ in pairs]

    def dsa_apply():
        for t, (_, sizes, rec) in zip(targets, records, strict=True):
            apply_delta_records(t, rec, sizes)

    def xbz_decode():
        for t, (_, lengths, data) in zip(targets, encodings, strict=True):
            xbzrle_decode(t, data, lengths)

    rows: dict[str, Callable[[], object]] = {"xor-count": xor_count}
    if delta_kernels.native is not None:  # the one-pass kernels exist in C only
        rows.update(_record_frames(old, new))
    timed = [("dsa-records", dsa), ("xbzrle-encode", xbz), ("dsa-apply", dsa_apply)]
    if all((results > 0).all() for results, _, _ in encodings):  # rewrites overflow: no row
        timed.append(("xbzrle-decode", xbz_decode))
    for name, fn in timed:
        rows[name] = fn
        rows[f"{name} [numpy]"] = _on_numpy(fn)
    return rows


def _record_frames(old: np.ndarray, new: np.ndarray) -> dict[str, Callable[[], object]]:
    """The kernel each delta codec calls when the mirror holds the whole batch: records (or
    XBZRLE) made and each new page written over the version it was compared with, in one
    pass, as a frame. Versions alternate, as in the codec rows, so every batch differs from
    what its slots hold."""
    rows: dict[str, Callable[[], object]] = {}
    for name in ("dsa-delta", "xbzrle"):
        codec = get_codec(name)
        slots = [old[i : i + BATCH].copy() for i in range(0, old.shape[0], BATCH)]
        turn = [0]

        def run(codec=codec, slots=slots, turn=turn):
            turn[0] ^= 1
            memory = new if turn[0] else old
            for j, start in enumerate(range(0, memory.shape[0], BATCH)):
                # raw pages copied, as the codec copies them from memory that may change
                codec._record_frame(slots[j], memory[start : start + BATCH], True)

        rows[f"{name} record-frame"] = run
    return rows


def _codecs(old: np.ndarray, new: np.ndarray) -> dict[str, Callable[[], object]]:
    """The codec rows: encode alternating versions against a mirror, and decode frames."""
    n_pages = old.shape[0]
    rows: dict[str, Callable[[], object]] = {}
    memories = [old, new]
    for name in ("dsa-delta", "xbzrle"):
        codec = get_codec(name)
        mirror = DestinationMirror(PAGE, 2 * n_pages * PAGE)
        for mem in memories:  # fill the mirror
            for i in range(0, n_pages, BATCH):
                codec.encode(Batch(mem, [(i, BATCH)]), destination=mirror)
        batches = [[Batch(m, [(i, BATCH)]) for i in range(0, n_pages, BATCH)] for m in memories]
        turn = [0]

        def run(codec=codec, batches=batches, turn=turn, mirror=mirror):
            turn[0] ^= 1
            for b in batches[turn[0]]:
                codec.encode(b, destination=mirror)

        # frames that turn old into new, and destination memory to decode them into
        holds_old = DestinationMirror.holding(np.arange(n_pages), old)
        frames = [codec.encode(b, destination=holds_old) for b in batches[1]]
        dest = old.copy()

        def decode(codec=codec, frames=frames, dest=dest):
            for frame in frames:
                codec.decode(frame, dest)

        rows[f"{name} codec"] = run
        rows[f"{name} codec decode"] = decode
    return rows


#: (numerator row, denominator row, what the ratio says): times of the first over the second
RATIOS = [
    ("dsa-delta record-frame", "dsa-delta codec", "dsa-delta codec / the kernel it calls"),
    ("xbzrle record-frame", "xbzrle codec", "xbzrle codec / the kernel it calls"),
    ("dsa-records", "dsa-delta codec", "dsa-delta codec / its record kernel"),
    ("xbzrle-encode", "xbzrle codec", "xbzrle codec / its encode kernel"),
    ("dsa-records [numpy]", "dsa-records", "dsa-records C / numpy"),
    ("xbzrle-encode [numpy]", "xbzrle-encode", "xbzrle-encode C / numpy"),
    ("dsa-apply [numpy]", "dsa-apply", "dsa-apply C / numpy"),
    ("xbzrle-decode [numpy]", "xbzrle-decode", "xbzrle-decode C / numpy"),
]


def main(argv: list[str] | None = None) -> int:
    args = rounds_parser(__doc__, 1024, "version", repeats=9).parse_args(argv)
    pages = max(BATCH, args.pages // BATCH * BATCH)
    rng = np.random.default_rng(1)
    results, ratios = [], []
    for workload in ("20pct", "rewrite"):
        old, new = _versions(pages, workload, rng)
        changed = float(np.mean(old.view(np.uint64) != new.view(np.uint64)))
        seconds = interleaved_seconds({**_kernels(old, new), **_codecs(old, new)}, args.repeats)
        base = statistics.median(seconds["xor-count"])
        for name, times in seconds.items():
            median = statistics.median(times)
            results.append(
                {
                    "workload": workload,
                    "words_changed": round(changed, 3),
                    "what": name,
                    "gb_s": round(new.nbytes / median / 1e9, 3),
                    "of_xor_count": round(base / median, 3),
                }
            )
        for slow, fast, what in RATIOS:
            if slow in seconds and fast in seconds:
                ratio = median_ratio(seconds[slow], seconds[fast])
                ratios.append({"workload": workload, "what": what, "ratio": round(ratio, 3)})
    if args.json:
        report = {
            "pages": pages,
            "repeats": args.repeats,
            "delta_kernels": DELTA_KERNELS,
            "rows": results,
            "ratios": ratios,
        }
        print(json.dumps(report, indent=2))
        return 0
    print(f"{pages} pages x 2 versions, {BATCH}-page batches, median of {args.repeats} "
          f"interleaved rounds, 1 thread; delta kernels: {DELTA_KERNELS}")  # fmt: skip
    print(f"{'workload':<9} {'what':<24} {'GB/s':>7} {'x xor-count':>12}")
    for r in results:
        print(f"{r['workload']:<9} {r['what']:<24} {r['gb_s']:>7.2f} {r['of_xor_count']:>12.2f}")
    print("\nratios (medians of per-round ratios)")
    for r in ratios:
        print(f"{r['workload']:<9} {r['what']:<38} {r['ratio']:>7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
