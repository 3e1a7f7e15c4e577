"""Overhead of ReprologCallback in a Lightning training loop: same model and seed, with and without.

Usage: python bench/bench_lightning.py [--steps 2000] [--repeats 3]
Prints median seconds of the training loop (on_train_start -> on_train_end) per arm, the
overhead ratio, and separately the run-start capture (setup through on_train_start).
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


def once(steps: int, with_callback: bool, store: str) -> tuple[float, float]:
    """Train `steps` steps; return (loop seconds, setup-to-train-start seconds)."""
    pl.seed_everything(0)
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(
        torch.randn(steps * 4, 8, generator=g), torch.randn(steps * 4, 1, generator=g)
    )
    clock = Clock()
    # The clock goes first: its setup runs before ours, so run start includes reprolog.init.
    callbacks: list[Any] = [clock] + (
        [ReprologCallback(dir=store, capture=True)] if with_callback else []
    )
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
    return clock.t_end - clock.t_start, clock.t_start - clock.t_setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as store:
        once(50, True, store)  # warm-up: imports, first-run caches
        base, cap, start_base, start_cap = [], [], [], []
        for _ in range(args.repeats):  # interleaved so drift hits both arms alike
            loop, start = once(args.steps, False, store)
            base.append(loop)
            start_base.append(start)
            loop, start = once(args.steps, True, store)
            cap.append(loop)
            start_cap.append(start)
    b, c = statistics.median(base), statistics.median(cap)
    print(f"steps={args.steps} repeats={args.repeats}")
    print(
        f"training loop  without: {b:.3f} s  with: {c:.3f} s  overhead: {100 * (c / b - 1):+.2f}%"
    )
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
