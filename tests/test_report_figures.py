"""Figures that fit the data they have (issue 16): no single-point panels, log axes where strengths span
decades, ticks at whole generations, overlapping curves told apart, and small runs saying so. The figures are
drawn from synthetic rows and inspected as matplotlib objects."""

from dataclasses import replace

import matplotlib.figure
import pytest

from bitmark.benchmarks import robustness_report
from bitmark.benchmarks.collapse import report as collapse_report
from bitmark.benchmarks.collapse.config import PRESETS


@pytest.fixture
def figures(monkeypatch):
    """Every figure saved while the test runs (saved for real, then kept for inspection)."""
    saved = []
    original = matplotlib.figure.Figure.savefig

    def keep(self, *args, **kwargs):
        saved.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep)
    return saved


def _rows(n_pos: int) -> list[dict]:
    points = {"none": [0], "jpeg": [50, 75], "crop": [0.75], "noise": [0.05], "steal_remove": [10, 100, 1000],
              "regen_scales": [1, 2, 3]}
    rows = []
    for scheme in ("bitmark (keyed-spatial)", "keyed", "bitmark-2025"):
        for attack, strengths in points.items():
            for s in strengths:
                rows.append({"scheme": scheme, "attack": attack, "strength": f"{s:g}", "spec": f"{attack}:{s:g}",
                             "tpr_at_1pct": "0.0" if scheme != "bitmark (keyed-spatial)" else "0.5",  # two equal curves
                             "n_pos": str(n_pos), "n_neg": "1000"})
    return rows


QUALITY = [{"set": "clean (second draw)", "fd_to_clean": "0.7", "tpr_jpeg75": ""},
           {"set": "watermarked δ=1", "fd_to_clean": "1.4", "tpr_jpeg75": "0.25", "delta": "1"},
           {"set": "watermarked δ=2", "fd_to_clean": "7.0", "tpr_jpeg75": "0.64", "delta": "2"}]


def test_robustness_figure_fits_a_quick_run(tmp_path, figures):
    assert robustness_report.plots(_rows(64), QUALITY, tmp_path) == ["robustness.png", "quality.png"]
    fig, quality = figures
    titles = {ax.get_title(): ax for ax in fig.axes}
    # attacks at several strengths are curves; the ones at one strength share one panel
    assert set(titles) == {"jpeg (quality)", "regen_scales (finest scales re-drawn)",
                           "steal_remove (watermarked images observed)", "attacks measured at one strength"}
    steal, scales = titles["steal_remove (watermarked images observed)"], titles["regen_scales (finest scales re-drawn)"]
    assert steal.get_xscale() == "log" and [t.get_text() for t in steal.get_xticklabels()] == ["10", "100", "1000"]
    assert scales.get_xscale() == "linear" and [t.get_text() for t in scales.get_xticklabels()] == ["1", "2", "3"]
    dots = [t.get_text() for t in titles["attacks measured at one strength"].get_xticklabels()]
    assert dots == ["no attack", "crop 0.75", "noise 0.05"]
    lines = titles["jpeg (quality)"].get_lines()
    assert len({(line.get_marker(), line.get_linestyle()) for line in lines}) == len(lines) == 3  # equal curves stay visible
    assert "indicative only" in fig._suptitle.get_text()
    assert quality.axes[0].get_xscale() == "log" and "only 2 δ" in quality.axes[0].get_title()


def test_robustness_figure_of_a_full_run_has_no_small_run_note(tmp_path, figures):
    robustness_report.plots(_rows(500), QUALITY, tmp_path)
    assert "indicative" not in figures[0]._suptitle.get_text()
    assert robustness_report.tpr_caveat(500, 1000) is None and "0.06" in robustness_report.tpr_caveat(64, 1000)


def _collapse_rows(seeds: int) -> list[dict]:
    fd = {"none": [50, 60, 75], "watermark@0.01": [50, 52, 55], "oracle": [50, 52, 55]}
    return [{"regime": "fresh", "arm": arm, "seed": s, "generation": t, "fd": v + s, "z_mean": 20.0}
            for arm, values in fd.items() for s in range(seeds) for t, v in enumerate(values)]


def test_collapse_figure_has_whole_generations_and_names_identical_curves(tmp_path, figures):
    cfg = replace(PRESETS["quick"], regimes=("fresh",), arms=("none", "watermark@0.01", "oracle"))
    collapse_report.plot(tmp_path / "c.png", _collapse_rows(1), cfg)
    (fig,) = figures
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(t == int(t) for t in ticks)
    assert "identical: oracle = watermark@0.01" in fig.axes[0].get_title(loc="right")
    text = fig._suptitle.get_text()
    assert "1 seed (no spread)" in text and "too small to mean anything" in text and "±" not in text


def test_collapse_figure_of_several_seeds_shows_their_spread(tmp_path, figures):
    cfg = replace(PRESETS["full"], regimes=("fresh",), arms=("none", "watermark@0.01", "oracle"), seeds=3)
    collapse_report.plot(tmp_path / "c.png", _collapse_rows(3), cfg)
    assert figures[0]._suptitle.get_text() == "collapse loop: mean ± sd over 3 seeds"
