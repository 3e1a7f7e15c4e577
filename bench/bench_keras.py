"""Overhead of ReprologCallback on a tiny Keras fit (torch backend): with vs without, same seed.

Usage: python bench/bench_keras.py [--repeats 7] [--epochs 2] [--samples 4096] [--every 50]

Prints the median fit time without the callback, with it (attached to a run started beforehand,
so the ratio is the training-loop overhead), the ratio, and, separately, the run-start cost
(reprolog.init with capture) and the finish cost.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np
from reprolog_keras import ReprologCallback

import reprolog


def build() -> keras.Model:
    """The same tiny MLP every time (seeded)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    return model


def timed_fit(
    x: np.ndarray, y: np.ndarray, epochs: int, callbacks: list[keras.callbacks.Callback]
) -> float:
    """Seconds for one fit of a fresh model (model building is not timed)."""
    model = build()
    start = time.perf_counter()
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, callbacks=callbacks)
    return time.perf_counter() - start


def hook_cost_us(run: reprolog.Run, every: int, calls: int = 100_000) -> float:
    """Microseconds per on_train_batch_end call, measured directly (immune to machine noise)."""
    callback = ReprologCallback(run=run, log_every_n_batches=every)
    callback.set_model(build())
    callback._in_fit, callback._run = True, run  # as on_train_begin leaves it, without a fit
    logs = {"loss": 0.5, "mae": 0.25}
    start = time.perf_counter()
    for batch in range(calls):
        callback.on_train_batch_end(batch, logs)
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--every", type=int, default=50, help="log_every_n_batches")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.samples, 16)).astype("float32")
    y = x[:, :1] * 2.0 + 1.0
    store = tempfile.mkdtemp(prefix="bench-keras-")
    timed_fit(x, y, 1, [])  # warm-up: first-call costs are not the callback's

    without: list[float] = []
    with_cb: list[float] = []
    starts: list[float] = []
    finishes: list[float] = []
    for _ in range(args.repeats):
        # Interleaved so that drift on a shared machine hits both sides alike.
        without.append(timed_fit(x, y, args.epochs, []))
        t0 = time.perf_counter()
        run = reprolog.init(dir=store)
        starts.append(time.perf_counter() - t0)
        with_cb.append(
            timed_fit(
                x, y, args.epochs, [ReprologCallback(run=run, log_every_n_batches=args.every)]
            )
        )
        t0 = time.perf_counter()
        run.finish()
        finishes.append(time.perf_counter() - t0)

    steps = args.epochs * -(-args.samples // 32)
    base, ours = statistics.median(without), statistics.median(with_cb)
    print(
        f"keras {keras.__version__} backend={keras.backend.backend()} steps/fit={steps} "
        f"repeats={args.repeats} every={args.every}"
    )
    print(f"fit without callback  median {base * 1e3:8.1f} ms")
    print(f"fit with callback     median {ours * 1e3:8.1f} ms")
    print(f"overhead ratio        {ours / base:.4f}  ({(ours / base - 1) * 100:+.2f}%)")
    run = reprolog.init(dir=store, capture=False)
    per_call = hook_cost_us(run, args.every)
    run.finish()
    print(
        f"batch hook cost       {per_call:.2f} us/batch (every={args.every}), "
        f"{per_call * 1e-6 / (base / steps) * 100:.3f}% of a median step"
    )
    print(
        f"run start (init+capture) median {statistics.median(starts) * 1e3:.1f} ms, "
        f"finish median {statistics.median(finishes) * 1e3:.1f} ms"
    )


if __name__ == "__main__":
    main()
