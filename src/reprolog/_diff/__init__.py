"""`diff(a, b)`: why two runs differ, as ranked typed differences and metric divergence."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprolog._diff._model import (
    Barrier,
    Category,
    Difference,
    Explanation,
    MetricComparison,
    MetricStatus,
    RunDiff,
)
from reprolog._errors import ArgumentError

if TYPE_CHECKING:
    from reprolog._store._record import RunRecord
    from reprolog._store._store import Store

__all__ = [
    "Barrier",
    "Category",
    "Difference",
    "Explanation",
    "MetricComparison",
    "MetricStatus",
    "RunDiff",
    "diff",
    "diff_text",
    "render_diff",
]

# numpy.isclose's defaults: loose enough for float32-stored curves (about 7 significant digits)
# to compare within tolerance when recomputed in float64, tight enough to flag any real change.
DEFAULT_RTOL = 1e-5
DEFAULT_ATOL = 1e-8


def diff(
    a: str | RunRecord | Any,
    b: str | RunRecord | Any,
    *,
    store: Store | str | os.PathLike[str] | None = None,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
) -> RunDiff:
    """Explain why two runs differ.

    Compares what the runs recorded (data fingerprints, code, hyperparameters, seeds and RNG
    states, determinism settings, packages, hardware, command line, other sections), ranked by how
    likely each difference is to change results, then compares every metric both runs logged, step
    by step.

    Args:
        a: run A: an id, unique id prefix or run name (looked up in ``store``), a ``RunRecord``,
            or a live ``Run``.
        b: run B, in any of the same forms.
        store: a ``Store`` or store folder used to look up ``a``/``b`` given as text; default: the
            store ``Store()`` finds.
        rtol: relative tolerance for metrics (``|a-b| <= atol + rtol*|b|``); 0 with ``atol=0``
            asks for exact equality.
        atol: absolute tolerance for metrics.

    Returns:
        A ``RunDiff``: ``.differences`` (ranked), ``.metrics`` (one per shared key), ``.differs``,
        and ``.explanation``: from both runs' step fingerprints, the first step where they part
        and what differed there (an ``Explanation``; ``str()`` is one line).

    Raises:
        RunNotFoundError: a reference matches no run.
        AmbiguousRunError: a reference matches several runs.
        StoreError: no store was found.
        ArgumentError: a tolerance is negative or not a number, or a run is of an unknown type.

    Example:
        >>> d = reprolog.diff("01j9a", "01j9b")  # doctest: +SKIP
        >>> d.differences[0].category, d.metric("loss").step  # doctest: +SKIP
    """
    # Imported here so that `import reprolog` does not pay for numpy/rich until a diff is asked for.
    from reprolog._diff._explain import explain
    from reprolog._diff._metrics import compare_all, curves_from_table, split_system
    from reprolog._diff._records import compare_records

    for name, tol in (("rtol", rtol), ("atol", atol)):
        if not isinstance(tol, int | float) or isinstance(tol, bool) or not tol >= 0:
            raise ArgumentError(f"{name} must be a number >= 0, got {tol!r}")
    resolved: list[Any] = []
    opened: Store | None = None
    for ref in (a, b):
        if isinstance(ref, str):
            opened = opened or _open_store(store)
            resolved.append(opened.run(ref))
        else:
            resolved.append(_as_record(ref))
    ra, rb = resolved
    differences = compare_records(ra.raw, rb.raw)
    curves_a, system_a = split_system(curves_from_table(_points(ra)))
    curves_b, system_b = split_system(curves_from_table(_points(rb)))
    metrics, only_a, only_b = compare_all(curves_a, curves_b, rtol=rtol, atol=atol)
    explanation = explain(
        _steps(ra),
        _steps(rb),
        metrics,
        differences,
        (ra.raw.get("sections") or {}, rb.raw.get("sections") or {}),
    )
    return RunDiff(
        a=ra.id,
        b=rb.id,
        differences=differences,
        metrics=metrics,
        metrics_only_in_a=only_a,
        metrics_only_in_b=only_b,
        rtol=float(rtol),
        atol=float(atol),
        explanation=explanation,
        system_metrics=sorted(set(system_a) | set(system_b)),
    )


def _steps(record: Any) -> Any:
    """A run's step fingerprints as a pyarrow Table, or None (read-only, like the metrics)."""
    from reprolog._storage._steplog import read_steps

    return read_steps(Path(record.dir))


def __getattr__(name: str) -> Any:
    # The renderers need rich; load them on first use only.
    if name in ("diff_text", "render_diff"):
        from reprolog._diff import _render

        return getattr(_render, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _points(record: Any) -> Any:
    """A run's points as a pyarrow Table (no pandas round trip: it costs more than the diff)."""
    from reprolog._store._reader import StoreReader

    # The reader that made the record, when it has one: a read-only store (the UI's) stays
    # read-only.
    reader = getattr(record, "_reader", None) or StoreReader.of_run_dir(record.dir)
    return reader.metrics_table([record.id])


def _open_store(store: Store | str | os.PathLike[str] | None) -> Store:
    from reprolog._store._store import Store

    return store if isinstance(store, Store) else Store(store)


def _as_record(ref: Any) -> Any:
    """Accept a RunRecord as is; turn a live Run into the record its store holds."""
    if hasattr(ref, "raw") and hasattr(ref, "metrics"):
        return ref
    run_dir = getattr(ref, "dir", None)
    run_id = getattr(ref, "id", None)
    if run_dir is not None and isinstance(run_id, str):
        from reprolog._store._reader import StoreReader

        return StoreReader.of_run_dir(run_dir).run(run_id)
    raise ArgumentError(
        f"a run must be an id, prefix or name (str), a RunRecord or a Run; got {type(ref).__name__}"
    )
