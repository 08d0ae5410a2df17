"""The ``migcodec`` command. Each subcommand lives in its own module and registers itself
through :data:`COMMANDS`; adding one touches one new module and one line here."""

from __future__ import annotations

import argparse
import importlib
import sys

from migcodec.codecs import CodecError

#: modules that each define ``register(subparsers)``
COMMANDS = [
    "migcodec.cli.codecs_cmd",
    "migcodec.cli.bench_cmd",
    "migcodec.cli.migrate_cmd",
    "migcodec.cli.trace_cmd",
    "migcodec.cli.evaluate_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="migcodec", description="Codecs and codec selection for live migration of memory."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        importlib.import_module(module).register(sub)
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
