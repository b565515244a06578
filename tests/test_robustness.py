import csv

import numpy as np
import pytest

from bitmark.benchmarks import robustness
from bitmark.benchmarks.metrics import roc_auc, tpr_at_fpr
from bitmark.detectors.suspect import threshold_at_fpr
from bitmark.evaluation.quality import psnr


def test_empirical_threshold_keeps_the_false_positive_rate():
    neg = np.arange(1000, dtype=float)  # scores 0..999
    t = threshold_at_fpr(neg, 0.01)
    assert np.mean(neg > t) == 0.01  # exactly 10 of 1000 negatives exceed it
    assert tpr_at_fpr(np.array([995.0, 980.0, 989.5]), neg, 0.01) == pytest.approx(2 / 3)
    assert tpr_at_fpr(np.ones(5), neg[:999], 0.01) is None  # 999 negatives are too few for 1%
    assert tpr_at_fpr(np.ones(5), neg, 0.001) is None


def test_roc_auc_and_psnr():
    assert roc_auc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert roc_auc(np.array([1.0]), np.array([1.0])) == 0.5
    assert roc_auc(np.array([0.0, 3.0]), np.array([1.0, 2.0])) == 0.5
    a = np.zeros((2, 4, 4, 3), np.uint8)
    b = a.copy()
    b[1] = 255
    assert psnr(a, a) == 100.0 and psnr(a, b) == pytest.approx(50.0)  # (100 + 0) / 2


def test_robustness_smoke_run_writes_every_row_and_resumes(tmp_path):
    specs = ["none:0", "jpeg:75", "regen_scales:1", "bitflip:0.5", "steal_forge:10", "jpeg:50+crop:0.71"]
    cfg = robustness.Config(num=8, num_negatives=8, attacks=specs, deltas=(2.0,), baseline_num={}, resync=False)
    result = robustness.run(tmp_path, cfg, progress=False)
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(r["scheme"], r["spec"]) for r in rows} == {(s, p) for s in robustness.SCHEMES for p in specs}
    by = {(r["scheme"], r["spec"]): r for r in rows}
    clean = by[(robustness.DEFAULT, "none:0")]
    assert float(clean["z_pos_mean"]) > 10 and float(clean["auc"]) == 1.0 and clean["tpr_at_1pct"].startswith("n/a")
    assert float(by[(robustness.DEFAULT, "bitflip:0.5")]["z_pos_mean"]) < float(clean["z_pos_mean"])
    assert by[(robustness.DEFAULT, "steal_forge:10")]["forgery_success"] != ""
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("# Robustness") and (tmp_path / "quality.csv").exists()
    # 8 positives and 16 negatives: the summary says the TPRs are indicative only, and lists what it wrote
    assert "Small run: each TPR comes from 8 watermarked images" in summary and "too few for a threshold" in summary
    assert result["files"] == ["config.json", "results.csv", "quality.csv", "summary.md"]  # no TPR to draw: no figures
    assert all((tmp_path / f).stat().st_size > 0 for f in result["files"])
    assert not (tmp_path / "robustness.png").exists() and not (tmp_path / "quality.png").exists()
    assert summary.rstrip().endswith("\n".join(f"- `{f}`" for f in result["files"]))
    robustness.run(tmp_path, cfg, progress=False)  # finished: resuming adds nothing
    with open(tmp_path / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    with pytest.raises(ValueError, match="another configuration"):
        robustness.run(tmp_path, robustness.Config(num=9, attacks=specs, resync=False), progress=False)


def test_robustness_with_resync_adds_its_rows(tmp_path):
    specs = ["none:0", "crop:0.75", "bitflip:0.5"]
    cfg = robustness.Config(num=8, num_negatives=8, attacks=specs, baseline_num={}, quality=False)  # resync: the default
    robustness.run(tmp_path, cfg, progress=False)
    with open(tmp_path / "results.csv") as f:
        rows = {(r["scheme"], r["spec"]): r for r in csv.DictReader(f)}
    resynced = [f"{robustness.RESYNCED} (w={w:g})" for w in cfg.resync_weights]
    assert {s for s, p in rows if p == "bitflip:0.5"} == set(robustness.SCHEMES)  # white-box: no search rows
    for s in resynced:
        assert float(rows[(s, "crop:0.75")]["z_pos_mean"]) > 3 > float(rows[(robustness.DEFAULT, "crop:0.75")]["z_pos_mean"])
        assert 0 <= float(rows[(s, "none:0")]["neg_flagged"]) <= 1
    assert "## Resynchronisation" in (tmp_path / "summary.md").read_text() and not (tmp_path / "quality.csv").exists()
