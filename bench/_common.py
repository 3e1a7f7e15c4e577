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
