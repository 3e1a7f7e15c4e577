"""Per-step fingerprints: their cost per step, the weight checksum's share, diff time, disk.

Run: python bench/bench_step_fingerprints.py [--repeats 5] [--steps 100000]

1. batch + RNG fingerprint per step (``fp.step(step, (x, y))`` with weights off), against one
   training step of a tiny CPU model (a 32-64-1 MLP with dropout, batch 64, SGD): medians of
   interleaved repeats of 2,000 calls each.
2. the weight checksum (exact hash of every parameter) against K steps at the default K, for
   the tiny MLP and for a wider one (2.1M parameters), each against its own step.
3. ``reprolog.diff`` of two 100,000-step runs that hold a metric and step fingerprints (the
   step tables read, aligned and explained included), and the ``reprolog diff`` command end
   to end (interpreter start included).
4. ``steps.parquet`` bytes per step of those runs (every batch differs and torch's RNG state
   changes every step, as with dropout; weights every K steps).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import reprolog
from reprolog._fingerprint import _stephash
from reprolog._fingerprint._steptrace import DEFAULT_EVERY

sys.path.insert(0, str(Path(__file__).parent))
from _common import row


def _mlp(width: int, inputs: int) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Linear(inputs, width),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.1),
        torch.nn.Linear(width, 1),
    )


def _step_time(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, n: int) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    start = time.perf_counter()
    for _ in range(n):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    return (time.perf_counter() - start) / n


def per_step(repeats: int) -> tuple[float, float, float]:
    """(seconds per step on the step, with the deferred batch hashing, training step seconds).

    Medians of interleaved repeats. The batch is hashed later, stacked, on the run's flusher
    thread; the second figure adds that work (done here, synchronously) to the first.
    """
    torch.manual_seed(0)
    model, x, y = _mlp(64, 32), torch.randn(64, 32), torch.randn(64, 1)
    n = 2000
    with tempfile.TemporaryDirectory() as tmp, reprolog.init(dir=tmp, capture=False) as run:
        fp = run.step_fingerprints(model, every=1)
        assert fp is not None
        fp.every = 0  # batch + RNG only; the weight checksum is measured on its own below
        fps, totals, steps = [], [], []
        step = 0
        for _ in range(repeats):
            _step_time(model, x, y, 200)  # warm
            steps.append(_step_time(model, x, y, n))
            with fp._lock:  # keep the flusher thread out of the timed loop
                fp._drain()
                start = time.perf_counter()
                for _ in range(n):
                    fp.step(step, (x, y), epoch=0)
                    step += 1
                mid = time.perf_counter()
                fp._drain()
                end = time.perf_counter()
            fps.append((mid - start) / n)
            totals.append((end - start) / n)
    return statistics.median(fps), statistics.median(totals), statistics.median(steps)


def weights(repeats: int, width: int, inputs: int, batch: int) -> tuple[int, float, float]:
    """(parameters, weight checksum seconds, training step seconds) of an MLP."""
    torch.manual_seed(0)
    model = _mlp(width, inputs)
    x, y = torch.randn(batch, inputs), torch.randn(batch, 1)
    n = 20 if width > 1000 else 500
    sums, steps = [], []
    for _ in range(repeats):
        steps.append(_step_time(model, x, y, n))
        start = time.perf_counter()
        for _ in range(n):
            _stephash.tensors_hash(_stephash.tensors_of(model))
        sums.append((time.perf_counter() - start) / n)
    params = sum(p.numel() for p in model.parameters())
    return params, statistics.median(sums), statistics.median(steps)


def two_long_runs(store: Path, steps: int) -> list[str]:
    ids = []
    model = torch.nn.Linear(4, 1)
    x = torch.randn(16, 4)
    for shift in (0.0, 0.5):
        torch.manual_seed(0)
        with reprolog.init(dir=store, capture=False) as run:
            fp = run.step_fingerprints(model)
            assert fp is not None
            for step in range(steps):
                torch.rand(1)  # dropout-like: torch's RNG state moves every step
                batch = x + step + (shift if step >= steps // 2 else 0.0)
                fp.step(step, batch, epoch=step // 1000)
                run.log({"loss": 1.0 / (step + 1) + (shift if step >= steps // 2 else 0)}, step)
            ids.append(run.id)
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: steady on a shared machine)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, K = {DEFAULT_EVERY}")  # fmt: skip

    fp_s, total_s, step_s = per_step(args.repeats)
    row("tiny MLP training step (32-64-1, batch 64, CPU)", f"{step_s * 1e6:.0f} µs")
    row(
        "batch + RNG fingerprint, on the step (batch hashed later)",
        f"{fp_s * 1e6:.1f} µs",
        "≤ 1 % of step",
        f"{100 * fp_s / step_s:.1f} % of the step",
    )
    row(
        "batch + RNG fingerprint, with the deferred batch hashing",
        f"{total_s * 1e6:.1f} µs",
        "≤ 1 % of step",
        f"{100 * total_s / step_s:.1f} % of the step",
    )
    for width, inputs, batch in ((64, 32, 64), (2048, 1024, 64)):
        params, w_s, s_s = weights(args.repeats, width, inputs, batch)
        share = w_s / (DEFAULT_EVERY * s_s)
        row(
            f"weight checksum, {params:,} parameters (step {s_s * 1e3:.2f} ms)",
            f"{w_s * 1e6:.0f} µs",
            "≤ 1 % at K",
            f"{100 * share:.3f} % of training at K = {DEFAULT_EVERY}",
        )

    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp)
        start = time.perf_counter()
        a, b = two_long_runs(store, args.steps)
        print(f"  (wrote two {args.steps:,}-step runs in {time.perf_counter() - start:.1f} s)")
        times = []
        result: Any = None
        for _ in range(args.repeats):
            start = time.perf_counter()
            result = reprolog.diff(a, b, store=store)
            times.append(time.perf_counter() - start)
        row(
            f"reprolog.diff, two {args.steps:,}-step runs",
            f"{statistics.median(times):.3f} s",
            "≤ 1 s",
            str(result.explanation)[:60],
        )
        cli = []
        for _ in range(max(1, args.repeats // 2)):
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "reprolog._cli", "--dir", str(store), "diff", a, b],
                capture_output=True,
            )
            cli.append(time.perf_counter() - start)
        row(
            "reprolog diff (command, interpreter start included)", f"{statistics.median(cli):.2f} s"
        )
        size = (store / "runs" / a / "steps.parquet").stat().st_size
        row("steps.parquet on disk", f"{size / args.steps:.1f} B/step", "≤ 64 B/step/rank")


if __name__ == "__main__":
    main()
