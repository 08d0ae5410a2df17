"""``migcodec bench``: ratio and speed of codecs on generated guest pages."""

from __future__ import annotations

import argparse

from migcodec.cli import args as types
from migcodec.cli.args import PAGE_SIZE, CommandLineError, codec_names, json_document
from migcodec.codecs import available_codecs, plugin_statuses
from migcodec.codecs.bounded import run_bounded
from migcodec.datasets import GENERATORS
from migcodec.engine.guest_memory import GuestMemoryError, check_available


def run(args: argparse.Namespace) -> int:
    from migcodec.bench import run_bench

    if args.codecs is not None:
        names = codec_names(args.codecs)
    else:
        statuses = run_bounded(plugin_statuses, instead="name the others with --codecs")
        names = [s.name for s in statuses if s.available]
    # the pages, the encoded and the decoded copies: refused before any is made
    try:
        check_available(args.pages * PAGE_SIZE * 3, f"--pages {args.pages}", "use fewer --pages")
    except GuestMemoryError as exc:
        raise CommandLineError(str(exc)) from None
    results = run_bench(args.workload, names, args.pages, args.workers, args.seed)
    if args.json:
        document = {
            "workload": args.workload,
            "pages": args.pages,
            "workers": args.workers,
            "results": [r.as_dict() for r in results],
        }
        print(json_document(document))
        return 0
    print(
        f"workload {args.workload}: {args.pages} pages, {args.workers} worker(s), "
        "64-page batches, medians of 3 runs, every round trip verified"
    )
    print(
        f"{'codec':<10} {'path':<10} {'ratio':>8} {'enc MB/s':>10} {'dec MB/s':>10} "
        f"{'CPU s/GB':>9}  device MB/s (modelled)"
    )
    for r in results:
        device = f"{r.modelled_device_mb_s:>10.0f}" if r.modelled_device_mb_s else f"{'-':>10}"
        print(
            f"{r.codec:<10} {r.path:<10} {r.ratio:>8.2f} {r.encode_mb_s:>10.0f} "
            f"{r.decode_mb_s:>10.0f} {r.cpu_s_per_gb:>9.2f}  {device}"
        )
    if any(r.modelled_device_mb_s for r in results):
        print(
            "emulated rows: enc MB/s and CPU are our software stand-in, measured; device MB/s "
            "is one engine per the device model (migcodec/codecs/device_model.py), not measured"
        )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="ratio and speed of codecs on generated guest pages")
    p.add_argument(
        "--workload", default="memcached", choices=sorted(GENERATORS), help="guest page contents"
    )
    p.add_argument(
        "--codecs",
        help=f"comma-separated names (default: all available: {','.join(available_codecs())})",
    )
    p.add_argument(
        "--pages",
        type=types.positive_int,
        default=8192,
        metavar="N",
        help="pages of guest memory (4 KiB each)",
    )
    p.add_argument(
        "--workers",
        type=types.workers,
        default=1,
        metavar="N",
        help="encoding engines (threads)",
    )
    p.add_argument(
        "--seed", type=types.seed, default=0, metavar="N", help="seed of the generated pages"
    )
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)
