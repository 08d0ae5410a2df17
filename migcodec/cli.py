"""The ``migcodec`` command."""

from __future__ import annotations

import argparse
import json
import sys

from migcodec.codecs import CodecError, available_codecs, plugin_statuses


def _cmd_codecs(args: argparse.Namespace) -> int:
    statuses = plugin_statuses()
    if args.json:
        print(json.dumps([s.as_dict() for s in statuses], indent=2))
        return 0
    print(f"{'codec':<12} {'kind':<9} {'available':<9} {'path':<11} reason")
    for s in statuses:
        print(
            f"{s.name:<12} {s.kind:<9} {'yes' if s.available else 'no':<9} {s.path:<11} {s.reason}"
        )
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from migcodec.bench import run_bench

    if args.codecs:
        names = [c.strip() for c in args.codecs.split(",") if c.strip()]
    else:
        names = [s.name for s in plugin_statuses() if s.available]
    results = run_bench(args.workload, names, args.pages, args.workers, args.seed)
    if args.json:
        print(
            json.dumps(
                {
                    "workload": args.workload,
                    "pages": args.pages,
                    "workers": args.workers,
                    "results": [r.as_dict() for r in results],
                },
                indent=2,
            )
        )
        return 0
    print(
        f"workload {args.workload}: {args.pages} pages, {args.workers} worker(s), "
        "64-page batches, medians of 3 runs, every round trip verified"
    )
    print(
        f"{'codec':<10} {'path':<10} {'ratio':>8} {'enc MB/s':>10} {'dec MB/s':>10} {'CPU s/GB':>9}"
    )
    for r in results:
        print(
            f"{r.codec:<10} {r.path:<10} {r.ratio:>8.2f} {r.encode_mb_s:>10.0f} "
            f"{r.decode_mb_s:>10.0f} {r.cpu_s_per_gb:>9.2f}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    from migcodec.datasets import GENERATORS

    parser = argparse.ArgumentParser(
        prog="migcodec", description="Codecs and codec selection for live migration of memory."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("codecs", help="list codec plugins, their path and availability")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=_cmd_codecs)

    p = sub.add_parser("bench", help="ratio and speed of codecs on generated guest pages")
    p.add_argument("--workload", default="memcached", choices=sorted(GENERATORS))
    p.add_argument(
        "--codecs",
        help=f"comma-separated names (default: all available: {','.join(available_codecs())})",
    )
    p.add_argument("--pages", type=int, default=8192, help="pages of guest memory (4 KiB each)")
    p.add_argument("--workers", type=int, default=1, help="encoding engines (threads)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=_cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CodecError as exc:
        print(f"migcodec: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
