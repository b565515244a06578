"""Configurations of the collapse loop, and why the full run uses the numbers it does.

Compute decides the budget. The full run is 8 generations x 3 seeds x (fresh and accumulate with 7 arms,
replace with one) = 360 retrained generations, on one CPU thread next to other jobs, in under an hour
(this session's time box): about 9 s per generation. (Measured afterwards: the full run took 42.9 min,
6.9 s per generation; the quick preset 1.4 min.) Measured here (one thread, the other core busy): a fine-tuning step at batch 16
takes 0.34 s (0.74 s at batch 32), sampling 192 watermarked images 3.6 s, re-encoding 200 images 0.2 s;
with the machine shared by four jobs, a trial run's generations (8 steps, 96 samples) took 7-12 s. So each
generation *fine-tunes the previous generation's model* (generation 0 is the shipped model, shared by
every arm and regime of a seed) for `steps` x `batch_size` = 8 x 16 images, at lr 1e-3 with no warm-up
and a cosine decay, and samples `samples` = 96 watermarked images: the synthetic candidates of the next
pool and the metric set (so FD and KID are measured on 96 samples against 950 held-out images: biased
upwards by the small sample, equally in every arm). In that trial 8 steps already moved the no-filter
arm's FD from 55 to 80 in two fresh generations, so this budget is enough to show collapse. The budget is
the same in every arm whatever the pool's size.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

REGIMES = ("fresh", "accumulate", "replace")
ARMS = ("none", "watermark@0.01", "watermark@0.1", "oracle", "random", "entropy", "confidence")
MATCHED_ARMS = ("random", "entropy", "confidence")  # keep as many images as the watermark arm at match_fpr
# drops exactly the synthetic images of the marking generator (ground truth): the ceiling of any watermark
# filter when only a share of the generators mark; run whenever marked_share < 1 (at 1 it is the oracle)
CEILING_ARM = "mark-oracle"


def watermark_fpr(arm: str) -> float | None:
    return float(arm.split("@", 1)[1]) if arm.startswith("watermark@") else None


@dataclass(frozen=True)
class CollapseConfig:
    generations: int = 8  # T: generations 0..T, generation 0 being the shipped model
    seeds: int = 3
    samples: int = 96  # images sampled per generation: next pool's synthetic candidates and the metric set
    fresh_pool: int = 192  # fresh: images scraped per generation
    synthetic_share: float = 0.5  # fresh: share pi of the scrape that is the previous generation's samples
    accumulate_real: int = 192  # accumulate: real images in the first pool
    steps: int = 8  # fine-tuning steps per generation ...
    batch_size: int = 16  # ... at this batch size: the training budget, equal across arms
    lr: float = 1e-3
    match_fpr: float = 0.01  # random / entropy / confidence keep as many as watermark@match_fpr kept
    regimes: tuple[str, ...] = REGIMES
    arms: tuple[str, ...] = ARMS
    heldout: int | None = None  # held-out real images the metrics compare with (None: all 950)
    gen0_pool: int | None = None  # training images generation 0's memorisation is measured against (None: all)
    threshold: float = 2.0  # generations-to-threshold: first t with FD >= threshold x FD at t = 0
    toy: dict = field(default_factory=lambda: {"seeds": 200, "samples": 50, "fresh_pool": 100, "accumulate_real": 50})
    channel: str | None = None  # attack spec applied to every scraped image before the filters (None: PNGs as written)
    marked_share: float = 1.0  # share of the synthetic images made by a marking generator; the rest by an unmarked copy
    # the watermark filter's resynchronisation stage (the detectors' default): off here, because it would double
    # each generation's time and the loop's images are not moved, or are JPEG-compressed after the move (the
    # web channel), which removes the cell texture the stage reads the move from
    resync: bool = False
    # the filter's null; None: the detectors' default (the model null with the detector card's weights).
    # "self-normalised" is the null of every collapse figure in benchmarks/RESULTS.md measured before that default
    null: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.marked_share <= 1.0:
            raise ValueError(f"marked_share must lie in 0..1, got {self.marked_share}")

    def all_arms(self) -> tuple[str, ...]:
        """The configured arms, plus the ceiling arm when not every generator marks."""
        return self.arms + ((CEILING_ARM,) if self.marked_share < 1 and CEILING_ARM not in self.arms else ())

    def arms_of(self, regime: str) -> tuple[str, ...]:
        """Filter arms run in fresh and accumulate; replace (only synthetic data) runs `none` alone."""
        return ("none",) if regime == "replace" else self.all_arms()

    def synthetic_per_scrape(self) -> int:
        n = round(self.synthetic_share * self.fresh_pool)
        if n > self.samples:
            raise ValueError(f"fresh needs {n} synthetic images per generation but only {self.samples} are sampled")
        return n

    def for_toy(self) -> CollapseConfig:
        return replace(self, **self.toy)


PRESETS = {
    "full": CollapseConfig(),
    # under 5 minutes here: every regime and arm, 2 generations, 1 seed, smaller budgets
    "quick": CollapseConfig(generations=2, seeds=1, samples=48, fresh_pool=96, accumulate_real=96, steps=4,
                            toy={"seeds": 50, "samples": 50, "fresh_pool": 100, "accumulate_real": 50}),
    # the reduced run of issue 20 (channel x marked share on the shipped models): fresh only, the four arms
    # that answer it, full per-generation budget, T x seeds sized to about 35 min of one core for 4 runs
    "web": CollapseConfig(generations=4, seeds=3, regimes=("fresh",),
                          arms=("none", "watermark@0.01", "oracle", "random")),
    # the full run issue 20 asks for, once per (--channel, --marked-share): 10 generations x 5 seeds, fresh and
    # accumulate, the six arms that answer it (+ mark-oracle below share 1); 60 cells (70), about 2.5 hours of one core
    "web-full": CollapseConfig(generations=10, seeds=5, regimes=("fresh", "accumulate"),
                               arms=("none", "watermark@0.01", "oracle", "random", "entropy", "confidence")),
    # the test suite's smoke run
    "smoke": CollapseConfig(generations=1, seeds=1, samples=16, fresh_pool=32, accumulate_real=16, steps=2,
                            batch_size=4, regimes=("fresh", "replace"), heldout=200, gen0_pool=300,
                            toy={"seeds": 5, "samples": 20, "fresh_pool": 40, "accumulate_real": 20}),
}
