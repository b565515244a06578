"""`bitmark scan`: test every image under some folders and write a resumable JSONL manifest.

One row per file: `path, z_score, p_value, is_watermarked`, or `path, error`, below a
header that binds the manifest to its key, FPR, encoder and detector (`bitmark.detectors.manifest`).
Rows are appended and flushed batch by batch, so a scan that is interrupted (Ctrl-C, a killed job, a
`limit`) loses at most the batch in flight. On restart the manifest is read back: a torn last line (the
write that was cut) is cut off, and files that already have a row are skipped, so no file is lost or
repeated. One scan writes a manifest at a time (a lock beside it). The keep list (files not flagged and
readable, one path a line) is rewritten from the whole manifest at the end, so it is complete after a
resumed scan too.

Two engines write the same manifest: this one (one process) and `engine="ray"` (Ray Data actors,
`bitmark.detectors.scan_ray`); both score files with `score_files`, so their verdicts are identical.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bitmark.detectors.manifest import (
    ManifestError,
    ManifestLock,
    check_header,
    make_header,
    manifest_rows,
    norm_path,
    path_fields,
    read_manifest,
    row_line,
    row_path,
    write_keep_list,
)
from bitmark.detectors.watermark_filter import WatermarkFilter
from bitmark.io.progress import progress as progress_bar

__all__ = ["ManifestError", "list_inputs", "manifest_rows", "open_manifest", "scan", "score_files", "write_keep_list"]

log = logging.getLogger(__name__)


def list_inputs(inputs: Iterable[str | os.PathLike]) -> list[str]:
    """The files under `inputs`, normalised, duplicates dropped (first kept). The only call of the walker."""
    from bitmark.io.images import iter_image_files

    seen: dict[str, None] = {}
    for p in iter_image_files(inputs):
        seen.setdefault(norm_path(p), None)
    return list(seen)


def _text(s: str) -> str:
    """A message that may hold a surrogate-escaped file name, as valid UTF-8 text."""
    return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def score_files(filt: WatermarkFilter, paths: Sequence[str], data: Sequence[bytes | None] | None = None) -> list[dict[str, Any]]:
    """One manifest row per file, in order. `data[i]`, when given, is file i's bytes (read instead of the path)."""
    from bitmark.io.images import ImageError, load_image

    images, rows = [], []
    for i, path in enumerate(paths):
        blob = data[i] if data is not None else None
        try:
            images.append(load_image(path) if blob is None else load_image(path, data=blob))
            rows.append(path_fields(path))
        except ImageError as e:
            log.warning("%s", _text(str(e)))
            rows.append({**path_fields(path), "error": _text(str(e))})
        except MemoryError:
            rows.append({**path_fields(path), "error": "out of memory while decoding"})
    good = [r for r in rows if "error" not in r]
    if images:
        result = filt.split(images)
        flagged = set(result.dropped.tolist())
        for j, r in enumerate(good):
            z, p = float(result.z_score[j]), float(result.p_value[j])
            if not (math.isfinite(z) and math.isfinite(p)):  # e.g. nothing scoreable: an error, not a verdict
                r["error"] = f"no score (z = {z}, p = {p})"
                continue
            r.update(z_score=round(z, 4), p_value=p, is_watermarked=j in flagged)
    return rows


class Manifest:
    """An open, locked manifest: its rows so far and an append that reaches the disk before returning."""

    def __init__(self, path: Path, rows: list[dict[str, Any]]):
        self.path, self.rows = path, rows
        self.done = {row_path(r) for r in rows}
        self.new = 0
        self._out = open(path, "a", encoding="utf-8")

    def append(self, rows: Sequence[dict[str, Any]]) -> None:
        fresh, seen = [], set()  # a retried task, or a table listing a file twice, may repeat a file
        for r in rows:
            p = row_path(r)
            if p not in self.done and p not in seen:
                fresh.append(r)
                seen.add(p)
        self._out.write("".join(row_line(r) for r in fresh))
        self._out.flush()
        os.fsync(self._out.fileno())
        self.rows.extend(fresh)
        self.done.update(row_path(r) for r in fresh)
        self.new += len(fresh)

    def summary(self, remaining: int, keep_list: str | Path | None) -> dict[str, Any]:
        left_out = write_keep_list(self.rows, keep_list)[1] if keep_list is not None else 0
        return {
            "manifest": str(self.path), "files": len(self.rows), "new": self.new,
            "flagged": sum(r.get("is_watermarked") is True for r in self.rows),
            "errors": sum("error" in r for r in self.rows), "remaining": max(0, remaining),
            "keep_list": str(keep_list) if keep_list is not None else None, "keep_left_out": left_out,
        }


@contextmanager
def open_manifest(manifest: str | Path, header: dict[str, Any]) -> Iterator[Manifest]:
    """Lock `manifest`, check (or write) its header, and yield it for appending."""
    manifest = Path(manifest)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    with ManifestLock(manifest):
        found, rows = read_manifest(manifest)
        if found is None:
            with open(manifest, "w", encoding="utf-8") as f:  # empty, missing, or only a torn header
                f.write(row_line(header))
                f.flush()
                os.fsync(f.fileno())
        else:
            check_header(found, header, manifest)
        m = Manifest(manifest, rows)
        try:
            yield m
        finally:
            m._out.close()


def scan(
    key, inputs: Iterable[str | Path], manifest: str | Path, fpr: float = 0.01, keep_list: str | Path | None = None,
    limit: int | None = None, batch_size: int = 64, encoder=None, progress: bool = True, resync: bool = True,
    engine: str = "local", data: str | Path | None = "photos", null: str | None = None, **engine_options: Any,
) -> dict[str, Any]:
    """Scan the image files under `inputs` not yet in `manifest`; at most `limit` new files when given.

    data, null: which detector (`WatermarkFilter`): by default the model null of `data`'s detector card.
    engine: "local" (this process) or "ray" (`scan_ray.scan_ray`, which takes `engine_options`).
    Returns counts: files in the manifest, new this run, flagged, errors, and whether files remain."""
    if engine == "ray":
        from bitmark.detectors.scan_ray import scan_ray

        return scan_ray(key, inputs, manifest, fpr=fpr, keep_list=keep_list, limit=limit, batch_size=batch_size,
                        encoder=encoder, progress=progress, resync=resync, data=data, null=null, **engine_options)
    if engine != "local" or engine_options:
        raise ValueError(f"unknown engine {engine!r} or options {sorted(engine_options)} for the local engine")
    from bitmark.detectors.resync import ResyncDetector

    filt = WatermarkFilter(key, fpr=fpr, encoder=encoder, batch_size=batch_size, resync=resync, data=data, null=null)
    header = make_header(key, fpr, filt.detector.encoder, filt.detector.bits, resync=isinstance(filt.detector, ResyncDetector))
    with open_manifest(manifest, header) as m:
        todo = [p for p in list_inputs(inputs) if p not in m.done]
        remaining = len(todo) - (limit if limit is not None else len(todo))
        todo = todo[:limit] if limit is not None else todo
        with progress_bar(desc="scan", total=len(todo), unit="img", enabled=progress) as bar:
            for start in range(0, len(todo), batch_size):
                chunk = todo[start : start + batch_size]
                m.append(score_files(filt, chunk))
                bar.update(len(chunk))
        return m.summary(remaining, keep_list)
