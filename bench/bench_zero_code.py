"""Bench zero-code capture: `reprolog run` overhead, console capture cost, system sampler CPU.

Run: python bench/bench_zero_code.py [--repeats 7] [--lines 100000]
Prints medians of repeated wall-clock timings, the ratios the issue's targets are about, and
where the launcher's time goes.

1. `reprolog run -- python -c pass` vs `python -c pass` (wall clock, all of it: CLI start,
   run creation with capture, the child with its autolog hook, compaction at the end).
2. A script printing N lines, its own elapsed time (first to last print, measured inside the
   script) and the whole command's: `reprolog run --no-console` vs `reprolog run` (pipes; the
   child gets PYTHONUNBUFFERED=1 unless set), output to /dev/null.
3. The system sampler: process CPU seconds per sample (with 4 child processes in the tree),
   as a share of one core at the default 10 s interval.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import row

PY = sys.executable
CLI = [PY, "-m", "reprolog._cli"]


def wall(cmd: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(
        cmd, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - start


def median(fn: object, repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))  # type: ignore[operator]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("REPROLOG_")}


def bench_overhead(tmp: Path, repeats: int) -> None:
    env = clean_env()
    store = str(tmp / "store-overhead")
    bare = median(lambda: wall([PY, "-c", "pass"], env), repeats)
    full = median(lambda: wall([*CLI, "--dir", store, "run", "--", PY, "-c", "pass"], env), repeats)
    cli = median(lambda: wall([PY, "-c", "import reprolog._cli"], env), repeats)
    hook = median(lambda: wall([PY, "-c", "pass"], {**env, "REPROLOG_AUTOLOG": "1"}), repeats)
    print("reprolog run -- python -c pass")
    row("bare python -c pass", f"{bare * 1000:.0f} ms")
    row("reprolog run -- python -c pass", f"{full * 1000:.0f} ms")
    row(
        "overhead",
        f"{(full - bare) * 1000:.0f} ms",
        "<= 300 ms",
        "met" if full - bare <= 0.3 else "NOT met",
    )
    row("  of which: import reprolog._cli (launcher start)", f"{(cli - bare) * 1000:.0f} ms")
    row("  of which: the child's REPROLOG_AUTOLOG=1 .pth hook", f"{(hook - bare) * 1000:.0f} ms")


PRINTER = """
import sys, time
n = int(sys.argv[1])
start = time.perf_counter()
for i in range(n):
    print(f"step {i} loss {1.0 / (i + 1):.6f}")
took = time.perf_counter() - start
open(sys.argv[2], "w").write(repr(took))
"""


def bench_console(tmp: Path, repeats: int, lines: int) -> None:
    env = clean_env()
    script = tmp / "printer.py"
    script.write_text(PRINTER)
    took = tmp / "took"
    store = str(tmp / "store-console")

    def one(extra: list[str]) -> tuple[float, float]:
        total = wall(
            [
                *CLI,
                "--dir",
                store,
                "run",
                "--system-metrics",
                "0",
                *extra,
                "--",
                PY,
                str(script),
                str(lines),
                str(took),
            ],
            env,
        )
        return float(took.read_text()), total

    for_mode = {}
    for label, extra in (
        ("without capture (--no-console)", ["--no-console"]),
        ("with capture", []),
    ):
        results = [one(extra) for _ in range(repeats)]
        for_mode[label] = (
            statistics.median(r[0] for r in results),
            statistics.median(r[1] for r in results),
        )
    bare_results = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(
            [PY, str(script), str(lines), str(took)], env=env, check=True, stdout=subprocess.DEVNULL
        )
        bare_results.append((float(took.read_text()), time.perf_counter() - start))
    print(f"\nconsole capture: a script printing {lines:,} lines (stdout to /dev/null)")
    row("bare python, script's own time", f"{statistics.median(r[0] for r in bare_results):.3f} s")
    for label, (inner, total) in for_mode.items():
        row(f"{label}: script's own time", f"{inner:.3f} s")
        row(f"{label}: whole command", f"{total:.3f} s")
    off_inner, off_total = for_mode["without capture (--no-console)"]
    on_inner, on_total = for_mode["with capture"]
    ratio = on_inner / off_inner - 1
    row(
        "slowdown of the script (capture vs --no-console)",
        f"{ratio * 100:+.1f} %",
        "<= 10 %",
        "met" if ratio <= 0.10 else "NOT met",
    )
    row("slowdown of the whole command", f"{(on_total / off_total - 1) * 100:+.1f} %")


def bench_sampler(repeats: int) -> None:
    from reprolog._capture.sysmetrics import DEFAULT_INTERVAL, SystemSampler

    children = [subprocess.Popen([PY, "-c", "import time; time.sleep(120)"]) for _ in range(4)]
    try:
        sampler = SystemSampler(lambda points, step: None, DEFAULT_INTERVAL)
        per = []
        for _ in range(repeats):
            start = time.process_time()
            for _ in range(50):
                sampler.sample()
            per.append((time.process_time() - start) / 50)
    finally:
        for child in children:
            child.kill()
            child.wait()
    cost = statistics.median(per)
    share = cost / DEFAULT_INTERVAL
    print("\nsystem metrics sampler (process tree of 5 processes)")
    row("CPU seconds per sample", f"{cost * 1000:.2f} ms")
    row(
        "share of one core at the 10 s default",
        f"{share * 100:.3f} %",
        "<= 0.5 %",
        "met" if share <= 0.005 else "NOT met",
    )
    row("share of one core at 1 s", f"{cost * 100:.2f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--lines", type=int, default=100_000)
    args = parser.parse_args()
    load = os.getloadavg()
    print(
        f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        bench_overhead(Path(tmp), args.repeats)
        bench_console(Path(tmp), args.repeats, args.lines)
        bench_sampler(args.repeats)


if __name__ == "__main__":
    main()
