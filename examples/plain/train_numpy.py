"""Train a tiny logistic regression with numpy and log it through the reprolog core.

Run: python examples/plain/train_numpy.py   (stores under ./.reprolog or $REPROLOG_DIR)
"""

from __future__ import annotations

import argparse

import numpy as np

import reprolog


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    reprolog.seed_everything(args.seed)
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((512, 8))
    true_w = rng.standard_normal(8)
    y = (x @ true_w + 0.3 * rng.standard_normal(512) > 0).astype(np.float64)

    with reprolog.init(experiment="numpy-logreg", params=vars(args)) as run:
        run.log_dataset("train_x", x)
        run.log_dataset("train_y", y)
        w = np.zeros(8)
        step = 0
        for epoch in range(args.epochs):
            for batch in range(0, len(x), 64):
                xb, yb = x[batch : batch + 64], y[batch : batch + 64]
                p = 1 / (1 + np.exp(-(xb @ w)))
                loss = -np.mean(yb * np.log(p + 1e-9) + (1 - yb) * np.log(1 - p + 1e-9))
                w -= args.lr * xb.T @ (p - yb) / len(xb)
                run.log({"train/loss": loss}, step=step, epoch=epoch)
                step += 1
            acc = np.mean(((x @ w) > 0) == y)
            run.log({"train/acc": acc}, step=step, epoch=epoch)
        print(f"run {run.id}: final accuracy {acc:.3f}")


if __name__ == "__main__":
    main()
