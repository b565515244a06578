"""The three timm names Infinity's model code imports (CPU test shim; see ../README.md)."""
