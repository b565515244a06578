"""Scan manifests: the JSON-lines file a scan appends to, bound to the run that wrote it.

Line 1 is a header, `{"bitmark_manifest": 1, "key_id": ..., "fpr": ..., "encoder": {...}, "detector": {...}}`:
the verdicts below it hold only for that key, FPR, encoder (its weights' sha256) and detector configuration,
so a rerun with anything else is refused with the fields that differ (a new `--out` starts a new manifest).
Every other line is one file's row.

Paths are normalised before they are compared or written: absolute and `os.path.normpath`-ed, without
resolving symlinks (a link is scanned under the name it was given, so the keep list names what the user
listed; two links to one file are two rows). A file name whose bytes are not UTF-8 is written as
`path` (readable, with `\\xNN` escapes) plus `path_b64` (the exact bytes); `row_path` reads it back.

One writer at a time: `ManifestLock` takes an exclusive, non-blocking `flock` on `MANIFEST.lock`.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


class ManifestError(ValueError):
    """A manifest that cannot be used for this run: corrupt, written by another run, or locked."""


# --- paths --------------------------------------------------------------------------------------------------


def norm_path(path: str | os.PathLike | bytes) -> str:
    """The one spelling of a file: absolute, normpath-ed, symlinks kept (os str, surrogate-escaped)."""
    return os.path.abspath(os.fsdecode(path))


def path_fields(path: str) -> dict[str, str]:
    """`path` (always valid UTF-8) and, for a name that is not UTF-8, `path_b64` with its exact bytes."""
    raw = os.fsencode(path)
    try:
        return {"path": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {"path": raw.decode("utf-8", "backslashreplace"), "path_b64": base64.b64encode(raw).decode("ascii")}


def row_path(row: dict[str, Any]) -> str:
    """The file a row is about, as an os str (exact bytes via surrogateescape)."""
    if "path_b64" in row:
        return os.fsdecode(base64.b64decode(row["path_b64"]))
    return row["path"]


# --- the header ---------------------------------------------------------------------------------------------


def encoder_identity(encoder: Any) -> dict[str, Any]:
    """Name and weights sha256 of an encoder (its own state_dict, or its `vae`'s), plus its grid settings."""
    module = encoder if hasattr(encoder, "state_dict") else getattr(encoder, "vae", None)
    ident: dict[str, Any] = {"name": type(encoder).__name__}
    if module is not None and hasattr(module, "state_dict"):
        h = hashlib.sha256()
        for name, t in sorted(module.state_dict().items()):
            t = t.detach().cpu().contiguous()
            h.update(f"{name}:{t.dtype}:{tuple(t.shape)}\n".encode())
            h.update(t.view(-1).view(t.dtype).numpy().tobytes() if t.numel() else b"")
        ident["weights_sha256"] = h.hexdigest()
    else:
        ident["weights_sha256"] = None  # an encoder without weights to name: only its class is bound
    for attr in ("schedule", "patchify", "size"):
        if hasattr(encoder, attr):
            ident[attr] = json.loads(json.dumps(getattr(encoder, attr), default=str))
    return ident


def make_header(key: Any, fpr: float, encoder: Any, detector: Any, resync: bool = False) -> dict[str, Any]:
    """What the verdicts of a manifest depend on. `detector` is the BitDetector the scan tests with; `resync`,
    whether the resynchronisation stage ran before it."""
    return {
        "bitmark_manifest": FORMAT_VERSION,
        "resync": bool(resync),
        "key_id": key.key_id,
        "key_config": key.config.to_dict(),
        "fpr": float(fpr),
        "encoder": encoder_identity(encoder),
        "detector": {
            "null": detector.null, "unique": bool(detector.unique),
            "scales": None if detector.scales is None else list(detector.scales),
            "weights": None if detector.weights is None else [float(w) for w in detector.weights],
            "prior": detector.prior is not None, "prior_strength": detector.prior_strength,
        },
    }


def check_header(found: dict[str, Any], wanted: dict[str, Any], path: Path) -> None:
    """Refuse a manifest written for another key, FPR, encoder or detector, naming what differs."""
    diffs = [f"{k}: manifest has {found.get(k)!r}, this run {wanted[k]!r}" for k in wanted if found.get(k) != wanted[k]]
    if diffs:
        raise ManifestError(
            f"{path} was written by another scan configuration, so its verdicts do not hold for this one:\n  "
            + "\n  ".join(diffs) + "\nscan into a new --out (or rerun with the manifest's own settings"
            + (f", here {'--resync' if found.get('resync') else '--no-resync'}" if found.get("resync") != wanted.get("resync") else "")
            + _null_hint(found.get("detector"), wanted.get("detector"))
            + ")"
        )


def _null_hint(found: Any, wanted: Any) -> str:
    """The scan option that gives back a manifest's null: --null X for a rule's null, none for the default one."""
    if not isinstance(found, dict) or not isinstance(wanted, dict) or found.get("null") == wanted.get("null"):
        return ""
    return f", here --null {found['null']}" if found.get("null") in ("self-normalised", "binomial") else ", here without --null"


# --- reading and writing ------------------------------------------------------------------------------------


def read_manifest(path: Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(header, rows) of a manifest; a torn last line is removed from the file (its file is rescanned).

    Any other line that is not a JSON object with a `path` is an error naming its line number."""
    path = Path(path)
    if not path.exists():
        return None, []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1  # everything after the last newline is a partial write
    if end < len(data):
        log.warning("%s: dropping a torn last line (%d bytes); that file is scanned again", path, len(data) - end)
        with open(path, "r+b") as f:
            f.truncate(end)
    header, rows = None, []
    for n, line in enumerate(data[:end].splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ManifestError(f"{path}:{n}: not a JSON row ({e}); fix or remove that line") from None
        if not isinstance(row, dict):
            raise ManifestError(f"{path}:{n}: a row is a JSON object, got {type(row).__name__}")
        if n == 1 and "bitmark_manifest" in row:
            if row["bitmark_manifest"] != FORMAT_VERSION:
                raise ManifestError(f"{path}: manifest format {row['bitmark_manifest']!r}; this bitmark reads {FORMAT_VERSION}")
            header = row
            continue
        if n == 1:
            raise ManifestError(f"{path}:1: no manifest header (an older bitmark, or not a manifest); scan into a new --out")
        if not isinstance(row.get("path"), str) or not isinstance(row.get("path_b64", ""), str):
            raise ManifestError(f"{path}:{n}: row has no `path` string: {line[:120].decode('utf-8', 'replace')}")
        rows.append(row)
    return header, rows


def manifest_rows(path: str | Path) -> list[dict[str, Any]]:
    """The file rows of a manifest (header left out)."""
    return read_manifest(Path(path))[1]


def read_path_list(path: str | Path) -> list[str]:
    """A list of files, one a line, read as the names' own bytes (blank lines skipped)."""
    path = Path(path)
    if path.suffix == ".parquet":
        raise ManifestError(f"{path}: a Parquet table of paths is read by --engine ray")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ManifestError(f"cannot read the list of paths {path}: {e}") from e
    return [os.fsdecode(line) for line in data.split(b"\n") if line.strip()]


def row_line(row: dict[str, Any]) -> str:
    return json.dumps(row, allow_nan=False) + "\n"  # ASCII: any text, whatever its origin, writes


def write_keep_list(rows: list[dict[str, Any]], path: str | Path) -> tuple[Path, int]:
    """Files to keep for training (read without error, not flagged), one a line, written atomically as the
    names' own bytes. Returns the path and how many names were left out because they hold a newline."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    names = [os.fsencode(row_path(r)) for r in rows if r.get("is_watermarked") is False]
    newline = [n for n in names if b"\n" in n]
    for n in newline:
        log.warning("%r: a file name with a newline cannot go in a one-per-line keep list; left out", n)
    try:
        with open(tmp, "wb") as f:
            f.write(b"".join(n + b"\n" for n in names if b"\n" not in n))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path, len(newline)


class ManifestLock:
    """Exclusive, non-blocking lock on `MANIFEST.lock` for the whole scan (a second scan refuses)."""

    def __init__(self, manifest: Path):
        self.path = manifest.with_name(manifest.name + ".lock")
        self._fd: int | None = None

    def __enter__(self) -> ManifestLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ManifestError(f"{self.path.with_suffix('')} is being written by another scan (lock {self.path}); "
                                "wait for it to finish, or scan into another --out") from None
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
