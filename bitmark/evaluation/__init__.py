"""Figures that both the training recipes (for weights cards) and the benchmarks need: image quality
(`quality`), bit round trips (`roundtrip`), reproducible experiment keys (`keys`) and where a figure came
from (`provenance`). Below training and benchmarks, so neither has to import the other."""
