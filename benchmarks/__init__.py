"""Experiments that produce tables and plots: speed, robustness, quality, collapse, radioactivity."""
