"""Watermark keys: a 256-bit secret plus the full watermark configuration, stored as one JSON file.

There is no default key anywhere: a key is made by `WatermarkKey.generate` (or `bitmark keygen`) and
travels as a file. The configuration lives in the key so that a detector can refuse a mismatch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RULES = ("keyed-spatial", "keyed", "bitmark-2025", "keyed-content")
DEFAULT_RULE = "keyed-spatial"
KEY_FORMAT = "bitmark-key"
KEY_VERSION = 1


class KeyFileError(ValueError):
    """A key file that cannot be used (corrupt, wrong format, tampered)."""


class ConfigMismatch(ValueError):
    """A requested watermark configuration that differs from the key file's."""


@dataclass(frozen=True)
class WatermarkConfig:
    """Everything that fixes which bits are green and how hard the sampler pushes them.

    rule:    "keyed-spatial" (default; green choice salted by the token's grid position),
             "keyed" (context-only, shift-invariant), "bitmark-2025" (the published, unkeyed rule) or
             "keyed-content" (each token's table seeded by its position and its parent token's bits: harder
             to steal from observed images, less robust; see bitmark.core.rules).
    context: n, the width of the in-token window: a bit's green value depends on the n-1 bits before it.
    delta:   logit bias added to the green value while sampling.
    scales:  indices of watermarked scales, or None for all of them.
    """

    rule: str = DEFAULT_RULE
    context: int = 2
    delta: float = 2.0
    scales: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"unknown green rule {self.rule!r}; choose one of {', '.join(RULES)}")
        if not (isinstance(self.context, int) and 2 <= self.context <= 8):
            raise ValueError(f"context width n must be an integer in 2..8, got {self.context!r}")
        if not self.delta >= 0:
            raise ValueError(f"delta must be >= 0, got {self.delta!r}")
        if self.scales is not None:
            scales = tuple(sorted({int(s) for s in self.scales}))
            if any(s < 0 for s in scales):
                raise ValueError(f"scale indices must be >= 0, got {self.scales!r}")
            object.__setattr__(self, "scales", scales)

    def watermarks(self, scale: int) -> bool:
        return self.scales is None or scale in self.scales

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["scales"] = None if self.scales is None else list(self.scales)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "WatermarkConfig":
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise KeyFileError(f"unknown configuration field(s) in key file: {sorted(unknown)}")
        scales = d.get("scales")
        return cls(**{**d, "scales": None if scales is None else tuple(scales)})

    def check_matches(self, **requested: Any) -> None:
        """Raise ConfigMismatch naming the first field whose requested value differs from ours."""
        mine = self.to_dict()
        for name, value in requested.items():
            if value is None:
                continue
            if name not in mine:
                raise ValueError(f"unknown configuration field {name!r}; fields are {sorted(mine)}")
            want = list(value) if isinstance(value, (tuple, list)) else value
            if want != mine[name]:
                raise ConfigMismatch(
                    f"configuration mismatch on {name!r}: the key file says {mine[name]!r}, "
                    f"but {want!r} was requested; detect with the key's own configuration"
                )


def _key_id(secret: bytes) -> str:
    return hashlib.sha256(b"bitmark-key-id\x00" + secret).hexdigest()[:12]


@dataclass(frozen=True)
class WatermarkKey:
    """A secret and the configuration it was generated with. `key_id` names it without revealing it."""

    secret: bytes = field(repr=False)
    config: WatermarkConfig

    def __post_init__(self) -> None:
        if len(self.secret) != 32:
            raise KeyFileError(f"a key secret is 32 bytes (256 bits), got {len(self.secret)}")

    @property
    def key_id(self) -> str:
        return _key_id(self.secret)

    @classmethod
    def generate(cls, config: WatermarkConfig | None = None, **overrides: Any) -> "WatermarkKey":
        """A fresh random key. `overrides` are WatermarkConfig fields (rule=, context=, delta=, scales=)."""
        config = dataclasses.replace(config or WatermarkConfig(), **overrides)
        return cls(secrets.token_bytes(32), config)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": KEY_FORMAT,
            "version": KEY_VERSION,
            "key_id": self.key_id,
            "secret": self.secret.hex(),
            "config": self.config.to_dict(),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the key as JSON, readable by its owner only (mode 0600), refusing to overwrite."""
        path = Path(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.to_dict(), f, indent=2)
            f.write("\n")
        os.chmod(path, 0o600)  # in case a umask or an odd filesystem changed it
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "WatermarkKey":
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise KeyFileError(f"cannot read key file {path}: {e}") from e
        if not isinstance(d, dict) or d.get("format") != KEY_FORMAT:
            raise KeyFileError(f"{path} is not a bitmark key file (no \"format\": \"{KEY_FORMAT}\")")
        if d.get("version") != KEY_VERSION:
            raise KeyFileError(f"{path}: key file version {d.get('version')!r} is not supported")
        try:
            secret = bytes.fromhex(d["secret"])
            key = cls(secret, WatermarkConfig.from_dict(d["config"]))
        except (KeyError, TypeError, ValueError) as e:
            raise KeyFileError(f"{path}: malformed key file: {e}") from e
        if d.get("key_id") != key.key_id:
            raise KeyFileError(f"{path}: key id {d.get('key_id')!r} does not match its secret (file altered?)")
        return key
