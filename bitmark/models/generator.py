"""The embedded generator: a small next-scale transformer over bit pyramids (the tiny Infinity).

The sequence is every token of every scale, coarse to fine. The input of scale 0 is the class embedding;
the input of scale s > 0 is the running sum of the coarser codes (the tokenizer's quantised latent so
far) area-downsampled to scale s. Attention is block-causal: a token sees its own scale and coarser ones.
The head gives the d bit log-odds of every token. Class-conditional with classifier-free guidance (class
index `num_classes` is "no class"); guidance mixes logits as cfg·cond + (1−cfg)·uncond, temperature
divides them, and then `sampler(logits, scale, grid, generator)` draws the bits -- the only way a
watermark enters.

Sampling keeps a key-value cache across scales: since a token sees only its own and coarser scales, the
keys and values of the coarser scales are the same at every later step, so each step runs the blocks on
the new scale's tokens only (`sample(cache=False)` recomputes the whole prefix, as training does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from bitmark.core.sampler import PlainSampler
from bitmark.models.tokenizer import Quantizer, TokenizerConfig


@dataclass
class GeneratorConfig:
    tokenizer: TokenizerConfig
    num_classes: int
    dim: int = 192
    depth: int = 4
    heads: int = 4

    @property
    def lengths(self) -> list[int]:
        return [s * s for s in self.tokenizer.schedule]


class Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        x = x + self.proj(att.transpose(1, 2).reshape(B, L, D))
        return x + self.mlp(self.norm2(x))

    def forward_cached(self, x: torch.Tensor, kv: torch.Tensor, start: int) -> torch.Tensor:
        """The tokens x (B, n, D) of one scale, attending to themselves and to the coarser scales' keys and
        values in kv[:, :, :, :start] (2, B, heads, total, D/heads); their own are written after them."""
        B, L, D = x.shape
        qkv = self.qkv(self.norm1(x)).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        kv[:, :, :, start : start + L] = qkv[1:]
        att = F.scaled_dot_product_attention(qkv[0], kv[0, :, :, : start + L], kv[1, :, :, : start + L])
        x = x + self.proj(att.transpose(1, 2).reshape(B, L, D))
        return x + self.mlp(self.norm2(x))


class Generator(nn.Module):
    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        tok = cfg.tokenizer
        self.quantizer = Quantizer(tok)
        total = sum(cfg.lengths)
        self.class_emb = nn.Embedding(cfg.num_classes + 1, cfg.dim)
        self.inp = nn.Linear(tok.d, cfg.dim)
        self.pos = nn.Parameter(torch.randn(total, cfg.dim) * 0.02)
        self.level = nn.Embedding(len(tok.schedule), cfg.dim)
        self.blocks = nn.ModuleList(Block(cfg.dim, cfg.heads) for _ in range(cfg.depth))
        self.norm, self.head = nn.LayerNorm(cfg.dim), nn.Linear(cfg.dim, tok.d)
        levels = torch.cat([torch.full((n,), s) for s, n in enumerate(cfg.lengths)])
        self.register_buffer("levels", levels, persistent=False)
        self.register_buffer("allowed", levels[None, :] <= levels[:, None], persistent=False)

    def scale_inputs(self, bits: list[torch.Tensor]) -> list[torch.Tensor]:
        """Inputs (B, h*w, d) of scales 1..len(bits): the running latent of the coarser codes, resized."""
        inputs, running = [], 0.0
        for s in range(1, len(bits) + 1):
            running, x = self._scale_input(running, bits[s - 1], s)
            inputs.append(x)
        return inputs

    def _scale_input(self, running, bits: torch.Tensor, s: int):
        """Scale s's input from the running latent after adding scale s-1's bits: (new running, (B, h*w, d))."""
        tok = self.cfg.tokenizer
        running = running + tok.gains[s - 1] * self.quantizer.up(self.quantizer.code(bits))
        x = Quantizer.down(running, tok.schedule[s])
        return running, x.flatten(2).transpose(1, 2) * math.sqrt(tok.d)

    def forward(self, bits: list[torch.Tensor], classes: torch.Tensor) -> torch.Tensor:
        """Logits (B, L, d) of scales 0..len(bits) given the bits of scales < len(bits) (teacher forcing)."""
        c = self.class_emb(classes)[:, None]
        h = torch.cat([c] + [self.inp(x) for x in self.scale_inputs(bits)], dim=1)
        L = h.shape[1]
        h = h + self.pos[:L] + self.level(self.levels[:L]) + c
        for block in self.blocks:
            h = block(h, self.allowed[:L, :L])
        return self.head(self.norm(h))

    def loss(self, inputs: list[torch.Tensor], targets: list[torch.Tensor], classes: torch.Tensor, p_uncond: float = 0.1, rng=None):
        """Bitwise cross-entropy of the targets given (possibly corrupted) input bits; drops the class at p_uncond."""
        drop = torch.rand(classes.shape, generator=rng) < p_uncond
        classes = torch.where(drop, torch.full_like(classes, self.cfg.num_classes), classes)
        logits = self.forward(inputs[:-1], classes)
        target = torch.cat([t.flatten(1, 2) for t in targets], dim=1).float()
        return F.binary_cross_entropy_with_logits(logits, target)

    @torch.no_grad()
    def sample(
        self,
        classes: torch.Tensor,
        sampler: PlainSampler | None = None,
        cfg_scale: float = 2.0,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        prefix: list[torch.Tensor] | None = None,
        cache: bool = True,
    ) -> list[torch.Tensor]:
        """A bit pyramid for each class index in `classes`, drawn scale by scale through `sampler`;
        with `prefix`, the first len(prefix) scales are those bits and only the finer ones are drawn
        (the re-generation attack). `cache`: keep the coarser scales' keys and values (same samples)."""
        sampler = sampler or PlainSampler()
        B = len(classes)
        both = torch.cat([classes, torch.full_like(classes, self.cfg.num_classes)])
        bits: list[torch.Tensor] = [b.bool() for b in prefix or []]
        if cache:
            return self._sample_cached(both, bits, sampler, cfg_scale, temperature, generator)
        start = sum(self.cfg.lengths[: len(bits)])
        for s, side in enumerate(self.cfg.tokenizer.schedule):
            if s < len(bits):
                continue
            logits = self.forward([torch.cat([b, b]) for b in bits], both)[:, start : start + side * side]
            logits = (cfg_scale * logits[:B] + (1 - cfg_scale) * logits[B:]) / temperature
            drawn = sampler(logits, scale=s, grid=(side, side), generator=generator)
            bits.append(drawn.view(B, side, side, -1))
            start += side * side
        return bits

    def _sample_cached(self, both, bits, sampler, cfg_scale, temperature, generator) -> list[torch.Tensor]:
        """`sample` with the key-value cache: each scale's tokens go through the blocks once."""
        B, lengths = len(both) // 2, self.cfg.lengths
        heads = self.cfg.heads
        kv = [torch.empty(2, 2 * B, heads, sum(lengths), self.cfg.dim // heads) for _ in self.blocks]
        c = self.class_emb(both)[:, None]
        running, start = 0.0, 0
        for s, side in enumerate(self.cfg.tokenizer.schedule):
            if s == 0:
                x = c
            else:
                running, inp = self._scale_input(running, torch.cat([bits[s - 1], bits[s - 1]]), s)
                x = self.inp(inp)
            end = start + lengths[s]
            h = x + self.pos[start:end] + self.level(self.levels[start:end]) + c
            for block, block_kv in zip(self.blocks, kv):
                h = block.forward_cached(h, block_kv, start)
            if s >= len(bits):
                logits = self.head(self.norm(h))
                logits = (cfg_scale * logits[:B] + (1 - cfg_scale) * logits[B:]) / temperature
                drawn = sampler(logits, scale=s, grid=(side, side), generator=generator)
                bits.append(drawn.view(B, side, side, -1))
            start = end
        return bits
