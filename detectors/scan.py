"""`bitmark scan`: test every image under some folders and write a resumable JSONL manifest.

One row per file: `path, z_score, p_value, verdict` ("watermarked" or "clean"), or `path, error`.
Rows are appended and flushed batch by batch, so a scan that is interrupted (Ctrl-C, a killed job, a
`limit`) loses at most the batch in flight. On restart the manifest is read back: a torn last line (the
write that was cut) is cut off, and files that already have a row are skipped, so no file is lost or
repeated. The keep list (files not flagged and readable, one path a line) is rewritten from the whole
manifest at the end, so it is complete after a resumed scan too.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bitmark.detectors.watermark_filter import WatermarkFilter
from bitmark.io.images import iter_image_files

log = logging.getLogger(__name__)


def read_manifest(path: Path) -> list[dict[str, Any]]:
    """The complete rows of a manifest; a torn last line is removed from the file (it is rescanned)."""
    if not path.exists():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1  # everything after the last newline is a partial write
    if end < len(data):
        log.warning("%s: dropping a torn last line (%d bytes); that file is scanned again", path, len(data) - end)
        with open(path, "r+b") as f:
            f.truncate(end)
    rows = []
    for line in data[:end].splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


def scan(
    key, inputs: Iterable[str | Path], manifest: str | Path, fpr: float = 0.01, keep_list: str | Path | None = None,
    limit: int | None = None, batch_size: int = 64, encoder=None, progress: bool = True, resync: bool = False,
) -> dict[str, Any]:
    """Scan the image files under `inputs` not yet in `manifest`; at most `limit` new files when given.

    Returns counts: files in the manifest, new this run, flagged, errors, and whether files remain."""
    manifest = Path(manifest)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    rows = read_manifest(manifest)
    done = {r["path"] for r in rows}
    todo = [str(p) for p in iter_image_files(inputs) if str(p) not in done]
    remaining = len(todo) - (limit if limit is not None else len(todo))
    todo = todo[:limit] if limit is not None else todo
    filt = WatermarkFilter(key, fpr=fpr, encoder=encoder, batch_size=batch_size, resync=resync)
    new = 0
    with open(manifest, "a") as out, tqdm(total=len(todo), desc="scan", unit="img", disable=not progress or None) as bar:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            result = filt.split_files(chunk)
            lines, dropped = [], set(result.dropped.tolist())
            for i, path in enumerate(chunk):
                row = _row(path, result, i, i in dropped)
                rows.append(row)
                lines.append(json.dumps(row) + "\n")
            out.write("".join(lines))
            out.flush()
            os.fsync(out.fileno())
            new += len(chunk)
            bar.update(len(chunk))
    if keep_list is not None:
        write_keep_list(rows, keep_list)
    return {
        "manifest": str(manifest), "files": len(rows), "new": new,
        "flagged": sum(r.get("verdict") == "watermarked" for r in rows),
        "errors": sum("error" in r for r in rows), "remaining": max(0, remaining),
        "keep_list": str(keep_list) if keep_list is not None else None,
    }


def _row(path: str, result, i: int, flagged: bool) -> dict[str, Any]:
    if i in result.errors:
        return {"path": path, "error": result.errors[i]}
    return {"path": path, "z_score": round(float(result.z_score[i]), 4), "p_value": float(result.p_value[i]),
            "verdict": "watermarked" if flagged else "clean"}


def write_keep_list(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Files to keep for training: read without error and not flagged; written atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(r["path"] + "\n" for r in rows if r.get("verdict") == "clean"))
    os.replace(tmp, path)
    return path
