"""Scan manifests bound to their run (header), one writer at a time (lock), one spelling of a path, errors
with line numbers, and file names that are not UTF-8 (issue 16, "Scan manifests")."""

import copy
import json
import os
import subprocess
import sys

import pytest
import torch

from bitmark.cli import main
from bitmark.detectors.manifest import ManifestError, ManifestLock, manifest_rows
from bitmark.detectors.scan import scan
from bitmark.evaluation.keys import fixed_key
from bitmark.io.images import save_png

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def scrape(tmp_path_factory, models):
    """12 held-out photos, one corrupt file, and one photo whose name is the Latin-1 bytes of 'café'."""
    from bitmark.io.datasets import load_dataset

    root = tmp_path_factory.mktemp("scrape")
    images = load_dataset("photos", "heldout").images[:13]
    for i, im in enumerate(images[:12]):
        save_png(root / f"{i:02d}.png", im)
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    odd = os.path.join(os.fsencode(root), b"caf\xe9.png")  # not valid UTF-8
    save_png(os.fsdecode(odd), images[12])
    return root, models[1], odd


def _key_file(tmp_path, seed):
    path = tmp_path / f"key{seed}.json"
    fixed_key(seed).save(path)
    return str(path)


def test_a_rerun_with_another_key_fpr_or_encoder_is_refused(scrape, tmp_path, capsys):
    root, tok, _ = scrape
    out = tmp_path / "m.jsonl"
    scan(fixed_key(0), [root], out, limit=5, encoder=tok, progress=False)
    with pytest.raises(ManifestError, match="key_id"):
        scan(fixed_key(1), [root], out, encoder=tok, progress=False)
    with pytest.raises(ManifestError, match="fpr: manifest has 0.01, this run 0.05"):
        scan(fixed_key(0), [root], out, fpr=0.05, encoder=tok, progress=False)
    other = copy.deepcopy(tok)
    with torch.no_grad():
        next(other.parameters()).add_(1e-3)  # retrained weights, same architecture
    with pytest.raises(ManifestError, match="encoder"):
        scan(fixed_key(0), [root], out, encoder=other, progress=False)
    assert len(manifest_rows(out)) == 5  # nothing was appended by the refused runs
    assert main(["scan", str(root), "--key", _key_file(tmp_path, 1), "--out", str(out)]) == 2
    assert "key_id" in capsys.readouterr().err
    header = json.loads(out.read_text().splitlines()[0])
    assert header["bitmark_manifest"] == 1 and header["key_id"] == fixed_key(0).key_id and header["fpr"] == 0.01
    assert len(header["encoder"]["weights_sha256"]) == 64
    r = scan(fixed_key(0), [root], out, encoder=tok, progress=False)  # the manifest's own settings resume
    assert r["new"] == 9 and r["files"] == 14


def test_a_locked_manifest_is_refused(scrape, tmp_path, capsys):
    root, tok, _ = scrape
    out = tmp_path / "m.jsonl"
    with ManifestLock(out):
        with pytest.raises(ManifestError, match="being written by another scan"):
            scan(fixed_key(0), [root], out, encoder=tok, progress=False)
        assert main(["scan", str(root), "--key", _key_file(tmp_path, 0), "--out", str(out)]) == 2
        assert "another scan" in capsys.readouterr().err
    assert scan(fixed_key(0), [root], out, encoder=tok, progress=False)["files"] == 14  # released: it runs


def test_two_concurrent_scans_write_one_row_per_file(tmp_path, models):
    """Two `bitmark scan` processes started together on one manifest: every file gets exactly one row."""
    from bitmark.io.datasets import load_dataset

    root = tmp_path / "many"
    root.mkdir()
    images = load_dataset("photos", "heldout").images[:120]
    for i, im in enumerate(images):
        save_png(root / f"{i:03d}.png", im)
    key, out = _key_file(tmp_path, 0), tmp_path / "m.jsonl"
    cmd = [sys.executable, "-m", "bitmark.cli", "scan", str(root), "--key", key, "--out", str(out), "--json"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    rows = manifest_rows(out)
    assert len(rows) == 120 and len({r["path"] for r in rows}) == 120, [r[0] for r in results]
    for code, stdout, stderr in results:  # each either scanned, found nothing left, or refused on the lock
        assert code == 0 or (code == 2 and "being written by another scan" in stderr), stderr
        if code == 0:
            assert json.loads(stdout)["files"] == 120


def test_relative_and_absolute_spellings_are_one_file(scrape, tmp_path, monkeypatch):
    root, tok, _ = scrape
    out = tmp_path / "m.jsonl"
    monkeypatch.chdir(root.parent)
    scan(fixed_key(0), [f"./{root.name}/../{root.name}"], out, encoder=tok, progress=False)
    r = scan(fixed_key(0), [root, root / "00.png"], out, encoder=tok, progress=False)
    assert r["new"] == 0 and r["files"] == 14
    assert all(os.path.isabs(p["path"]) for p in manifest_rows(out))


def test_corrupt_lines_are_errors_with_their_line_number(scrape, tmp_path):
    root, tok, _ = scrape
    out = tmp_path / "m.jsonl"
    scan(fixed_key(0), [root], out, limit=4, encoder=tok, progress=False)
    lines = out.read_text().splitlines(keepends=True)  # header + 4 rows
    out.write_text("".join(lines[:2]) + '{"path": "/x.png", "z_sc\n' + "".join(lines[3:]))
    with pytest.raises(ManifestError, match=r"m\.jsonl:3: not a JSON row"):
        scan(fixed_key(0), [root], out, encoder=tok, progress=False)
    out.write_text("".join(lines[:3]) + '{"z_score": 1.0, "is_watermarked": false}\n' + "".join(lines[4:]))
    with pytest.raises(ManifestError, match=r"m\.jsonl:4: row has no `path`"):
        scan(fixed_key(0), [root], out, encoder=tok, progress=False)
    out.write_text('{"path": "/x.png", "is_watermarked": false}\n')  # a manifest from before headers
    with pytest.raises(ManifestError, match=r"m\.jsonl:1: no manifest header"):
        scan(fixed_key(0), [root], out, encoder=tok, progress=False)


def test_a_non_utf8_file_name_round_trips_through_manifest_and_keep_list(scrape, tmp_path):
    root, _, odd = scrape
    key, out, keep = _key_file(tmp_path, 0), tmp_path / "m.jsonl", tmp_path / "keep.txt"
    args = ["scan", str(root), "--key", key, "--out", str(out), "--keep", str(keep), "--json"]
    assert main(args) == 1  # the corrupt file; the odd name is scanned and kept
    assert not (tmp_path / "keep.txt.tmp").exists()
    kept = keep.read_bytes().split(b"\n")
    assert odd in kept
    line = next(r for r in out.read_bytes().splitlines() if b"caf" in r)
    row = json.loads(line.decode("utf-8"))  # every line is valid UTF-8 JSON
    assert row["path"].endswith("caf\\xe9.png") and os.fsencode(os.path.join(root, "")) in odd
    assert os.fsencode(__import__("base64").b64decode(row["path_b64"])) == odd and row["is_watermarked"] is False
    assert main(args) == 1 and json.loads(out.read_text().splitlines()[0])["bitmark_manifest"] == 1
    assert len(manifest_rows(out)) == 14  # the rerun scanned nothing again, the odd name included
    assert keep.read_bytes().split(b"\n") == kept


def test_a_list_of_paths(scrape, tmp_path, monkeypatch, capsys):
    """`--paths-from`: one name a line (bytes, so the non-UTF-8 name too); a missing file gets an error row."""
    root, _, odd = scrape
    listing = tmp_path / "list.txt"
    monkeypatch.chdir(root)
    listing.write_bytes(b"00.png\n" + odd + b"\n\n" + os.fsencode(root / "gone.png") + b"\n./00.png\n")
    out, key = tmp_path / "m.jsonl", _key_file(tmp_path, 0)
    code = main(["scan", "--paths-from", str(listing), "--key", key, "--out", str(out), "--json"])
    assert code == 1 and json.loads(capsys.readouterr().out)["files"] == 3  # ./00.png is 00.png
    rows = {os.fsencode(os.path.basename(r["path"]) if "path_b64" not in r else "odd"): r for r in manifest_rows(out)}
    assert "no such file" in rows[b"gone.png"]["error"] and rows[b"00.png"]["is_watermarked"] is False and b"odd" in rows
    assert main(["scan", "--key", key, "--out", str(out)]) == 2  # nothing to scan is a usage error


def test_a_file_without_a_finite_score_is_an_error_row(scrape, monkeypatch):
    """A NaN score (nothing scoreable) must not become a verdict, nor a NaN that strict JSON readers reject."""
    import numpy as np

    from bitmark.detectors.scan import score_files
    from bitmark.detectors.watermark_filter import FilterResult, WatermarkFilter

    root, tok, _ = scrape
    filt = WatermarkFilter(fixed_key(0), encoder=tok)
    nan = FilterResult(np.array([1]), np.array([], dtype=int), np.array([np.nan, 1.0]), np.array([np.nan, 0.2]), {})
    monkeypatch.setattr(filt, "split", lambda images: nan)
    rows = score_files(filt, [str(root / "00.png"), str(root / "01.png")])
    assert "no score" in rows[0]["error"] and "is_watermarked" not in rows[0]
    assert rows[1]["is_watermarked"] is False and rows[1]["z_score"] == 1.0
    json.loads(json.dumps(rows, allow_nan=False))
