"""Keyless steganalysis (issue 13): the Wilson interval, the residual classifier on synthetic cases where the
answer is known, and `bitmark bench steganalysis` end to end."""

import csv
import json

import numpy as np
import pytest

from bitmark.cli import main
from bitmark.evaluation.steganalysis import (
    cross_validate,
    fit_logistic,
    logistic_trainer,
    residual_features,
    stratified_folds,
    wilson_interval,
)


@pytest.fixture(autouse=True)
def one_blas_thread():
    """numpy's BLAS on one thread, as the CLI's --threads 1 sets it: a spinning OpenBLAS pool on a busy
    machine slows the logistic fits many times over."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    import scipy.linalg  # noqa: F401  loads scipy's own OpenBLAS, which threadpoolctl can then cap too
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.mark.parametrize("k, n, low, high", [
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Stat. Med. 17, table I,
    # method 3 (Wilson score, no continuity correction), given to 4 decimals there
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718),
])
def test_wilson_interval_matches_the_published_values(k, n, low, high):
    got = wilson_interval(k, n)
    assert got == pytest.approx((low, high), abs=5e-5)


def test_wilson_interval_is_symmetric_and_refuses_nonsense():
    lo, hi = wilson_interval(30, 100)
    assert wilson_interval(70, 100) == pytest.approx((1 - hi, 1 - lo))
    assert wilson_interval(100, 100)[1] == 1.0
    for bad in ((1, 0), (-1, 5), (6, 5)):
        with pytest.raises(ValueError):
            wilson_interval(*bad)


def test_folds_are_stratified_and_seeded():
    y = np.r_[np.zeros(50), np.ones(50)]
    folds = stratified_folds(y, 5, seed=3)
    for f in range(5):
        assert (y[folds == f] == 0).sum() == (y[folds == f] == 1).sum() == 10
    assert (stratified_folds(y, 5, seed=3) == folds).all() and not (stratified_folds(y, 5, seed=4) == folds).all()


def test_logistic_fit_separates_a_linear_rule():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5))
    y = (x[:, 0] - x[:, 1] > 0).astype(float)
    w, b = fit_logistic(x, y, l2=0.1)
    assert ((x @ w + b > 0) == (y == 1)).mean() > 0.98 and w[0] > 0 > w[1]


def _photos(n: int, rng: np.random.Generator, pattern: np.ndarray | None = None) -> np.ndarray:
    """Smooth synthetic photos: three random low-frequency waves per channel plus pixel noise (sigma 3), and,
    if given, a 4x4 pattern tiled over the image -- the shape of the tokenizer's patch texture."""
    yy, xx = np.mgrid[0:32, 0:32]
    images = np.full((n, 32, 32, 3), 128.0)
    for _ in range(3):
        f = rng.uniform(0.0, 0.12, (n, 1, 1, 3, 2))
        phase = rng.uniform(0, 2 * np.pi, (n, 1, 1, 3))
        images += 30 * np.sin(2 * np.pi * (f[..., 0] * yy[None, :, :, None] + f[..., 1] * xx[None, :, :, None]) + phase)
    images += rng.normal(0, 3, images.shape)
    if pattern is not None:
        images += np.tile(pattern, (8, 8))[None, :, :, None]
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def test_residual_classifier_finds_a_weak_4x4_pattern_and_nothing_in_twin_sets():
    rng = np.random.default_rng(0)
    pattern = rng.choice([-1.5, 1.5], (4, 4))  # +-1.5 grey levels: half the pixel noise, invisible to the eye
    y = np.r_[np.zeros(100), np.ones(100)]
    marked = residual_features(np.concatenate([_photos(100, rng), _photos(100, rng, pattern)]))
    same = residual_features(np.concatenate([_photos(100, rng), _photos(100, rng)]))
    found = cross_validate(marked, y, logistic_trainer(), k=5, seed=0)
    null = cross_validate(same, y, logistic_trainer(), k=5, seed=0)
    # the pattern moves each per-phase residual mean by ~7 of its standard errors (64 pixels per phase,
    # noise sigma 3): a working detector is near perfect, so 0.95 leaves room for a few borderline images
    assert found.accuracy >= 0.95 and found.n == 200
    # identically distributed sets: accuracy is ~N(0.5, 0.035) for n = 200 (k-fold on pure noise sits a
    # little below 0.5); 0.1 is ~3 standard deviations, and the interval must hold chance
    assert abs(null.accuracy - 0.5) <= 0.1 and null.low <= 0.5 <= null.high


def test_bench_steganalysis_runs_end_to_end_and_writes_its_files(tmp_path, capsys):
    out = tmp_path / "stego"
    assert main(["bench", "steganalysis", "--quick", "--num", "12", "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"steganalysis.csv", "summary.md", "config.json"} <= {p.name for p in out.iterdir()}
    with open(out / "steganalysis.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["set"] for r in rows] == ["clean vs clean", "watermarked δ=2"]
    for r in rows:
        assert r["n_per_class"] == "12"
        for name in ("linear", "cnn"):
            assert float(r[f"{name}_ci_low"]) <= float(r[f"{name}_acc"]) <= float(r[f"{name}_ci_high"])
    assert float(rows[0]["fd_to_clean"]) == float(rows[0]["fd_floor"])  # the floor row is the floor
    assert rows[1]["n_neg_jpeg75"] == "64" and rows[1]["tpr_jpeg75"].startswith("n/a")  # < 1k negatives: no TPR
    assert result["config"]["num"] == 12 and "| watermarked δ=2 |" in (out / "summary.md").read_text()


@pytest.mark.parametrize("extra, message", [
    (["--deltas", "1,x"], "--deltas takes comma-separated numbers"),
    (["--deltas", "0,2"], "deltas must be finite and > 0"),
    (["--num", "3"], "num must be at least 2 x folds"),
    (["--data", "nonsense"], "no generator weights"),
])
def test_bench_steganalysis_refuses_bad_settings_in_one_line(tmp_path, capsys, extra, message):
    out = tmp_path / "stego"
    assert main(["bench", "steganalysis", "--quick", "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("bitmark bench steganalysis: ") and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("low, high, word", [(0.62, 0.70, "misses"), (0.50, 0.58, "meets"), (0.40, 0.75, "too few images")])
def test_the_target_verdict_reads_the_interval_not_the_point(low, high, word):
    from bitmark.benchmarks.steganalysis_report import verdict

    row = {"linear_acc": 0.45, "linear_ci_low": 0.40, "linear_ci_high": 0.50,  # weaker than the CNN in every case
           "cnn_acc": (low + high) / 2, "cnn_ci_low": low, "cnn_ci_high": high}
    assert word in verdict(row) and "(cnn)" in verdict(row)
