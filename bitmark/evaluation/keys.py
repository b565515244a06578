"""Reproducible keys for experiments and tests. Their secrets are public (the SHA-256 of a number), so they
must never mark anything real: real keys come from `bitmark keygen`."""

from __future__ import annotations

import hashlib

from bitmark.core.keys import WatermarkConfig, WatermarkKey


def fixed_key(i: int, **config) -> WatermarkKey:
    """A reproducible key: the secret is the SHA-256 of its number."""
    return WatermarkKey(hashlib.sha256(str(i).encode()).digest(), WatermarkConfig(**config))
