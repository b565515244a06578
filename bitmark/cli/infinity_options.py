"""The options of `--encoder infinity` (argparse only: building the parser imports nothing heavy)."""

from __future__ import annotations

from typing import Any


def add_cli_arguments(parser: Any) -> None:
    """The options of `bitmark detect --encoder infinity` ."""
    g = parser.add_argument_group("--encoder infinity")
    g.add_argument("--vae", help="your Infinity BSQ VAE checkpoint, e.g. infinity_vae_d32reg.pth (never downloaded)")
    g.add_argument("--resolution", default="1024", help="256, 512, 768 or 1024 (or 0.06M, 0.25M, 0.60M, 1M)")
    g.add_argument("--vae-bits", type=int, default=None, help="bits per VAE token when the file name does not say")
    g.add_argument("--patchify", action="store_true", default=None, help="Infinity-8B's 2x2 patchify (default: by name)")
    g.add_argument("--vae-device", default="cpu", help="device for the VAE (cpu, cuda, ...)")
