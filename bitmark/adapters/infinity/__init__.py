"""Infinity (FoundationVision) adapter: watermark its sampler in place, and read bits back with its BSQ VAE.

Embedding. Infinity's `autoregressive_infer_cfg` samples each scale's bits with one call of the
module-level function `infinity.models.infinity.sample_with_top_k_top_p_also_inplace_modifying_logits_`,
which it looks up at call time. `watermarked(sampler, schedule)` swaps that function for the sampler for the
duration of a `with` block:

    with watermarked(WatermarkSampler(key), schedule, seed=0) as run:
        infinity.autoregressive_infer_cfg(..., scale_schedule=schedule, ...)
    run.pyramid  # the sampled bits, per scale (B, h, w, d); Infinity itself does not return them

What the wrapper receives, and what it does with it:

* logits `(B, h*w*d, 2)` for the conditional batch only, already divided by the temperature and mixed with
  classifier-free guidance (on logits or on a block's output, depending on `cfg_insertion_layer`), so the
  watermark's bias lands after both -- and before top-k/top-p, which the sampler applies per bit after the
  bias. The flat index is `(row*w + col)*d + c`.
* `top_k` / `top_p` as Infinity passes them. On a two-way distribution top-k >= 2 keeps both values and only
  top_k = 1 (greedy) matters; top_p = 0 means "off" in Infinity and 1.0 in bitmark. They are translated, and
  a sampler built with a different truncation is refused rather than silently overridden.
* `rng`, Infinity's generator (seeded by `g_seed`). It is *not* used: the watermark's uniforms come from the
  run's own `torch.Generator` (`seed=` or `generator=`), so the mark's randomness is separate from the
  model's and `g_seed` no longer decides the image inside the block -- `seed=` does.
* Infinity's original masks the logits in place. The wrapper does the same for the distribution it actually
  sampled from: it adds the watermark's bias (half to each side of the pair, so the difference moves by the
  bias) and sets the values removed by top-k/top-p to -inf. Infinity does not read the logits afterwards;
  this keeps the documented contract for anything that does.
* It returns `(B, h*w*d, 1)` int64 indices (index 1 = bit 1, the VAE's positive code), as the original.

The scale is found from the call order and checked against the schedule and the logits' length; after the
last scale the next call starts a new image (`run.pyramids` keeps every finished one). Infinity-8B samples
2x2-patchified tokens of 4*14 = 56 bits (channel `c*4 + dy*2 + dx`): pass the schedule given to
`autoregressive_infer_cfg` (the patchified one) and the pyramid is in that token layout, which is the layout
`InfinityEncoder(..., patchify=True)` reads back.

Detection. `InfinityEncoder(vae, resolution)` resizes and centre-crops images as Infinity's own
preprocessing does, scales them to [-1, 1], calls `vae.encode(x, scale_schedule=...)` and takes its fourth
return value, the per-scale bits `(B, 1, h, w, d)`.

Nothing here imports Infinity until it is used; a missing Infinity raises `InfinityNotAvailable`.
Checkpoints are never downloaded: the loaders read files the user already has.
"""

from bitmark.adapters.infinity.encoder import (
    InfinityEncoder,
    encoder_from_args,
    fit_and_crop,
)
from bitmark.adapters.infinity.loading import (
    InfinityNotAvailable,
    import_infinity,
    load_infinity_transformer,
    load_infinity_vae,
)
from bitmark.adapters.infinity.sampler_hook import InfinityRun, watermarked
from bitmark.adapters.infinity.schedule import (
    ScheduleMismatch,
    infinity_schedule,
    schedule_grids,
)

__all__ = [
    "InfinityEncoder",
    "InfinityNotAvailable",
    "InfinityRun",
    "ScheduleMismatch",
    "encoder_from_args",
    "fit_and_crop",
    "import_infinity",
    "infinity_schedule",
    "load_infinity_transformer",
    "load_infinity_vae",
    "schedule_grids",
    "watermarked",
]
