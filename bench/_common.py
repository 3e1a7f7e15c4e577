"""Shared helpers for the benchmark scripts: medians of repeats, tables, subprocess timing."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any


def median_of(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float]]:
    """Run `fn` `repeats` times; return (median seconds, all timings)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def import_time(module: str, repeats: int = 5) -> float:
    """Median wall time of `python -c 'import module'` minus a bare interpreter start."""

    def run(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - start

    bare = statistics.median(run("pass") for _ in range(repeats))
    full = statistics.median(run(f"import {module}") for _ in range(repeats))
    return max(0.0, full - bare)


def row(label: str, value: str, target: str = "", note: str = "") -> None:
    print(f"  {label:<58} {value:>14}  {target:<12} {note}")


class HookTimer:
    """Stopwatches around some methods of one object: time spent inside them, and calls.

    The wrappers are instance attributes, so a framework that looks hooks up by name on the
    instance (Lightning, Keras, transformers all do) calls them; the class is left alone.
    """

    def __init__(self, obj: Any, names: list[str]) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(names, 0.0)
        self.calls: dict[str, int] = dict.fromkeys(names, 0)
        self.durations: dict[str, list[float]] = {name: [] for name in names}
        for name in names:
            setattr(obj, name, self._wrap(name, getattr(obj, name)))

    def _wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                took = time.perf_counter() - start
                self.seconds[name] += took
                self.calls[name] += 1
                self.durations[name].append(took)

        return timed

    def total(self) -> float:
        """All seconds inside the hooks, one-off work (a first call that sets up) included."""
        return sum(self.seconds.values())

    def typical(self) -> float:
        """Seconds inside the hooks had every call taken its hook's median: the steady cost."""
        return sum(statistics.median(d) * len(d) for d in self.durations.values() if d)


def paired_median(a: list[float], b: list[float]) -> float:
    """Median of the per-repeat differences a[i] - b[i] (interleaved repeats: drift cancels)."""
    return statistics.median(x - y for x, y in zip(a, b, strict=True))


def paired_spread(a: list[float], b: list[float]) -> float:
    """Half the interquartile range of the per-repeat differences: the noise in paired_median."""
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    if len(diffs) < 2:
        return float("nan")
    q1, _, q3 = statistics.quantiles(diffs, n=4, method="inclusive")
    return (q3 - q1) / 2


def emit_results(results: list[dict[str, Any]]) -> None:
    """Print the figures as one machine-read line, for bench_integrations.py."""
    import json

    print("RESULTS " + json.dumps(results))


def profile_top(fn: Callable[[], Any], *, only: str, n: int = 15) -> None:
    """Run fn under cProfile and print the n entries with the most own time in files matching
    `only` (e.g. "reprolog"): where a callback's per-step cost goes."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    fn()
    profiler.disable()
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime")
    print(f"cProfile, top {n} by own time in files matching {only!r}:")
    stats.print_stats(only, n)
