"""torchvision is imported by Infinity's VAE module for training-time transforms only (CPU test shim)."""
from torchvision import transforms  # noqa: F401
