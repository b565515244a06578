"""`bitmark attack`: apply an attack or a chain of attacks to image files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bitmark.cli.common import EXIT_OK, EXIT_UNREADABLE, UsageError, load_key, add_threads


def add_parser(sub) -> None:
    a = sub.add_parser("attack", help="apply an attack (or a chain, jpeg:50+crop:0.7) to images; --list shows all")
    a.add_argument("spec", nargs="?", help="NAME:STRENGTH[+NAME:STRENGTH...]")
    a.add_argument("inputs", nargs="*", metavar="INPUT", help="image files or folders")
    a.add_argument("--out", help="folder for attacked PNGs (same file names) and attacks.jsonl")
    a.add_argument("--list", action="store_true", help="list attacks with units, ranges and default grids")
    a.add_argument("--seed", type=int, default=0, help="seed of randomised attacks (image i uses seed + i)")
    a.add_argument("--key", default=None, help="white-box attacks (bitflip, forge): the key whose green bits they see")
    a.add_argument("--observed", default=None, help="rule stealing (steal_remove, steal_forge): folder of watermarked images")
    a.add_argument("--json", action="store_true")
    add_threads(a)
    a.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bitmark import attacks
    from bitmark.io.images import ImageError, iter_image_files, load_image, save_png

    if args.list:
        rows = [
            {"name": n, "unit": c.unit, "range": list(c.range), "neutral": c.neutral, "grid": list(c.grid), "description": c.description}
            for n, c in sorted(attacks.REGISTRY.items())
        ]
        if args.json:
            for r in rows:
                print(json.dumps(r))
        else:
            for r in rows:
                lo, hi = r["range"]
                print(f"{r['name']:18s} {r['unit']} {lo:g}..{hi:g}, grid {', '.join(f'{g:g}' for g in r['grid'])}: {r['description']}")
        return EXIT_OK
    if not args.spec or not args.inputs or not args.out:
        raise UsageError("give an attack SPEC, INPUT files or folders and --out DIR (or --list)")
    options: dict[str, Any] = {}
    if args.key:  # white-box attacks: the key holder's exact green oracle
        from bitmark.detectors import BitDetector

        options["oracle"] = BitDetector(load_key(args.key)).green_status
    if args.observed:  # rule stealing: the watermarked images the attacker has seen
        paths = list(iter_image_files([args.observed]))
        options["observed"] = [load_image(p) for p in paths]
    try:
        attack = attacks.parse(args.spec, **options)
    except attacks.AttackError as e:
        raise UsageError(str(e)) from e
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    unreadable, written = 0, set()
    with open(out / "attacks.jsonl", "a") as log_file:
        for i, path in enumerate(iter_image_files(args.inputs)):
            row: dict[str, Any] = {"input": str(path), "attack": attack.spec, "seed": args.seed + i}
            target = out / (path.stem + ".png")  # always PNG: the attack is all that changed the pixels
            try:
                if target in written:
                    raise ImageError(f"{path}: another input already wrote {target}")
                attacked = attack(load_image(path)[None], seed=args.seed + i)[0]
                save_png(target, attacked)
                written.add(target)
                row["output"] = str(target)
            except ImageError as e:
                unreadable += 1
                row["error"] = str(e)
            log_file.write(json.dumps(row) + "\n")
            if args.json:
                print(json.dumps(row))
    return EXIT_UNREADABLE if unreadable else EXIT_OK
