"""`bitmark collapse [--quick | --preset NAME] [--channel SPEC] [--marked-share S] --out DIR`: the bitmark
world and the toy Gaussian through the collapse loop, then generations.csv, toy_generations.csv,
collapse.png and summary.md. Resumable: finished cells are kept in DIR/cells and skipped on a rerun with
the same configuration (channel and marked share included)."""

from __future__ import annotations

import datetime
import json
import logging
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from bitmark.benchmarks.collapse.config import PRESETS, CollapseConfig
from bitmark.benchmarks.collapse.loop import run_world, write_rows
from bitmark.benchmarks.collapse.report import cell_summary, gaps, plot, sort_rows, summary_md
from bitmark.benchmarks.collapse.toy import GaussianWorld
from bitmark.benchmarks.collapse.world import BitmarkWorld

log = logging.getLogger(__name__)


def run(out: Path, preset: str = "full", seeds: int | None = None, generations: int | None = None,
        progress: bool = True, backend=None, channel: str | None = None,
        marked_share: float | None = None, null: str | None = None) -> dict[str, Any]:
    """backend: the embedded one only (each generation retrains the generator; another backend is refused).
    channel: an attack spec applied to every scraped image (`web`: a random chain per image); marked_share:
    the share of synthetic images from a marking generator (None: the preset's, 1); null: the watermark filter's
    null (None: the preset's, the detectors' default)."""
    from bitmark import attacks
    from bitmark.backends import require as require_backend
    from bitmark.evaluation.provenance import command, machine
    from bitmark.io.datasets import require_extras
    from bitmark.io.extras import require

    if backend is not None:
        require_backend(backend, "bitmark collapse", retrainable=True)

    for name, value in (("seeds", seeds), ("generations", generations)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    if channel in ("", "none"):
        channel = None
    if channel is not None:
        attacks.check(channel)  # before anything is written
    overrides = (("seeds", seeds), ("generations", generations), ("channel", channel), ("marked_share", marked_share), ("null", null))
    cfg = replace(PRESETS[preset], **{k: v for k, v in overrides if v is not None})
    require_extras("photos")  # before anything is written: the held-out crops and the figure need the extras
    require("matplotlib", "plots", "the collapse figure")
    out = Path(out)
    _check_config(out / "config.json", cfg, write=False)
    out.mkdir(parents=True, exist_ok=True)
    _check_config(out / "config.json", cfg)
    start = time.time()
    done_before = len(list((out / "cells" / BitmarkWorld.name).glob("*.csv")))
    toy_cfg = cfg.for_toy()
    toy_rows = sort_rows(run_world(lambda: GaussianWorld(toy_cfg), GaussianWorld.name, toy_cfg, out, progress=progress, resumable=False), toy_cfg)
    rows = sort_rows(run_world(lambda: BitmarkWorld(cfg, workdir=out), BitmarkWorld.name, cfg, out, progress=progress), cfg)
    wall = time.time() - start
    ran = len(list((out / "cells" / BitmarkWorld.name).glob("*.csv"))) - done_before
    with open(out / "invocations.jsonl", "a") as f:  # so that a report rebuilt later still states the run's time
        f.write(json.dumps({"date": datetime.datetime.now().isoformat(timespec="seconds"), "wall_s": round(wall, 1),
                            "cells_run": ran, "command": command()}) + "\n")
    invocations = [json.loads(line) for line in (out / "invocations.jsonl").read_text().splitlines() if line.strip()]
    working = [i for i in invocations if i["cells_run"]]
    write_rows(out / "generations.csv", rows)
    write_rows(out / "toy_generations.csv", toy_rows)
    plot(out / "collapse.png", rows, cfg)
    cell_wall = sum(float(r.get("wall_s", 0) or 0) for r in rows)
    header = [
        f"Report written by `{command()}` on {datetime.date.today().isoformat()}; machine: {machine()}.",
        (f"Wall time of the invocations that ran cells: {_invocations(working)}; the generations' own time summed "
         f"over all cells {cell_wall / 60:.1f} min."),
        "",
        (f"Configuration: T = {cfg.generations}, {cfg.seeds} seed(s); per generation a fine-tune of the previous "
        f"generation's model for {cfg.steps} steps × batch {cfg.batch_size} (lr {cfg.lr:g}, no warm-up, cosine to 10%), "
        f"then {cfg.samples} samples, a share {cfg.marked_share:g} watermarked (metric set and next candidates). fresh: scrape of {cfg.fresh_pool} "
        f"images, π = {cfg.synthetic_share:g} synthetic; accumulate: first pool {cfg.accumulate_real} real images. "
        f"Generation 0 = the shipped generator, shared by every arm and regime of a seed. random / entropy / "
        f"confidence keep as many images as watermark@{cfg.match_fpr:g} kept, generation by generation. "
        f"Channel {cfg.channel or 'none'}, marked share {cfg.marked_share:g}; the watermark filter's null: "
        f"{cfg.null or 'the default (the model null, detector card weights)'}."),
    ]
    files = ["config.json", "generations.csv", "toy_generations.csv", "collapse.png", "summary.md", "invocations.jsonl"]
    (out / "summary.md").write_text(summary_md(rows, toy_rows, cfg, toy_cfg, header, files))
    return {"out": str(out), "rows": len(rows), "toy_rows": len(toy_rows), "wall_s": round(wall, 1),
            "channel": cfg.channel or "none", "marked_share": cfg.marked_share, "totals": totals(rows, cfg),
            "files": files}


def totals(rows: list[dict[str, Any]], cfg: CollapseConfig) -> dict[str, dict[str, dict[str, Any]]]:
    """Per regime and arm: excess FD area (mean, sd over seeds), gap closed, what leaked and was lost."""
    s = cell_summary(rows, cfg)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for regime in cfg.regimes:
        g = gaps(s, regime)
        for arm in cfg.arms_of(regime):
            c = s.get((regime, arm))
            if c is not None:
                out.setdefault(regime, {})[arm] = {
                    "excess_area": round(c["area"], 4), "excess_area_sd": round(c["area_sd"], 4),
                    "gap_closed": None if g.get(arm) is None else round(g[arm], 4),
                    **{k: _round(c.get(k)) for k in ("leak", "leak_marked", "leak_unmarked", "real_dropped_share")},
                }
    return out


def _round(v: float | None) -> float | None:
    """JSON has no NaN: a share with nothing to count is null."""
    return None if v is None or v != v else round(float(v), 4)


def _invocations(working: list[dict[str, Any]]) -> str:
    total = sum(i["wall_s"] for i in working) / 60
    each = "; ".join(f"`{i['command']}` at {i['date']}: {i['wall_s'] / 60:.1f} min, {i['cells_run']} cells" for i in working)
    return f"{total:.1f} min ({each or 'none'})"


# fields whose default changed: the value a config.json written without the field ran with
_DEFAULTS_BEFORE = {"null": "self-normalised"}


def _check_config(path: Path, cfg: CollapseConfig, write: bool = True) -> None:
    """A rerun must use the configuration the finished cells were made with, or a fresh --out."""
    now = json.loads(json.dumps(asdict(cfg)))
    if path.exists():
        before = json.loads(path.read_text())
        # a field added since the cells were made counts as what those cells ran with: its default then
        default = {**json.loads(json.dumps(asdict(CollapseConfig()))), **_DEFAULTS_BEFORE}
        diff = sorted(k for k in now if before.get(k, default[k]) != now[k])
        if diff:
            raise ValueError(f"{path.parent} holds cells of another configuration (differs in {diff}); use a new --out")
    elif write:
        path.write_text(json.dumps(now, indent=2) + "\n")
