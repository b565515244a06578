"""Stand-in for `infinity.models.bsq_vae.vae`: a BSQ-like multi-scale VAE and the `vae_model` builder.

`encode(x, scale_schedule)` quantises the residual of a fixed random patch projection scale by scale
(area-downsample, take signs, upsample, subtract) and returns Infinity's six values with the per-scale
bits `(B, 1, h, w, d)` (int32) fourth. Deterministic, so the same pixels give the same bits.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch
import torch.nn as nn
import torch.nn.functional as F


class FakeBSQVAE(nn.Module):
    def __init__(self, codebook_dim: int = 16, patch_size: int = 16, seed: int = 0):
        super().__init__()
        self.args = SimpleNamespace(patch_size=patch_size, codebook_dim=codebook_dim)
        self.codebook_dim = self.embed_dim = codebook_dim
        self.encoder = nn.Conv2d(3, codebook_dim, patch_size, stride=patch_size)
        self.decoder = nn.ConvTranspose2d(codebook_dim, 3, patch_size, stride=patch_size)
        g = torch.Generator().manual_seed(seed)
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=g) * 0.1
        self.requires_grad_(False)

    def encode(self, x, scale_schedule, return_residual_norm_per_scale=False):
        assert x.dim() == 4 and x.shape[1] == 3, x.shape
        h = self.encoder(x)
        full = h.shape[-2:]
        residual, z, all_bits = h, torch.zeros_like(h), []
        for t, ph, pw in scale_schedule:
            assert t == 1
            r = F.interpolate(residual, size=(ph, pw), mode="area")
            bits = r > 0
            q = (bits.float() * 2 - 1) / math.sqrt(self.codebook_dim) * r.abs().mean(1, keepdim=True) * 2
            q = F.interpolate(q, size=full, mode="bilinear")
            residual, z = residual - q, z + q
            all_bits.append(bits.permute(0, 2, 3, 1).unsqueeze(1).int())
        return h, z, None, all_bits, [], []

    def decode(self, z):
        return self.decoder(z).clamp(-1, 1)


def vae_model(vqgan_ckpt, schedule_mode, codebook_dim, codebook_size, test_mode=True, patch_size=16,
              encoder_ch_mult=(1, 2, 4, 4, 4), decoder_ch_mult=(1, 2, 4, 4, 4)):
    """Build the stand-in and load `vqgan_ckpt` (a path, or a dict) from its "vae" entry."""
    assert codebook_size == 2**codebook_dim and len(encoder_ch_mult) == (4 if patch_size == 8 else 5)
    vae = FakeBSQVAE(codebook_dim, patch_size)
    state = torch.load(vqgan_ckpt, map_location="cpu") if isinstance(vqgan_ckpt, str) else vqgan_ckpt
    vae.load_state_dict(state["vae"])
    vae.schedule_mode = schedule_mode
    return vae.eval() if test_mode else vae
