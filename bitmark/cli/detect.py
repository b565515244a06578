"""`bitmark detect`: test images or bit pyramids for a key's mark."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from bitmark.cli.backend_options import add_backend_arguments
from bitmark.cli.common import (
    EXIT_OK,
    EXIT_UNREADABLE,
    UsageError,
    add_allow_shared_key,
    add_threads,
    emit,
    image_encoder,
    load_key,
    scales_list,
    weights_list,
)
from bitmark.core.keys import RULES, ConfigMismatch
from bitmark.io.folders import IMAGE_SUFFIXES, PYRAMID_SUFFIXES, iter_entries, unreadable_reason

log = logging.getLogger("bitmark")

DESCRIPTION = """Test images or bit pyramids for a key's mark; one row per image (JSON lines with --json).

Folders are walked recursively (links to folders are not followed): image files (.png .jpg .jpeg .webp .bmp
.tif .tiff .gif) and bit pyramids (.safetensors .npz) are read; every other entry gets a skip row, with
--json {"path": ..., "skipped": REASON}, in the table "PATH  skipped: REASON"; skips do not change the exit
code. A file that cannot be read (corrupt, truncated, a dangling link, more than 40 megapixels decoded, a
JPEG counted at the reduced scale it is decoded at) gets an error row {"path": ..., "error": ...} and the
others are still reported. Exit code: 0 every input read, 1 some could not be read, 2 usage, key or
configuration errors, or no inputs found, 3 a crash."""
COLUMNS = ("path", "index", "is_watermarked", "z_score", "neg_log10_p", "num_scored", "num_green", "resync")


def add_parser(sub) -> None:
    d = sub.add_parser(
        "detect", help="test images (PNG/JPEG/WebP files or folders) or bit pyramids (.safetensors/.npz)",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders, and bit pyramids (.safetensors, .npz)")
    d.add_argument("--key", required=True, help="the key file whose mark is tested")
    add_allow_shared_key(d)
    d.add_argument("--fpr", type=float, default=0.01, help="target false-positive rate (default 0.01)")
    d.add_argument("--null", choices=("self-normalised", "binomial", "model"), default=None,
                   help="default: the model null with the per-scale weights of --data's detector card (keyed-spatial keys, "
                        "images read by the shipped tokenizer, pyramids of its grids; benchmarks/RESULTS.md 'The model null "
                        "by default'), else by rule; model: the model null without weights (unless --scale-weights)")
    d.add_argument("--scale-weights", type=weights_list, default=None, metavar="W0,W1,...",
                   help="per-scale weights of the z, one per scale (e.g. learned by bitmark train detector); with the rule's "
                        "null unless --null model")
    d.add_argument("--unique", action="store_true", help="binomial null: count unique occurrences only")
    d.add_argument("--scales", type=scales_list, default=None, help="score only these watermarked scales")
    d.add_argument("--rule", choices=RULES, default=None, help="refuse unless the key uses this rule")
    d.add_argument("--context", type=int, default=None, help="refuse unless the key uses this n")
    d.add_argument("--delta", type=float, default=None, help="refuse unless the key uses this delta")
    d.add_argument("--json", action="store_true", help="JSON lines, one per image")
    d.add_argument("--counting", choices=("token", "stream"), default="token", help="stream: the published BitMark detector's count (bitmark-2025 keys)")
    d.add_argument("--encoder", choices=("tokenizer", "infinity"), default="tokenizer",
                   help="what reads image INPUTs into bits: the shipped tokenizer (default) or Infinity's VAE")
    d.add_argument("--data", default="photos", help="tokenizer: which shipped tokenizer (or a weights path)")
    d.add_argument("--resync", action=argparse.BooleanOptionalAction, default=True,
                   help="resynchronisation stage (on by default with the shipped tokenizer): estimate and undo crops, flips, "
                        "rotations and aspect changes first, p-values corrected for the search; --no-resync: the plain "
                        "detector, ~15x faster, for images known not to be moved (default: %(default)s)")
    d.add_argument("--realign", action="store_true",
                   help="instead, the older crop search (140 centred boxes, Bonferroni): slower, costs some JPEG robustness")
    add_backend_arguments(d)
    add_threads(d)
    d.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bitmark.detectors import BitDetector

    key = load_key(args.key, args.allow_shared_key)
    checks = dict(fpr=args.fpr, scales=args.scales, rule=args.rule, context=args.context, delta=args.delta)
    try:
        plain = BitDetector(key, null=args.null if args.null != "model" else None, unique=args.unique,
                            counting=args.counting, weights=args.scale_weights, **checks)
        if args.null == "model":
            detector = BitDetector(key, null="model", weights=args.scale_weights, predictor=_predictor(args), **checks)
        elif args.null is None and args.scale_weights is None and not args.unique and args.counting == "token" \
                and args.encoder == "tokenizer" and args.backend == "embedded":
            from bitmark.detectors.defaults import default_detector

            detector = default_detector(key, data=args.data, **checks)
        else:
            detector = plain
    except (ConfigMismatch, ValueError, OSError) as e:
        raise UsageError(str(e)) from e
    entries = list(iter_entries(args.inputs, IMAGE_SUFFIXES + PYRAMID_SUFFIXES))
    images = [e.path for e in entries if e.skip is None and not _is_pyramid(e.path)]
    if not any(e.skip is None for e in entries):
        emit([_skip_row(e) for e in entries], args.json, COLUMNS)
        skipped = f"; {len(entries)} {'entry' if len(entries) == 1 else 'entries'} skipped" if entries else ""
        raise UsageError(f"no inputs found (images or bit pyramids) in {', '.join(args.inputs)}{skipped}")
    image_rows = iter(_image_detector(args, detector).detect_files(images) if images else ())
    rows: list[dict[str, Any]] = []
    for entry in entries:
        if entry.skip is not None:
            rows.append(_skip_row(entry))
        elif _is_pyramid(entry.path):
            rows.extend(_pyramid_rows(detector, entry.path, plain if args.null is None else None))
        else:
            r = next(image_rows)
            rows.append(r if "error" in r else {"index": 0, **r})
    unreadable = sum("error" in r for r in rows)
    if not args.json:
        rows = [{k: v for k, v in r.items() if k not in ("scale_scored", "scale_green")} for r in rows]
    emit(rows, args.json, COLUMNS)
    return EXIT_UNREADABLE if unreadable else EXIT_OK


def _predictor(args: argparse.Namespace):
    """The model null's predictor: the generator that goes with the shipped tokenizer of --data."""
    if args.encoder != "tokenizer" or getattr(args, "backend", "embedded") != "embedded":
        raise ValueError("--null model needs the embedded generator: images read by the shipped tokenizer (--encoder tokenizer)")
    from bitmark.detectors.predicted import GeneratorPredictor
    from bitmark.models import load_generator

    return GeneratorPredictor(load_generator(args.data)[0])


def _is_pyramid(path: Path) -> bool:
    return path.suffix.lower() in PYRAMID_SUFFIXES


def _skip_row(entry) -> dict[str, Any]:
    return {"path": str(entry.path), "skipped": entry.skip}


def _pyramid_rows(detector, path: Path, plain=None) -> list[dict[str, Any]]:
    """One row per pyramid in the file, or one error row: no failure of one file reaches the others.
    plain: the detector for pyramids of grids the default detector's generator does not predict (e.g. Infinity's)."""
    from bitmark.core.pyramid import as_pyramid, load_pyramid

    problem = unreadable_reason(path) or _npz_too_large(path)
    try:
        if problem:
            raise ValueError(f"{path}: {problem}")
        pyramid = as_pyramid(load_pyramid(path))
        if plain is not None and detector.predictor is not None and \
                [tuple(t.shape[1:3]) for t in pyramid] != detector.predictor.grids:
            detector = plain
        result = detector.detect(pyramid)
    except MemoryError:
        error = f"{path}: out of memory reading the bit pyramid"
    except Exception as e:  # noqa: BLE001 -- PyramidError, OSError, zip and safetensors errors of a corrupt file
        error = str(e) if str(path) in str(e) else f"{path}: cannot read the bit pyramid ({type(e).__name__}: {e})"
    else:
        return [{"path": str(path), "index": i, **row} for i, row in enumerate(result.rows())]
    log.warning("%s", error)
    return [{"path": str(path), "error": error}]


MAX_NPZ_BYTES = 2**30  # 10^9 bits: far above any real pyramid file, far below a zip bomb's claim


def _npz_too_large(path: Path) -> str | None:
    """A .npz is a zip: refuse one whose members inflate to more than MAX_NPZ_BYTES, before inflating them."""
    import zipfile

    if path.suffix.lower() != ".npz":
        return None
    try:
        with zipfile.ZipFile(path) as z:
            size = sum(i.file_size for i in z.infolist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return None  # load_pyramid reports what is wrong with it
    if size > MAX_NPZ_BYTES:
        return f"its arrays inflate to {size:,} bytes, over the limit of {MAX_NPZ_BYTES:,}; refused without inflating"
    return None


def _image_detector(args: argparse.Namespace, detector):
    from bitmark.detectors.resync import make_image_detector

    if args.realign:
        from bitmark.detectors.realign import RealigningDetector

        if args.encoder != "tokenizer" or args.backend != "embedded":
            raise UsageError("--realign works with the shipped tokenizer's fixed image size only")
        return RealigningDetector(image_encoder(args), detector)
    return make_image_detector(image_encoder(args), detector, resync=args.resync)
