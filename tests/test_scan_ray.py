"""`bitmark scan --engine ray` (issue 17): on a local Ray, the same rows and verdicts as the local engine over
200+ files with bad ones among them; a run killed part-way resumes without losing or repeating a file; a
Parquet table of image bytes; a clear message without the extra. Ray is started once for the module (the
killed run joins it through RAY_ADDRESS, as a driver joins a cluster)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from bitmark.detectors.manifest import manifest_rows, row_path
from bitmark.detectors.scan import scan
from bitmark.evaluation.keys import fixed_key
from bitmark.io.images import save_png


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="the Ray engine needs the ray extra: pip install -e '.[ray]'")
    ray.init(address="local", num_cpus=3, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def scrape(tmp_path_factory, models):
    """200 held-out photos, 6 watermarked samples, and 5 bad entries (truncated, not an image, empty, 4x4,
    and a corrupt file whose name is not UTF-8): 211 files."""
    from bitmark.io.datasets import load_dataset
    from bitmark.models.sampling import sample_images

    root = tmp_path_factory.mktemp("scrape")
    gen, tok = models
    for i, im in enumerate(load_dataset("photos", "heldout").images[:200]):
        save_png(root / f"real-{i:03d}.png", im)
    marked, _ = sample_images(gen, tok, torch.arange(6), key=fixed_key(0), seed=3, progress=False)
    (root / "sub").mkdir()
    for i, im in enumerate(marked):
        save_png(root / "sub" / f"marked-{i}.png", im)
    (root / "bad-truncated.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (root / "bad-text.jpg").write_text("not an image")
    (root / "bad-empty.png").write_bytes(b"")
    save_png(root / "bad-tiny.png", marked[0][:4, :4])
    with open(os.path.join(os.fsencode(root), b"bad-\xff.png"), "wb") as f:
        f.write(b"GIF89a")
    return root, tok


@pytest.fixture(scope="module")
def local_rows(scrape, tmp_path_factory):
    root, tok = scrape
    out = tmp_path_factory.mktemp("local") / "m.jsonl"
    scan(fixed_key(0), [root], out, encoder=tok, progress=False)
    return out


def _by_path(manifest):
    rows = manifest_rows(manifest)
    paths = [row_path(r) for r in rows]
    assert len(paths) == len(set(paths)), "a file was scored twice"
    return dict(zip(paths, rows))


def test_a_killed_ray_scan_resumes_to_exactly_the_local_rows(scrape, local_rows, ray_cluster, tmp_path):
    """A `bitmark scan --engine ray` process is killed (SIGKILL) part-way; the rerun (2 actors) scores the
    rest: every one of the 211 files has one row, and the rows are the local engine's, errors included."""
    root, tok = scrape
    key, out, keep, local_keep = tmp_path / "key.json", tmp_path / "m.jsonl", tmp_path / "keep.txt", tmp_path / "lk.txt"
    fixed_key(0).save(key)
    cmd = [sys.executable, "-m", "bitmark.cli", "scan", str(root), "--engine", "ray", "--workers", "1",
           "--batch-size", "16", "--key", str(key), "--out", str(out)]
    proc = subprocess.Popen(cmd, env={**os.environ, "RAY_ADDRESS": ray_cluster}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.read_bytes().count(b"\n") > 16:  # the header and at least one batch of 16
            break
        time.sleep(0.005)  # on an idle machine the 14 batches take well under a second: poll often
    assert proc.poll() is None, f"the scan ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = len(manifest_rows(out))
    assert 16 <= before < 211, "the scan wrote every row before it could be killed"
    r = scan(fixed_key(0), [root], out, encoder=tok, engine="ray", workers=2, batch_size=32, keep_list=keep, progress=False)
    assert r["engine"] == "ray" and r["new"] == 211 - before and r["files"] == 211 and r["errors"] == 5
    local, ray_rows = _by_path(local_rows), _by_path(out)
    assert len(local) == 211 and ray_rows == local  # same paths, z-scores, p-values, verdicts, errors
    assert all(local[p]["is_watermarked"] is True for p in local if "marked-" in p)
    assert out.read_text().splitlines()[0] == local_rows.read_text().splitlines()[0]  # the same header binding
    scan(fixed_key(0), [root], local_rows, keep_list=local_keep, encoder=tok, progress=False)
    assert sorted(keep.read_bytes().split(b"\n")) == sorted(local_keep.read_bytes().split(b"\n"))
    with pytest.raises(ValueError, match="key_id"):  # the Ray engine checks the same binding
        scan(fixed_key(1), [root], out, encoder=tok, engine="ray", progress=False)


def test_a_parquet_table_of_image_bytes(scrape, local_rows, ray_cluster, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    root, tok = scrape
    files = sorted(p for p in root.rglob("*") if p.is_file())[:40]
    files.append(files[0])  # a table listing a file twice still gives it one row
    names = [os.fsencode(p) for p in files]  # a binary column: names that are not UTF-8 go in as they are
    assert any(b"\xff" in n for n in names)
    table = pa.table({"path": pa.array(names, pa.binary()), "bytes": [p.read_bytes() for p in files]})
    pq.write_table(table, tmp_path / "images.parquet")
    out = tmp_path / "m.jsonl"
    r = scan(fixed_key(0), [], out, encoder=tok, engine="ray", workers=1, paths_from=tmp_path / "images.parquet",
             progress=False)
    local = _by_path(local_rows)
    assert r["new"] == 40 and r["errors"] == sum("error" in local[os.fsdecode(n)] for n in set(names)) >= 4
    assert _by_path(out) == {os.fsdecode(n): local[os.fsdecode(n)] for n in names}


def test_without_ray_the_engine_says_what_to_install(monkeypatch, tmp_path, capsys):
    from bitmark.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)
    fixed_key(0).save(tmp_path / "k.json")
    assert main(["scan", str(tmp_path), "--engine", "ray", "--key", str(tmp_path / "k.json"), "--out", str(tmp_path / "m")]) == 2
    assert "pip install 'bitmark[ray]'" in capsys.readouterr().err


def test_importing_the_detectors_does_not_import_ray():
    code = "import sys, bitmark.detectors, bitmark.detectors.scan; assert 'ray' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_a_batch_that_fails_is_scored_file_by_file(scrape, monkeypatch):
    """The actor's own logic, without Ray: a failing batch becomes per-file rows, not a failed task."""
    from bitmark.detectors.manifest import encoder_identity
    from bitmark.detectors.scan_ray import _Scorer

    root, tok = scrape
    scorer = _Scorer(fixed_key(0).to_dict(), 0.01, 8, tok, encoder_identity(tok), 1)
    paths = [str(root / f"real-{i:03d}.png") for i in range(3)] + [str(root / "bad-text.jpg")]
    split = scorer.filt.split

    def flaky(images):  # a batch of more than one image fails as a whole, as an out-of-memory would
        if len(images) > 1:
            raise RuntimeError("batch failed")
        return split(images)

    monkeypatch.setattr(scorer.filt, "split", flaky)
    rows = [json.loads(r) for r in scorer({"path_bytes": [os.fsencode(p) for p in paths]})["row"]]
    assert [r["path"] for r in rows] == paths
    assert all("is_watermarked" in r for r in rows[:3]) and "not an image" in rows[3]["error"]
    monkeypatch.setattr(scorer.filt, "split", lambda images: 1 / 0)
    rows = [json.loads(r) for r in scorer({"path_bytes": [os.fsencode(p) for p in paths[:2]]})["row"]]
    assert all("scoring failed: ZeroDivisionError" in r["error"] for r in rows)


def test_a_worker_with_other_weights_refuses_to_score(scrape):
    import copy

    from bitmark.detectors.manifest import encoder_identity
    from bitmark.detectors.scan_ray import _Scorer

    _, tok = scrape
    other = copy.deepcopy(tok)
    with torch.no_grad():
        next(other.parameters()).mul_(0.5)
    with pytest.raises(RuntimeError, match="install the same weights"):
        _Scorer(fixed_key(0).to_dict(), 0.01, 8, other, encoder_identity(tok), 1)
