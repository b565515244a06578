"""The speed benchmark's timing helpers and its end-to-end generate figure (a smoke run, not a timed test)."""

from bitmark.benchmarks.speed_e2e import generate_figures
from bitmark.benchmarks.timing import interleave, ratio, spread
from bitmark.evaluation.keys import fixed_key


def test_interleave_alternates_the_order_and_ratios_pair_rounds():
    calls = []
    ticks = iter(range(1000))
    times = interleave({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=4, clock=lambda: next(ticks))
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b", "b", "a"]  # warm-up, then a b / b a / ...
    assert times == {"a": [1] * 4, "b": [1] * 4}
    assert ratio(times, "a", "b")["median"] == 1.0
    s = spread([3.0, 1.0, 2.0, 10.0, 4.0])
    assert s["median"] == 3.0 and s["q1"] <= 3.0 <= s["q3"] and s["n"] == 5


def test_generate_figure_has_each_variant_and_the_cache_speed_up():
    r = generate_figures(fixed_key(0), rounds=1)
    assert {"plain", "watermarked", "watermarked, no cache", "cache speed-up"} <= set(r)
    assert r["plain"]["images_per_s"]["median"] > 0 and r["cache speed-up"]["median"] > 0
