"""Green rules: which value of a bit is "green", given the key, its scale, its place and its context.

A bit at index j of a token is scored when it has a full context: the n-1 bits j-n+1 .. j-1 of the same
token, read as an integer with bit j-1 as the least significant bit. Its green value comes from a table

    keyed          (d, 2^(n-1))         per scale: context-only, the same for every token (shift-invariant)
    keyed-spatial  (h*w, d, 2^(n-1))    per scale: also salted by the token's grid position
    bitmark-2025   green = NOT bit j-1  the published rule, unkeyed ("each bit differs from the previous")
    keyed-content  (B, h*w, d, 2^(n-1)) per image: each token's table is seeded by a keyed hash of its grid
                   position and the first SEED_BITS bits of its parent token on the previous scale, so the
                   same cell recurs across images only where their coarse content agrees (see `seeds`)
    keyed-content-robust  as keyed-content, but the seed is read from the parent bits in ROBUST_SEED_ORDER
                   (the bits of the shipped photos tokenizer that best survive JPEG, noise and regeneration
                   per bit of entropy, issue 15), not from the first bits; its tables are domain-separated

Tables are derived from the secret with SHAKE-256 (a keyed extendable-output function), so they are the
same on every run, process and machine, and are computed once per (scale, grid, d) and cached.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from bitmark.core.keys import WatermarkConfig, WatermarkKey

_DOMAIN = b"bitmark/green-table/v1\x00"
_CONTENT_DOMAIN = b"bitmark/content-table/v1\x00"
SEED_BITS = 16  # keyed-content(-robust): bits of the parent token that seed a token's table (at most d)
SEEDED_RULES = ("keyed-content", "keyed-content-robust")  # rules whose tables depend on the coarser bits
# keyed-content-robust: parent bit indices in the order they enter the seed. Ranked on the shipped photos models
# (issue 13's channel-robust pair) by entropy / -log2(worst survival under JPEG 75, noise 0.05 and autoencoder
# regeneration) of scale 2's bits, which seed the finest scale; benchmarks/RESULTS.md, issue 15 section.
ROBUST_SEED_ORDER = (1, 5, 0, 21, 26, 12, 13, 11, 31, 6, 27, 19, 14, 8, 3, 15,
                     16, 29, 23, 10, 18, 28, 7, 20, 17, 30, 9, 22, 25, 4, 2, 24)


def contexts(bits: torch.Tensor, n: int) -> torch.Tensor:
    """Context integers of the scored bits j = n-1 .. d-1 of each token: uint8 of shape (..., d - n + 1)."""
    b = bits.to(torch.uint8)
    J = b.shape[-1] - n + 1
    ctx = b[..., n - 2 : n - 2 + J].clone()  # bit j-1, weight 1
    for k in range(2, n):  # bit j-k, weight 2^(k-1)
        ctx |= b[..., n - 1 - k : n - 1 - k + J] << (k - 1)
    return ctx


class GreenRule:
    """The green tables of one key. Cheap to build; tables are made lazily per scale and grid."""

    def __init__(self, key: WatermarkKey):
        self.config: WatermarkConfig = key.config
        self._key = key  # not its secret: the key refuses pickling and hides it from vars() and repr()
        self._cache: dict[tuple[int, int, int, int], torch.Tensor] = {}

    @property
    def n(self) -> int:
        return self.config.context

    @property
    def num_contexts(self) -> int:
        return 1 << (self.n - 1)

    @property
    def spatial(self) -> bool:
        """True when the green choice differs between tokens of the same scale."""
        return self.config.rule == "keyed-spatial"

    @property
    def seeded(self) -> bool:
        """True when a token's table also depends on the bits of coarser scales (keyed-content, -robust)."""
        return self.config.rule in SEEDED_RULES

    def token_tables(self, scale: int, h: int, w: int, d: int, coarser: list[torch.Tensor] | None = None) -> torch.Tensor:
        """The green tables the tokens of one scale use: (h*w | 1, d, S) for fixed-table rules, or
        (B, h*w, d, S) for keyed-content, which needs `coarser`, the (B, h', w', d) bits of the scales before."""
        if not self.seeded:
            return self.table(scale, h, w, d)
        if scale > 0 and (coarser is None or len(coarser) < scale):
            raise ValueError(f"keyed-content: scale {scale}'s tables need the bits of the {scale} coarser scale(s)")
        if scale == 0:
            return self.content_table(scale, h, w, d, torch.zeros(1, h * w, dtype=torch.long))
        return self.content_table(scale, h, w, d, seeds(coarser[scale - 1], h, w, d, self.config.rule))

    def content_table(self, scale: int, h: int, w: int, d: int, seed: torch.Tensor) -> torch.Tensor:
        """keyed-content tables (B, L, d, S) for seeds (B, L): one SHAKE-256 draw per distinct (position, seed)."""
        B, L = seed.shape
        S = self.num_contexts
        code = torch.arange(L, dtype=torch.long).view(1, L) * (1 << SEED_BITS) + seed.long()
        unique, inverse = torch.unique(code.reshape(-1), return_inverse=True)
        label = _CONTENT_DOMAIN + self._key.secret + f"|n={self.n}|scale={scale}|d={d}|grid={h}x{w}|".encode()
        if self.config.rule != "keyed-content":  # keyed-content's label is unchanged: its keys keep their tables
            label += f"rule={self.config.rule}|".encode()
        size = (d * S + 7) // 8
        stream = b"".join(hashlib.shake_256(label + c.to_bytes(8, "little")).digest(size) for c in unique.tolist())
        bits = np.unpackbits(np.frombuffer(stream, dtype=np.uint8).reshape(len(unique), size), axis=1, bitorder="little")
        bank = torch.from_numpy(bits[:, : d * S].astype(bool)).view(len(unique), d, S)
        return bank[inverse].view(B, L, d, S)

    def table(self, scale: int, h: int, w: int, d: int) -> torch.Tensor:
        """Bool table of green values, shape (h*w or 1, d, 2^(n-1)). Not for keyed-content (see token_tables)."""
        if self.seeded:
            raise ValueError("keyed-content tables depend on each image's coarser bits: use token_tables(..., coarser)")
        cache_key = (scale, h, w, d) if self.spatial else (scale, 0, 0, d)
        table = self._cache.get(cache_key)
        if table is None:
            table = self._make_table(scale, h, w, d)
            self._cache[cache_key] = table
        return table

    def _make_table(self, scale: int, h: int, w: int, d: int) -> torch.Tensor:
        S = self.num_contexts
        if self.config.rule == "bitmark-2025":
            green = 1 - (np.arange(S) & 1)  # green when the bit differs from bit j-1
            return torch.from_numpy(np.broadcast_to(green, (1, d, S)).astype(bool).copy())
        cells = (h * w if self.spatial else 1) * d * S
        label = f"{self.config.rule}|n={self.n}|scale={scale}|d={d}"
        if self.spatial:
            label += f"|grid={h}x{w}"
        stream = hashlib.shake_256(_DOMAIN + self._key.secret + label.encode()).digest((cells + 7) // 8)
        bits = np.unpackbits(np.frombuffer(stream, dtype=np.uint8), bitorder="little")[:cells]
        return torch.from_numpy(bits.astype(bool).reshape(-1, d, S))

    def green_values(self, table: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        """Green values of the scored bits: table (L|1, d, S) or (B, L, d, S) (`token_tables`), ctx from
        `contexts` (B, L, J) -> bool (B, L, J)."""
        B, L, d = ctx.shape
        table = table[..., -d:, :].to(ctx.device)  # the scored bit indices j = n-1 .. d-1
        if table.shape[-1] == 2:  # n = 2: select with bit operations, much faster than a gather
            return table[..., 0] ^ (ctx.bool() & (table[..., 0] ^ table[..., 1]))
        full = (table if table.dim() == 4 else table.unsqueeze(0)).expand(B, L, d, -1)
        return torch.gather(full, -1, ctx.long().unsqueeze(-1)).squeeze(-1)


def seed_indices(rule: str, d: int, width: int | None = None) -> list[int]:
    """The parent bit indices (< d) that seed a token's table under `rule`, in the order they enter the seed:
    the first `width` (default SEED_BITS) of range(d) (keyed-content) or of ROBUST_SEED_ORDER (-robust)."""
    if rule not in SEEDED_RULES:
        raise ValueError(f"{rule!r} has no seeded tables; seeded rules are {', '.join(SEEDED_RULES)}")
    order = range(d) if rule == "keyed-content" else [i for i in ROBUST_SEED_ORDER if i < d]
    return list(order)[: SEED_BITS if width is None else width]


def seeds(parent: torch.Tensor, h: int, w: int, d: int, rule: str = "keyed-content") -> torch.Tensor:
    """Seeds of an (h, w) grid from the previous scale's bits `parent` (B, h', w', d): the `seed_indices` bits of
    the token covering the same place, read as an integer (the k-th index is bit k). (B, h*w) int64."""
    B, hp, wp, dp = parent.shape
    rows = torch.arange(h) * hp // h
    cols = torch.arange(w) * wp // w
    idx = seed_indices(rule, min(dp, d))
    bits = parent[:, rows][:, :, cols][..., idx].long()  # (B, h, w, k)
    return (bits << torch.arange(len(idx))).sum(-1).reshape(B, h * w)
