"""A tiny end-to-end run of `bitmark collapse` (the smoke preset: 1 generation after generation 0, 1 seed,
fresh with every arm and replace with none, a few images and steps): the outputs exist, with one row per
(regime, arm, generation), the expected columns, and a rerun reuses the finished cells."""

import csv

from bitmark.benchmarks.collapse.config import ARMS, PRESETS
from bitmark.benchmarks.collapse.run import run

COLUMNS = {"fd", "kid", "precision", "recall", "coverage", "class_coverage", "class_entropy", "memorization_ratio",
           "z_mean", "leak_share", "real_dropped", "pool_size", "kept"}


def test_smoke_run_writes_every_output(tmp_path):
    r = run(tmp_path, preset="smoke", progress=False)
    for name in ("generations.csv", "toy_generations.csv", "collapse.png", "summary.md"):
        assert (tmp_path / name).stat().st_size > 0
    with open(tmp_path / "generations.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert COLUMNS <= set(rows[0])
    cells = {(row["regime"], row["arm"], row["generation"]) for row in rows}
    expected = {("fresh", a, g) for a in ARMS for g in "01"} | {("replace", "none", g) for g in "01"}
    assert cells == expected and len(rows) == r["rows"] == len(expected)
    syn = {row["arm"]: int(row["synthetic_kept"]) for row in rows if row["regime"] == "fresh" and row["generation"] == "1"}
    assert syn["oracle"] == 0 and syn["watermark@0.01"] == 0 and syn["none"] == PRESETS["smoke"].synthetic_per_scrape()
    summary = (tmp_path / "summary.md").read_text()
    assert "## fresh" in summary and "gap closed" in summary.lower() and "Toy" in summary
    # one seed: no "± 0.000", no gap presented as a finding, and the run says it is a smoke test
    assert "± 0.000" not in summary and "(1 seed: no spread)" in summary and "not distinguishable from noise" in summary
    assert "Too small to mean anything" in summary
    assert all((tmp_path / f).stat().st_size > 0 for f in r["files"]) and "toy_generations.csv" in r["files"]
    before = (tmp_path / "generations.csv").read_text()
    run(tmp_path, preset="smoke", progress=False)  # every cell is finished: read back, not rerun
    assert (tmp_path / "generations.csv").read_text() == before
