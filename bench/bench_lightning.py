"""Overhead of ReprologCallback in a Lightning training loop: same model and seed, with and without.

Usage: python bench/bench_lightning.py [--steps 2000] [--repeats 3]
Prints median seconds of the training loop (after every on_train_start -> on_train_end) per
arm, the overhead ratio, and separately the run-start capture (setup through on_train_start,
dataset fingerprints included).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Any

import lightning.pytorch as pl
import torch
from reprolog_lightning import ReprologCallback
from torch.utils.data import DataLoader, TensorDataset


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


def once(steps: int, with_callback: bool | str, store: str) -> tuple[float, float]:
    """Train `steps` steps; return (loop seconds, setup-to-train-start seconds).

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
    if with_callback == "noop":
        extra = [Noop()]
    elif with_callback:
        extra = [ReprologCallback(dir=store, capture=True)]
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
    return loop_clock.t_end - loop_clock.t_start, loop_clock.t_start - clock.t_setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as store:
        once(50, True, store)  # warm-up: imports, first-run caches
        base, cap, noop, start_base, start_cap = [], [], [], [], []
        for _ in range(args.repeats):  # interleaved so drift hits every arm alike
            loop, start = once(args.steps, False, store)
            base.append(loop)
            start_base.append(start)
            noop.append(once(args.steps, "noop", store)[0])
            loop, start = once(args.steps, True, store)
            cap.append(loop)
            start_cap.append(start)
    b, c = statistics.median(base), statistics.median(cap)
    print(f"steps={args.steps} repeats={args.repeats}")
    print(
        f"training loop  without: {b:.3f} s  with: {c:.3f} s  overhead: {100 * (c / b - 1):+.2f}%"
    )
    n = statistics.median(noop)
    print(f"a no-op callback alone (Lightning's hook dispatch): {100 * (n / b - 1):+.2f}%")
    print(
        f"per step       without: {1e6 * b / args.steps:.1f} us  "
        f"with: {1e6 * c / args.steps:.1f} us"
    )
    sb, sc = statistics.median(start_base), statistics.median(start_cap)
    print(
        f"run start      without: {sb * 1e3:.1f} ms  with: {sc * 1e3:.1f} ms  "
        f"(capture: {1e3 * (sc - sb):.1f} ms)"
    )


if __name__ == "__main__":
    main()
