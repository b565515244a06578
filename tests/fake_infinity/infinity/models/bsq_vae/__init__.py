"""Stand-in for `infinity.models.bsq_vae`."""
