"""bitmark: keyed watermarks for bitwise autoregressive image generators (the Infinity family).

The embedding side: keys, green rules and the sampling hook. Detection lives in `detectors`,
attacks in `attacks`, experiments in `benchmarks`.
"""

import logging

from bitmark.keys import ConfigMismatch, KeyFileError, WatermarkConfig, WatermarkKey
from bitmark.pyramid import PyramidError, load_pyramid, save_pyramid
from bitmark.rules import GreenRule
from bitmark.sampler import PlainSampler, WatermarkSampler

logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"
__all__ = [
    "ConfigMismatch",
    "GreenRule",
    "KeyFileError",
    "PlainSampler",
    "PyramidError",
    "WatermarkConfig",
    "WatermarkKey",
    "WatermarkSampler",
    "load_pyramid",
    "save_pyramid",
]
