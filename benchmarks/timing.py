"""Timing on a shared machine: interleave the variants being compared, report medians and spreads.

Timing A in one block and B in the next lets a change of load between the blocks pass for a difference
between A and B (the old `bench speed` ratio swung 2.5-3.7 from run to run that way). Here every round
runs each variant once, in alternating order, and a ratio is the median of the per-round ratios.

With several times more runnable processes than cores, a call longer than a scheduler time slice is
preempted, and its wall time grows with the load rather than with its work (a 3 ms detector call measured
1 ms of CPU). Single-threaded work is therefore timed in CPU seconds (`cpu_clock`: this process's CPU time
plus that of its finished children); wall time is kept for what threads and start-up change.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from typing import Callable


def load() -> list[float]:
    """1, 5 and 15 minute load averages (the machine is shared; figures are read against these)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def cpu_clock() -> float:
    """CPU seconds of this process and of its waited-for children (user + system)."""
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + c.ru_utime + c.ru_stime


def interleave(
    variants: dict[str, Callable[[], object]], rounds: int, warmup: int = 1, clock: Callable[[], float] = cpu_clock,
) -> dict[str, list[float]]:
    """Seconds (by `clock`) of each call of each variant over `rounds` rounds, the order reversed every other round."""
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            variants[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            t0 = clock()
            variants[name]()
            times[name].append(clock() - t0)
    return times


def spread(values: list[float], scale: float = 1.0) -> dict[str, float]:
    """Median and quartiles (and the count) of `values` times `scale`."""
    v = sorted(x * scale for x in values)
    q = statistics.quantiles(v, n=4) if len(v) > 1 else [v[0]] * 3
    return {"median": statistics.median(v), "q1": q[0], "q3": q[2], "n": len(v)}


def ratio(times: dict[str, list[float]], num: str, den: str) -> dict[str, float]:
    """Per-round ratio num / den: median and quartiles."""
    return spread([a / b for a, b in zip(times[num], times[den])])


def fmt(s: dict[str, float], unit: str = "", digits: int = 2) -> str:
    """'median [q1-q3]unit'."""
    return f"{s['median']:.{digits}f} [{s['q1']:.{digits}f}-{s['q3']:.{digits}f}]{unit}"
