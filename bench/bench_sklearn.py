"""Overhead of reprolog_sklearn on a 500-fit grid search (100 candidates x 5 folds).

Run: python bench/bench_sklearn.py [--repeats 5] [--json]
Prints medians for: the plain search; Tracked(search) with and without run-start capture;
GridSearchCV(Tracked(estimator)) (every candidate fit goes through the wrapper); autolog;
the run-start capture (environment, git, command) on its own; and the run start inside
Tracked.fit (its call to the inner estimator's fit; target <= 50 ms, issue 12).
"""

from __future__ import annotations

import os

# One BLAS thread per process: on a small shared machine, oversubscribed BLAS threads make
# 2 ms fits take 30 ms and swamp what we measure.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
from reprolog_sklearn import Tracked  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold  # noqa: E402

import reprolog  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import emit_results, paired_median  # noqa: E402

GRID = {"C": list(np.logspace(-2, 2, 100))}


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.5, size=200) > 0).astype(int)
    return X, y


_MARKS: list[float] = []


class _Marked(LogisticRegression):  # type: ignore[misc]
    """LogisticRegression that notes when its fit begins: where Tracked's run start ends."""

    def fit(self, X: object, y: object, sample_weight: object = None) -> _Marked:
        _MARKS.append(time.perf_counter())
        return super().fit(X, y, sample_weight=sample_weight)  # type: ignore[no-any-return]


def _run_start(X: np.ndarray, y: np.ndarray, store: str, repeats: int) -> float:
    """Seconds from Tracked(est).fit() to the inner fit, over the same for a plain fit."""
    ours, plain = [], []
    Tracked(_Marked(), dir=store).fit(X, y)  # warm-up
    for _ in range(repeats):  # interleaved
        for wrapped, out in ((False, plain), (True, ours)):
            est = Tracked(_Marked(), dir=store) if wrapped else _Marked()
            start = time.perf_counter()
            est.fit(X, y)
            out.append(_MARKS[-1] - start)
    return paired_median(ours, plain)


def _search(estimator: object, grid: dict[str, list[float]]) -> GridSearchCV:
    return GridSearchCV(estimator, grid, cv=KFold(5, shuffle=True, random_state=0))


def _medians(variants: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each variant, run round-robin so machine noise hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="also print a RESULTS line")
    args = parser.parse_args()
    X, y = _data()
    store = tempfile.mkdtemp(prefix="bench-sklearn-")
    inner_grid = {f"estimator__{k}": v for k, v in GRID.items()}

    from reprolog_sklearn import _autolog

    def autologged() -> None:
        # enable/disable around each repeat (about a millisecond) so the variants interleave.
        _autolog.enable()
        try:
            _search(LogisticRegression(), GRID).fit(X, y)
        finally:
            _autolog.disable()

    _search(LogisticRegression(), GRID).fit(X, y)  # warm-up: imports, caches
    results = _medians(
        {
            "plain GridSearchCV": lambda: _search(LogisticRegression(), GRID).fit(X, y),
            "Tracked(search), capture=False": lambda: Tracked(
                _search(LogisticRegression(), GRID), dir=store, capture=False
            ).fit(X, y),
            "Tracked(search), capture=True": lambda: Tracked(
                _search(LogisticRegression(), GRID), dir=store
            ).fit(X, y),
            "GridSearchCV(Tracked(est))": lambda: _search(
                Tracked(LogisticRegression(), dir=store, capture=False), inner_grid
            ).fit(X, y),
            "autolog GridSearchCV": autologged,
        },
        args.repeats,
    )
    starts = _medians(
        {
            "capture=True": lambda: reprolog.init(dir=store).finish(),
            "capture=False": lambda: reprolog.init(dir=store, capture=False).finish(),
        },
        args.repeats,
    )
    capture, empty = starts["capture=True"], starts["capture=False"]

    base = results["plain GridSearchCV"]
    print("500-fit grid search (LogisticRegression, 200x5, 100 candidates x 5 folds)")
    print(f"median of {args.repeats} repeats")
    for name, seconds in results.items():
        print(f"  {name:34s} {seconds * 1000:8.1f} ms   x{seconds / base:.3f}")
    print(f"  run start+finish, capture=True     {capture * 1000:8.1f} ms")
    print(f"  run start+finish, capture=False    {empty * 1000:8.1f} ms")
    runs = reprolog.Store(store).runs()
    print(f"runs written: {len(runs)} (one per recorded search, none per candidate fit)")
    start = _run_start(X, y, store, max(args.repeats, 7)) * 1e3
    print(f"  run start inside Tracked.fit (to the inner fit) {start:8.1f} ms   target <= 50 ms")
    if args.json:
        emit_results(
            [{"measure": "run start (capture) inside scikit-learn", "value": start,
              "unit": "ms", "target": 50.0}]
        )  # fmt: skip


if __name__ == "__main__":
    main()
