"""Turn the arguments of one ``Model.fit`` call into params and the datasets to fingerprint."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Mapping
from types import FrameType
from typing import Any

# Keras's documented batch size when arrays are given and batch_size is None.
KERAS_DEFAULT_BATCH_SIZE = 32

# What a callback cannot see when no wrapper of fit is in place (plain callback mode).
UNSEEN_WITHOUT_WRAPPER = {
    "batch_size": "not passed to callbacks by Keras",
    "shuffle": "not passed to callbacks by Keras",
    "class_weight": "not passed to callbacks by Keras",
    "sample_weight": "not passed to callbacks by Keras",
    "validation": "validation_split / validation_data are not passed to callbacks by Keras",
    "data": "x and y are not passed to callbacks by Keras, so they were not fingerprinted",
}
HOW_TO_SEE = "enable zero-code mode (REPROLOG_AUTOLOG=1 or reprolog.autolog()) to record them"


def fit_params(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Describe the arguments of a ``fit`` call as params.

    Args:
        arguments: every argument of the call by name, defaults included.

    Returns:
        ``batch_size`` (and ``batch_size_is_default`` when Keras's default applies), ``epochs``,
        ``initial_epoch``, ``steps_per_epoch``, ``shuffle``, the validation settings, whether
        ``class_weight``/``sample_weight`` were given, and the number of samples when known.
    """
    x = arguments.get("x")
    arrays = is_array_like(x) or _is_nest_of_arrays(x)
    out: dict[str, Any] = {
        "epochs": arguments.get("epochs"),
        "initial_epoch": arguments.get("initial_epoch"),
        "steps_per_epoch": arguments.get("steps_per_epoch"),
        "shuffle": arguments.get("shuffle"),
        "class_weight": arguments.get("class_weight") is not None,
        "sample_weight": arguments.get("sample_weight") is not None,
        "x_type": _type_name(x),
    }
    batch_size = arguments.get("batch_size")
    if batch_size is None and arrays:
        out["batch_size"] = KERAS_DEFAULT_BATCH_SIZE
        out["batch_size_is_default"] = True
    elif batch_size is not None:
        out["batch_size"] = batch_size
    # Otherwise the data batches itself (dataset, generator): no batch size to record.
    samples = num_samples(x) if arrays else None
    if samples is not None:
        out["samples"] = samples
    split = arguments.get("validation_split") or 0.0
    validation_data = arguments.get("validation_data")
    if validation_data is not None:
        out["validation"] = "validation_data"
        val_x = _first(validation_data)
        val_samples = num_samples(val_x) if is_array_like(val_x) else None
        if val_samples is not None:
            out["validation_samples"] = val_samples
    elif split:
        out["validation"] = "validation_split"
        out["validation_split"] = split
        if samples is not None:
            # The same arithmetic as keras's train_validation_split: the last part is held out.
            train = math.floor(samples * (1.0 - split))
            out["train_samples"] = train
            out["validation_samples"] = samples - train
    else:
        out["validation"] = None
    if out["validation"] is not None:
        for key in ("validation_steps", "validation_batch_size", "validation_freq"):
            out[key] = arguments.get(key)
    return out


def datasets(arguments: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """Yield ``(name, obj)`` for each array passed to fit that can be fingerprinted safely.

    Generators, iterators and datasets that would be consumed or re-read are never yielded.

    Args:
        arguments: the arguments of the fit call by name.

    Yields:
        Names such as ``x``, ``y``, ``x.input_a``, ``validation.x`` with their arrays.
    """
    yield from _arrays("x", arguments.get("x"))
    yield from _arrays("y", arguments.get("y"))
    yield from _arrays("sample_weight", arguments.get("sample_weight"))
    validation_data = arguments.get("validation_data")
    if isinstance(validation_data, (tuple, list)):
        for name, part in zip(("x", "y", "sample_weight"), validation_data, strict=False):
            yield from _arrays(f"validation.{name}", part)


def is_array_like(obj: Any) -> bool:
    """Tell whether ``obj`` is an in-memory array (numpy, torch, jax, pandas).

    Args:
        obj: anything passed as x or y.

    Returns:
        True when it has a shape and a dtype (or dtypes) and is not an iterator.
    """
    if obj is None or isinstance(obj, Iterator):
        return False
    return hasattr(obj, "shape") and (hasattr(obj, "dtype") or hasattr(obj, "dtypes"))


def num_samples(obj: Any) -> int | None:
    """Return the length of the first axis of an array (or of the first array of a nest).

    Args:
        obj: an array, or a list/tuple/dict of arrays.

    Returns:
        The number of samples, or None when it cannot be known without reading the data.
    """
    first = _first(obj)
    shape = getattr(first, "shape", None)
    if shape is None or len(shape) == 0:
        return None
    try:
        return int(shape[0])
    except (TypeError, ValueError):
        return None


def _arrays(name: str, obj: Any) -> Iterator[tuple[str, Any]]:
    if is_array_like(obj):
        yield name, obj
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            if is_array_like(value):
                yield f"{name}.{key}", value
    elif isinstance(obj, (list, tuple)):
        for index, value in enumerate(obj):
            if is_array_like(value):
                yield f"{name}.{index}", value


def _is_nest_of_arrays(obj: Any) -> bool:
    if isinstance(obj, Mapping):
        values = list(obj.values())
    elif isinstance(obj, (list, tuple)):
        values = list(obj)
    else:
        return False
    return bool(values) and all(is_array_like(v) for v in values)


def _first(obj: Any) -> Any:
    while isinstance(obj, (list, tuple, Mapping)) and obj:
        obj = next(iter(obj.values())) if isinstance(obj, Mapping) else obj[0]
    return obj


def _type_name(obj: Any) -> str:
    cls = type(obj)
    return cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def arguments_from_fit_frame(model: Any, *, max_depth: int = 12) -> dict[str, Any] | None:
    """Read the arguments of the running ``model.fit`` call from its frame, when it is found.

    Keras passes callbacks neither the data nor ``batch_size``; but every backend's ``fit`` is
    a Python frame on the stack while callbacks run, with the Keras API's argument names. The
    values are those the fit is using (after a validation split, ``x`` is the training part).

    Args:
        model: the model whose ``fit`` is running (the callback's ``self.model``).
        max_depth: how many frames up to look.

    Returns:
        Argument name -> value for the names of ``model.fit``'s signature, or None when no such
        frame is found (e.g. a custom training loop calling the hooks itself).
    """
    import inspect

    try:
        names = [
            p.name
            for p in inspect.signature(model.fit).parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
    except (TypeError, ValueError):
        return None
    frame: FrameType | None = sys._getframe(1).f_back
    try:
        for _ in range(max_depth):
            if frame is None:
                return None
            if frame.f_code.co_name == "fit" and frame.f_locals.get("self") is model:
                local = frame.f_locals
                return {name: local[name] for name in names if name in local}
            frame = frame.f_back
        return None
    finally:
        del frame  # frames hold references to everything on the stack
