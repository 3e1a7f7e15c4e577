"""Bench the CLI: `reprolog ls` over 10,000 runs and `reprolog diff` of two 100,000-step runs.

Run: python bench/bench_cli.py [--runs 10000] [--steps 100000] [--repeats 5]
Prints medians of repeated wall-clock timings (subprocess timings include interpreter start-up).

How the stores are built:
- diff: two real runs, `reprolog.init` + `run.log` for every step + `run.finish` (two keys, the
  second run's loss diverging at the middle step).
- ls: one real run is made with `reprolog.init`, then its folder is cloned 10,000 times by writing
  the documented layout directly (runs/<id>/run.json plus the summary.json the core writes at
  finish), each with its own id, params and metrics summary, because `init` costs ~50 ms a run here
  and 10,000 of them would take minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import reprolog
from reprolog._diff import diff
from reprolog._storage._compact import summary_row
from reprolog._storage._ids import new_run_id

CLI = [sys.executable, "-m", "reprolog._cli.__main__"]


CPU: list[float] = []  # CPU seconds (user + sys) of the last wall() call's runs


def wall(cmd: list[str], repeats: int, env: dict[str, str] | None = None) -> tuple[float, int]:
    """Median wall seconds of a command; its median CPU seconds land in CPU (a shared machine's
    load stretches wall time, not CPU time)."""
    times, rc = [], 0
    CPU.clear()
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, env=env)
        times.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        CPU.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        rc = proc.returncode
        if rc not in (0, 1):
            raise SystemExit(f"{' '.join(cmd)} failed ({rc}): {proc.stderr.decode()[-500:]}")
    print(f"    cpu median {statistics.median(CPU):.3f} s, load average {os.getloadavg()[0]:.1f}")
    return statistics.median(times), rc


def build_diff_store(root: Path, steps: int) -> tuple[str, str]:
    ids = []
    for shift in (0.0, 1e-3):
        run = reprolog.init(dir=root, params={"lr": 0.1 + shift})
        loss = np.exp(-np.arange(steps) / steps)
        loss[steps // 2 :] += shift
        for step in range(steps):
            run.log({"loss": float(loss[step]), "acc": 1.0 - float(loss[step])}, step=step)
        run.finish()
        ids.append(run.id)
    return ids[0], ids[1]


def build_ls_store(root: Path, n: int) -> None:
    template = reprolog.init(dir=root, params={"lr": 0.1}, capture=True)
    template.log({"loss": 0.5, "acc": 0.9}, step=0)
    template.finish()
    src = json.loads((root / "runs" / template.id / "run.json").read_text())
    shutil.rmtree(root / "runs" / template.id)
    now = time.time()
    rng = np.random.default_rng(0)
    for i in range(n):
        rec = dict(src)
        rec["id"] = new_run_id()
        rec["name"] = f"run-{i}"
        rec["experiment"] = f"exp{i % 4}"
        rec["status"] = "completed" if i % 10 else "failed"
        rec["start_time"], rec["end_time"] = now - 1000 + i * 0.01, now - 900 + i * 0.01
        lr = float(10.0 ** -int(rng.integers(1, 5)))
        rec["params"] = {"lr": lr, "batch_size": 32, "opt": "adam",
                         "model.layers": int(rng.integers(1, 6))}  # fmt: skip
        loss = float(rng.random())
        rec["metrics_summary"] = {
            "loss": {"last": loss, "min": loss, "max": 1.0, "count": 100, "last_step": 99},
            "acc": {"last": 1 - loss, "min": 0.0, "max": 1 - loss, "count": 100, "last_step": 99},
        }
        folder = root / "runs" / rec["id"]
        folder.mkdir()
        (folder / "run.json").write_text(json.dumps(rec))
        (folder / "summary.json").write_text(json.dumps(summary_row(rec)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "diff"
        t = time.perf_counter()
        a, b = build_diff_store(root, args.steps)
        print(
            f"built 2 runs x {args.steps} steps x 2 keys with run.log"
            f" in {time.perf_counter() - t:.1f} s"
        )
        inproc = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            d = diff(a, b, store=root)
            inproc.append(time.perf_counter() - t)
        loss = d.metric("loss")
        assert loss is not None and loss.step == args.steps // 2, loss
        med = statistics.median(inproc)
        print(f"reprolog.diff, {args.steps} steps (in process) median {med:.3f} s"
              f"  (target <= 1 s; loss diverged at step {loss.step})")  # fmt: skip
        sec, rc = wall([*CLI, "--dir", str(root), "diff", a, b], args.repeats, env)
        print(f"`reprolog diff`, {args.steps} steps (wall)       median {sec:.3f} s  exit {rc}")

        root = Path(tmp) / "ls"
        t = time.perf_counter()
        build_ls_store(root, args.runs)
        print(
            f"built {args.runs} runs (layout written directly) in {time.perf_counter() - t:.1f} s"
        )
        sec, _ = wall([*CLI, "--dir", str(root), "ls"], 1, env)
        print(f"`reprolog ls`, {args.runs} runs, first call (builds the index)  {sec:.3f} s")
        sec, _ = wall([*CLI, "--dir", str(root), "ls"], args.repeats, env)
        print(
            f"`reprolog ls`, {args.runs} runs (wall, 50 shown)        median {sec:.3f} s"
            "  (target <= 1.5 s)"
        )
        sec, _ = wall([*CLI, "--dir", str(root), "ls", "--limit", "0"], args.repeats, env)
        print(f"`reprolog ls --limit 0`, {args.runs} runs, all printed  median {sec:.3f} s")
        sec, _ = wall(
            [*CLI, "--dir", str(root), "ls", "--where", '"params.lr" < 0.01', "--sort", "-loss"],
            args.repeats, env,
        )  # fmt: skip
        print(f"`reprolog ls --where ... --sort ...`, {args.runs} runs  median {sec:.3f} s")
        sec, _ = wall([sys.executable, "-c", "import reprolog._cli"], args.repeats, env)
        print(f"(interpreter + `import reprolog._cli` alone                median {sec:.3f} s)")


if __name__ == "__main__":
    main()
