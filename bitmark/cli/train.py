"""`bitmark train`: train one of the embedded models (seeded, resumable, time-bounded)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bitmark.cli.common import EXIT_OK, UsageError, add_threads


def add_parser(sub) -> None:
    t = sub.add_parser("train", help="train a shipped model (seeded, resumable, with a wall-time budget)")
    t.add_argument("kind", choices=("tokenizer", "generator", "classifier", "autoencoder", "robust", "detector"),
                   help="which model to train (robust: fine-tune a trained tokenizer through a random image channel; "
                        "detector: learn the default detector's per-scale weights for --data's generator, a JSON card)")
    t.add_argument("--data", required=True, help="photos, digits, or a folder of images (class = sub-folder)")
    t.add_argument("--out", default=None, help="weights path without suffix (default: RUN_DIR/DATA-KIND)")
    t.add_argument("--run-dir", default=None, help="checkpoint folder, default runs/DATA-KIND; an existing checkpoint is resumed")
    t.add_argument("--install", action="store_true",
                   help="write the weights into the package (bitmark/models/weights/DATA-KIND), replacing the shipped ones")
    t.add_argument("--steps", type=int, default=2000, help="optimiser steps in all (a resumed run counts those done)")
    t.add_argument("--batch-size", type=int, default=64, help="images per step")
    t.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    t.add_argument("--seed", type=int, default=0, help="seed of initialisation and batches")
    t.add_argument("--image-size", type=int, default=None,
                   help="image side in px (default 32; 64 gives the (1,2,4,8,16) schedule, 10,912 bits); "
                        "names default to DATA64-KIND; a generator takes its tokenizer's size")
    t.add_argument("--budget-minutes", type=float, default=None, help="stop (and checkpoint) after this long")
    t.add_argument("--cycle", type=float, default=1.0, help="tokenizer: weight of the round-trip hinge")
    t.add_argument("--tokenizer", default=None, help="generator, robust: the tokenizer weights (default: the shipped one)")
    r = t.add_argument_group("robust (--data: a shipped name or a generator weights path, e.g. runs/X/X)")
    r.add_argument("--generator", default=None, help="the generator weights whose tokenizer is fine-tuned (default: --data's)")
    r.add_argument("--refit-steps", type=int, default=0, help="then fine-tune the generator on the new codes for this many steps")
    r.add_argument("--drop-skip", action="store_true", help="remove the tokenizer's linear patch paths")
    r.add_argument("--channel", default=None, help="comma-separated channel ops (default: all of bitmark.training.channel)")
    r.add_argument("--quality", type=float, default=1.0, help="scale of the regulariser to the frozen decoder's output")
    t.add_argument("--calibration", type=int, default=300, help="detector: marked calibration samples (default 300)")
    t.add_argument("--json", action="store_true", help="print the weights card as JSON")
    add_threads(t)
    t.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import bitmark
    from bitmark.models import WEIGHTS_DIR
    from bitmark.training.loop import TrainConfig
    from bitmark.training.recipes import RECIPES, SizeMismatch

    data_name = Path(args.data).name if Path(args.data).is_dir() or args.kind == "robust" else args.data
    size = args.image_size
    name = f"{data_name}{size if size not in (None, 32) else ''}-{args.kind}"
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / name
    if args.install and args.out:
        raise UsageError("give --out PATH or --install (the shipped place, bitmark/models/weights), not both")
    out = WEIGHTS_DIR / name if args.install else Path(args.out) if args.out else run_dir / name
    package = Path(bitmark.__file__).resolve().parent
    if not args.install and out.resolve().is_relative_to(package):
        raise UsageError(f"--out {out} is inside the installed package ({package}); "
                         "pass --install to replace the shipped weights, or write elsewhere")
    if args.kind == "detector":
        return _detector(args, out)
    cfg = TrainConfig(
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed, budget_minutes=args.budget_minutes
    )
    if size is not None and args.kind == "tokenizer":
        from bitmark.models.tokenizer import schedule_for

        try:
            schedule_for(size)
        except ValueError as e:
            raise UsageError(f"--image-size: {e}") from e
    if args.kind == "generator":
        extra = {"tokenizer": args.tokenizer, "image_size": size}
        if size not in (None, 32) and args.tokenizer is None:
            raise UsageError(f"--image-size {size}: pass the tokenizer trained at that size with --tokenizer")
    elif args.kind == "robust":
        from bitmark.training import channel
        from bitmark.training.robust import RobustConfig

        ops = tuple(o.strip() for o in (args.channel or "").split(",") if o.strip())
        if set(ops) - set(channel.names()):
            raise UsageError(f"--channel {args.channel}: known ops are {', '.join(channel.names())}")
        rcfg = RobustConfig(refit_steps=args.refit_steps, drop_skip=args.drop_skip, ops=ops)
        rcfg.low_weight, rcfg.high_weight = rcfg.low_weight * args.quality, rcfg.high_weight * args.quality
        extra = {"tokenizer": args.tokenizer, "generator": args.generator, "rcfg": rcfg}
    else:
        extra = {"image_size": size or 32, **({"cycle": args.cycle} if args.kind == "tokenizer" else {})}
    try:
        card = RECIPES[args.kind](args.data, out, cfg, run_dir, **extra)
    except SizeMismatch as e:
        raise UsageError(str(e)) from e
    if args.json:
        print(json.dumps(card))
    else:
        print(f"wrote {out}.safetensors and {out}.json after {card['steps']} steps, {card['wall_s']:.0f} s ({card['stopped_by']})")
        if not args.install:
            print(f"use them with --data {out}; ship them with --install (or copy both files to {WEIGHTS_DIR})")
        print(json.dumps(card["metrics"], indent=2))
    return EXIT_OK


def _detector(args: argparse.Namespace, out: Path) -> int:
    from bitmark.models import MissingWeights
    from bitmark.training.detector import DetectorCalibration, train_detector

    if args.calibration < 10:
        raise UsageError(f"--calibration must be at least 10 samples, got {args.calibration}")
    try:
        card = train_detector(args.data, out, DetectorCalibration(num=args.calibration, seed=1000 + args.seed))
    except MissingWeights as e:
        raise UsageError(str(e)) from e
    if args.json:
        print(json.dumps(card))
    else:
        print(f"wrote {out.with_suffix('.json')}: model null, scale weights {card['scale_weights']} "
              f"(mean z of the calibration samples after {card['calibration']['attack']}: {card['calibration']['mean_z']:.2f})")
    return EXIT_OK
