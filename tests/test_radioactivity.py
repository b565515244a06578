import csv
import json

import numpy as np
import pytest

from bitmark.benchmarks import radioactivity
from bitmark.cli import main

TINY = radioactivity.Plan(shares=(1.0, 0.0), scratch_steps=2, finetune_steps=2, num_samples=12, pool_size=20, other_keys=2)


def test_mix_is_nested_and_keeps_the_size():
    real, marked = np.zeros((10, 2, 2, 3), np.uint8), np.ones((10, 2, 2, 3), np.uint8)
    order = np.random.default_rng(0).permutation(10)
    small, k_small = radioactivity.mix(real, marked, 0.2, order)
    large, k_large = radioactivity.mix(real, marked, 0.5, order)
    assert (k_small, k_large) == (2, 5) and len(small) == len(large) == 10
    assert set(np.flatnonzero(small[:, 0, 0, 0])) <= set(np.flatnonzero(large[:, 0, 0, 0]))
    assert radioactivity.mix(real, marked, 0.0, order)[0].sum() == 0


def test_smoke_run_writes_the_outputs_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(radioactivity, "QUICK", TINY)
    assert main(["bench", "radioactivity", "--quick", "--out", str(tmp_path), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    rows, structure = [r for r in lines if "structure" not in r], [r for r in lines if "structure" in r]
    assert [(r["variant"], r["share"]) for r in rows] == [("scratch", 1.0), ("scratch", 0.0), ("finetune", 1.0), ("finetune", 0.0)]
    assert len(structure) == 4 * 5  # every arm under every (null, structure) variant
    for r, s in zip(rows, structure[::5]):  # the first variant (self-normalised, none) is the plain test B
        assert (s["null"], s["structure"]) == ("self-normalised", "none")
        assert s["z_mean"] == pytest.approx(r["z_mean"], abs=1e-9) and s["key_z"] == pytest.approx(r["key_z"], abs=1e-9)
    for name in ("radioactivity.csv", "scores.csv", "summary.md", "radioactivity.png", "plan.json", "structure.csv"):
        assert (tmp_path / name).stat().st_size > 0
    with open(tmp_path / "radioactivity.csv") as f:
        table = list(csv.DictReader(f))
    for column in ("tpr_at_1pct_fpr", "mw_p", "combined_z", "n_to_convict", "z_scale_3_mean", "num_watermarked_train"):
        assert column in table[0]
    assert [int(r["num_watermarked_train"]) for r in table] == [20, 0, 20, 0]
    assert table[1]["mw_p"] == "nan" and float(table[0]["mw_p"]) <= 1.0  # the control is not tested against itself
    with open(tmp_path / "scores.csv") as f:
        sources = [r["source"] for r in csv.DictReader(f)]
    assert sources.count("suspect_output") == 4 * 12 and sources.count("real") == 20
    summary = (tmp_path / "summary.md").read_text()
    assert "| finetune | 100% |" in summary and "Small run (2 shares, 12 outputs per arm" in summary
    assert "Files: `plan.json`, `radioactivity.csv`" in summary and "## Test B with the positional structure removed" in summary
    # every arm finished: a second run loads them, and a run with another plan is refused
    before = (tmp_path / "arms" / "scratch-100" / "scores.npz").stat().st_mtime_ns
    radioactivity.run(tmp_path, plan=TINY, as_json=True)
    assert (tmp_path / "arms" / "scratch-100" / "scores.npz").stat().st_mtime_ns == before
    with pytest.raises(ValueError, match="another plan"):
        radioactivity.run(tmp_path, plan=radioactivity.Plan(num_samples=3))
    # more outputs of the saved suspects, for test B on 12 + 4 of them
    from bitmark.benchmarks.radioactivity_structure import run_more

    more = run_more(tmp_path, 4)
    assert len(more) == 20 and {r["n"] for r in more} == {16}
    assert (tmp_path / "structure_more.csv").exists() and "on 12 + 4 outputs" in (tmp_path / "structure_more.md").read_text()


def test_bench_radioactivity_needs_out():
    with pytest.raises(SystemExit) as e:  # --out is a required option of `bench radioactivity`
        main(["bench", "radioactivity", "--quick"])
    assert e.value.code == 2


@pytest.mark.parametrize("shares", ["1.5", "0.1,x"])
def test_bench_radioactivity_refuses_bad_shares(tmp_path, shares, capsys):
    assert main(["bench", "radioactivity", "--out", str(tmp_path / "r"), "--shares", shares]) == 2
    assert "--shares" in capsys.readouterr().err and not (tmp_path / "r").exists()  # refused before any work


def test_report_rows_on_synthetic_arms():
    """The per-arm figures with enough negatives for a TPR: a shifted arm against its 0% control."""
    from bitmark.benchmarks.radioactivity_report import rows_for

    rng = np.random.default_rng(0)

    def arm(share, shift):
        z = rng.normal(shift, 1.0, 600)
        scores = {"z": z, "neg_log10_p": np.zeros(600), "z_sampled": z, "z_scale_0": z, "z_scale_1": z,
                  "other_key_mean_z": rng.normal(0, 0.06, 50)}
        return {"variant": "scratch", "share": share, "num_train": 950, "num_watermarked_train": round(950 * share),
                "train_steps": 1, "train_lr": 1e-3, "train_wall_s": 1.0, "sample_and_score_wall_s": 1.0,
                "final_bce": 0.5, "scores": scores}

    marked, control = rows_for([arm(1.0, 3.0), arm(0.0, 0.0)], real=rng.normal(0, 1, 950))
    assert marked["num_negatives"] == 1550 and 0.5 < marked["tpr_at_1pct_fpr"] <= 1.0
    assert control["tpr_at_1pct_fpr"] < 0.05 and np.isnan(control["mw_p"]) and marked["mw_p"] < 1e-10
    assert marked["n_to_convict_lo"] <= marked["n_to_convict"] <= marked["n_to_convict_hi"] < 10
    assert marked["key_z"] > 10 and np.isnan(control["z_scale_0_mw_p"]) and marked["z_scale_0_mw_p"] < 1e-10
