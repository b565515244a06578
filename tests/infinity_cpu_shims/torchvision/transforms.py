"""Empty: Infinity's VAE module imports torchvision.transforms but inference does not use it (CPU test shim)."""
