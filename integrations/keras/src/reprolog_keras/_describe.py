"""Describe a Keras model, its compile settings and Keras itself as params and record sections."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

# A config is only recorded when it comes from a class that really describes itself; see
# `config_is_trusted`. These strings explain, in the record, why a config is missing.
UNTRUSTED_CONFIG = (
    "not recorded: {cls} does not define get_config(), so Keras would report its __init__ "
    "defaults rather than the values it was built with"
)


def keras_facts() -> dict[str, Any]:
    """Return the Keras version and backend in use.

    Returns:
        ``{"version": ..., "backend": ...}``.
    """
    import keras

    return {"version": keras.__version__, "backend": keras.backend.backend()}


def config_is_trusted(obj: Any) -> bool:
    """Tell whether ``obj.get_config()`` reports the values the object was really built with.

    Keras's own classes describe themselves. A user subclass that does not define
    ``get_config`` falls back on Keras's generic one, which reports the ``__init__`` defaults
    (or the parent's fields only), so its config is not trusted.

    Args:
        obj: a Keras layer, model or other serialisable object.

    Returns:
        True when the config can be recorded as true.
    """
    cls = type(obj)
    if _is_keras_module(cls.__module__):
        return True
    for klass in cls.__mro__:
        if "get_config" in vars(klass):
            return not _is_keras_module(klass.__module__)
    return False


def model_kind(model: Any) -> str:
    """Return ``"sequential"``, ``"functional"`` or ``"subclassed"`` for a Keras model.

    Args:
        model: a ``keras.Model``.

    Returns:
        The kind of model, as Keras users name it.
    """
    import keras

    if isinstance(model, keras.Sequential):
        return "sequential"
    cls = type(model)
    if cls.__name__ == "Functional" and _is_keras_module(cls.__module__):
        return "functional"
    return "subclassed"


def describe_model(model: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Describe a model as params (compact, diffable) and a record section (full).

    Args:
        model: a ``keras.Model``.

    Returns:
        ``(params, section)``: params hold the class, kind, parameter counts and one compact
        line per top-level layer; the section holds the full config when it can be trusted.
    """
    cls = type(model)
    params: dict[str, Any] = {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "kind": model_kind(model),
        "name": model.name,
    }
    section: dict[str, Any] = {"class": params["class"], "kind": params["kind"]}
    if model.built:
        trainable = _count(model.trainable_weights)
        total = _count(model.weights)
        params.update(
            total_params=total, trainable_params=trainable, non_trainable_params=total - trainable
        )
    else:
        section["params_unknown"] = "the model was not built when training began"
    layers: dict[str, str] = {}
    untrusted: list[str] = []
    for layer in model.layers:
        layers[layer.name] = layer_line(layer)
        if not config_is_trusted(layer):
            untrusted.append(layer.name)
    params["num_layers"] = len(layers)
    params["layers"] = layers
    if not config_is_trusted(model):
        section["config"] = None
        section["config_unknown"] = UNTRUSTED_CONFIG.format(cls=cls.__qualname__)
    elif untrusted:
        # The model's config embeds each layer's; one made-up layer config spoils all of it.
        section["config"] = None
        section["config_unknown"] = (
            f"not recorded: layers {untrusted} do not define get_config(), so their configs "
            "would show __init__ defaults"
        )
    else:
        section["config"] = json_safe(model.get_config())
    return params, section


def layer_line(layer: Any) -> str:
    """Return one line that describes a layer, e.g. ``Dense(units=8, activation='relu')``.

    Args:
        layer: a Keras layer.

    Returns:
        The class name and the scalar fields of its config; only the class name when the
        config cannot be trusted (see `config_is_trusted`).
    """
    name = type(layer).__name__
    if not config_is_trusted(layer):
        return f"{name}(config unknown)"
    try:
        config = layer.get_config()
    except Exception as exc:  # a layer that cannot describe itself is still a layer
        return f"{name}(config error: {type(exc).__name__})"
    fields = [f"{key}={_short(value)}" for key, value in config.items() if key != "name"]
    return f"{name}({', '.join(fields)})"


def describe_compile(model: Any) -> dict[str, Any]:
    """Describe the optimizer, loss and metrics given to ``model.compile``.

    Args:
        model: a compiled ``keras.Model``.

    Returns:
        Params: ``optimizer`` (class and config) and ``compile`` (loss, metrics and the other
        compile arguments, with serialised Keras objects reduced to their names).
    """
    out: dict[str, Any] = {}
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:
        out["optimizer"] = {"class": type(optimizer).__name__, **json_safe(optimizer.get_config())}
    compile_config = model.get_compile_config() or {}
    settings: dict[str, Any] = {}
    for key in ("loss", "metrics", "weighted_metrics", "loss_weights"):
        if compile_config.get(key) is not None:
            settings[key] = object_name(compile_config[key])
    for key in ("run_eagerly", "steps_per_execution", "jit_compile"):
        if key in compile_config:
            settings[key] = json_safe(compile_config[key])
    out["compile"] = settings
    return out


def object_name(serialized: Any) -> Any:
    """Reduce a serialised Keras object (loss, metric) to a readable name.

    Args:
        serialized: what ``keras.saving.serialize_keras_object`` produced: a string, a
            ``{"class_name": ..., "config": ...}`` dict, or a list/dict of those.

    Returns:
        A string, or a list/dict of strings with the same shape.
    """
    if isinstance(serialized, Mapping):
        if "class_name" in serialized:
            config = serialized.get("config")
            if serialized["class_name"] == "function" and isinstance(config, str):
                return config
            return str(serialized["class_name"])
        return {str(key): object_name(value) for key, value in serialized.items()}
    if isinstance(serialized, (list, tuple)):
        return [object_name(item) for item in serialized]
    return json_safe(serialized)


def json_safe(value: Any) -> Any:
    """Return ``value`` with tuples as lists, numpy scalars as numbers and the rest as JSON.

    Args:
        value: a config as Keras returns it.

    Returns:
        A JSON-serialisable copy; objects JSON cannot hold become their ``repr``.
    """
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value: Any) -> Any:
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    return repr(value)


def _short(value: Any) -> str:
    if isinstance(value, Mapping) and "class_name" in value:
        # Serialised objects (initializers, dtype policies) read best as their name.
        config = value.get("config")
        if value.get("class_name") == "DTypePolicy" and isinstance(config, Mapping):
            return repr(config.get("name"))
        return str(value["class_name"])
    if isinstance(value, float) and math.isfinite(value):
        return repr(round(value, 10))
    return repr(value)


def _count(weights: Any) -> int:
    return sum(math.prod(int(dim) for dim in w.shape) for w in weights)


def _is_keras_module(module: str) -> bool:
    return module == "keras" or module.startswith("keras.")
