"""Stand-in for FoundationVision's Infinity package, for bitmark's tests only (see ../README.md)."""

BITMARK_STANDIN = True  # read by bitmark.backends.tiny, which labels everything built from this package as the stand-in
