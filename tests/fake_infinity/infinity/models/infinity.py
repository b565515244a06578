"""Stand-in for `infinity.models.infinity`: the sampling function and a tiny per-scale generation loop.

The loop follows the call pattern bitmark's adapter relies on: per scale, logits of the conditional and
unconditional halves, divided by the temperature, mixed with guidance, reshaped to (B, h*w*d, 2), then one
call of the module-level sampling function, looked up at call time (so a wrapper installed on the module
is what runs). With patchify, tokens carry 4*d bits that are un-patchified with pixel_shuffle into the
VAE's grid, as Infinity-8B does. The "network" is a fixed random map, enough to make bits depend on the
coarser scales and on a class label.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def sample_with_top_k_top_p_also_inplace_modifying_logits_(logits_BlV, top_k=0, top_p=0.0, rng=None, num_samples=1):
    """Mask the logits in place (top-k, then top-p; 0 turns either off) and draw indices (B, l, num_samples)."""
    B, l, V = logits_BlV.shape
    if top_k > 0:
        kth_best = logits_BlV.topk(min(top_k, V), dim=-1).values.amin(dim=-1, keepdim=True)
        logits_BlV.masked_fill_(logits_BlV < kth_best, float("-inf"))
    if top_p > 0:
        probs, order = logits_BlV.softmax(dim=-1).sort(dim=-1)  # ascending
        drop_sorted = probs.cumsum(dim=-1) <= 1 - top_p
        drop_sorted[..., -1] = False  # never drop the likeliest value
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits_BlV.masked_fill_(drop, float("-inf"))
    probs = logits_BlV.softmax(dim=-1).view(-1, V)
    draws = torch.multinomial(probs, abs(num_samples), replacement=num_samples >= 0, generator=rng)
    return draws.view(B, l, abs(num_samples))


class Infinity(nn.Module):
    """A tiny class-conditional bitwise next-scale generator with Infinity's sampling call pattern."""

    def __init__(self, vae_local=None, d_vae: int = 16, apply_spatial_patchify: int = 0, num_classes: int = 4,
                 seed: int = 0, top_k: int = 0, top_p: float = 0.0, **kwargs):
        super().__init__()
        self.init_kwargs = dict(kwargs, apply_spatial_patchify=apply_spatial_patchify)
        if vae_local is not None:
            d_vae = vae_local.embed_dim
        self.d_vae, self.apply_spatial_patchify = d_vae, apply_spatial_patchify
        self.codebook_dim = C = 4 * d_vae if apply_spatial_patchify else d_vae
        g = torch.Generator().manual_seed(seed)
        self.mix = nn.Parameter(torch.randn(C, 2 * C, generator=g), requires_grad=False)
        self.label_emb = nn.Parameter(torch.randn(num_classes + 1, 2 * C, generator=g), requires_grad=False)
        self.num_classes, self.top_k, self.top_p = num_classes, top_k, top_p
        self.rng = torch.Generator()

    def get_logits(self, x_BLC: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(B, L, C) input codes -> (B, L, 2C) logits: two per bit."""
        return x_BLC @ self.mix + self.label_emb[labels].unsqueeze(1)

    @torch.no_grad()
    def autoregressive_infer_cfg(self, vae=None, scale_schedule=None, label_B_or_BLT=None, B=1, g_seed=None,
                                 cfg_list=(), tau_list=(), top_k=0, top_p=0.0, ret_img=False, trunk_scale=1000,
                                 **unused):
        rng = None if g_seed is None else self.rng.manual_seed(g_seed)
        labels = torch.as_tensor(label_B_or_BLT if label_B_or_BLT is not None else [0] * B).view(B)
        both = torch.cat([labels, torch.full_like(labels, self.num_classes)])  # conditional, then unconditional
        r = 2 if self.apply_spatial_patchify else 1
        vae_schedule = [(t, r * h, r * w) for t, h, w in scale_schedule]
        last = vae_schedule[-1][1:]
        x = torch.zeros(2 * B, 1, self.codebook_dim)
        summed, idx_Bld_list = torch.zeros(B, self.d_vae, *last), []
        for si, (_, h, w) in enumerate(scale_schedule):
            if si >= trunk_scale:
                break
            logits = self.get_logits(x, both).mul(1 / tau_list[si])
            cfg = cfg_list[si]
            logits = cfg * logits[:B] + (1 - cfg) * logits[B:]
            logits = logits.reshape(B, -1, 2)
            idx = sample_with_top_k_top_p_also_inplace_modifying_logits_(
                logits, rng=rng, top_k=top_k or self.top_k, top_p=top_p or self.top_p, num_samples=1
            )[:, :, 0]
            idx = idx.reshape(B, h, w, -1)
            if self.apply_spatial_patchify:  # (B, h, w, 4d) -> (B, 2h, 2w, d)
                idx = F.pixel_shuffle(idx.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
            idx_Bld_list.append(idx.unsqueeze(1))
            codes = (idx.float() * 2 - 1).div_(math.sqrt(self.d_vae)).permute(0, 3, 1, 2)
            summed += F.interpolate(codes, size=last, mode="bilinear")
            if si + 1 < len(scale_schedule):
                nxt = F.interpolate(summed, size=vae_schedule[si + 1][1:], mode="area")
                if self.apply_spatial_patchify:
                    nxt = F.pixel_unshuffle(nxt, 2)
                x = nxt.flatten(2).transpose(1, 2).repeat(2, 1, 1)
        if not ret_img:
            return [], idx_Bld_list, []
        img = vae.decode(summed) if vae is not None else summed[:, :3].tanh()
        img = F.interpolate(img, scale_factor=16 / r, mode="nearest") if vae is None else img
        img = ((img + 1) / 2).permute(0, 2, 3, 1).mul(255).clamp(0, 255).to(torch.uint8).flip(dims=(3,))  # BGR
        return [], idx_Bld_list, img
