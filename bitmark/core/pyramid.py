"""The bit pyramid, the one exchange format: per scale (coarse to fine) a bool tensor (B, h, w, d).

Saved as `.safetensors` or `.npz` with one array per scale named `scale_00`, `scale_01`, ... Arrays of shape
(h, w, d) are read as a batch of one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

Pyramid = list[torch.Tensor]


class PyramidError(ValueError):
    """A bit pyramid that is malformed or cannot be read."""


def as_pyramid(scales: Sequence) -> Pyramid:
    """Validate and convert a sequence of per-scale arrays/tensors into bool tensors (B, h, w, d)."""
    if len(scales) == 0:
        raise PyramidError("a bit pyramid needs at least one scale")
    out: Pyramid = []
    for s, x in enumerate(scales):
        t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
        if t.dim() == 3:
            t = t.unsqueeze(0)
        if t.dim() != 4:
            raise PyramidError(f"scale {s}: expected (B, h, w, d) bits, got shape {tuple(t.shape)}")
        if t.dtype != torch.bool:
            if t.is_floating_point() or t.is_complex():
                raise PyramidError(f"scale {s}: bits must be bool or integer 0/1, got {t.dtype}")
            if t.numel() and not bool(((t == 0) | (t == 1)).all()):
                raise PyramidError(f"scale {s}: bits must be 0 or 1")
            t = t.bool()
        if out and (t.shape[0], t.shape[-1]) != (out[0].shape[0], out[0].shape[-1]):
            raise PyramidError(
                f"scale {s}: batch and bits per token {t.shape[0]}, {t.shape[-1]} differ from scale 0's "
                f"{out[0].shape[0]}, {out[0].shape[-1]}"
            )
        out.append(t.cpu())
    return out


def _name(s: int) -> str:
    return f"scale_{s:02d}"


def save_pyramid(path: str | Path, pyramid: Sequence) -> Path:
    """Write a pyramid as .safetensors or .npz (chosen by the suffix)."""
    path, pyramid = Path(path), as_pyramid(pyramid)
    arrays = {_name(s): t.to(torch.uint8).contiguous() for s, t in enumerate(pyramid)}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(arrays, str(path), metadata={"format": "bitmark-pyramid"})
    elif path.suffix == ".npz":
        np.savez_compressed(path, **{k: v.numpy() for k, v in arrays.items()})
    else:
        raise PyramidError(f"{path}: a pyramid file ends in .safetensors or .npz")
    return path


def load_pyramid(path: str | Path) -> Pyramid:
    """Read a pyramid written by `save_pyramid` (or any file with arrays scale_00, scale_01, ...)."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.numpy import load_file

            arrays = load_file(str(path))
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        else:
            raise PyramidError(f"{path}: not a pyramid file (expected .safetensors or .npz)")
    except PyramidError:
        raise
    except Exception as e:  # corrupt or truncated files raise a zoo of error types
        raise PyramidError(f"{path}: cannot read: {e}") from e
    expected = [_name(s) for s in range(len(arrays))]  # in scale order: "scale_100" sorts before "scale_11"
    if not arrays or sorted(arrays) != sorted(expected):
        raise PyramidError(f"{path}: expected arrays scale_00, scale_01, ..., found {sorted(arrays)[:5]}")
    return as_pyramid([arrays[n] for n in expected])
