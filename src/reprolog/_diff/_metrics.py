"""Vectorised step-aligned comparison of the metric curves of two runs."""

from __future__ import annotations

from typing import Any

import numpy as np

from reprolog._diff._model import MetricComparison, MetricStatus
from reprolog._storage._values import SYSTEM_KEY_PREFIX

Curves = dict[str, tuple[np.ndarray, np.ndarray]]


def curves_from_table(table: Any) -> Curves:
    """Split a long metrics table into one (steps, values) pair per key.

    Every array operation is over whole columns: the key column's dictionary codes, one sort, then
    slicing at key boundaries, so a 100,000-step run costs milliseconds, never a Python loop over
    steps.

    Args:
        table: a pyarrow Table or a pandas DataFrame with ``key``, ``step`` and ``value`` columns.

    Returns:
        key -> (steps as int64, values as float64), sorted by step, one point per step (the last
        one logged wins, as a later point at the same step replaces the earlier one).
    """
    if table is None or len(table) == 0:
        return {}
    codes, names = _key_codes(table)
    steps = np.asarray(_column(table, "step"), dtype=np.int64)
    values = np.asarray(_column(table, "value"), dtype=np.float64)
    order = np.lexsort((steps, codes))  # by key, then step; stable, so logging order survives ties
    codes, steps, values = codes[order], steps[order], values[order]
    bounds = np.flatnonzero(np.diff(codes)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [len(codes)]))
    out: Curves = {}
    for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
        s, v = steps[lo:hi], values[lo:hi]
        # Keep the last point of each repeated step: drop points whose successor has the same step.
        last = np.ones(len(s), dtype=bool)
        last[:-1] = s[1:] != s[:-1]
        out[str(names[int(codes[lo])])] = (s[last], v[last])
    return out


def _column(table: Any, name: str) -> Any:
    col = table[name] if not hasattr(table, "column") else table.column(name)
    return col.to_numpy() if hasattr(col, "to_numpy") else np.asarray(col)


def _key_codes(table: Any) -> tuple[np.ndarray, list[str]]:
    """Integer codes and names of the key column, from Arrow dictionary codes when it has them."""
    if hasattr(table, "column") and hasattr(table, "schema"):  # pyarrow.Table
        import pyarrow as pa

        col = table.column("key").combine_chunks()
        if not pa.types.is_dictionary(col.type):
            col = col.dictionary_encode()
        codes = col.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        return codes, [str(x) for x in col.dictionary.to_pylist()]
    keys = table["key"].astype("category")  # pandas
    return np.asarray(keys.cat.codes, dtype=np.int64), [str(x) for x in keys.cat.categories]


curves_from_frame = curves_from_table


def compare_curves(
    key: str,
    a: tuple[np.ndarray, np.ndarray],
    b: tuple[np.ndarray, np.ndarray],
    *,
    rtol: float,
    atol: float,
) -> MetricComparison:
    """Compare two curves of one metric, aligned by step.

    Exact equality treats NaN as equal to NaN and inf as equal to the same inf. A pair is within
    tolerance when ``|a - b| <= atol + rtol * |b|`` (numpy's ``isclose`` rule). The first step where
    the curves differ is the earliest of: the first shared step beyond tolerance, and the first step
    that only one run logged.

    Args:
        key: the metric key.
        a: run A's (steps, values), sorted and unique by step.
        b: run B's (steps, values), sorted and unique by step.
        rtol: relative tolerance.
        atol: absolute tolerance.

    Returns:
        The comparison, with both values at the first divergent step.
    """
    sa, va = a
    sb, vb = b
    shared, ia, ib = np.intersect1d(sa, sb, assume_unique=True, return_indices=True)
    xa, xb = va[ia], vb[ib]
    nan_a, nan_b = np.isnan(xa), np.isnan(xb)
    with np.errstate(invalid="ignore"):
        exact = (xa == xb) | (nan_a & nan_b)
        delta = np.abs(xa - xb)
        # A non-finite gap (inf vs -inf, inf vs a number) is never "within tolerance".
        close = exact | (np.isfinite(delta) & (delta <= atol + rtol * np.abs(xb)))
    finite = delta[~exact & np.isfinite(delta)]
    max_abs = float(finite.max()) if finite.size else (0.0 if exact.all() else float("inf"))

    only_a = np.setdiff1d(sa, shared, assume_unique=True)
    only_b = np.setdiff1d(sb, shared, assume_unique=True)
    candidates: list[int] = []
    bad = np.flatnonzero(~close)
    if bad.size:
        candidates.append(int(shared[bad[0]]))
    if only_a.size:
        candidates.append(int(only_a[0]))
    if only_b.size:
        candidates.append(int(only_b[0]))

    if candidates:
        step = min(candidates)
        return MetricComparison(
            key=key,
            status=MetricStatus.DIVERGED,
            step=step,
            a=_value_at(sa, va, step),
            b=_value_at(sb, vb, step),
            shared_steps=int(shared.size),
            max_abs_diff=max_abs,
            steps_only_in_a=int(only_a.size),
            steps_only_in_b=int(only_b.size),
        )
    status = MetricStatus.IDENTICAL if bool(exact.all()) else MetricStatus.WITHIN_TOLERANCE
    return MetricComparison(
        key=key,
        status=status,
        step=None,
        a=None,
        b=None,
        shared_steps=int(shared.size),
        max_abs_diff=max_abs,
    )


def _value_at(steps: np.ndarray, values: np.ndarray, step: int) -> float | None:
    i = int(np.searchsorted(steps, step))
    if i < len(steps) and int(steps[i]) == step:
        return float(values[i])
    return None


def split_system(curves: Curves) -> tuple[Curves, list[str]]:
    """Set the system metrics (``sys/...``) aside: they measure the machine, not the training.

    Returns:
        (the training's curves, the sorted system keys set aside).
    """
    system = sorted(k for k in curves if k.startswith(SYSTEM_KEY_PREFIX))
    return {k: v for k, v in curves.items() if not k.startswith(SYSTEM_KEY_PREFIX)}, system


def compare_all(
    a: Curves, b: Curves, *, rtol: float, atol: float
) -> tuple[list[MetricComparison], list[str], list[str]]:
    """Compare every metric both runs logged (system metrics set aside by ``split_system``).

    Args:
        a: run A's curves, from ``curves_from_frame``.
        b: run B's curves.
        rtol: relative tolerance.
        atol: absolute tolerance.

    Returns:
        (comparisons sorted by key, keys only in A, keys only in B).
    """
    shared = sorted(set(a) & set(b))
    comparisons = [compare_curves(k, a[k], b[k], rtol=rtol, atol=atol) for k in shared]
    return comparisons, sorted(set(a) - set(b)), sorted(set(b) - set(a))
