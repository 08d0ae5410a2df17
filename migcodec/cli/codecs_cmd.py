"""``migcodec codecs``: every plugin with kind, path, availability and reason."""

from __future__ import annotations

import argparse

from migcodec.cli.args import json_document
from migcodec.codecs import plugin_statuses
from migcodec.codecs.bounded import run_bounded
from migcodec.codecs.changes import CHANGE_SCAN
from migcodec.codecs.deflate_scan import DEFLATE_SCAN
from migcodec.codecs.zero import ZERO_SCAN
from migcodec.selector.policies.auto import PROBE_VALUES
from migcodec.selector.policies.kalman import FILTER_UPDATE
from migcodec.selector.scan import SAMPLE_SCAN


def run(args: argparse.Namespace) -> int:
    # on a bounded unit: a plugin whose import or probe never returns held the listing
    # forever; it is named instead
    statuses = run_bounded(plugin_statuses, instead="uninstall it")
    if args.json:
        print(json_document([s.as_dict() for s in statuses]))
        return 0
    print(f"{'codec':<12} {'kind':<9} {'available':<9} {'path':<11} reason")
    for s in statuses:
        print(
            f"{s.name:<12} {s.kind:<9} {'yes' if s.available else 'no':<9} {s.path:<11} {s.reason}"
        )
    print(f"\nzero-page detection (every codec): {ZERO_SCAN}")
    print(f"page-change counts (selector features): {CHANGE_SCAN}")
    print(f"sample scan (selector features): {SAMPLE_SCAN}")
    print(f"DEFLATE history check (iaa decode in software): {DEFLATE_SCAN}")
    print(f"Kalman filter update (auto's estimates): {FILTER_UPDATE}")
    print(f"probe valuation (auto's probe decisions): {PROBE_VALUES}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("codecs", help="list codec plugins, their path and availability")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)
