"""Attacks on watermarked images (DESIGN §7): a registry of small classes, each with a strength range.

    import attacks
    attacks.names()                       # every registered attack
    attacks.get("jpeg", 50)(images)       # uint8 (B, H, W, 3) or list of PIL images in, same out
    attacks.parse("jpeg:50+crop:0.7")     # a chain
    attacks.parse("web")                  # the web channel: a random chain per image (attacks/web.py)
    attacks.get("bitflip", 0.5, oracle=BitDetector(key).green_status)   # white-box: the key's oracle
"""

from bitmark.attacks import averaging, classical, regeneration, stealing, web, whitebox  # noqa: F401  (register their attacks)
from bitmark.attacks.base import REGISTRY, Attack, AttackError, Chain, check, get, names, parse

__all__ = ["REGISTRY", "Attack", "AttackError", "Chain", "check", "get", "names", "parse"]
