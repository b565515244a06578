"""`bitmark attack`: apply an attack or a chain of attacks to image files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bitmark.cli.common import EXIT_OK, EXIT_UNREADABLE, UsageError, add_allow_shared_key, add_threads, load_key


def add_parser(sub) -> None:
    a = sub.add_parser("attack", help="apply an attack (or a chain, jpeg:50+crop:0.7) to images; --list shows all")
    a.add_argument("spec", nargs="?", help="NAME:STRENGTH[+NAME:STRENGTH...]")
    a.add_argument("inputs", nargs="*", metavar="INPUT", help="image files or folders")
    a.add_argument("--out", help="folder for attacked PNGs (same file names) and attacks.jsonl")
    a.add_argument("--list", action="store_true", help="list attacks with units, ranges and default grids")
    a.add_argument("--seed", type=int, default=0, help="seed of randomised attacks (image i uses seed + i)")
    a.add_argument("--key", default=None, help="white-box attacks (bitflip, forge): the key whose green bits they see")
    add_allow_shared_key(a)
    a.add_argument("--observed", default=None, help="rule stealing and pixel averaging (steal_*, adaptive_*, average_*): folder of watermarked images")
    a.add_argument("--overwrite", action="store_true", help="write into a non-empty --out (its attacks.jsonl is rewritten)")
    a.add_argument("--json", action="store_true", help="print one JSON line per image (or per attack with --list)")
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
    paths = list(iter_image_files(args.inputs))
    if not paths:
        raise UsageError(f"no inputs found (image files) in {', '.join(args.inputs)}")
    out = Path(args.out)
    observed = list(iter_image_files([args.observed])) if args.observed else []
    targets = [out / (path.stem + ".png") for path in paths]  # always PNG: the attack is all that changed the pixels
    check_outputs(out, targets + [out / LOG], paths + observed, args.overwrite)
    options: dict[str, Any] = {}
    if args.key:  # white-box attacks: the key holder's exact green oracle
        from bitmark.detectors import BitDetector

        options["oracle"] = BitDetector(load_key(args.key, args.allow_shared_key)).green_status
    if observed:  # rule stealing: the watermarked images the attacker has seen
        options["observed"] = [load_image(p) for p in observed]
    try:
        attack = attacks.parse(args.spec, **options)
    except attacks.AttackError as e:
        raise UsageError(str(e)) from e
    out.mkdir(parents=True, exist_ok=True)
    if args.overwrite:
        _remove_previous_outputs(out, set(targets), paths + observed)
    unreadable, written = 0, set()
    with open(out / LOG, "w") as log_file:  # this run's rows only
        for i, (path, target) in enumerate(zip(paths, targets)):
            row: dict[str, Any] = {"input": str(path), "attack": attack.spec, "seed": args.seed + i}
            try:
                if target in written:
                    raise ImageError(f"{path}: another input already wrote {target}")
                attacked = attack(load_image(path)[None], seed=args.seed + i)[0]
                save_png(target, attacked)
                written.add(target)
                row["output"] = str(target)
            except (ImageError, MemoryError) as e:
                unreadable += 1
                row["error"] = str(e) if isinstance(e, ImageError) else f"{path}: out of memory attacking it"
                print(f"bitmark attack: {row['error']}", file=sys.stderr)
            log_file.write(json.dumps(row) + "\n")
            if args.json:
                print(json.dumps(row))
    summary = (f"attacked {len(written)} of {len(paths)} images with {attack.spec} into {out} (rows in {out / LOG})"
               + (f"; {unreadable} could not be read or written (see above)" if unreadable else ""))
    print(summary, file=sys.stderr if args.json else sys.stdout)
    return EXIT_UNREADABLE if unreadable else EXIT_OK


LOG = "attacks.jsonl"


def check_outputs(out: Path, targets: list[Path], inputs: list[Path], overwrite: bool) -> None:
    """Refuse, before anything is written: an output that is an input file (whatever the path spelling, links
    and hard links included); a non-empty --out folder unless --overwrite; and even then, replacing a file
    that no previous run wrote (one its attacks.jsonl does not list)."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder")
    ids = _identities(inputs)
    for target in targets:
        other = ids.get(_identity(target))
        if other is not None:
            raise UsageError(f"--out {out}: writing {target} would overwrite the input {other}; "
                             "choose an --out folder that holds no inputs")
    if not (out.is_dir() and any(out.iterdir())):
        return
    if not overwrite:
        raise UsageError(f"--out {out} is not empty; pass --overwrite to rewrite {LOG} and replace the PNGs "
                         "of this run")
    ours = _previous_outputs(out) | {out / LOG}
    for target in targets:
        if target not in ours and (target.exists() or target.is_symlink()):
            raise UsageError(f"--out {out}: writing {target} would replace a file that no previous attack run wrote "
                             f"(its {LOG} does not list it); choose an empty --out folder")


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None  # missing: nothing there to overwrite
    return (st.st_dev, st.st_ino)


def _identities(paths: list[Path]) -> dict[tuple[int, int], Path]:
    return {i: p for p in paths if (i := _identity(p)) is not None}


def _previous_outputs(out: Path) -> set[Path]:
    """The PNGs inside `out` that the previous run's log lists as written there."""
    found, previous = set(), out / LOG
    if previous.is_file():
        for line in previous.read_text(errors="replace").splitlines():
            try:
                name = Path(json.loads(line).get("output") or "").name
            except (ValueError, AttributeError):
                continue
            if name.endswith(".png"):
                found.add(out / name)
    return found


def _remove_previous_outputs(out: Path, keep: set[Path], inputs: list[Path]) -> None:
    """--overwrite: delete the PNGs of the previous run (never an input, nothing its log does not list), so the
    new log describes the folder. Outputs this run writes again are simply replaced."""
    ids = _identities(inputs)
    for old in _previous_outputs(out) - keep:
        if old.is_file() and _identity(old) not in ids:
            old.unlink()
