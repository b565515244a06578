"""Detection side of bitmark: green-bit counting, exact p-values, thresholds and multi-key attribution."""

from detectors.attribution import Attribution, attribute
from detectors.bit_detector import NULLS, BitDetector, Detection

__all__ = ["Attribution", "BitDetector", "Detection", "NULLS", "attribute"]
