"""Detection side of bitmark: green-bit counting, exact p-values, thresholds and multi-key attribution."""

from bitmark.detectors.attribution import Attribution, attribute
from bitmark.detectors.bit_detector import NULLS, BitDetector, Detection
from bitmark.detectors.defaults import default_detector
from bitmark.detectors.image_detector import ImageDetector
from bitmark.detectors.realign import RealigningDetector
from bitmark.detectors.resync import ResyncDetector, make_image_detector
from bitmark.detectors.watermark_filter import FilterResult, WatermarkFilter

__all__ = ["NULLS", "Attribution", "BitDetector", "Detection", "FilterResult", "ImageDetector", "RealigningDetector", "ResyncDetector",
           "WatermarkFilter", "attribute", "default_detector", "make_image_detector"]
