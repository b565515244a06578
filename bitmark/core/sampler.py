"""The sampling hook: turn one scale's bit logits into bits, with or without the watermark.

A generator calls `sampler(logits, scale, grid, generator)` once per scale, after temperature and
classifier-free guidance. `PlainSampler` samples each bit from its two-way distribution;
`WatermarkSampler` first adds +delta to the log-odds of the bit's green value, which depends on the
n-1 bits just sampled in the same token, so the d bits of a token are a chain over j. Top-k / top-p are
applied per bit *after* the bias: a bit that top-p removed could not be brought back.

Both samplers draw the same uniforms `u ~ U[0,1)` of shape (B, L, d) from the generator they are given and
take bit = u < P(bit = 1), so with delta = 0 (or on unwatermarked scales) they give identical bits.

The chain has two implementations that give identical bits for identical uniforms:
`chain_loop` (the readable reference, one step per bit index) and `chain_fast` (the per-bit work for all j at
once, then a parallel prefix scan for n = 2). On the CPU, with n = 2 and d <= 64, the scan runs on each token's
bits packed into one machine word (`packed_scan`): log2(d) shifts and masks per token instead of per bit.
"""

from __future__ import annotations

import numpy as np
import torch

from bitmark.core.keys import WatermarkKey
from bitmark.core.rules import GreenRule


def log_odds(logits: torch.Tensor) -> torch.Tensor:
    """(B, L, d, 2) two-way logits or (B, L, d) log-odds of bit = 1  ->  float (B, L, d) log-odds."""
    if logits.dim() == 4 and logits.shape[-1] == 2:
        return (logits[..., 1] - logits[..., 0]).float()
    if logits.dim() == 3:
        return logits.float()
    raise ValueError(f"bit logits must be (B, L, d, 2) or (B, L, d), got shape {tuple(logits.shape)}")


def bit_probability(lo: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """P(bit = 1) after per-bit top-k / top-p on the two-way distribution with log-odds `lo`.

    top_k = 1 keeps only the likelier value; top_k = 0 or >= 2 keeps both. top-p removes the less likely
    value when its probability is <= 1 - top_p (as a sorted cumulative-probability cut does); ties go to 1.
    """
    p = torch.sigmoid(lo)
    forced = None
    if top_k == 1:
        forced = torch.ones_like(p, dtype=torch.bool)
    elif top_p < 1.0:
        forced = torch.sigmoid(-lo.abs()) <= 1.0 - top_p
    if forced is None:
        return p
    return torch.where(forced, (lo >= 0).to(p.dtype), p)


def chain_loop(lo, u, table, n, delta, top_k=0, top_p=1.0):
    """Reference watermarked chain: for j = 0..d-1, bias bit j toward its green value, then sample it.

    lo, u: (B, L, d); table: bool (L or 1, d, 2^(n-1)). Returns bool bits (B, L, d).
    """
    B, L, d = lo.shape
    bits = torch.zeros(B, L, d, dtype=torch.bool, device=lo.device)
    for j in range(d):
        logit = lo[..., j]
        if j >= n - 1:
            ctx = torch.zeros(B, L, dtype=torch.long, device=lo.device)
            for k in range(1, n):
                ctx |= bits[..., j - k].long() << (k - 1)
            green = torch.gather(table[:, j, :].to(lo.device).expand(L, -1), 1, ctx.T).T  # (B, L)
            logit = logit + delta * (2.0 * green.to(lo.dtype) - 1.0)
        bits[..., j] = u[..., j] < bit_probability(logit, top_k, top_p)
    return bits


def _draw(lo_biased: torch.Tensor, u: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """bit = u < P(bit = 1 | biased log-odds); consumes `lo_biased` (a fresh temporary) to save memory."""
    if top_k == 1 or top_p < 1.0:
        return u < bit_probability(lo_biased, top_k, top_p)
    return u < lo_biased.sigmoid_()


_WORDS = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def _word_bytes(d: int) -> int | None:
    """Bytes of the word that holds a token's d bits, or None when d > 64."""
    return next((w for w in _WORDS if 8 * w >= d), None)


def pack_bits(bits: torch.Tensor) -> np.ndarray:
    """bool (..., d) on the CPU, d <= 64 -> unsigned words (...,): bit j of a token is bit j of its word."""
    d = bits.shape[-1]
    w = _word_bytes(d)
    packed = np.packbits(bits.numpy(), axis=-1, bitorder="little")  # (..., ceil(d / 8)) bytes
    if packed.shape[-1] != w:
        packed = np.concatenate([packed, np.zeros(packed.shape[:-1] + (w - packed.shape[-1],), np.uint8)], -1)
    return packed.view(_WORDS[w])[..., 0]


def unpack_bits(words: np.ndarray, d: int) -> torch.Tensor:
    """Inverse of `pack_bits`: words (...,) -> bool (..., d)."""
    w = words.dtype.itemsize
    raw = np.ascontiguousarray(words).view(np.uint8).reshape(words.shape + (w,))
    return torch.from_numpy(np.unpackbits(raw, axis=-1, count=d, bitorder="little")).view(torch.bool)


def packed_scan(up: torch.Tensor, down: torch.Tensor, green0: np.ndarray, flips: np.ndarray) -> torch.Tensor:
    """The n = 2 chain of `chain_fast` on packed words. up, down: bool (B, L, d) bits when the green value is
    1 / 0; green0, flips: packed (L|1,) green value at context 0 and where context 1 changes it."""
    d = up.shape[-1]
    lo = pack_bits(down)
    either = pack_bits(up) ^ lo  # where the green value decides the bit
    a = (either & green0) | lo  # the bit when bit j-1 is 0
    m = either & flips  # whether bit j-1 flips it (0 at j = 0: nothing is biased there)
    step = 1
    while step < d:  # compose the maps of bits j-step .. j into those of bits 0 .. j, all j of a word at once
        a ^= m & (a << step)
        if 2 * step < d:
            m &= m << step
        step *= 2
    return unpack_bits(a, d)


def chain_fast(lo, u, table, n, delta, top_k=0, top_p=1.0, packed=None, bias=None):
    """Same bits as `chain_loop`, with the per-bit work done for all j at once.

    Given the uniforms, bit j can take only two values: `up` (if its green value is 1) or `down` (if 0).
    Both are computed in parallel; what remains sequential is choosing between them by the context.
    For n = 2 that choice is affine over GF(2), bit_j = a_j XOR (m_j AND bit_{j-1}), so the chain is a
    prefix scan solved in log2(d) doubling steps. For n >= 3 the choice is an arbitrary function of n-1
    bits; composing such maps costs 2^(n-1) per step, which measured slower than a lean loop, so the
    choice is made in a loop over j that only gathers and selects. `packed` (`packed_table(table)`) and
    `bias` (`_bias`) may be given from a cache.
    """
    B, L, d = lo.shape
    bias = _bias(d, n, delta, lo.device) if bias is None else bias
    up = _draw(lo + bias, u, top_k, top_p)
    down = _draw(lo - bias, u, top_k, top_p)
    if n == 2 and lo.device.type == "cpu" and _word_bytes(d):
        return packed_scan(up, down, *(packed or packed_table(table)))
    table = table.to(lo.device)
    if n == 2:
        either = up.bitwise_xor_(down)  # where the green value decides the bit
        a = (either & table[..., 0]).bitwise_or_(down)  # the bit when bit j-1 is 0
        m = either.bitwise_and_(table[..., 0] ^ table[..., 1])  # whether bit j-1 flips it
        a, m = a.movedim(-1, 0).contiguous(), m.movedim(-1, 0).contiguous()
        step = 1
        while step < d:  # compose the maps of bits j-step .. j into those of bits 0 .. j
            a[step:] ^= m[step:] & a[:-step]
            if 2 * step < d:
                m[step:] = m[step:] & m[:-step]
            step *= 2
        return a.movedim(0, -1)
    bits = down.clone()
    ctx = torch.zeros(B, L, dtype=torch.long, device=lo.device)
    mask = (1 << (n - 1)) - 1
    for j in range(d):
        if j >= n - 1:
            green = torch.gather(table[:, j, :].expand(L, -1), 1, ctx.T).T
            bits[..., j] = torch.where(green, up[..., j], down[..., j])
        ctx = ((ctx << 1) | bits[..., j].long()) & mask
    return bits


def _bias(d: int, n: int, delta: float, device) -> torch.Tensor:
    """+delta on the scored bit indices j >= n-1; unscored bits carry no bias, so up == down == plain there."""
    bias = torch.zeros(d, device=device)
    bias[n - 1 :] = delta
    return bias


def packed_table(table: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """An n = 2 green table (L|1, d, 2) as packed words: the green value at context 0, and context 0 XOR 1."""
    t = table.cpu()
    return pack_bits(t[..., 0].contiguous()), pack_bits((t[..., 0] ^ t[..., 1]).contiguous())


class PlainSampler:
    """Samples bits without a watermark. Same interface as WatermarkSampler, so it is a drop-in."""

    def __init__(self, top_k: int = 0, top_p: float = 1.0, record: bool = False):
        if top_k < 0 or not 0.0 < top_p <= 1.0:
            raise ValueError(f"need top_k >= 0 and 0 < top_p <= 1, got top_k={top_k}, top_p={top_p}")
        self.top_k, self.top_p, self.record = top_k, top_p, record
        self.pyramid: list[torch.Tensor] = []

    def __call__(
        self,
        logits: torch.Tensor,
        scale: int,
        grid: tuple[int, int],
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Sample one scale. logits (B, h*w, d, 2) or (B, h*w, d); returns bool bits (B, h*w, d)."""
        lo = log_odds(logits)
        h, w = grid
        if lo.shape[1] != h * w:
            raise ValueError(f"scale {scale}: logits hold {lo.shape[1]} tokens but the grid is {h}x{w}")
        u = torch.rand(lo.shape, generator=generator, device=lo.device)
        bits = self._sample(lo, u, scale, h, w)
        if self.record:
            self._record(bits, scale, h, w)
        return bits

    def _sample(self, lo: torch.Tensor, u: torch.Tensor, scale: int, h: int, w: int) -> torch.Tensor:
        return u < bit_probability(lo, self.top_k, self.top_p)

    def _record(self, bits: torch.Tensor, scale: int, h: int, w: int) -> None:
        if scale == 0:
            self.pyramid = []
        if scale != len(self.pyramid):
            raise RuntimeError(f"recording expects scale {len(self.pyramid)} next, got scale {scale}")
        self.pyramid.append(bits.view(bits.shape[0], h, w, bits.shape[-1]).cpu())


class WatermarkSampler(PlainSampler):
    """Samples bits with the key's watermark (rule, context width n, delta and scales from the key).

    impl: "fast" (default) or "loop" (readable reference); both give identical bits.
    """

    def __init__(
        self,
        key: WatermarkKey,
        top_k: int = 0,
        top_p: float = 1.0,
        record: bool = False,
        impl: str = "fast",
    ):
        super().__init__(top_k, top_p, record)
        if impl not in ("fast", "loop"):
            raise ValueError(f"impl must be 'fast' or 'loop', got {impl!r}")
        self.key, self.rule, self.impl = key, GreenRule(key), impl
        self._tables: dict[tuple, tuple] = {}  # (scale, h, w, d, device) -> table on the device, packed table, bias

    def _sample(self, lo: torch.Tensor, u: torch.Tensor, scale: int, h: int, w: int) -> torch.Tensor:
        cfg = self.key.config
        if not cfg.watermarks(scale) or cfg.delta == 0:
            return super()._sample(lo, u, scale, h, w)
        d = lo.shape[-1]
        if self.impl == "loop":
            return chain_loop(lo, u, self.rule.table(scale, h, w, d), cfg.context, cfg.delta, self.top_k, self.top_p)
        cached = self._tables.get((scale, h, w, d, lo.device))
        if cached is None:
            table = self.rule.table(scale, h, w, d)
            packed = packed_table(table) if cfg.context == 2 and _word_bytes(d) else None
            cached = (table.to(lo.device), packed, _bias(d, cfg.context, cfg.delta, lo.device))
            self._tables[(scale, h, w, d, lo.device)] = cached
        table, packed, bias = cached
        return chain_fast(lo, u, table, cfg.context, cfg.delta, self.top_k, self.top_p, packed=packed, bias=bias)


__all__ = ["PlainSampler", "WatermarkSampler", "chain_loop", "chain_fast", "log_odds"]
