"""Attacks on watermarked images and bit pyramids (see DESIGN §7); a registry of small attack classes."""
