"""QEMU beside migcodec on the same pages: per pre-copy iteration of a recorded QEMU stream,
what QEMU sent and what each migcodec codec, and the ``auto`` policy, would send.

    PYTHONPATH=$PWD python corpus/qemu_compare.py            # the test fixture's stream
    PYTHONPATH=$PWD python corpus/qemu_compare.py --stream OUT.stream.xz --info OUT.json

Reads a stream recorded by ``corpus/qemu_stream.py`` (by default
tests/datasets/data/qemu-xbzrle), imports it as a trace cut at QEMU's own dirty-bitmap
syncs (``migcodec trace import-qemu --sync-points``), and scores every arm on every window
as ``migcodec evaluate`` does (the same library calls): at the link QEMU was limited to in
the iterations (``max-bandwidth``), with this machine's calibrated cost model, so the
numbers are the same on every run of one machine. Prints a Markdown table, one row per
iteration:

* QEMU, from the stream: the pages it sent (whole / zero / XBZRLE) and the bytes of their
  records (8-byte header, block name when it changes, payload);
* QEMU, from ``query-migrate`` (``info migrate``) as the recording script polled it at
  each sync: the change in ``ram.transferred`` and in XBZRLE cache hits (QEMU counts a hit
  also when the page was unchanged and skipped, or overflowed and went whole). Polled
  every 50 ms, so these lag the syncs a little; the totals are exact;
* migcodec: each arm's output bytes for the same window's pages, encoded against
  ``previous`` (what the destination held) by the delta codecs, and the arm ``auto``
  chose with its bytes. migcodec's own framing is not counted.

The equivalent command lines are printed with the table.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "datasets" / "data" / "qemu-xbzrle"
KiB = 1024


def qmp_deltas(info: dict, syncs: int) -> dict[int, dict[str, int]]:
    """Per sync interval ``j`` (after the ``j``-th sync, 1-based): the change in QEMU's
    counters from the snapshot taken at sync ``j`` to the one at sync ``j + 1`` (or the
    end, for the last), where both were seen."""
    at: dict[int, dict] = {}
    for snap in info["query_migrate"]:
        count = snap["ram"].get("dirty-sync-count")
        if count is not None and count not in at and snap["status"] != "completed":
            at[count] = snap
    final = info["query_migrate"][-1]
    out = {}
    for j in range(1, syncs + 1):
        start = at.get(j)
        end = final if j == syncs else at.get(j + 1)
        if start is None or end is None:
            continue
        out[j] = {
            "transferred": end["ram"]["transferred"] - start["ram"]["transferred"],
            "xbzrle_hits": end["xbzrle"].get("pages", 0) - start["xbzrle"].get("pages", 0),
        }
    return out


def sync_interval(points: list[int], window_meta: dict, phase: str) -> int:
    """How many syncs came before a window's first page: QEMU syncs between sections, and
    once inside the END section before its pages."""
    first = window_meta["sections"][0]
    before = sum(p <= first - 1 for p in points)
    if phase == "stop-copy":
        before += sum(p == first for p in points)
    return before


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--stream", default=f"{FIXTURE}.stream.xz")
    p.add_argument("--info", default=f"{FIXTURE}.json", help="the JSON written beside it")
    p.add_argument("--trace", help="trace directory to write (default: a temporary one)")
    p.add_argument("--link", help="link rate (default: QEMU's max-bandwidth of the run)")
    p.add_argument("--arms", help="arms as for migcodec evaluate (default: its default)")
    args = p.parse_args(argv)

    from migcodec.datasets import TraceReader
    from migcodec.datasets.qemu_stream import import_qemu_stream
    from migcodec.selector import make_objective, parse_arms, parse_policy
    from migcodec.selector.costmodel import machine_cost_model
    from migcodec.selector.evaluation import build_table, check_windows, evaluate, read_trace

    info = json.loads(Path(args.info).read_text())
    points = info["sync_points"]
    link = args.link or str(info["max_bandwidth"])
    with tempfile.TemporaryDirectory(prefix="qemu-compare-") as scratch:
        trace = Path(args.trace or Path(scratch) / "trace")
        stats, _ = import_qemu_stream(args.stream, trace, sync_points=points, overwrite=True)
        windows = [(w.phase, w.meta["qemu"]) for w in TraceReader(trace)]
        arms = parse_arms(args.arms)
        table = build_table(check_windows(read_trace(trace)), arms, repeats=1)
    model = machine_cost_model(arms, batch_pages=64)
    scored = table.modelled(model)
    objective = make_objective("throughput", link=link, workers=2)
    ev = evaluate(scored, [parse_policy("auto")], objective)
    auto = ev.results[-1]
    labels = table.labels
    out = table.output_bytes
    deltas = qmp_deltas(info, len(points))

    def kib(x: float) -> str:
        return f"{x / KiB:,.0f}"

    head = ["iter", "phase", "pages whole/zero/XBZRLE", "QEMU stream KiB",
            "info migrate Δ KiB", "XBZRLE hits"]  # fmt: skip
    head += [f"{a} KiB" for a in labels] + ["auto"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    totals = np.zeros(len(labels))
    for w, (phase, meta) in enumerate(windows):
        j = sync_interval(points, meta, phase)
        d = deltas.get(j)
        row = [
            str(w),
            phase,
            f"{meta['page']}/{meta['zero']}/{meta['xbzrle']}",
            kib(meta["bytes"]),
            kib(d["transferred"]) if d else "-",
            str(d["xbzrle_hits"]) if d else "-",
            *(kib(x) for x in out[w]),
            f"{labels[auto.chosen[w]]}: {kib(out[w, auto.chosen[w]])}",
        ]
        totals += out[w]
        print("| " + " | ".join(row) + " |")
    final = info["query_migrate"][-1]
    auto_total = float(out[np.arange(len(windows)), auto.chosen].sum())
    row = [
        "all",
        "",
        f"{stats.normal}/{stats.zero}/{stats.xbzrle}",
        kib(stats.record_bytes),
        kib(final["ram"]["transferred"]),
        str(final["xbzrle"].get("pages", "-")),
        *(kib(x) for x in totals),
        kib(auto_total),
    ]
    print("| " + " | ".join(row) + " |")
    score = next(s for s in ev.scores if s.label == auto.label)
    print(
        f"\n{len(windows)} iterations at {link} B/s ({objective.name}, 2 workers, calibrated "
        f"cost model): best fixed arm {labels[ev.best_fixed]}; auto at "
        f"{score.vs_oracle:.3f} of the per-iteration oracle, {score.vs_best_fixed:.3f} of the "
        f"best fixed arm. XBZRLE pages: {stats.xbzrle}, re-encoded differently by migcodec: "
        f"{stats.xbzrle_mismatches}."
    )
    stream = shlex.quote(str(args.stream))
    print(
        "Equivalent commands: migcodec trace import-qemu "
        f"{stream} --sync-points {shlex.quote(str(args.info))} --out T; "
        f"migcodec evaluate T --link {link} --cost-model calibrated --policies auto "
        "--repeats 1"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
