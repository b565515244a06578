"""`bitmark keygen`: a new random 256-bit key file, or a version 1 key file re-tagged as the current version."""

from __future__ import annotations

import argparse
import json

from bitmark.cli.common import EXIT_OK, UsageError, add_allow_shared_key, scales_list
from bitmark.core.keys import RULES, WatermarkConfig, WatermarkKey

_CONFIG = ("rule", "context", "delta", "scales")


def add_parser(sub) -> None:
    k = sub.add_parser("keygen", help="make a new random 256-bit key file (mode 0600), or upgrade an old one")
    k.add_argument("--out", required=True, help="key file to write (never overwritten)")
    k.add_argument("--rule", choices=RULES, default=None, help=f"green rule (default {WatermarkConfig.rule}; bitmark-2025: the published unkeyed one, for comparison)")
    k.add_argument("--context", type=int, default=None,
                   help=f"context width n, 2..8 (default {WatermarkConfig.context})")
    k.add_argument("--delta", type=float, default=None,
                   help=f"logit bias of green bits, finite and > 0 (default {WatermarkConfig.delta})")
    k.add_argument("--scales", type=scales_list, default=None,
                   help="watermarked scale indices, e.g. 2,3,4 (default all)")
    k.add_argument("--upgrade", metavar="OLD", default=None,
                   help="re-write the version 1 key file OLD as the current, tamper-evident version at --out "
                        "(same secret and configuration)")
    add_allow_shared_key(k)
    k.add_argument("--json", action="store_true", help="print the result as one JSON line")
    k.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    given = {name: getattr(args, name) for name in _CONFIG if getattr(args, name) is not None}
    try:
        if args.upgrade:
            if given:
                flags = ", ".join("--" + name for name in given)
                raise UsageError(f"--upgrade keeps the old key's configuration; drop {flags}")
            key = WatermarkKey.upgrade(args.upgrade, args.out, allow_shared=args.allow_shared_key)
        else:
            key = WatermarkKey.generate(WatermarkConfig(**given))  # refuses bad values before anything is written
            key.save(args.out)
    except FileExistsError:
        raise UsageError(f"{args.out} exists; refusing to overwrite a key") from None
    except OSError as e:
        raise UsageError(f"cannot write {args.out}: {e.strerror or e}") from None
    config = key.config
    info = {"key_id": key.key_id, "path": str(args.out), **config.to_dict()}
    if args.upgrade:
        info["upgraded_from"] = str(args.upgrade)
    if args.json:
        print(json.dumps(info))
    elif args.upgrade:
        print(f"upgraded key {key.key_id} from {args.upgrade} to {args.out} (mode 0600): {config}; "
              "version 1 files were not tamper-evident, so check that this is the configuration you made it with")
    else:
        print(f"wrote key {key.key_id} to {args.out} (mode 0600): {config}")
    return EXIT_OK
