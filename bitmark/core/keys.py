"""Watermark keys: a 256-bit secret plus the full watermark configuration, stored as one JSON file.

There is no default key anywhere: a key is made by `WatermarkKey.generate` (or `bitmark keygen`) and
travels as a file. The configuration lives in the key so that a detector can refuse a mismatch.

The file (format "bitmark-key", version 2) binds everything to the secret: `tags` holds one HMAC-SHA256,
keyed by the secret, per field (`format`, `version`, `key_id`, `config.rule`, `config.context`, `config.delta`,
`config.scales`) and one over the canonical JSON of the whole file, so an edit is refused naming the field that
changed. The tags stop anyone who does not recompute them with the secret (a hand edit, a script, a
configuration pasted from another key); whoever holds the secret can make any key anyway. Version 1 files
(no tags) are read only by `WatermarkKey.upgrade` (`bitmark keygen --upgrade OLD --out NEW`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import math
import numbers
import os
import secrets
import shlex
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

RULES = ("keyed-spatial", "keyed", "bitmark-2025", "keyed-content", "keyed-content-robust")
DEFAULT_RULE = "keyed-spatial"
KEY_FORMAT = "bitmark-key"
KEY_VERSION = 2
_V1_FIELDS = ("format", "version", "key_id", "secret", "config")
_FIELDS = _V1_FIELDS + ("tags",)
_TAG_DOMAIN = b"bitmark-key-tag/v2\x00"
UPGRADE_HINT = "bitmark keygen --upgrade {old} --out NEW.json"


class KeyFileError(ValueError):
    """A key file that cannot be used (corrupt, wrong format, tampered, too open)."""


class ConfigMismatch(ValueError):
    """A requested watermark configuration that differs from the key file's."""


def _is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _scale_tuple(scales: Any) -> tuple[int, ...]:
    """Sorted distinct scale indices; refuses strings ("12" is not [1, 2]), bools, floats, negatives, nothing."""
    if isinstance(scales, (str, bytes)) or not isinstance(scales, Iterable):
        raise ValueError(f"scales must be a list of scale indices (integers >= 0), or None for all; got {scales!r}")
    items = list(scales)
    bad = [s for s in items if not _is_int(s) or s < 0]
    if bad:
        raise ValueError(f"scale indices must be integers >= 0, got {bad[0]!r} in {scales!r}")
    if not items:
        raise ValueError("scales must name at least one scale (or be None: every scale is watermarked)")
    return tuple(sorted({int(s) for s in items}))


@dataclass(frozen=True)
class WatermarkConfig:
    """Everything that fixes which bits are green and how hard the sampler pushes them.

    rule:    "keyed-spatial" (default; green choice salted by the token's grid position),
             "keyed" (context-only, shift-invariant), "bitmark-2025" (the published, unkeyed rule) or
             "keyed-content" (each token's table seeded by its position and its parent token's bits: harder
             to steal from observed images, less robust; see bitmark.core.rules) or "keyed-content-robust"
             (the same, seeded by the parent bits that best survive re-encoding on the shipped models).
    context: n, the width of the in-token window: a bit's green value depends on the n-1 bits before it.
    delta:   logit bias added to the green value while sampling; finite and > 0 (a key with delta 0 would
             label unmarked samples as marked under its id).
    scales:  indices of watermarked scales (non-empty), or None for all of them.
    """

    rule: str = DEFAULT_RULE
    context: int = 2
    delta: float = 2.0
    scales: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.rule, str) or self.rule not in RULES:
            raise ValueError(f"unknown green rule {self.rule!r}; choose one of {', '.join(RULES)}")
        if not (_is_int(self.context) and 2 <= self.context <= 8):
            raise ValueError(f"context width n must be an integer in 2..8, got {self.context!r}")
        delta = self.delta
        if not (isinstance(delta, numbers.Real) and not isinstance(delta, bool) and math.isfinite(delta) and delta > 0):
            raise ValueError(f"delta must be a finite number > 0 (the logit bias of green bits), got {delta!r}")
        object.__setattr__(self, "context", int(self.context))
        object.__setattr__(self, "delta", float(delta))
        if self.scales is not None:
            object.__setattr__(self, "scales", _scale_tuple(self.scales))

    def watermarks(self, scale: int) -> bool:
        return self.scales is None or scale in self.scales

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["scales"] = None if self.scales is None else list(self.scales)
        return d

    @classmethod
    def from_dict(cls, d: Any) -> "WatermarkConfig":
        """Strict: a JSON object with exactly the four fields; the constructor checks each value."""
        if not isinstance(d, dict):
            raise KeyFileError(f"the configuration must be a JSON object, got {d!r}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown, missing = sorted(set(d) - set(names)), [n for n in names if n not in d]
        if unknown:
            raise KeyFileError(f"unknown configuration field(s) in key file: {unknown}")
        if missing:
            raise KeyFileError(f"configuration field(s) missing from key file: {missing}")
        return cls(**d)

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


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _tag(secret: bytes, name: str, value: Any) -> str:
    message = _TAG_DOMAIN + name.encode() + b"\x00" + _canonical(value).encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def _tagged_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The values each tag covers: every top-level field but the secret (the HMAC key) and every config field."""
    fields = {name: body[name] for name in ("format", "version", "key_id")}
    fields.update({f"config.{name}": value for name, value in body["config"].items()})
    fields["file"] = {name: body[name] for name in _V1_FIELDS}
    return fields


def _tags(secret: bytes, body: dict[str, Any]) -> dict[str, str]:
    return {name: _tag(secret, name, value) for name, value in _tagged_fields(body).items()}


class WatermarkKey:
    """A secret and the configuration it was generated with. `key_id` names it without revealing it.

    The secret stays out of generic serialisers: it is no dataclass field and there is no `__dict__`
    (`dataclasses.asdict` and `vars` raise TypeError), the repr shows the key id only, and pickling is refused,
    because a pickle carries the secret in the clear to wherever pickles go (caches, queues, logs) and one
    without it would be a key that cannot mark or detect. Keys are immutable: copies are the key itself.
    To move a key to another process, `save` it (mode 0600) and `load` it there; `to_dict` is the file format.
    """

    __slots__ = ("_secret", "config")

    def __init__(self, secret: bytes, config: WatermarkConfig):
        if not isinstance(secret, (bytes, bytearray)):
            raise TypeError(f"a key secret is bytes, got {type(secret).__name__}")
        if len(secret) != 32:
            raise KeyFileError(f"a key secret is 32 bytes (256 bits), got {len(secret)}")
        if not isinstance(config, WatermarkConfig):
            raise TypeError(f"config must be a WatermarkConfig, got {type(config).__name__}")
        object.__setattr__(self, "_secret", bytes(secret))
        object.__setattr__(self, "config", config)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a WatermarkKey is immutable; make a new one")

    __delattr__ = __setattr__

    @property
    def secret(self) -> bytes:
        return self._secret

    @property
    def key_id(self) -> str:
        return _key_id(self._secret)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WatermarkKey):
            return NotImplemented
        return hmac.compare_digest(self._secret, other._secret) and self.config == other.config

    def __hash__(self) -> int:
        return hash((self.key_id, self.config))

    def __repr__(self) -> str:
        return f"WatermarkKey(key_id={self.key_id!r}, config={self.config!r})"

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError(
            f"a WatermarkKey ({self.key_id}) is not pickled: the pickle would hold its secret in the clear; "
            "save it with key.save(path) (mode 0600) and WatermarkKey.load(path) where it is needed"
        )

    def __copy__(self) -> "WatermarkKey":
        return self

    def __deepcopy__(self, memo: dict) -> "WatermarkKey":
        return self

    @classmethod
    def generate(cls, config: WatermarkConfig | None = None, **overrides: Any) -> "WatermarkKey":
        """A fresh random key. `overrides` are WatermarkConfig fields (rule=, context=, delta=, scales=)."""
        config = dataclasses.replace(config or WatermarkConfig(), **overrides)
        return cls(secrets.token_bytes(32), config)

    def to_dict(self) -> dict[str, Any]:
        """The key file's content, secret included: for saving only."""
        body = {
            "format": KEY_FORMAT,
            "version": KEY_VERSION,
            "key_id": self.key_id,
            "secret": self._secret.hex(),
            "config": self.config.to_dict(),
        }
        return {**body, "tags": _tags(self._secret, body)}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the key as JSON, readable by its owner only (mode 0600), refusing to overwrite."""
        path = Path(path)
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.chmod(path, 0o600)  # in case a umask or an odd filesystem changed it
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, *, allow_shared: bool = False) -> "WatermarkKey":
        """Read a key file, refusing one that was edited, malformed, of another version, or open to group or
        others (`allow_shared=True` accepts the last, as the CLI's `--allow-shared-key` does)."""
        path = Path(path)
        d = _read(path, allow_shared)
        version = d.get("version")
        if _is_int(version) and version == 1:
            raise KeyFileError(
                f"{path} is a version 1 key file, whose configuration is not tamper-evident; upgrade it once "
                f"(same secret and configuration, now tagged) with: {UPGRADE_HINT.format(old=shlex.quote(str(path)))}"
            )
        _check_version(path, version)
        _check_fields(path, d, _FIELDS)
        secret = _secret(path, d)
        config = d["config"]
        if not isinstance(config, dict):
            raise KeyFileError(f"{path}: \"config\" must be a JSON object, got {config!r}")
        _check_fields(path, config, tuple(f.name for f in dataclasses.fields(WatermarkConfig)), "configuration field")
        _check_tags(path, secret, d)
        return _build(cls, path, secret, config)

    @classmethod
    def upgrade(cls, old: str | os.PathLike, new: str | os.PathLike, *, allow_shared: bool = False) -> "WatermarkKey":
        """Re-write a version 1 key file as the current version at `new`: same secret and configuration, now
        tagged. Version 1 files were not tamper-evident, so check the configuration it reports."""
        old = Path(old)
        d = _read(old, allow_shared)
        version = d.get("version")
        if _is_int(version) and version == KEY_VERSION:
            raise KeyFileError(f"{old} is already a version {KEY_VERSION} key file; nothing to upgrade")
        if not (_is_int(version) and version == 1):
            raise KeyFileError(f"{old}: only version 1 key files are upgraded, this one says {version!r}")
        _check_fields(old, d, _V1_FIELDS)
        key = _build(cls, old, _secret(old, d), d["config"])
        key.save(new)
        return key


def _read(path: Path, allow_shared: bool) -> dict[str, Any]:
    """The file's JSON object, after checking that it is private (as ssh does) and is a bitmark key."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_text()
    except OSError as e:
        raise KeyFileError(f"cannot read key file {path}: {e.strerror or e}") from e
    if mode & 0o077 and not allow_shared and os.name != "nt":
        raise KeyFileError(
            f"{path}: permissions {mode:04o} are too open: group or others can read or write this key's secret. "
            f"Fix it with: chmod 600 {shlex.quote(str(path))} "
            "(or accept it with --allow-shared-key / allow_shared=True)"
        )
    try:
        d = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise KeyFileError(f"cannot read key file {path}: {e}") from e
    if not isinstance(d, dict) or d.get("format") != KEY_FORMAT:
        raise KeyFileError(f"{path} is not a bitmark key file (no \"format\": \"{KEY_FORMAT}\")")
    return d


def _check_version(path: Path, version: Any) -> None:
    if not _is_int(version):
        raise KeyFileError(f"{path}: \"version\" must be an integer, got {version!r}")
    if version != KEY_VERSION:
        raise KeyFileError(f"{path}: key file version {version} is not supported (this bitmark reads {KEY_VERSION})")


def _check_fields(path: Path, d: dict[str, Any], names: tuple[str, ...], what: str = "top-level field") -> None:
    unknown, missing = sorted(set(d) - set(names)), [n for n in names if n not in d]
    if unknown:
        raise KeyFileError(f"{path}: unknown {what}(s) in key file: {unknown}")
    if missing:
        raise KeyFileError(f"{path}: {what}(s) missing from key file: {missing}")


def _secret(path: Path, d: dict[str, Any]) -> bytes:
    """The secret, checked against the key id (which is derived from it)."""
    hex_secret = d["secret"]
    try:
        if not isinstance(hex_secret, str):
            raise ValueError(f"\"secret\" must be a hex string, got {type(hex_secret).__name__}")
        secret = bytes.fromhex(hex_secret)
        if len(secret) != 32:
            raise ValueError(f"a key secret is 32 bytes (256 bits), got {len(secret)}")
    except ValueError as e:
        raise KeyFileError(f"{path}: malformed key file: {e}") from e
    if d["key_id"] != _key_id(secret):
        raise KeyFileError(
            f"{path}: key id {d['key_id']!r} does not match its secret (the secret or key_id was edited)"
        )
    return secret


def _check_tags(path: Path, secret: bytes, d: dict[str, Any]) -> None:
    """Refuse the file if any tag differs, naming each field whose value is not the one the key was made with."""
    tags = d["tags"]
    expected = _tags(secret, d)
    if not isinstance(tags, dict) or set(tags) != set(expected):
        raise KeyFileError(f"{path}: the key file's \"tags\" were edited (expected one per field: {sorted(expected)})")
    edited = [name for name in expected if name != "file" and not _same(tags[name], expected[name])]
    if edited:
        fields = _tagged_fields(d)
        what = ", ".join(f"{name.removeprefix('config.')} (now {fields[name]!r})" for name in edited)
        raise KeyFileError(
            f"{path}: {what} {'was' if len(edited) == 1 else 'were'} edited: the key file's tags do not match "
            "the value it was made with. Restore the original file, or make a new key with bitmark keygen"
        )
    if not _same(tags["file"], expected["file"]):
        raise KeyFileError(f"{path}: the key file was edited (its tag over the whole file does not match)")


def _same(found: Any, expected: str) -> bool:
    return isinstance(found, str) and hmac.compare_digest(found.encode(), expected.encode())


def _build(cls: type[WatermarkKey], path: Path, secret: bytes, config: Any) -> WatermarkKey:
    try:
        return cls(secret, WatermarkConfig.from_dict(config))
    except KeyFileError as e:
        raise KeyFileError(f"{path}: {e}") from e
    except (TypeError, ValueError) as e:
        raise KeyFileError(f"{path}: malformed key file: {e}") from e
