"""Adapters that put bitmark into outside generators and their tokenizers.

Each adapter lives in its own module and imports its generator only when it is used, so
`import bitmark` never needs an outside model's code:

* `bitmark.adapters.infinity` -- FoundationVision's Infinity (bitwise next-scale prediction):
  `watermarked(sampler, schedule)` wraps its per-scale sampling function, `InfinityEncoder` turns
  images into bit pyramids with its BSQ VAE, `load_infinity_vae` / `load_infinity_transformer` read a
  user's checkpoints.
"""
