"""The `bitmark` command. Exit codes: 0 all inputs read, 1 some inputs unreadable, 2 usage/key/config error."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from bitmark.keys import RULES, ConfigMismatch, KeyFileError, WatermarkConfig, WatermarkKey

log = logging.getLogger("bitmark")

EXIT_OK, EXIT_UNREADABLE, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A problem with the command line, a key or a configuration: exit code 2."""


def _scales(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"scales are comma-separated integers, got {text!r}") from None


def _load_key(path: str) -> WatermarkKey:
    try:
        return WatermarkKey.load(path)
    except KeyFileError as e:
        raise UsageError(str(e)) from e


def _emit(rows: list[dict[str, Any]], as_json: bool, columns: Sequence[str]) -> None:
    """Print rows as JSON lines or as an aligned table of `columns` (error rows show their error)."""
    if as_json:
        for r in rows:
            print(json.dumps(r))
        return
    table = [list(columns)] + [[_fmt(r.get(c)) for c in columns] for r in rows if "error" not in r]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    lines = iter(table[1:])
    print("  ".join(c.ljust(w) for c, w in zip(table[0], widths)).rstrip())
    for r in rows:
        if "error" in r:
            print(f"{r.get(columns[0], '')}  error: {r['error']}")
        else:
            print("  ".join(c.ljust(w) for c, w in zip(next(lines), widths)).rstrip())


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e-3 and v != 0 else f"{v:.2f}"
    return "" if v is None else str(v)


# ---------------------------------------------------------------------------------------------- keygen


def cmd_keygen(args: argparse.Namespace) -> int:
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


# ---------------------------------------------------------------------------------------------- detect

PYRAMID_SUFFIXES = (".safetensors", ".npz")
DETECT_COLUMNS = ("path", "index", "is_watermarked", "z_score", "log10_p", "num_scored", "num_green")


def cmd_detect(args: argparse.Namespace) -> int:
    from bitmark.pyramid import PyramidError, load_pyramid
    from detectors import BitDetector

    key = _load_key(args.key)
    try:
        detector = BitDetector(
            key,
            fpr=args.fpr,
            null=args.null,
            unique=args.unique,
            scales=args.scales,
            rule=args.rule,
            context=args.context,
            delta=args.delta,
        )
    except (ConfigMismatch, ValueError) as e:
        raise UsageError(str(e)) from e
    from bitmark.images import iter_image_files
    from detectors.image_detector import ImageDetector

    pyramid_files = [p for p in args.inputs if Path(p).suffix in PYRAMID_SUFFIXES]
    image_files = list(iter_image_files(p for p in args.inputs if Path(p).suffix not in PYRAMID_SUFFIXES))
    rows: list[dict[str, Any]] = []
    for path in pyramid_files:
        try:
            result = detector.detect(load_pyramid(path))
        except (PyramidError, ValueError, OSError) as e:
            log.warning("%s", e)
            rows.append({"path": path, "error": str(e)})
            continue
        rows.extend({"path": path, "index": i, **row} for i, row in enumerate(result.rows()))
    if image_files:
        if args.realign:
            from detectors.realign import RealigningDetector

            if args.encoder != "tokenizer":
                raise UsageError("--realign works with the shipped tokenizer's fixed image size only")
            images = RealigningDetector(_image_encoder(args), detector)
        else:
            images = ImageDetector(_image_encoder(args), detector)
        rows.extend(r if "error" in r else {"index": 0, **r} for r in images.detect_files(image_files))
    unreadable = sum("error" in r for r in rows)
    if not args.json:
        rows = [{k: v for k, v in r.items() if k not in ("scale_scored", "scale_green")} for r in rows]
    _emit(rows, args.json, DETECT_COLUMNS)
    return EXIT_UNREADABLE if unreadable else EXIT_OK


def _image_encoder(args: argparse.Namespace):
    """The encoder that turns detect's image INPUTs into bits: the shipped tokenizer, or Infinity's VAE."""
    try:
        if args.encoder == "infinity":
            from bitmark.adapters import infinity

            return infinity.encoder_from_args(args)
        from bitmark.models import load_tokenizer

        return load_tokenizer(args.data)
    except (ImportError, OSError, ValueError) as e:
        raise UsageError(str(e)) from e


# ---------------------------------------------------------------------------------------------- generate


def cmd_generate(args: argparse.Namespace) -> int:
    from bitmark.generate import generate_files
    from bitmark.models import MissingWeights

    if not args.no_watermark and not args.key:
        raise UsageError("give --key KEY.json (or --no-watermark for clean samples)")
    key = None if args.no_watermark else _load_key(args.key)
    try:
        rows = generate_files(
            Path(args.out), args.num, key=key, data=args.data, class_name=args.class_name, seed=args.seed,
            cfg_scale=args.cfg, temperature=args.temperature, top_p=args.top_p,
        )
    except (MissingWeights, ValueError) as e:
        raise UsageError(str(e)) from e
    if args.json:
        for r in rows:
            print(json.dumps(r))
    else:
        print(f"wrote {len(rows)} images and samples.jsonl to {args.out}")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace) -> int:
    from bitmark.demo import image_demo
    from bitmark.models import MissingWeights

    key = _load_key(args.key) if args.key else None
    try:
        rows = image_demo(Path(args.out), num=args.num, seed=args.seed, data=args.data, key=key)
    except MissingWeights as e:
        raise UsageError(str(e)) from e
    _emit(rows, args.json, ("sample", "class", "watermarked", "z_score", "log10_p", "is_watermarked"))
    if not args.json:
        tp = sum(r["is_watermarked"] for r in rows if r["watermarked"])
        fp = sum(r["is_watermarked"] for r in rows if not r["watermarked"])
        n = len(rows) // 2
        print(f"\nflagged {tp}/{n} watermarked and {fp}/{n} clean samples at 1% FPR, detected from the PNG files")
        print(f"grid: {args.out}/demo-grid.png; try: bitmark detect --key {args.key or args.out + '/demo-key.json'} {args.out}")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- attack


def cmd_attack(args: argparse.Namespace) -> int:
    import attacks
    from bitmark.images import ImageError, iter_image_files, load_image, save_png

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
        from detectors import BitDetector

        options["oracle"] = BitDetector(_load_key(args.key)).green_status
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


# ---------------------------------------------------------------------------------------------- train


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from bitmark.models import WEIGHTS_DIR
    from bitmark.recipes import RECIPES
    from bitmark.training import TrainConfig

    torch.set_num_threads(args.threads)
    cfg = TrainConfig(
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed, budget_minutes=args.budget_minutes
    )
    data_name = Path(args.data).name if Path(args.data).is_dir() else args.data
    out = Path(args.out) if args.out else WEIGHTS_DIR / f"{data_name}-{args.kind}"
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / f"{data_name}-{args.kind}"
    extra = {"tokenizer": {"cycle": args.cycle}, "generator": {"tokenizer": args.tokenizer}}.get(args.kind, {})
    card = RECIPES[args.kind](args.data, out, cfg, run_dir, **extra)
    if args.json:
        print(json.dumps(card))
    else:
        print(f"wrote {out}.safetensors and {out}.json after {card['steps']} steps, {card['wall_s']:.0f} s ({card['stopped_by']})")
        print(json.dumps(card["metrics"], indent=2))
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- bench


def cmd_bench(args: argparse.Namespace) -> int:
    if args.name == "speed":
        from benchmarks.speed import run

        run(as_json=args.json, repeats=args.repeats)
    elif args.name == "null":
        from benchmarks.null_calibration import run

        run(num=args.num or 5000, keys=args.keys, as_json=args.json)
    elif args.name == "robustness":
        from benchmarks import robustness

        cfg = robustness.quick_config() if args.quick else robustness.Config()
        if args.num:
            cfg.num = args.num
        if args.attacks:
            cfg.attacks = [s.strip() for s in args.attacks.split(",") if s.strip()]
        if args.schemes:
            cfg.schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
        cfg.num_negatives = args.negatives or cfg.num_negatives
        cfg.realign = args.realign
        if args.no_baselines:
            cfg.baseline_num = {}
        if not args.out:
            raise UsageError("give --out DIR for the results")
        result = robustness.run(Path(args.out), cfg)
        print(json.dumps(result) if args.json else (Path(args.out) / "summary.md").read_text())
    elif args.name == "radioactivity":
        from benchmarks.radioactivity import run

        if not args.out:
            raise UsageError("bench radioactivity needs --out DIR (finished arms there are reused)")
        run(args.out, quick=args.quick, as_json=args.json, data=args.data)
    else:
        from benchmarks.recoverability import run

        run(data=args.data, num=args.num or 200, as_json=args.json)
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- scan, collapse


def cmd_scan(args: argparse.Namespace) -> int:
    from detectors.scan import scan

    key = _load_key(args.key)
    encoder = _image_encoder(args)
    r = scan(key, args.inputs, args.out, fpr=args.fpr, keep_list=args.keep, limit=args.limit, encoder=encoder)
    print(json.dumps(r) if args.json else
          f"{args.out}: {r['files']} files ({r['new']} new), {r['flagged']} flagged, {r['errors']} unreadable"
          + (f", {r['remaining']} not yet scanned" if r["remaining"] else "") + (f"; keep list {args.keep}" if args.keep else ""))
    return EXIT_UNREADABLE if r["errors"] else EXIT_OK


def cmd_collapse(args: argparse.Namespace) -> int:
    from benchmarks.collapse.run import run

    r = run(Path(args.out), preset="quick" if args.quick else "full", seeds=args.seeds, generations=args.generations)
    print(json.dumps(r) if args.json else f"wrote {args.out}/generations.csv, collapse.png, summary.md ({r['wall_s']:.0f} s)")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bitmark", description=__doc__.split(".")[0] + ".")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress and details")
    sub = p.add_subparsers(dest="command", required=True)

    k = sub.add_parser("keygen", help="make a new random 256-bit key file (mode 0600)")
    k.add_argument("--out", required=True, help="key file to write (never overwritten)")
    k.add_argument("--rule", choices=RULES, default=WatermarkConfig.rule)
    k.add_argument("--context", type=int, default=WatermarkConfig.context, help="context width n (2..8)")
    k.add_argument("--delta", type=float, default=WatermarkConfig.delta, help="logit bias of green bits")
    k.add_argument("--scales", type=_scales, default=None, help="watermarked scale indices, e.g. 2,3,4 (default all)")
    k.add_argument("--json", action="store_true")
    k.set_defaults(func=cmd_keygen)

    d = sub.add_parser("detect", help="test images (PNG/JPEG/WebP files or folders) or bit pyramids (.safetensors/.npz)")
    d.add_argument("inputs", nargs="+", metavar="INPUT")
    d.add_argument("--key", required=True)
    d.add_argument("--fpr", type=float, default=0.01, help="target false-positive rate (default 0.01)")
    d.add_argument("--null", choices=("self-normalised", "binomial"), default=None, help="default: by rule")
    d.add_argument("--unique", action="store_true", help="binomial null: count unique occurrences only")
    d.add_argument("--scales", type=_scales, default=None, help="score only these watermarked scales")
    d.add_argument("--rule", choices=RULES, default=None, help="refuse unless the key uses this rule")
    d.add_argument("--context", type=int, default=None, help="refuse unless the key uses this n")
    d.add_argument("--delta", type=float, default=None, help="refuse unless the key uses this delta")
    d.add_argument("--json", action="store_true", help="JSON lines, one per image")
    d.add_argument("--encoder", choices=("tokenizer", "infinity"), default="tokenizer",
                   help="what reads image INPUTs into bits: the shipped tokenizer (default) or Infinity's VAE")
    d.add_argument("--data", default="photos", help="tokenizer: which shipped tokenizer (or a weights path)")
    d.add_argument("--realign", action="store_true",
                   help="also try undoing centre crops (140 boxes; p-values Bonferroni-corrected): finds cropped marks, costs some JPEG robustness")
    from bitmark.adapters.infinity import add_cli_arguments

    add_cli_arguments(d)
    d.set_defaults(func=cmd_detect)

    g = sub.add_parser("generate", help="sample images from the shipped generator, watermarked with a key")
    g.add_argument("--key", help="key file; required unless --no-watermark")
    g.add_argument("--num", type=int, default=16)
    g.add_argument("--out", required=True, help="folder for the PNGs and samples.jsonl")
    g.add_argument("--class", dest="class_name", default=None, help="class name or index (default: round-robin)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--no-watermark", action="store_true", help="sample without the watermark")
    g.add_argument("--data", default="photos", help="which shipped generator (or a weights path)")
    g.add_argument("--cfg", type=float, default=2.0, help="classifier-free guidance scale")
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument("--top-p", type=float, default=1.0, help="per-bit top-p, applied after the watermark's bias")
    g.add_argument("--json", action="store_true")
    g.set_defaults(func=cmd_generate)

    m = sub.add_parser("demo", help="key -> watermarked and clean samples as PNG -> detection from the files")
    m.add_argument("--out", default="demo-out", help="folder for the demo key, PNGs and grid")
    m.add_argument("--key", default=None, help="use this key file (default: make a fresh one in --out)")
    m.add_argument("--data", default="photos", help="which shipped generator")
    m.add_argument("--num", type=int, default=16, help="samples of each kind")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_demo)

    a = sub.add_parser("attack", help="apply an attack (or a chain, jpeg:50+crop:0.7) to images; --list shows all")
    a.add_argument("spec", nargs="?", help="NAME:STRENGTH[+NAME:STRENGTH...]")
    a.add_argument("inputs", nargs="*", metavar="INPUT", help="image files or folders")
    a.add_argument("--out", help="folder for attacked PNGs (same file names) and attacks.jsonl")
    a.add_argument("--list", action="store_true", help="list attacks with units, ranges and default grids")
    a.add_argument("--seed", type=int, default=0, help="seed of randomised attacks (image i uses seed + i)")
    a.add_argument("--key", default=None, help="white-box attacks (bitflip, forge): the key whose green bits they see")
    a.add_argument("--observed", default=None, help="rule stealing (steal_remove, steal_forge): folder of watermarked images")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_attack)

    t = sub.add_parser("train", help="train a shipped model (seeded, resumable, with a wall-time budget)")
    t.add_argument("kind", choices=("tokenizer", "generator", "classifier", "autoencoder"))
    t.add_argument("--data", required=True, help="photos, digits, or a folder of images (class = sub-folder)")
    t.add_argument("--out", default=None, help="weights path without suffix (default: bitmark/weights/DATA-KIND)")
    t.add_argument("--run-dir", default=None, help="checkpoint folder; an existing checkpoint is resumed")
    t.add_argument("--steps", type=int, default=2000)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--budget-minutes", type=float, default=None, help="stop (and checkpoint) after this long")
    t.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for small models here)")
    t.add_argument("--cycle", type=float, default=1.0, help="tokenizer: weight of the round-trip hinge")
    t.add_argument("--tokenizer", default=None, help="generator: the tokenizer weights (default: the shipped one)")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_train)

    b = sub.add_parser("bench", help="run a benchmark: speed, null, recoverability, robustness, radioactivity")
    b.add_argument("name", choices=("speed", "null", "recoverability", "robustness", "radioactivity"))
    b.add_argument("--repeats", type=int, default=5, help="speed: timing repeats (best is kept)")
    b.add_argument("--num", type=int, default=None, help="null: pyramids per source (5000); recoverability: samples of each kind (200); robustness: watermarked samples per scheme (500)")
    b.add_argument("--data", default="photos", help="recoverability: which shipped models")
    b.add_argument("--keys", type=int, default=8, help="null: fixed keys per arm")
    b.add_argument("--quick", action="store_true", help="robustness: 64 positives, 500 + 500 negatives, the headline attacks, 2 deltas; radioactivity: 2 shares, short training")
    b.add_argument("--attacks", default=None, help="robustness: comma-separated specs (default: every grid)")
    b.add_argument("--schemes", default=None, help="robustness: comma-separated bit schemes (default: all three)")
    b.add_argument("--negatives", type=int, default=None, help="robustness: clean samples and real crops each (default: --num)")
    b.add_argument("--realign", action="store_true", help="robustness: add the default detector with the crop search")
    b.add_argument("--no-baselines", action="store_true", help="robustness: skip invisible-watermark even when installed")
    b.add_argument("--out", default=None, help="robustness, radioactivity: output folder (an unfinished run there resumes)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_bench)

    s = sub.add_parser("scan", help="scan image folders for a key's mark into a resumable JSONL manifest (+ keep list)")
    s.add_argument("inputs", nargs="+", metavar="DIR")
    s.add_argument("--key", required=True)
    s.add_argument("--out", required=True, help="manifest (JSONL, appended; a rerun resumes where it stopped)")
    s.add_argument("--fpr", type=float, default=0.01, help="target false-positive rate (default 0.01)")
    s.add_argument("--keep", default=None, help="write the files to keep (readable, not flagged) to this list")
    s.add_argument("--limit", type=int, default=None, help="scan at most this many new files, then stop")
    s.add_argument("--encoder", choices=("tokenizer",), default="tokenizer")
    s.add_argument("--data", default="photos", help="which shipped tokenizer (or a weights path)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_scan)

    c = sub.add_parser("collapse", help="the collapse loop: does filtering watermarked images slow model collapse?")
    c.add_argument("--out", required=True, help="folder for generations.csv, collapse.png, summary.md (resumable)")
    c.add_argument("--quick", action="store_true", help="a small configuration (under 5 minutes)")
    c.add_argument("--seeds", type=int, default=None, help="override the preset's number of seeds")
    c.add_argument("--generations", type=int, default=None, help="override the preset's T")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_collapse)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return args.func(args)
    except (UsageError, ConfigMismatch) as e:
        print(f"bitmark {args.command}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as e:  # configuration values rejected by the library
        print(f"bitmark {args.command}: {e}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
