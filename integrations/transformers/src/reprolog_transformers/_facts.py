"""Pure extraction of Trainer facts (arguments, model, tokenizer, adapters, data) as dicts."""

from __future__ import annotations

import dataclasses
import enum
import math
import numbers
import types
from collections.abc import Mapping
from typing import Any

__all__ = [
    "dataset_items",
    "epoch_index",
    "model_params",
    "numeric_logs",
    "qualname",
    "tokenizer_params",
    "training_args_params",
]

# Leaf types the run record stores natively; anything else is stored as its string form so
# that a value is never dropped (e.g. for its length, as MLflow does) nor rejected.
_JSON_LEAVES = (str, int, float, bool, type(None))


def qualname(obj: object) -> str:
    """The fully qualified name of ``obj``'s class, or of ``obj`` itself for a class or function.

    Args:
        obj: an instance, a class, or a function (a data collator may be a plain function).

    Returns:
        ``module.QualName``, e.g. ``transformers.models.bert.modeling_bert.BertModel``.
    """
    named = isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType))
    target: Any = obj if named else type(obj)
    return f"{target.__module__}.{target.__qualname__}"


def _plain(value: Any) -> Any:
    """Convert ``value`` into JSON-native containers and leaves, recursively."""
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, _JSON_LEAVES):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        try:
            return _plain(to_dict())
        except Exception:  # a broken to_dict falls back to the string form below
            pass
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return str(value)


def training_args_params(args: Any) -> dict[str, Any]:
    """Every user-facing field of a ``TrainingArguments`` (or subclass) as plain values.

    Uses ``args.to_dict()`` (which already masks ``*_token`` fields) and falls back to the
    dataclass fields when it fails; the core's redaction still runs over the result.

    Args:
        args: a ``transformers.TrainingArguments`` instance.

    Returns:
        A mapping of field name to a JSON-native value; nested configs stay nested.
    """
    try:
        raw: Mapping[str, Any] = args.to_dict()
    except Exception:
        raw = {
            f.name: getattr(args, f.name, None)
            for f in dataclasses.fields(args)
            if f.init and not f.name.endswith("_token")
        }
    return {str(k): _plain(v) for k, v in raw.items()}


def _count_parameters(model: Any) -> tuple[int, int]:
    total = trainable = 0
    for param in model.parameters():
        # DeepSpeed ZeRO-3 leaves an empty local shard and keeps the true size in ds_numel.
        n = int(getattr(param, "ds_numel", 0) or param.numel())
        total += n
        if param.requires_grad:
            trainable += n
    return total, trainable


def model_params(model: Any) -> dict[str, Any]:
    """The model's class, parameter counts, config, adapter (PEFT) and generation configs.

    Args:
        model: the (unwrapped) model the Trainer trains, usually a ``PreTrainedModel``.

    Returns:
        A nested mapping meant for ``run.log_params``: ``model.*`` plus, when present,
        ``peft.<adapter>.*`` and ``generation.*``.
    """
    facts: dict[str, Any] = {"class": qualname(model)}
    facts["num_parameters"], facts["num_trainable_parameters"] = _count_parameters(model)
    config = getattr(model, "config", None)
    if config is not None:
        facts["config"] = _plain(config)
    out: dict[str, Any] = {"model": facts}
    peft_config = getattr(model, "peft_config", None)
    if isinstance(peft_config, Mapping) and peft_config:
        out["peft"] = {str(name): _plain(cfg) for name, cfg in peft_config.items()}
    generation = getattr(model, "generation_config", None)
    if generation is not None:
        out["generation"] = _plain(generation)
    return out


def tokenizer_params(processing_class: Any) -> dict[str, Any]:
    """The tokenizer or processor's class and name (and vocabulary facts for a tokenizer).

    Args:
        processing_class: what the Trainer got as ``processing_class`` (tokenizer, processor,
            feature extractor), or None.

    Returns:
        A mapping for ``params["tokenizer"]``; empty when there is no processing class.
    """
    if processing_class is None:
        return {}
    facts: dict[str, Any] = {
        "class": qualname(processing_class),
        "name_or_path": str(getattr(processing_class, "name_or_path", "") or ""),
    }
    for attr in ("model_max_length", "padding_side", "truncation_side"):
        value = getattr(processing_class, attr, None)
        if isinstance(value, _JSON_LEAVES) and value is not None:
            facts[attr] = value
    if hasattr(processing_class, "get_vocab") and hasattr(processing_class, "__len__"):
        facts["vocab_size"] = len(processing_class)  # includes added tokens, unlike .vocab_size
    return facts


def dataset_items(dataset: Any, prefix: str) -> list[tuple[str, Any]]:
    """Name the datasets behind one Trainer slot (``eval_dataset`` may be a dict of them).

    Args:
        dataset: ``trainer.train_dataset`` or ``trainer.eval_dataset``; None is allowed.
        prefix: ``"train"`` or ``"eval"``.

    Returns:
        ``[(name, dataset), ...]``: ``[("eval", ds)]`` or ``[("eval/sst2", ds), ...]``.
    """
    if dataset is None:
        return []
    if isinstance(dataset, Mapping):
        return [(f"{prefix}/{key}", value) for key, value in dataset.items() if value is not None]
    return [(prefix, dataset)]


def numeric_logs(logs: Mapping[str, Any]) -> dict[str, float]:
    """Keep the entries of a Trainer ``logs`` dict that are single real numbers.

    Args:
        logs: what ``Trainer.log`` passed to ``on_log`` (floats, ints, sometimes strings).

    Returns:
        The numeric entries as floats; booleans and non-numbers are left out.
    """
    out: dict[str, float] = {}
    for key, value in logs.items():
        kind = type(value)
        # The Trainer logs plain floats and ints: skip the ABC check (it runs at every log).
        if kind is float or kind is int:
            out[key] = float(value)
            continue
        if kind is bool or isinstance(value, bool):
            continue
        if isinstance(value, numbers.Real):
            out[key] = float(value)
        elif hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
            # numpy scalars and 0-d tensors that slipped into the logs
            out[key] = float(value.item())
    return out


def epoch_index(epoch: float | None) -> int | None:
    """The 0-based index of the epoch in progress from the Trainer's fractional epoch.

    ``state.epoch`` counts completed epochs (0.5 = halfway through the first, 1.0 = end of
    the first), so the epoch in progress is ``ceil(epoch) - 1``, floored at 0.

    Args:
        epoch: ``state.epoch`` (None before training starts).

    Returns:
        The epoch index, or None when ``epoch`` is None or not finite.
    """
    if epoch is None or not math.isfinite(epoch):
        return None
    return max(math.ceil(epoch) - 1, 0)
