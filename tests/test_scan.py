"""`bitmark scan`: one manifest row per file, resumable after an interruption (a row limit, or a torn last
line left by a killed writer) without losing or repeating a file; errors get rows; the keep list."""

import json

import numpy as np
import pytest
import torch

from bitmark.cli import main
from bitmark.detectors.scan import manifest_rows, scan
from bitmark.evaluation.keys import fixed_key
from bitmark.io.images import save_png
from bitmark.models.sampling import sample_images


@pytest.fixture(scope="module")
def folder(tmp_path_factory, models):
    """3 watermarked samples, 5 real-looking clean images (held-out crops) and one corrupt file."""
    from bitmark.io.datasets import load_dataset

    root = tmp_path_factory.mktemp("scrape")
    gen, tok = models
    marked, _ = sample_images(gen, tok, torch.arange(3), key=fixed_key(0), seed=1, progress=False)
    for i, im in enumerate(marked):
        save_png(root / f"a-marked-{i}.png", im)
    real = load_dataset("photos", "heldout").images[::190][:5]
    (root / "sub").mkdir()
    for i, im in enumerate(real):
        save_png(root / "sub" / f"real-{i}.png", im)
    (root / "b-corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return root, tok


def _paths(rows):
    return [r["path"] for r in rows]


def test_scan_resumes_after_a_row_limit(folder, tmp_path):
    root, tok = folder
    manifest, keep = tmp_path / "m.jsonl", tmp_path / "keep.txt"
    first = scan(fixed_key(0), [root], manifest, limit=4, batch_size=3, encoder=tok, progress=False)
    assert first["new"] == 4 and first["remaining"] == 5
    second = scan(fixed_key(0), [root], manifest, keep_list=keep, batch_size=3, encoder=tok, progress=False)
    assert second["new"] == 5 and second["remaining"] == 0 and second["files"] == 9
    rows = manifest_rows(manifest)
    assert sorted(_paths(rows)) == sorted(str(p) for p in root.rglob("*.png")) and len(set(_paths(rows))) == 9
    by_name = {r["path"].rsplit("/", 1)[1]: r for r in rows}
    assert "error" in by_name["b-corrupt.png"] and "is_watermarked" not in by_name["b-corrupt.png"]
    assert all(by_name[f"a-marked-{i}.png"]["is_watermarked"] is True for i in range(3))
    assert sum(r.get("is_watermarked") is False for r in rows) >= 4  # 5 real crops at 1% FPR
    kept = keep.read_text().splitlines()
    assert sorted(kept) == sorted(r["path"] for r in rows if r.get("is_watermarked") is False)
    assert not any("marked" in p or "corrupt" in p for p in kept)


def test_scan_cuts_a_torn_last_line_and_rescans_that_file(folder, tmp_path):
    root, tok = folder
    manifest = tmp_path / "m.jsonl"
    scan(fixed_key(0), [root], manifest, limit=3, encoder=tok, progress=False)
    lines = manifest.read_text().splitlines(keepends=True)
    manifest.write_text("".join(lines[:3]) + lines[3][:15])  # the third row was cut mid-write
    r = scan(fixed_key(0), [root], manifest, encoder=tok, progress=False)
    assert r["new"] == 7 and r["files"] == 9
    rows = [json.loads(line) for line in manifest.read_text().splitlines()][1:]  # every line parses (1: header)
    assert len(rows) == 9 and len(set(_paths(rows))) == 9


def test_scan_command(folder, tmp_path, capsys):
    root, _ = folder
    key = tmp_path / "key.json"
    fixed_key(0).save(key)
    out, keep = tmp_path / "m.jsonl", tmp_path / "keep.txt"
    code = main(["scan", str(root), "--key", str(key), "--out", str(out), "--keep", str(keep), "--json"])
    assert code == 1  # one file could not be read
    info = json.loads(capsys.readouterr().out)
    assert info["files"] == 9 and info["errors"] == 1 and info["flagged"] >= 3 and keep.exists()
    assert main(["scan", str(root), "--key", str(key), "--out", str(out), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["new"] == 0  # nothing is scanned twice
    assert len(np.unique([json.loads(line)["path"] for line in out.read_text().splitlines()[1:]])) == 9


def test_a_manifest_keeps_its_resync_setting(folder, tmp_path):
    """The stage is on by default; a manifest scanned without it is refused by a default rerun, which names the flag."""
    from bitmark.detectors.manifest import ManifestError

    root, tok = folder
    manifest = tmp_path / "m.jsonl"
    scan(fixed_key(0), [root], manifest, limit=2, encoder=tok, progress=False, resync=False)
    assert json.loads(manifest.read_text().splitlines()[0])["resync"] is False
    with pytest.raises(ManifestError, match="--no-resync"):
        scan(fixed_key(0), [root], manifest, encoder=tok, progress=False)
    assert scan(fixed_key(0), [root], manifest, encoder=tok, progress=False, resync=False)["files"] == 9
    other = tmp_path / "on.jsonl"
    scan(fixed_key(0), [root], other, limit=2, encoder=tok, progress=False)
    assert json.loads(other.read_text().splitlines()[0])["resync"] is True
