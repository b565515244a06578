"""flash_attn's two attention entry points, computed with torch's SDPA (CPU test shim; see ../README.md)."""

import torch
import torch.nn.functional as F


def flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, **unused):
    """q, k, v: (B, L, H, c) -> (B, L, H, c)."""
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), scale=softmax_scale,
                                         is_causal=causal)
    return out.transpose(1, 2)


def flash_attn_varlen_kvpacked_func(q, kv, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, dropout_p=0.0,
                                    softmax_scale=None, causal=False, **unused):
    """q: (total_q, H, c), kv: (total_k, 2, H, c), sequences delimited by the cumulative lengths -> (total_q, H, c)."""
    out = torch.empty_like(q)
    for i in range(len(cu_seqlens_q) - 1):
        qs, qe = int(cu_seqlens_q[i]), int(cu_seqlens_q[i + 1])
        ks, ke = int(cu_seqlens_k[i]), int(cu_seqlens_k[i + 1])
        qi = q[qs:qe].transpose(0, 1).unsqueeze(0)
        ki, vi = (kv[ks:ke, j].transpose(0, 1).unsqueeze(0) for j in (0, 1))
        o = F.scaled_dot_product_attention(qi, ki.to(qi.dtype), vi.to(qi.dtype), scale=softmax_scale, is_causal=causal)
        out[qs:qe] = o.squeeze(0).transpose(0, 1).to(out.dtype)
    return out
