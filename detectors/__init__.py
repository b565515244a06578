"""Detection side of bitmark: green-bit counting, exact p-values, thresholds and multi-key attribution."""

from detectors.attribution import Attribution, attribute
from detectors.bit_detector import NULLS, BitDetector, Detection
from detectors.image_detector import ImageDetector
from detectors.realign import RealigningDetector
from detectors.watermark_filter import FilterResult, WatermarkFilter

__all__ = ["NULLS", "Attribution", "BitDetector", "Detection", "FilterResult", "ImageDetector", "RealigningDetector", "WatermarkFilter",
           "attribute"]
