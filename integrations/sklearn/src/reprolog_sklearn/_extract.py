"""Pure extraction from estimators: params, random states, data shapes, curves, search tables."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

# Fitted attributes that hold one value per iteration/stage, logged as step metrics.
CURVE_ATTRIBUTES = (
    "loss_curve_",  # MLP
    "validation_scores_",  # MLP with early_stopping
    "train_score_",  # GradientBoosting*, HistGradientBoosting*
    "validation_score_",  # HistGradientBoosting* with early stopping
    "oob_improvement_",  # GradientBoosting* with subsample < 1
    "oob_scores_",  # GradientBoosting* with subsample < 1
)
# Fitted attributes that hold one number describing how the fit went.
SCALAR_ATTRIBUTES = (
    "n_iter_",
    "best_loss_",
    "best_validation_score_",
    "loss_",
    "oob_score_",
    "inertia_",
    "n_estimators_",
)
_MAX_DEPTH = 4


def qualified_name(obj: Any) -> str:
    """The importable name of an object's class, e.g. "sklearn.linear_model.Ridge"."""
    cls = obj if isinstance(obj, type) else type(obj)
    module = cls.__module__
    # Private submodules are an implementation detail; the public package is what users import.
    public = ".".join(part for part in module.split(".") if not part.startswith("_"))
    return f"{public}.{cls.__qualname__}"


def _is_estimator(value: Any) -> bool:
    return hasattr(value, "get_params") and hasattr(value, "fit") and not isinstance(value, type)


def _rng_state_digest(rng: Any) -> str | None:
    """A short digest of a numpy RandomState/Generator state (observed, never advanced)."""
    try:
        if isinstance(rng, np.random.RandomState):
            state: Any = rng.get_state(legacy=False)
        elif isinstance(rng, np.random.Generator):
            state = rng.bit_generator.state
        else:
            return None
        text = json.dumps(state, default=lambda o: o.tolist() if hasattr(o, "tolist") else repr(o))
        return hashlib.sha256(text.encode()).hexdigest()[:16]
    except Exception:  # an exotic bit generator must not stop capture
        return None


def param_value(value: Any) -> Any:
    """A compact, JSON-friendly stand-in for one parameter value.

    Nested estimators become their class name (their own params are listed separately
    by `get_params(deep=True)`), callables their qualified name, RNGs a state digest.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if _is_estimator(value):
        return type(value).__name__
    if isinstance(value, (np.random.RandomState, np.random.Generator)):
        return f"{type(value).__name__}(state_sha256={_rng_state_digest(value)})"
    if isinstance(value, (list, tuple)):
        return [param_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): param_value(v) for k, v in value.items()}
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '?')}.{value.__qualname__}"
    if isinstance(value, np.ndarray) and value.size <= 16:
        return value.tolist()
    return repr(value)


def estimator_params(estimator: Any) -> dict[str, Any]:
    """`get_params(deep=True)` made JSON-friendly, keyed as scikit-learn names them."""
    return {name: param_value(v) for name, v in estimator.get_params(deep=True).items()}


def _describe_random_state(value: Any) -> Any:
    if value is None or isinstance(value, (int, np.integer)):
        return None if value is None else int(value)
    digest = _rng_state_digest(value)
    if digest is not None:
        return {"type": type(value).__name__, "state_sha256": digest}
    return repr(value)


def random_states(estimator: Any) -> dict[str, Any]:
    """Every random_state reachable from the params: estimators, nested ones, CV splitters.

    Returns:
        {param path: int | None | {"type", "state_sha256"}}; None means "not seeded".
    """
    found: dict[str, Any] = {}
    for name, value in estimator.get_params(deep=True).items():
        if name == "random_state" or name.endswith("__random_state"):
            found[name] = _describe_random_state(value)
        elif (
            not _is_estimator(value) and hasattr(value, "random_state") and hasattr(value, "split")
        ):
            # A CV splitter passed as `cv`: its seed decides the folds.
            found[f"{name}.random_state"] = _describe_random_state(value.random_state)
            if hasattr(value, "shuffle"):
                found[f"{name}.shuffle"] = bool(value.shuffle)
    return found


def unseeded(states: Mapping[str, Any]) -> list[str]:
    """Random states left None (or splitters that shuffle without a seed): not reproducible."""
    out = []
    for name, value in states.items():
        if value is not None or name.endswith(".shuffle"):
            continue
        shuffle_key = name.removesuffix("random_state") + "shuffle"
        if name.endswith(".random_state") and states.get(shuffle_key) is False:
            continue  # an unshuffled splitter ignores its random_state
        out.append(name)
    return out


def describe_array(obj: Any) -> dict[str, Any]:
    """Shape, dtypes and feature names of X, y or sample_weight; never reads the values."""
    desc: dict[str, Any] = {"type": qualified_name(obj)}
    shape = getattr(obj, "shape", None)
    if shape is not None:
        desc["shape"] = [int(s) for s in shape]
    elif hasattr(obj, "__len__"):
        desc["shape"] = [len(obj)]
    columns = getattr(obj, "columns", None)
    dtypes = getattr(obj, "dtypes", None)
    if columns is not None:
        desc["feature_names"] = [str(c) for c in columns]
        if dtypes is not None and hasattr(dtypes, "items"):
            desc["dtypes"] = {str(c): str(t) for c, t in dtypes.items()}
    elif getattr(obj, "dtype", None) is not None:
        desc["dtype"] = str(obj.dtype)
        if getattr(obj, "name", None) is not None:  # a pandas Series
            desc["name"] = str(obj.name)
    return desc


def _children(estimator: Any) -> Iterator[tuple[str, Any]]:
    """Fitted sub-estimators worth looking into for curves, with a short name each."""
    steps = getattr(estimator, "steps", None)
    if isinstance(steps, list):
        for item in steps:
            if isinstance(item, tuple) and len(item) == 2 and _is_estimator(item[1]):
                yield str(item[0]), item[1]
    for attr in ("transformers_", "transformer_list"):
        parts = getattr(estimator, attr, None)
        if isinstance(parts, list):
            for item in parts:
                if isinstance(item, tuple) and len(item) >= 2 and _is_estimator(item[1]):
                    yield str(item[0]), item[1]
    for attr, short in (
        ("best_estimator_", "best"),
        ("estimator_", "estimator"),
        ("regressor_", "regressor"),
    ):
        child = estimator.__dict__.get(attr) if hasattr(estimator, "__dict__") else None
        if _is_estimator(child):
            yield short, child


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def fit_results(
    estimator: Any, prefix: str = "", depth: int = 0
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Per-iteration curves and one-number fit results of a fitted estimator and its parts.

    Returns:
        (curves, scalars): metric key -> values by iteration, metric key -> value. Keys are
        the attribute name without its trailing underscore, prefixed by the path of the
        sub-estimator ("clf.loss_curve", "best.train_score").
    """
    curves: dict[str, list[float]] = {}
    scalars: dict[str, float] = {}
    state = getattr(estimator, "__dict__", {})
    for attr in CURVE_ATTRIBUTES:
        values = state.get(attr)
        if values is None or isinstance(values, (str, bytes)):
            continue
        try:
            points = [_finite(v) for v in np.asarray(values, dtype=float).ravel()]
        except (TypeError, ValueError):
            continue
        if points and all(p is not None for p in points):
            curves[prefix + attr.rstrip("_")] = [p for p in points if p is not None]
    for attr in SCALAR_ATTRIBUTES:
        value = state.get(attr)
        if value is None:
            continue
        try:
            number = _finite(
                np.max(np.asarray(value, dtype=float))
            )  # n_iter_ is per class for some
        except (TypeError, ValueError):
            number = None
        if number is not None:
            scalars[prefix + attr.rstrip("_")] = number
    if depth < _MAX_DEPTH:
        for name, child in _children(estimator):
            sub_curves, sub_scalars = fit_results(child, f"{prefix}{name}.", depth + 1)
            curves.update(sub_curves)
            scalars.update(sub_scalars)
    return curves, scalars


def search_summary(search: Any) -> dict[str, Any]:
    """Best candidate and shape of a fitted search (GridSearchCV, RandomizedSearchCV, ...)."""
    summary: dict[str, Any] = {"search": qualified_name(search)}
    state = search.__dict__
    if "best_params_" in state:
        summary["best_params"] = {k: param_value(v) for k, v in state["best_params_"].items()}
    for attr in ("best_score_", "best_index_", "n_splits_", "refit_time_", "multimetric_"):
        if attr in state:
            value = state[attr]
            summary[attr.rstrip("_")] = value.item() if isinstance(value, np.generic) else value
    results = state.get("cv_results_")
    if isinstance(results, Mapping) and "params" in results:
        summary["n_candidates"] = len(results["params"])
    return summary


def _column(values: Any) -> Any:
    """One cv_results_ column as an Arrow array: native type when uniform, else JSON/repr text."""
    import pyarrow as pa

    if isinstance(values, np.ma.MaskedArray):
        mask = np.ma.getmaskarray(values)
        items = [None if m else v for v, m in zip(values.data.tolist(), mask.tolist(), strict=True)]
    elif isinstance(values, np.ndarray) and values.dtype != object:
        return pa.array(values)
    else:
        items = list(values)
    try:
        return pa.array([param_value(v) if v is not None else None for v in items])
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        # Mixed kinds (e.g. an int grid with None): text keeps every value readable.
        return pa.array(
            [None if v is None else json.dumps(param_value(v), default=repr) for v in items]
        )


def cv_results_table(cv_results: Mapping[str, Any]) -> Any:
    """`cv_results_` as a pyarrow Table: one row per candidate, one column per key.

    `params` becomes a JSON string per row; `param_*` columns keep their native type
    when every candidate has the same kind of value.
    """
    import pyarrow as pa

    columns: dict[str, Any] = {}
    for key, values in cv_results.items():
        if key == "params":
            columns[key] = pa.array(
                [
                    json.dumps({k: param_value(v) for k, v in p.items()}, default=repr)
                    for p in values
                ]
            )
        else:
            columns[key] = _column(values)
    return pa.table(columns)
