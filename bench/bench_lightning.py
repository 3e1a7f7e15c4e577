"""Overhead of ReprologCallback in a Lightning training loop: same model and seed, with and without.

Usage: python bench/bench_lightning.py [--steps 2000] [--repeats 5] [--json] [--profile]
Three arms, interleaved so drift hits each alike: no callback, a no-op callback, and
ReprologCallback. Prints the per-step cost over the no-op callback (median of the per-repeat
differences of the training loop, after every on_train_start -> on_train_end, / steps), the
time spent inside the callback's own hooks, and the run-start cost (setup through
on_train_start: reprolog.init with capture and the dataset fingerprints) over the no-op arm.
Targets (issue 12): <= 10 us per step; run start <= 50 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from reprolog_lightning import ReprologCallback
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).parent))
from _common import HookTimer, emit_results, paired_median, paired_spread, profile_top

# The callback's hooks that run inside the training loop, timed from inside.
LOOP_HOOKS = ["on_train_batch_start", "on_train_batch_end", "on_before_optimizer_step"]


class Tiny(pl.LightningModule):
    """A small MLP so the measured loop is dominated by Lightning and the callback."""

    def __init__(self) -> None:
        super().__init__()
        self.save_hyperparameters({"hidden": 16})
        self.net = torch.nn.Sequential(
            torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)
        )

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("loss", loss)
        self.log("acc", (loss < 1).float())
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


class Clock(pl.Callback):
    """Times the training loop and the run start (first hook of the run to on_train_start)."""

    def __init__(self) -> None:
        self.t_setup = self.t_start = self.t_end = 0.0

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self.t_setup = time.perf_counter()

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.t_start = time.perf_counter()

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self.t_end = time.perf_counter()


class Noop(pl.Callback):
    """A callback with no work: what Lightning charges for dispatching hooks to one more."""

    def on_train_batch_end(self, *args: Any) -> None:
        pass


def once(steps: int, with_callback: bool | str, store: str) -> tuple[float, float, float, float]:
    """Train `steps` steps; return (loop s, setup-to-train-start s, s inside the loop hooks,
    the same at each hook's median call).

    `with_callback`: True for ReprologCallback, "noop" for a callback that does nothing.
    """
    pl.seed_everything(0)
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(
        torch.randn(steps * 4, 8, generator=g), torch.randn(steps * 4, 1, generator=g)
    )
    clock, loop_clock = Clock(), Clock()
    # `clock` goes first, so run start (its setup to the loop's start) includes reprolog.init
    # and our train-start capture (dataset fingerprints); `loop_clock` goes last, so the loop
    # is timed from after every on_train_start to on_train_end.
    extra: list[Any] = []
    timer: HookTimer | None = None
    if with_callback == "noop":
        extra = [Noop()]
    elif with_callback:
        ours = ReprologCallback(dir=store, capture=True)
        timer = HookTimer(ours, LOOP_HOOKS)
        extra = [ours]
    callbacks: list[Any] = [clock, *extra, loop_clock]
    trainer = pl.Trainer(
        max_steps=steps,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        accelerator="cpu",
        callbacks=callbacks,
        num_sanity_val_steps=0,
    )
    trainer.fit(Tiny(), DataLoader(data, batch_size=4))
    inside = timer.total() if timer is not None else 0.0
    typical = timer.typical() if timer is not None else 0.0
    loop = loop_clock.t_end - loop_clock.t_start
    return loop, loop_clock.t_start - clock.t_setup, inside, typical


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="also print a RESULTS line")
    parser.add_argument("--profile", action="store_true", help="cProfile one run with ours")
    args = parser.parse_args()
    torch.set_num_threads(1)
    arms: dict[str, list[tuple[float, float, float, float]]] = {"none": [], "noop": [], "ours": []}
    with tempfile.TemporaryDirectory() as store:
        once(50, True, store)  # warm-up: imports, first-run caches
        once(50, "noop", store)
        for _ in range(args.repeats):  # interleaved so drift hits every arm alike
            arms["none"].append(once(args.steps, False, store))
            arms["noop"].append(once(args.steps, "noop", store))
            arms["ours"].append(once(args.steps, True, store))
        if args.profile:
            profile_top(lambda: once(args.steps, True, store), only="reprolog")

    def col(arm: str, i: int) -> list[float]:
        return [r[i] for r in arms[arm]]

    b, n, c = (statistics.median(col(a, 0)) for a in ("none", "noop", "ours"))
    per_step = paired_median(col("ours", 0), col("noop", 0)) / args.steps * 1e6
    inside = statistics.median(col("ours", 2)) / args.steps * 1e6
    typical = statistics.median(col("ours", 3)) / args.steps * 1e6
    start = paired_median(col("ours", 1), col("noop", 1)) * 1e3
    print(f"steps={args.steps} repeats={args.repeats} (medians; arms interleaved)")
    print(f"training loop  none: {b:.3f} s  no-op callback: {n:.3f} s  ReprologCallback: {c:.3f} s")
    print(f"  per step over the no-op callback: {per_step:+.1f} us   target <= 10 us")
    print(
        f"  inside the callback's loop hooks: {inside:.1f} us per step "
        f"({typical:.1f} us at each hook's median call: one-off work left out)"
    )
    print(f"  a no-op callback alone (Lightning's hook dispatch): {100 * (n / b - 1):+.2f}%")
    print(f"run start over the no-op arm (init, capture, fingerprints): {start:.1f} ms   <= 50 ms")
    noise = paired_spread(col("ours", 0), col("noop", 0)) / args.steps * 1e6
    if args.json:
        emit_results(
            [
                {"measure": "Lightning callback, per training step, over a no-op callback",
                 "value": per_step, "inside": inside, "typical": typical,
                 "noise": noise, "unit": "us", "target": 10.0},
                {"measure": "run start (capture) inside Lightning",
                 "value": start, "unit": "ms", "target": 50.0},
            ]
        )  # fmt: skip


if __name__ == "__main__":
    main()
