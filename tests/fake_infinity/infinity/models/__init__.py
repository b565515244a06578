"""Stand-in for `infinity.models`."""
