"""`--backend embedded|infinity` and Infinity's checkpoint options, shared by every command that samples or
reads images (argparse only here: building the parser imports nothing heavy)."""

from __future__ import annotations

import argparse
from typing import Any

from bitmark.cli.common import UsageError
from bitmark.cli.infinity_options import add_cli_arguments


def add_backend_arguments(parser: Any) -> None:
    """--backend and the options that build Infinity (its VAE options too, unless the parser has them)."""
    parser.add_argument("--backend", choices=("embedded", "infinity"), default="embedded",
                        help="the generator: embedded (the shipped tiny model) or infinity (your Infinity checkpoints)")
    if "--vae" not in getattr(parser, "_option_string_actions", {}):
        add_cli_arguments(parser)
    g = parser.add_argument_group("--backend infinity")
    g.add_argument("--infinity-model", default=None, help="Infinity transformer weights (infinity_2b_reg.pth or a folder of shards)")
    g.add_argument("--infinity-arch", choices=("infinity-2b", "infinity-8b"), default="infinity-2b",
                   help="which Infinity transformer the checkpoint holds")
    g.add_argument("--text-encoder", default=None, help="local flan-t5-xl folder (Infinity's text encoder)")
    g.add_argument("--device", default="cuda", help="device for Infinity's transformer and text encoder")
    g.add_argument("--prompts", default=None, help="prompt file, one per line (default: bitmark's 200 captions)")
    g.add_argument("--infinity-batch-size", type=int, default=None, help="images per Infinity call (default 4; --infinity-tiny: 16)")
    g.add_argument("--infinity-src", default=None, help="import Infinity from this folder (a clone of its repository)")
    g.add_argument("--infinity-tiny", action="store_true",
                   help="no checkpoints: a tiny random configuration of the code at --infinity-src (bitmark's test "
                        "stand-in tests/fake_infinity, or Infinity's real code); random weights, on the CPU: plumbing, not a model")


def backend_from_args(args: argparse.Namespace, *, sampling: bool = True):
    """The backend the options name. sampling=False: only what reading images needs (Infinity's VAE)."""
    from bitmark.adapters.infinity import InfinityNotAvailable

    try:
        if getattr(args, "backend", "embedded") == "embedded":
            from bitmark.backends import EmbeddedBackend

            return EmbeddedBackend(getattr(args, "data", None) or "photos")
        return _infinity(args, sampling)
    except (InfinityNotAvailable, ImportError, OSError, ValueError) as e:
        raise UsageError(str(e)) from e


def _infinity(args: argparse.Namespace, sampling: bool):
    from bitmark.backends import InfinityBackend, load_prompts, tiny_infinity_backend
    from bitmark.backends.tiny import use_source_tree

    prompts = load_prompts(args.prompts) if args.prompts else None
    if args.infinity_tiny:
        return tiny_infinity_backend(args.infinity_src, prompts=prompts, batch_size=args.infinity_batch_size or 16)
    if args.infinity_src:
        use_source_tree(args.infinity_src)
    from bitmark.adapters.infinity import encoder_from_args, load_infinity_transformer
    from bitmark.adapters.infinity.schedule import schedule_grids

    encoder = encoder_from_args(args)
    if not sampling:
        return _ReadOnly(encoder)
    missing = [o for o, v in (("--infinity-model", args.infinity_model), ("--text-encoder", args.text_encoder)) if not v]
    if missing:
        raise ValueError(f"--backend infinity samples with your checkpoints: give {' and '.join(missing)} (bitmark downloads nothing)")
    from bitmark.backends import T5PromptEncoder

    pn = {256: "0.06M", 512: "0.25M", 768: "0.60M", 1024: "1M"}[int(encoder.size[0])]
    vae = encoder.vae.to(args.device)
    model = load_infinity_transformer(args.infinity_model, vae, model=args.infinity_arch, resolution=pn, device=args.device)
    encoder.device = next(vae.parameters()).device
    return InfinityBackend(
        model, vae, [(1, h, w) for h, w in schedule_grids(encoder.schedule)], T5PromptEncoder.from_pretrained(args.text_encoder, args.device),
        prompts=prompts, batch_size=args.infinity_batch_size or 4, encoder=encoder,
        description=f"Infinity ({args.infinity_arch}, {args.infinity_model}, VAE {args.vae}, {encoder.size[0]}px)",
    )


class _ReadOnly:
    """Infinity's VAE alone, for commands that only read images (detect, scan)."""

    kind, conditioning, retrainable, description = "infinity", "prompt", False, "Infinity's VAE (reading only)"

    def __init__(self, encoder):
        self.encoder = encoder

    def encode(self, images):
        return self.encoder.encode(images)
