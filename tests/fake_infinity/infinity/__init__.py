"""Stand-in for FoundationVision's Infinity package, for bitmark's tests only (see ../README.md)."""
