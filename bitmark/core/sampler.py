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
bits packed into one machine word (`packed_scan`, `bitmark.core.bitpack`): log2(d) shifts and masks per
token instead of per bit.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from bitmark.core.bitpack import WORDS, pack_bits, unpack_bits, word_bytes
from bitmark.core.keys import WatermarkKey
from bitmark.core.rules import GreenRule

PUBLISHED_BIAS_FROM = 2  # the published BitMark code biases bits 2..d-1 of a token and leaves bits 0 and 1 alone


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


def chain_loop(lo, u, table, n, delta, top_k=0, top_p=1.0, start=None):
    """Reference watermarked chain: for j = 0..d-1, bias bit j toward its green value, then sample it.

    lo, u: (B, L, d); table: bool (L or 1, d, 2^(n-1)); start: the first biased bit index (default n-1,
    the first with a full context); delta: a number, or a (B, L, d) tensor of per-bit biases (the
    entropy gate of `WatermarkSampler(min_entropy=...)`). Returns bool bits (B, L, d).
    """
    B, L, d = lo.shape
    start = n - 1 if start is None else start
    bits = torch.zeros(B, L, d, dtype=torch.bool, device=lo.device)
    for j in range(d):
        logit = lo[..., j]
        if j >= start:
            ctx = torch.zeros(B, L, dtype=torch.long, device=lo.device)
            for k in range(1, n):
                ctx |= bits[..., j - k].long() << (k - 1)
            green = _green_at(table.to(lo.device), j, ctx)  # (B, L)
            step = delta[..., j] if isinstance(delta, torch.Tensor) else delta
            logit = logit + step * (2.0 * green.to(lo.dtype) - 1.0)
        bits[..., j] = u[..., j] < bit_probability(logit, top_k, top_p)
    return bits


def _green_at(table: torch.Tensor, j: int, ctx: torch.Tensor) -> torch.Tensor:
    """Green value of bit j given contexts ctx (B, L) long; table (L|1, d, S) or per image (B, L, d, S)."""
    t = table[..., j, :]
    t = t if t.dim() == 3 else t.unsqueeze(0)
    return torch.gather(t.expand(ctx.shape[0], ctx.shape[1], -1), -1, ctx.unsqueeze(-1)).squeeze(-1)


def _draw(lo_biased: torch.Tensor, u: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """bit = u < P(bit = 1 | biased log-odds); consumes `lo_biased` (a fresh temporary) to save memory."""
    if top_k == 1 or top_p < 1.0:
        return u < bit_probability(lo_biased, top_k, top_p)
    return u < lo_biased.sigmoid_()


CHUNK_TOKENS = 4096  # tokens per slice of the float work: two float buffers of it stay in the core's cache


def _draw_words(lo, u, bias, top_k: int, top_p: float) -> tuple[np.ndarray, np.ndarray]:
    """Packed words (B, L) of `_draw(lo + bias, ...)` and `_draw(lo - bias, ...)`.

    The same float operations (the biased log-odds, then torch's sigmoid), compared and packed by numpy,
    which is several times faster at that on the CPU; one compare and one pack serve both. Done in slices
    of CHUNK_TOKENS tokens (a multiple of 64 elements, so torch's vectorised loops split the same way and
    give the same values), which measured about 1.5x faster at batch 8 than whole tensors.
    """
    B, L, d = lo.shape
    if bias.dim() == 3:  # per-bit biases (the entropy gate): slice them with the tokens
        bias = bias.expand(B, L, d)
    if top_k == 1 or top_p < 1.0:
        words = pack_bits(torch.stack([_draw(lo + bias, u, top_k, top_p), _draw(lo - bias, u, top_k, top_p)]))
        return words[0], words[1]
    if B * L <= CHUNK_TOKENS:  # one slice: skip the bookkeeping (most scales at batch 1)
        buf = torch.empty((2,) + lo.shape, dtype=lo.dtype)
        torch.add(lo, bias, out=buf[0]).sigmoid_()
        torch.sub(lo, bias, out=buf[1]).sigmoid_()
        words = pack_bits(np.less(u.numpy()[None], buf.numpy()))
        return words[0], words[1]
    lo_t, u_t = lo.reshape(B * L, d), u.reshape(B * L, d)
    words = np.empty((2, B * L), dtype=WORDS[word_bytes(d)])
    buf = torch.empty(2, min(B * L, CHUNK_TOKENS), d, dtype=lo.dtype)
    for i in range(0, B * L, CHUNK_TOKENS):
        x, c = lo_t[i : i + CHUNK_TOKENS], min(CHUNK_TOKENS, B * L - i)
        b = bias if bias.dim() == 1 else bias.reshape(B * L, d)[i : i + CHUNK_TOKENS]
        torch.add(x, b, out=buf[0, :c]).sigmoid_()
        torch.sub(x, b, out=buf[1, :c]).sigmoid_()
        words[:, i : i + c] = pack_bits(np.less(u_t[i : i + c].numpy()[None], buf[:, :c].numpy()))
    return words[0].reshape(B, L), words[1].reshape(B, L)


def packed_scan(up: np.ndarray, down: np.ndarray, green0: np.ndarray, flips: np.ndarray, d: int) -> torch.Tensor:
    """The n = 2 chain of `chain_fast` on packed words (`bitpack`). up, down: (B, L) words of the bits when the
    green value is 1 / 0; green0, flips: (L|1,) words of the green value at context 0 and of where context 1
    changes it. Returns bool bits (B, L, d)."""
    either = up ^ down  # where the green value decides the bit
    a = (either & green0) | down  # the bit when bit j-1 is 0
    m = either & flips  # whether bit j-1 flips it (0 at j = 0: nothing is biased there)
    step = 1
    while step < d:  # compose the maps of bits j-step .. j into those of bits 0 .. j, all j of a word at once
        a ^= m & (a << a.dtype.type(step))
        if 2 * step < d:
            m &= m << m.dtype.type(step)
        step *= 2
    return unpack_bits(a, d)


def chain_fast(lo, u, table, n, delta, top_k=0, top_p=1.0, start=None, packed=None, bias=None):
    """Same bits as `chain_loop`, with the per-bit work done for all j at once.

    Given the uniforms, bit j can take only two values: `up` (if its green value is 1) or `down` (if 0).
    Both are computed in parallel; what remains sequential is choosing between them by the context.
    For n = 2 that choice is affine over GF(2), bit_j = a_j XOR (m_j AND bit_{j-1}), so the chain is a
    prefix scan solved in log2(d) doubling steps. For n >= 3 the choice is an arbitrary function of n-1
    bits; composing such maps costs 2^(n-1) per step, which measured slower than a lean loop, so the
    choice is made in a loop over j that only gathers and selects. `packed` (`packed_table(table)`) and
    `bias` (`_bias`: (d,), or (B, L, d) per bit) may be given from a cache.
    """
    B, L, d = lo.shape
    bias = _bias(d, n, delta, lo.device, start) if bias is None else bias
    if n == 2 and lo.device.type == "cpu" and word_bytes(d) and table.dim() == 3:  # one table for every image
        up, down = _draw_words(lo.detach(), u, bias, top_k, top_p)
        return packed_scan(up, down, *(packed or packed_table(table)), d)
    up = _draw(lo + bias, u, top_k, top_p)
    down = _draw(lo - bias, u, top_k, top_p)
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
            green = _green_at(table, j, ctx)
            bits[..., j] = torch.where(green, up[..., j], down[..., j])
        ctx = ((ctx << 1) | bits[..., j].long()) & mask
    return bits


def binary_entropy(lo: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of a bit with log-odds lo: H = softplus(lo) - lo * sigmoid(lo), stable for large |lo|."""
    return torch.nn.functional.softplus(lo) - lo * torch.sigmoid(lo)


def entropy_gate(lo: torch.Tensor, min_entropy: float) -> torch.Tensor:
    """Float (B, L, d): 1 where the unbiased bit's entropy exceeds min_entropy (nats), else 0."""
    return (binary_entropy(lo) > min_entropy).to(lo.dtype)


def _bias(d: int, n: int, delta: float, device, start: int | None = None) -> torch.Tensor:
    """+delta on the biased bit indices j >= start (default n-1, every scored bit); the others carry no bias,
    so up == down == plain there."""
    bias = torch.zeros(d, device=device)
    bias[n - 1 if start is None else start :] = delta
    return bias


def packed_table(table: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """An n = 2 green table (L|1, d, 2) as packed words: the green value at context 0, and context 0 XOR 1."""
    t = table.cpu()
    return pack_bits(t[..., 0].contiguous()), pack_bits((t[..., 0] ^ t[..., 1]).contiguous())


class PlainSampler:
    """Samples bits without a watermark. Same interface as WatermarkSampler, so it is a drop-in.

    record=True keeps every generation's bits on the CPU: a generation starts at scale 0, `pyramids` holds
    all of them in order (one per batch of a batch loop; clear it to free memory) and `pyramid` is the most
    recent one, per scale (B, h, w, d).
    """

    def __init__(self, top_k: int = 0, top_p: float = 1.0, record: bool = False):
        if top_k < 0 or not 0.0 < top_p <= 1.0:
            raise ValueError(f"need top_k >= 0 and 0 < top_p <= 1, got top_k={top_k}, top_p={top_p}")
        self.top_k, self.top_p, self.record = top_k, top_p, record
        self.pyramid: list[torch.Tensor] = []
        self.pyramids: list[list[torch.Tensor]] = []

    def __call__(
        self,
        logits: torch.Tensor,
        scale: int,
        grid: tuple[int, int],
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Sample one scale. logits (B, h*w, d, 2) or (B, h*w, d); returns bool bits (B, h*w, d)."""
        lo = log_odds(logits)
        if bool(torch.isnan(lo).any()):
            raise ValueError(
                f"scale {scale}: {int(torch.isnan(lo).sum())} of {lo.numel()} bit logits are NaN (an overflow in "
                "the model, the guidance or the temperature?); refusing to sample them: each would become bit 0"
            )
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
            self.pyramids.append(self.pyramid)
        if scale != len(self.pyramid):
            raise RuntimeError(f"recording expects scale {len(self.pyramid)} next, got scale {scale}")
        self.pyramid.append(bits.view(bits.shape[0], h, w, bits.shape[-1]).cpu())


class WatermarkSampler(PlainSampler):
    """Samples bits with the key's watermark (rule, context width n, delta and scales from the key).

    impl: "fast" (default) or "loop" (readable reference); both give identical bits.
    bias_from: the first bit index of a token that is biased (default n-1, every bit with a full context).
             The published BitMark code biases bits 2..d-1 only: `bias_from=PUBLISHED_BIAS_FROM`.
    min_entropy: bias only bits whose binary entropy (nats, of the model's own distribution for that bit,
             before the bias) exceeds this; 0 (default) biases every bit. A bit the model is sure of buys
             almost no evidence (its green probability barely moves) but flipping it is what the eye and
             FD see, so the gate spends delta where it is cheap. A sampling choice only: the detector needs
             no change (ungated bits are scored and only dilute), so it is not part of the key.
    """

    def __init__(
        self,
        key: WatermarkKey,
        top_k: int = 0,
        top_p: float = 1.0,
        record: bool = False,
        impl: str = "fast",
        bias_from: int | None = None,
        min_entropy: float = 0.0,
    ):
        super().__init__(top_k, top_p, record)
        if not (isinstance(min_entropy, (int, float)) and not isinstance(min_entropy, bool) and 0.0 <= min_entropy < math.log(2)):
            raise ValueError(f"min_entropy is a binary entropy in nats, in [0, ln 2) (ln 2 would bias nothing), got {min_entropy!r}")
        if impl not in ("fast", "loop"):
            raise ValueError(f"impl must be 'fast' or 'loop', got {impl!r}")
        n = key.config.context
        if bias_from is not None and not (isinstance(bias_from, int) and bias_from >= n - 1):
            raise ValueError(f"bias_from must be an integer >= n-1 = {n - 1} (a biased bit needs a full context), got {bias_from!r}")
        self.key, self.rule, self.impl = key, GreenRule(key), impl
        self.bias_from = n - 1 if bias_from is None else bias_from
        self.min_entropy = float(min_entropy)
        self.last_gate: torch.Tensor | None = None  # min_entropy > 0: float (B, L, d), 1 where the last scale was biased
        self.gate_counts = [0, 0]  # min_entropy > 0: bits the gate biased, and bits it could have, over every call
        self.coarser: list[torch.Tensor] = []  # keyed-content: this batch's bits of the scales sampled so far
        self.last_table: torch.Tensor | None = None  # the green tables of the last watermarked scale
        self._tables: dict[tuple, tuple] = {}  # (scale, h, w, d, device) -> table on the device, packed table, bias

    def _sample(self, lo: torch.Tensor, u: torch.Tensor, scale: int, h: int, w: int) -> torch.Tensor:
        cfg = self.key.config
        if self.rule.seeded:  # keyed-content: a token's table depends on the coarser bits of its own image
            if scale == 0:
                self.coarser = []
            if scale != len(self.coarser):
                raise RuntimeError(f"keyed-content samples scales in order: expected scale {len(self.coarser)}, got {scale}")
        if not cfg.watermarks(scale):
            bits = super()._sample(lo, u, scale, h, w)
        elif self.rule.seeded or self.impl == "loop" or self.min_entropy > 0:
            self.last_table = self.rule.token_tables(scale, h, w, lo.shape[-1], self.coarser)
            delta = cfg.delta
            if self.min_entropy > 0:  # per-bit biases: delta where the bit is uncertain enough, 0 elsewhere
                self.last_gate = entropy_gate(lo, self.min_entropy)
                biasable = self.last_gate[..., self.bias_from :]
                self.gate_counts[0] += int(biasable.sum())
                self.gate_counts[1] += biasable.numel()
                delta = _bias(lo.shape[-1], cfg.context, cfg.delta, lo.device, self.bias_from) * self.last_gate
            if self.impl == "loop":
                bits = chain_loop(lo, u, self.last_table, cfg.context, delta, self.top_k, self.top_p, start=self.bias_from)
            elif isinstance(delta, torch.Tensor):
                bits = chain_fast(lo, u, self.last_table, cfg.context, cfg.delta, self.top_k, self.top_p, bias=delta)
            else:
                bits = chain_fast(lo, u, self.last_table, cfg.context, delta, self.top_k, self.top_p, start=self.bias_from)
        else:
            bits = self._fixed_table_chain(lo, u, scale, h, w)
        if self.rule.seeded:
            self.coarser = self.coarser + [bits.view(bits.shape[0], h, w, bits.shape[-1])]
        return bits

    def _fixed_table_chain(self, lo: torch.Tensor, u: torch.Tensor, scale: int, h: int, w: int) -> torch.Tensor:
        """The fast chain with the scale's table, packed table and bias cached on the device."""
        cfg, d = self.key.config, lo.shape[-1]
        cached = self._tables.get((scale, h, w, d, lo.device))
        if cached is None:
            table = self.rule.table(scale, h, w, d)
            packed = packed_table(table) if cfg.context == 2 and word_bytes(d) else None
            cached = (table.to(lo.device), packed, _bias(d, cfg.context, cfg.delta, lo.device, self.bias_from))
            self._tables[(scale, h, w, d, lo.device)] = cached
        self.last_table, packed, bias = cached
        return chain_fast(lo, u, self.last_table, cfg.context, cfg.delta, self.top_k, self.top_p, packed=packed, bias=bias)


__all__ = ["PUBLISHED_BIAS_FROM", "PlainSampler", "WatermarkSampler", "binary_entropy", "chain_loop", "chain_fast", "entropy_gate", "log_odds"]
