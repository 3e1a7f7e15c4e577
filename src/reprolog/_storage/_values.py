"""Pure checks and conversions for what users hand to a run: metric values, steps, keys, params."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from reprolog._errors import ArgumentError, MetricKeyError, MetricValueError, StepError

ACCEPTED_VALUES = (
    "a real number: int, float, bool, a numpy scalar, a 0-d or one-element array, "
    "or a one-element torch tensor"
)


# Keys of the system metrics (`reprolog._capture.sysmetrics`): measurements of the machine,
# not of the training, so `diff` and `reproduce` set them aside and listings hide them.
SYSTEM_KEY_PREFIX = "sys/"

_ACCEPTED_STEPS = "a non-negative integer (int or numpy/torch integer scalar)"


def _describe(value: Any) -> str:
    text = " ".join(repr(value).split())  # one line, even for a tensor's multi-line repr
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__module__}.{type(value).__qualname__} {text}"


def to_float(key: str, value: Any) -> float:
    """Convert one metric value to a Python float, or raise MetricValueError.

    The fast path (a plain float) never reaches this function; here we accept ints, bools,
    numpy scalars and arrays of one element, and torch tensors of one element, without
    importing numpy or torch: anything with `.item()` and a size of one qualifies.
    """
    kind = type(value)
    if kind is bool:
        return float(value)
    if kind is int:
        return _int_to_float(key, value)
    if isinstance(value, (str, bytes, bytearray)) or value is None:
        raise MetricValueError(
            f"metric {key!r}: got {_describe(value)}; accepted: {ACCEPTED_VALUES}",
            key=key,
            value=value,
        )
    if isinstance(value, float):  # float subclasses
        return float(value)
    if isinstance(value, int):
        return _int_to_float(key, value)
    item = getattr(value, "item", None)
    if item is not None:
        size = getattr(value, "size", None)
        if callable(size):  # torch: .size() is a method; numel() counts elements
            numel = getattr(value, "numel", None)
            size = numel() if callable(numel) else None
        if size is None or size == 1:
            try:
                out = item()
            except Exception as exc:  # e.g. a tensor on a device that cannot sync
                raise MetricValueError(
                    f"metric {key!r}: could not read {_describe(value)} ({exc})",
                    key=key,
                    value=value,
                ) from exc
            if isinstance(out, float):
                return out
            if isinstance(out, int):
                return _int_to_float(key, out)
            raise MetricValueError(
                f"metric {key!r}: got {_describe(value)} holding {_describe(out)}; "
                f"accepted: {ACCEPTED_VALUES}",
                key=key,
                value=value,
            )
        raise MetricValueError(
            f"metric {key!r}: got {_describe(value)} with {size} elements; "
            f"accepted: {ACCEPTED_VALUES}",
            key=key,
            value=value,
        )
    raise MetricValueError(
        f"metric {key!r}: got {_describe(value)}; accepted: {ACCEPTED_VALUES}",
        key=key,
        value=value,
    )


def _int_to_float(key: str, value: int) -> float:
    try:
        return float(value)
    except OverflowError:  # ints beyond ~1.8e308 have no float
        raise MetricValueError(
            f"metric {key!r}: got {_describe(value)}, too large for a 64-bit float; "
            f"accepted: {ACCEPTED_VALUES}",
            key=key,
            value=value,
        ) from None


def check_key(key: Any) -> str:
    """Return the key when it can name a metric, else raise MetricKeyError."""
    if not isinstance(key, str):
        raise MetricKeyError(
            f"metric keys must be non-empty strings, got {_describe(key)}", key=None
        )
    if not key or not key.strip():
        raise MetricKeyError(f"metric keys must be non-empty strings, got {key!r}", key=key)
    return key


def check_step(step: Any, *, what: str = "step", keys: Iterable[Any] | None = None) -> int:
    """Return a valid step (a non-negative int; numpy integers accepted), else raise StepError.

    Args:
        step: the value to check.
        what: "step" or "epoch", for the message.
        keys: the metric keys the step applies to, named in the message.
    """
    if type(step) is int and 0 <= step <= 2**62:  # the common case: no message to prepare
        return step
    if isinstance(step, bool):
        raise _step_error(what, keys, f"got bool {step!r}")
    if not isinstance(step, int):
        index = getattr(step, "__index__", None)
        try:
            as_int = index() if index is not None else None
        except (TypeError, ValueError, RuntimeError):  # e.g. a float tensor or a 1-d array
            as_int = None
        if not isinstance(as_int, int):
            raise _step_error(what, keys, f"got {_describe(step)}")
        step = as_int
    if step < 0:
        raise _step_error(what, keys, f"got {step}")
    if step > 2**62:
        raise _step_error(what, keys, f"got {step}", accepted="below 2**62")
    return int(step)


def _step_error(
    what: str, keys: Iterable[Any] | None, received: str, accepted: str = _ACCEPTED_STEPS
) -> StepError:
    key_list = list(keys)[:5] if keys is not None else []
    if key_list:
        what = f"{what} of metric {', '.join(repr(k) for k in key_list)}"
    first = key_list[0] if key_list and isinstance(key_list[0], str) else None
    return StepError(f"{what} must be {accepted}, {received}", key=first)


def check_epoch(epoch: Any, *, keys: Iterable[Any] | None = None) -> int:
    """Return a valid epoch (stored as int32), else raise StepError."""
    value = check_step(epoch, what="epoch", keys=keys)
    if value >= 2**31 - 1:
        raise _step_error("epoch", keys, f"got {value}", accepted="below 2**31 - 1")
    return value


def check_metrics(metrics: Any) -> dict[str, Any]:
    """Return `metrics` as a dict, or raise ArgumentError when it is not a mapping."""
    if isinstance(metrics, Mapping):
        return dict(metrics)
    raise ArgumentError(
        f"log() takes a mapping of metric key to number, e.g. {{'loss': 0.1}}; "
        f"got {type(metrics).__name__}: {_describe(metrics)}"
    )


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings into dotted keys: {"a": {"b": 1}} -> {"a.b": 1}."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, prefix=f"{name}."))
        else:
            out[name] = value
    return out


_SCALARS = (str, int, float, bool, type(None))


def json_safe(value: Any) -> tuple[Any, str | None]:
    """Return (a JSON-serialisable value, type name when the value had to become its repr).

    Scalars and lists/tuples of scalars pass through (numpy scalars become Python numbers);
    everything else is stored as its repr, with its type name, and never raises.
    """
    if isinstance(value, _SCALARS):
        if isinstance(value, float) and not math.isfinite(value):
            return repr(value), "float"  # JSON has no NaN/inf; keep them readable
        return value, None
    if isinstance(value, (list, tuple)):
        items = [json_safe(v) for v in value]
        if all(t is None for _, t in items):
            return [v for v, _ in items], None
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", None) == 0:
        try:
            inner = item()
        except Exception:
            inner = None
        if isinstance(inner, _SCALARS):
            return json_safe(inner)
    if isinstance(value, Mapping) and not value:
        return {}, None
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not break logging
        text = f"<unrepresentable {type(value).__qualname__}: {exc}>"
    return text, f"{type(value).__module__}.{type(value).__qualname__}"


def dumps(value: Any) -> str:
    """Canonical JSON used for records: UTF-8, no NaN surprises for strict readers."""
    return json.dumps(value, ensure_ascii=False, default=repr)
