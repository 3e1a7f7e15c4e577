"""Overhead of ReprologCallback on a tiny Keras fit (torch backend): with vs without, same seed.

Usage: python bench/bench_keras.py [--repeats 7] [--epochs 2] [--samples 8192] [--json]
       [--profile]

Three arms, interleaved: probes only, a no-op callback, and ReprologCallback() as users add it
(it starts its own run; default log_every_n_batches). Prints the per-batch cost over the no-op
callback (median of the per-repeat differences of the loop, on_train_begin to on_train_end,
/ batches), the time inside the callback's batch hook per batch (a noise-free cross-check), and
the run start (fit() to the end of on_train_begin: init, capture, model facts) over the no-op
arm. Targets (issue 12): <= 5 us per batch; run start <= 50 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np
from reprolog_keras import ReprologCallback

import reprolog

sys.path.insert(0, str(Path(__file__).parent))
from _common import HookTimer, emit_results, paired_median, paired_spread, profile_top


def build() -> keras.Model:
    """The same tiny MLP every time (seeded)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    return model


class Noop(keras.callbacks.Callback):  # type: ignore[misc]
    """A callback with no work on the hooks ReprologCallback uses, dispatched the same way."""

    # ReprologCallback is async_safe, so Keras runs its batch hooks on a thread pool (as it does
    # with no callback at all); a no-op without it is called inline and the difference would
    # measure the two dispatch paths, not reprolog.
    async_safe = True

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        pass


class Probe(keras.callbacks.Callback):  # type: ignore[misc]
    """Marks when on_train_begin and on_train_end reach it."""

    def __init__(self) -> None:
        super().__init__()
        self.begin = self.end = 0.0

    def on_train_begin(self, logs: Any = None) -> None:
        self.begin = time.perf_counter()

    def on_train_end(self, logs: Any = None) -> None:
        self.end = time.perf_counter()


def once(x: np.ndarray, y: np.ndarray, epochs: int, arm: str, store: str) -> dict[str, float]:
    """One fit of a fresh model (building it is not timed); `arm`: none, noop or ours."""
    model = build()
    # `first` sees on_train_end before ours (our finish is not the loop's), `last` sees
    # on_train_begin after ours (our run start is not the loop's either).
    first, last = Probe(), Probe()
    middle: list[Any] = []
    timer: HookTimer | None = None
    if arm == "noop":
        middle = [Noop()]
    elif arm == "ours":
        ours = ReprologCallback(dir=store)
        timer = HookTimer(ours, ["on_train_batch_begin", "on_train_batch_end"])
        middle = [ours]
    start = time.perf_counter()
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, callbacks=[first, *middle, last])
    return {
        "loop": first.end - last.begin,
        "start": last.begin - start,
        "hooks": timer.total() if timer is not None else 0.0,
        "typical": timer.typical() if timer is not None else 0.0,
    }


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--samples", type=int, default=8192)
    parser.add_argument("--json", action="store_true", help="also print a RESULTS line")
    parser.add_argument("--profile", action="store_true", help="cProfile one fit with ours")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.samples, 16)).astype("float32")
    y = x[:, :1] * 2.0 + 1.0
    store = tempfile.mkdtemp(prefix="bench-keras-")
    arms = ("none", "noop", "ours")
    for arm in arms:  # warm-up: first-call costs are not the callback's
        once(x[:256], y[:256], 1, arm, store)
    runs: dict[str, list[dict[str, float]]] = {arm: [] for arm in arms}
    for _ in range(args.repeats):
        for arm in arms:  # interleaved so drift on a shared machine hits every arm alike
            runs[arm].append(once(x, y, args.epochs, arm, store))
    if args.profile:
        profile_top(lambda: once(x, y, args.epochs, "ours", store), only="reprolog")

    def col(arm: str, key: str) -> list[float]:
        return [r[key] for r in runs[arm]]

    steps = args.epochs * -(-args.samples // 32)
    print(
        f"keras {keras.__version__} backend={keras.backend.backend()} batches/fit={steps} "
        f"repeats={args.repeats} (medians; arms interleaved)"
    )
    for arm in arms:
        print(f"  loop {arm:5s} {statistics.median(col(arm, 'loop')) * 1e3:8.1f} ms")
    per_batch = paired_median(col("ours", "loop"), col("noop", "loop")) / steps * 1e6
    inside = statistics.median(col("ours", "hooks")) / steps * 1e6
    typical = statistics.median(col("ours", "typical")) / steps * 1e6
    start = paired_median(col("ours", "start"), col("noop", "start")) * 1e3
    print(f"  per batch over the no-op callback: {per_batch:+.2f} us   target <= 5 us")
    print(
        f"  inside the callback's batch hook: {inside:.2f} us per batch "
        f"({typical:.2f} us at its median call)"
    )
    print(f"  run start over the no-op arm (fit() to after on_train_begin): {start:.1f} ms")
    runs_written = reprolog.Store(store).runs()
    print(f"runs written: {len(runs_written)}, all {set(runs_written['status'])}")
    noise = paired_spread(col("ours", "loop"), col("noop", "loop")) / steps * 1e6
    if args.json:
        emit_results(
            [
                {"measure": "Keras callback, per batch, over a no-op callback",
                 "value": per_batch, "inside": inside, "typical": typical,
                 "noise": noise, "unit": "us", "target": 5.0},
                {"measure": "run start (capture) inside Keras",
                 "value": start, "unit": "ms", "target": 50.0},
            ]
        )  # fmt: skip


if __name__ == "__main__":
    main()
