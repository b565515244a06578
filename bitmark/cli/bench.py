"""`bitmark bench NAME`: the benchmarks that produce the figures in benchmarks/RESULTS.md.

Each benchmark is its own sub-command with only its own options, so an option meant for another one is
refused by name instead of being ignored; every setting is checked before anything is written or loaded.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bitmark.cli.backend_options import add_backend_arguments, backend_from_args
from bitmark.cli.common import EXIT_OK, UsageError, add_threads, positive_int

BENCHES = ("speed", "null", "recoverability", "robustness", "radioactivity", "compat", "scan", "stealing", "seed-bits",
           "detect-speed", "spending", "steganalysis")


def add_parser(sub) -> None:
    b = sub.add_parser("bench", help="run a benchmark: " + ", ".join(BENCHES),
                       description="Run one benchmark; `bitmark bench NAME --help` lists its options.")
    names = b.add_subparsers(dest="bench", required=True, metavar="NAME")

    s = names.add_parser("speed", help="sampler overhead and detector throughput at Infinity-2B 1024² shapes")
    s.add_argument("--repeats", type=positive_int, default=5, help="interleaved timing rounds (medians reported)")
    s.add_argument("--quick", action="store_true", help="a smoke run: detector at batch 1 and 4, no end-to-end figures")
    _common_options(s)
    s.set_defaults(func=run_speed)

    n = names.add_parser("null", help="false-positive rate of each rule and null for single fixed keys")
    n.add_argument("--num", type=positive_int, default=5000, help="pyramids per source")
    n.add_argument("--keys", type=positive_int, default=8, help="fixed keys per arm")
    _common_options(n)
    n.set_defaults(func=run_null)

    r = names.add_parser("recoverability", help="does the mark survive PNG files? and sample quality")
    r.add_argument("--num", type=positive_int, default=200, help="samples of each kind")
    r.add_argument("--data", default="photos", help="which shipped models and their data set, or a generator weights path (runs/X/X)")
    add_backend_arguments(r)
    _common_options(r)
    r.set_defaults(func=run_recoverability)

    rb = names.add_parser("robustness", help="every attack x scheme: TPR at 1%% FPR, AUC, PSNR; quality per δ")
    rb.add_argument("--out", required=True, help="output folder (an unfinished run there with the same settings resumes)")
    rb.add_argument("--quick", action="store_true",
                    help="64 positives, 500 + 500 negatives, the headline attacks, 2 deltas (about 2 minutes)")
    rb.add_argument("--num", type=positive_int, default=None, help="watermarked samples per scheme (default: 500, --quick 64)")
    rb.add_argument("--negatives", type=positive_int, default=None,
                    help="clean samples and real crops each (default: --num; --quick 500; real crops at most 950)")
    rb.add_argument("--attacks", default=None, help="comma-separated specs, e.g. jpeg:75,crop:0.5 (default: every grid)")
    rb.add_argument("--schemes", default=None, help="comma-separated bit schemes (default: all three)")
    rb.add_argument("--realign", action="store_true", help="add the default detector with the older crop search")
    rb.add_argument("--resync", action=argparse.BooleanOptionalAction, default=None,
                    help="rows of the default detector with the resynchronisation stage beside the plain ones (default, "
                         "except with --quick); --no-resync skips them (the stage costs ~40 ms per image, most of the run's time)")
    rb.add_argument("--null", choices=("self-normalised",), default=None,
                    help="the default scheme's null (default: the detectors' default, the model null with the weights of "
                         "the generator's detector card); self-normalised: the default before it")
    rb.add_argument("--no-quality", action="store_true", help="skip the quality-per-delta table")
    rb.add_argument("--no-baselines", action="store_true", help="skip invisible-watermark even when installed")
    rb.add_argument("--data", default="photos", help="embedded: a shipped name or a generator weights path (runs/X/X)")
    add_backend_arguments(rb)
    _common_options(rb)
    rb.set_defaults(func=run_robustness)

    ra = names.add_parser("radioactivity", help="do models trained on marked images emit the mark?")
    ra.add_argument("--out", required=True, help="output folder (finished arms there are reused)")
    ra.add_argument("--quick", action="store_true", help="2 shares, short training")
    ra.add_argument("--data", default="photos", help="which shipped models and held-out crops")
    ra.add_argument("--shares", default=None,
                    help="comma-separated marked shares, e.g. 0.1,0.05,0.01,0 (0 = the control; default 1,0.5,0.1,0.05,0)")
    add_backend_arguments(ra)
    _common_options(ra)
    ra.set_defaults(func=run_radioactivity)

    sp = names.add_parser("spending", help="per-scale weights, the model null and the entropy gate: TPR, FPR, FD")
    sp.add_argument("--num", type=positive_int, default=400, help="watermarked test samples per arm")
    sp.add_argument("--negatives", type=positive_int, default=1000, help="clean samples (plus up to 950 real crops)")
    sp.add_argument("--calibration", type=positive_int, default=300, help="calibration samples (another key, other seeds)")
    _common_options(sp)
    sp.set_defaults(func=run_spending)

    c = names.add_parser("compat", help="z of the published BitMark stream count next to ours, on the same bits")
    c.add_argument("--num", type=positive_int, default=64, help="samples of each arm")
    add_backend_arguments(c)
    _common_options(c)
    c.set_defaults(func=run_compat)

    sc = names.add_parser("scan", help="images/s of bitmark scan: the local engine and Ray with 1 and 2 workers")
    sc.add_argument("--num", type=positive_int, default=800, help="held-out photos written as PNG and scanned")
    _common_options(sc)
    sc.set_defaults(func=run_scan)

    st = names.add_parser("stealing", help="forgery and removal by attackers who observed N marked images, per rule")
    st.add_argument("--out", required=True, help="output folder")
    st.add_argument("--observed", default="10,100,1000", help="comma-separated numbers of observed watermarked images")
    st.add_argument("--targets", type=positive_int, default=200,
                    help="forged clean, forged real and laundered marked images each")
    st.add_argument("--seed-bits", type=positive_int, default=None,
                    help="keyed-content(-robust) seed width for this run (a design sweep; default: the rule's)")
    st.add_argument("--schemes", default=None,
                    help="comma-separated bit schemes (default: keyed-spatial (old default),keyed-content; "
                         "also keyed-content-robust)")
    _common_options(st)
    st.set_defaults(func=run_stealing)

    sb = names.add_parser("seed-bits", help="which parent bits survive the headline attacks and how often seeds repeat")
    sb.add_argument("--num", type=positive_int, default=1000, help="marked samples (entropy, seed collisions)")
    sb.add_argument("--attacked", type=positive_int, default=200, help="of those, attacked (survival shares)")
    _common_options(sb)
    sb.set_defaults(func=run_seed_bits)

    ds = names.add_parser("detect-speed", help="images/s of bitmark detect from PNG files, resynchronisation off and on")
    ds.add_argument("--num", type=positive_int, default=128, help="watermarked samples written as PNG")
    _common_options(ds)
    ds.set_defaults(func=run_detect_speed)

    sg = names.add_parser("steganalysis", help="can keyless classifiers tell watermarked from clean? per δ, with FD and TPR after JPEG 75")
    sg.add_argument("--out", required=True, help="output folder")
    sg.add_argument("--quick", action="store_true", help="a smoke run: 24 + 24 images, δ = 2, 2 folds, 2 CNN epochs, one L2 strength (seconds)")
    sg.add_argument("--num", type=positive_int, default=None, help="watermarked and clean samples each, per δ (default 400)")
    sg.add_argument("--deltas", default=None, help="comma-separated δ values (default 0.5,1,2,4; --quick 2)")
    sg.add_argument("--data", default="photos", help="which shipped generator, or a weights path such as runs/X/X")
    _common_options(sg)
    sg.set_defaults(func=run_steganalysis)


def _common_options(p: argparse.ArgumentParser) -> None:
    """The options every benchmark has: --json and --threads."""
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    add_threads(p)


def run_speed(args: argparse.Namespace) -> int:
    from bitmark.benchmarks.speed import run

    run(as_json=args.json, repeats=args.repeats, quick=args.quick)
    return EXIT_OK


def run_null(args: argparse.Namespace) -> int:
    from bitmark.benchmarks.null_calibration import run

    run(num=args.num, keys=args.keys, as_json=args.json)
    return EXIT_OK


def run_recoverability(args: argparse.Namespace) -> int:
    from bitmark.benchmarks.recoverability import run
    from bitmark.io.datasets import require_extras
    from bitmark.models import MissingWeights

    require_extras(args.data)
    try:
        run(data=args.data, num=args.num, as_json=args.json, backend=backend_from_args(args))
    except MissingWeights as e:
        raise UsageError(str(e)) from e
    return EXIT_OK


def _items(text: str | None) -> list[str] | None:
    return None if text is None else [s.strip() for s in text.split(",") if s.strip()]


def run_robustness(args: argparse.Namespace) -> int:
    from bitmark.benchmarks import robustness

    cfg = robustness.quick_config() if args.quick else robustness.Config()
    if args.num:
        cfg.num = args.num
    if args.attacks is not None:
        cfg.attacks = _items(args.attacks)
        if not cfg.attacks:
            raise UsageError("--attacks is empty; leave it out for every attack at every grid strength")
    if args.schemes is not None:
        cfg.schemes = _items(args.schemes)
    cfg.num_negatives = args.negatives or cfg.num_negatives
    cfg.realign = args.realign
    if args.resync is not None:
        cfg.resync = args.resync
    cfg.quality = not args.no_quality
    cfg.null = args.null
    if args.no_baselines:
        cfg.baseline_num = {}
    out = Path(args.out)
    result = robustness.run(out, cfg, backend=backend_from_args(args))  # checks every setting before a file is written or a model loaded
    if args.json:
        print(json.dumps(result))
    else:
        print((out / "summary.md").read_text())
        print("wrote " + ", ".join(str(out / f) for f in result["files"]))
    return EXIT_OK


def run_radioactivity(args: argparse.Namespace) -> int:
    from bitmark.benchmarks.radioactivity import run
    from bitmark.models import MissingWeights

    plan = None
    if args.shares:
        import dataclasses

        from bitmark.benchmarks.radioactivity import FULL, QUICK

        try:
            shares = tuple(float(s) for s in args.shares.split(","))
        except ValueError as e:
            raise UsageError(f"--shares: {e}") from e
        if any(not 0 <= s <= 1 for s in shares):
            raise UsageError("--shares: each share is between 0 and 1")
        plan = dataclasses.replace(QUICK if args.quick else FULL, shares=shares)
    try:
        run(args.out, quick=args.quick, as_json=args.json, plan=plan, data=args.data, backend=backend_from_args(args))
    except MissingWeights as e:
        raise UsageError(str(e)) from e
    return EXIT_OK


def run_spending(args: argparse.Namespace) -> int:
    from bitmark.benchmarks.bias_spending import Config, run

    run(Config(num=args.num, negatives=args.negatives, calibration=args.calibration), as_json=args.json)
    return EXIT_OK


def run_compat(args: argparse.Namespace) -> int:
    from bitmark.benchmarks.compat import run

    run(backend_from_args(args), num=args.num, as_json=args.json)
    return EXIT_OK


def run_scan(args: argparse.Namespace) -> int:
    from bitmark.benchmarks.scan_speed import run
    from bitmark.detectors.scan_ray import RayMissing

    try:
        run(num=args.num, as_json=args.json)
    except RayMissing as e:
        raise UsageError(str(e)) from None
    return EXIT_OK


def run_seed_bits(args: argparse.Namespace) -> int:
    from bitmark.benchmarks import seed_bits

    if args.attacked > args.num:
        raise UsageError(f"--attacked ({args.attacked}) must be at most --num ({args.num})")
    result = seed_bits.measure(seed_bits.Config(num=args.num, attacked=args.attacked))
    print(json.dumps(result) if args.json else seed_bits.summary(result))
    return EXIT_OK


def run_stealing(args: argparse.Namespace) -> int:
    from bitmark.benchmarks import stealing

    try:
        observed = tuple(int(n) for n in args.observed.split(",") if n.strip())
    except ValueError:
        raise UsageError(f"--observed takes comma-separated whole numbers, got {args.observed!r}") from None
    if not observed or min(observed) < 1:
        raise UsageError(f"--observed needs numbers >= 1, got {args.observed!r}")
    cfg = stealing.Config(observed=observed, targets=args.targets, seed_bits=args.seed_bits)
    if args.schemes is not None:
        cfg.schemes = _items(args.schemes)
    result = stealing.run(Path(args.out), cfg)
    print(json.dumps(result) if args.json else (Path(args.out) / "summary.md").read_text())
    return EXIT_OK


def run_detect_speed(args: argparse.Namespace) -> int:
    from bitmark.benchmarks.detect_speed import run

    run(num=args.num, as_json=args.json)
    return EXIT_OK


def run_steganalysis(args: argparse.Namespace) -> int:
    from bitmark.benchmarks import steganalysis
    from bitmark.models import MissingWeights

    cfg = steganalysis.quick_config() if args.quick else steganalysis.Config()
    cfg.num, cfg.data = args.num or cfg.num, args.data
    if args.deltas is not None:
        try:
            cfg.deltas = tuple(float(d) for d in _items(args.deltas) or ())
        except ValueError:
            raise UsageError(f"--deltas takes comma-separated numbers, got {args.deltas!r}") from None
    try:
        steganalysis.validate(cfg)
        with _blas_threads(args.threads):
            result = steganalysis.run(Path(args.out), cfg)
    except (ValueError, MissingWeights) as e:
        raise UsageError(str(e)) from e
    print(json.dumps(result) if args.json else (Path(args.out) / "summary.md").read_text())
    return EXIT_OK


def _blas_threads(threads: int):
    """Cap numpy's BLAS pool at --threads too: on a busy machine OpenBLAS's default pool spins, and the
    logistic fits of the steganalysis bench ran ~50x slower with it (threadpoolctl, when installed)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    import numpy  # noqa: F401  threadpoolctl caps only the pools already loaded: numpy's OpenBLAS and
    import scipy.linalg  # noqa: F401  scipy's own copy (L-BFGS-B runs on it)
    return threadpool_limits(limits=threads, user_api="blas")
