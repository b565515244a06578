"""The detector's kernel: count a pyramid's scored positions by (scale, j, context, bit, green value).

Everything that depends only on the key and the pyramid's shape is built once and cached (`CellCounter`):
for every scored position (token l, bit index j) of every scored scale, the bincount code of the cell its
bit falls in is an affine function of the bit and its context. For n = 2 the green value is
g = t0 XOR (ctx AND (t0 XOR t1)) = t0 + ctx * (t0 XOR t1) * (1 - 2 t0), so

    code = [cell base + t0]  +  ctx * [4 + (t0 XOR t1)(1 - 2 t0)]  +  2 * bit,

two cached integer tables and three elementwise operations per chunk of images, then one bincount. For
n >= 3 the green value is looked up in the flattened table. All scored scales are counted together (one
pass instead of one per scale), and images go through in chunks of about CHUNK_BITS bits, so that the
working set and the bincount's table stay in cache at any batch size.
"""

from __future__ import annotations

from typing import Sequence

import torch

from bitmark.core.rules import GreenRule, contexts

CHUNK_BITS = 1 << 18


class CellCounter:
    """Counts for one key and one pyramid shape. scales: the scored scale indices; shapes: their (h, w, d)."""

    def __init__(self, rule: GreenRule, scales: Sequence[int], shapes: Sequence[tuple[int, int, int]]):
        n, S = rule.n, rule.num_contexts
        d = shapes[0][2]
        self.n, self.S, self.J = n, S, d - n + 1
        self.num_scales = len(scales)
        self.block = self.J * S * 4  # cells (j, context, bit, green) of one scale
        self.range = self.num_scales * self.block  # codes of one image
        positions = sum(h * w for h, w, _ in shapes)
        self.chunk = max(1, CHUNK_BITS // max(1, positions * self.J))
        top = self.chunk * self.range
        self.dtype = torch.int16 if top < 2**15 else torch.int32 if top < 2**31 else torch.int64
        base, green_step, tables = [], [], []
        for i, (s, (h, w, _)) in enumerate(zip(scales, shapes)):
            L = h * w
            table = rule.table(s, h, w, d)[:, n - 1 :, :].expand(L, self.J, S)  # (L, J, S) green values
            cell = (i * self.block + torch.arange(self.J, dtype=torch.int64) * S * 4).expand(L, self.J)
            if n == 2:
                t0, t1 = table[..., 0].long(), table[..., 1].long()
                base.append(cell + t0)
                green_step.append(4 + (t0 ^ t1) * (1 - 2 * t0))
            else:
                base.append(cell)
                tables.append(table.reshape(-1))
        offsets = (torch.arange(self.chunk, dtype=torch.int64) * self.range).view(-1, 1, 1)
        self.base = (torch.cat(base) + offsets).to(self.dtype)  # (chunk, positions, J)
        if n == 2:
            self.step = torch.cat(green_step).to(self.dtype)  # (positions, J)
        else:
            self.table = torch.cat(tables)  # (positions * J * S,) bool
            self.where = (torch.arange(positions * self.J, dtype=torch.int64) * S).view(positions, self.J)

    def counts(self, scales: Sequence[torch.Tensor], mask: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """The scored scales' bits, each bool (B, h*w, d) -> int64 counts (B, scales, J, S, 2, 2). mask: per scored
        scale a bool (B, h*w) of the positions to count (None: all)."""
        B = scales[0].shape[0]
        out = torch.empty(B, self.range, dtype=torch.int64)
        n = self.n
        for b0 in range(0, B, self.chunk):
            # the chunk's tokens of every scale side by side, gathered here so that they stay in cache
            x = torch.cat([t[b0 : b0 + self.chunk] for t in scales], dim=1) if len(scales) > 1 else scales[0][b0 : b0 + self.chunk]
            c = x.shape[0]
            if n == 2:
                xi = x.to(self.dtype)
                code = torch.mul(xi[..., :-1], self.step)
                code += self.base[:c]
            else:
                ctx = contexts(x, n)
                green = self.table.take(self.where + ctx.long())
                code = ctx.to(self.dtype) * 4
                code += self.base[:c]
                code += green
                xi = x.to(self.dtype)
            code.add_(xi[..., n - 1 :], alpha=2)
            if mask is None:
                out[b0 : b0 + c] = torch.bincount(code.view(-1), minlength=c * self.range).view(c, self.range)
            else:
                keep = torch.cat([m[b0 : b0 + c] for m in mask], dim=1).unsqueeze(-1).expand_as(code)
                out[b0 : b0 + c] = torch.bincount(code[keep], minlength=c * self.range).view(c, self.range)
        return out.view(B, self.num_scales, self.J, self.S, 2, 2)
