"""bitmark: keyed watermarks for bitwise autoregressive image generators (the Infinity family).

The top-level names are the watermark core: keys, green rules, samplers and bit pyramids. The rest lives
in sub-packages: `bitmark.detectors` (testing), `bitmark.attacks`, `bitmark.benchmarks`, the embedded
models in `bitmark.models`, outside generators in `bitmark.adapters`. Names are imported on first use, so
`import bitmark` (and `bitmark --help`) does not load torch.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"

_EXPORTS = {
    "ConfigMismatch": "bitmark.core.keys",
    "KeyFileError": "bitmark.core.keys",
    "WatermarkConfig": "bitmark.core.keys",
    "WatermarkKey": "bitmark.core.keys",
    "GreenRule": "bitmark.core.rules",
    "PlainSampler": "bitmark.core.sampler",
    "WatermarkSampler": "bitmark.core.sampler",
    "PyramidError": "bitmark.core.pyramid",
    "load_pyramid": "bitmark.core.pyramid",
    "save_pyramid": "bitmark.core.pyramid",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bitmark' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
