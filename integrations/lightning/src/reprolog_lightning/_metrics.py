"""Read what `self.log` produced, the way Lightning hands it to its own loggers."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

_WRAPPED = "__reprolog_wrapped__"


def step_metrics(
    trainer: Any, names: dict[str, tuple[Any, str | None]] | None = None
) -> dict[str, Any]:
    """Return this training batch's step values (`on_step=True`, `logger=True`) by key.

    Reads the step cache of Lightning's result collection, which is filled on every batch
    whatever `log_every_n_steps` says; reading it computes nothing and syncs no process group.
    Keys are the names loggers receive (`loss`, or `loss_step` when also logged on epoch).

    Args:
        trainer: the Trainer of the running fit.
        names: a cache the caller keeps for one fit: per result key, its meta and the name
            loggers receive (None when loggers receive no step value). A key whose meta
            object changed is worked out again.
    """
    # Lightning's private _ResultCollection; None (or another shape) raises AttributeError below.
    results: Any = getattr(trainer, "_results", None)
    if names is None:
        names = {}
    try:
        # The same selection as `_ResultCollection.metrics(on_step=True)["log"]`, without
        # building the callback and progress-bar dicts (the latter calls .item() per value):
        # this runs at every training step, so each key's name is worked out once.
        out: dict[str, Any] = {}
        for key, result in results.valid_items():
            meta = result.meta
            known = names.get(key)
            if known is None or known[0] is not meta:
                name = (
                    results._forked_name(result, True)[1] if meta.logger and meta.on_step else None
                )
                known = names[key] = (meta, name)
            name = known[1]
            if name is not None:
                value = result._forward_cache
                if value is not None and hasattr(value, "item"):
                    out[name] = value
        return out
    except AttributeError:  # another Lightning: take the connector's public-facing dict
        return dict(trainer._logger_connector.metrics["log"])


def logger_step(trainer: Any) -> int:
    """Return the step Lightning gives its loggers for the current training batch.

    It counts the batches that stepped an optimizer before this one: `trainer.global_step`
    during `training_step` for a single optimizer, and one per batch with several.
    """
    loop = trainer.fit_loop.epoch_loop
    return int(getattr(loop, "_batches_that_stepped", trainer.global_step))


def accumulating(trainer: Any) -> bool:
    """Return True on a batch that only accumulates gradients (Lightning logs nothing then)."""
    module = trainer.lightning_module
    if not getattr(module, "automatic_optimization", True):
        return False
    should = getattr(trainer.fit_loop, "_should_accumulate", None)
    return bool(should()) if callable(should) else False


def may_accumulate(trainer: Any) -> bool:
    """Return False when no batch of this fit can be an accumulation-only batch."""
    module = trainer.lightning_module
    if not getattr(module, "automatic_optimization", True):
        return False
    return getattr(trainer, "accumulate_grad_batches", 1) != 1


def in_train_step(trainer: Any) -> bool:
    """Return True while the logger connector is handling training *step* values."""
    return bool(trainer.training) and trainer._logger_connector._first_loop_iter is not None


def wrap_log_metrics(trainer: Any, sink: Callable[[dict[str, Any], int | None], None]) -> None:
    """Route every metrics dict Lightning sends to its loggers into `sink`, loggers or not.

    Lightning's connector returns early when the Trainer has no logger; the wrapper sees the
    dict first, so epoch, validation and test values are captured with `logger=False` too.

    Args:
        trainer: the Trainer whose logger connector is wrapped (once).
        sink: receives (metrics, step) exactly as the connector received them.
    """
    connector = trainer._logger_connector
    original = connector.log_metrics
    if getattr(original, _WRAPPED, False):
        return

    @functools.wraps(original)
    def log_metrics(metrics: Any, step: int | None = None) -> None:
        # `sink` guards itself: a capture failure never reaches Lightning.
        sink(metrics, step)
        original(metrics, step)

    setattr(log_metrics, _WRAPPED, True)
    connector.log_metrics = log_metrics


def resolve_step(
    trainer: Any, metrics: dict[str, Any], step: int | None
) -> tuple[dict[str, Any], int]:
    """Apply the connector's step rule: explicit step, else a logged `step`, else the logger step.

    Returns:
        (the metrics without a `step` entry, the step to record them at).
    """
    metrics = dict(metrics)
    logged = metrics.pop("step", None)
    if step is not None:
        return metrics, int(step)
    if logged is not None:
        return metrics, int(logged)
    return metrics, logger_step(trainer)


RETURNED_LOSS = "train/returned_loss"


def returned_loss(outputs: Any) -> Any:
    """Return the loss `training_step` returned (a tensor, or a dict's "loss"), or None."""
    if isinstance(outputs, dict):
        outputs = outputs.get("loss")
    if outputs is None or not hasattr(outputs, "detach"):
        return None
    numel = getattr(outputs, "numel", None)
    return outputs if callable(numel) and numel() == 1 else None


def to_floats(values: dict[str, Any]) -> dict[str, float]:
    """Convert a step's values to floats with one device sync for all its tensors.

    Tensors on one accelerator are stacked and copied to the host in a single transfer rather
    than one `.item()` (one sync) per key; host tensors are read one by one (no sync to save,
    and a stack costs more than the reads); plain numbers pass through.
    """
    import torch

    out: dict[str, float] = {}
    keys: list[str] = []
    tensors: list[Any] = []
    for key, value in values.items():
        if isinstance(value, torch.Tensor):
            keys.append(key)
            tensors.append(value.detach().reshape(()))
        else:
            out[key] = value
    if not tensors:
        return out
    if all(t.is_cpu for t in tensors):
        # Host tensors: reading each costs no device sync, and is cheaper than a stack.
        floats = [float(t.item()) for t in tensors]
    else:
        try:
            floats = torch.stack([t.to(torch.float64) for t in tensors]).tolist()
        except (RuntimeError, TypeError):  # several devices, or no float64 (MPS): one each
            floats = [t.item() for t in tensors]
    out.update(zip(keys, floats, strict=True))
    return out
