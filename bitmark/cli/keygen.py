"""`bitmark keygen`: a new random 256-bit key file."""

from __future__ import annotations

import argparse
import json

from bitmark.cli.common import EXIT_OK, UsageError, scales_list
from bitmark.core.keys import RULES, WatermarkConfig, WatermarkKey


def add_parser(sub) -> None:
    k = sub.add_parser("keygen", help="make a new random 256-bit key file (mode 0600)")
    k.add_argument("--out", required=True, help="key file to write (never overwritten)")
    k.add_argument("--rule", choices=RULES, default=WatermarkConfig.rule, help="green rule (bitmark-2025: the published unkeyed one, for comparison)")
    k.add_argument("--context", type=int, default=WatermarkConfig.context, help="context width n (2..8)")
    k.add_argument("--delta", type=float, default=WatermarkConfig.delta, help="logit bias of green bits")
    k.add_argument("--scales", type=scales_list, default=None, help="watermarked scale indices, e.g. 2,3,4 (default all)")
    k.add_argument("--json", action="store_true", help="print the key id and configuration as JSON")
    k.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = WatermarkConfig(rule=args.rule, context=args.context, delta=args.delta, scales=args.scales)
    key = WatermarkKey.generate(config)
    try:
        key.save(args.out)
    except FileExistsError:
        raise UsageError(f"{args.out} exists; refusing to overwrite a key") from None
    info = {"key_id": key.key_id, "path": str(args.out), **config.to_dict()}
    if args.json:
        print(json.dumps(info))
    else:
        print(f"wrote key {key.key_id} to {args.out} (mode 0600): {config}")
    return EXIT_OK
