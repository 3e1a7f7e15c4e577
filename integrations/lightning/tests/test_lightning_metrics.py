"""The per-step readers of `_metrics`: the key-name cache and the tensor-to-float conversion."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch
from reprolog_lightning import _metrics


class _Results:
    """The parts of Lightning's result collection that `step_metrics` reads."""

    def __init__(self, items: dict[str, Any]) -> None:
        self.items = items
        self.forked = 0

    def valid_items(self) -> Any:
        return iter(self.items.items())

    def _forked_name(self, result: Any, on_step: bool) -> tuple[str, str]:
        self.forked += 1
        meta = result.meta
        return meta.name, meta.name + ("_step" if meta.on_epoch else "")


def _result(name: str, value: Any, *, on_epoch: bool = False, logger: bool = True) -> Any:
    meta = SimpleNamespace(name=name, logger=logger, on_step=True, on_epoch=on_epoch)
    return SimpleNamespace(meta=meta, _forward_cache=value)


def test_step_metrics_names_each_key_once_and_again_when_its_meta_changes() -> None:
    loss = _result("loss", torch.tensor(1.0))
    quiet = _result("hidden", torch.tensor(2.0), logger=False)
    results = _Results({"training_step.loss": loss, "training_step.hidden": quiet})
    trainer = SimpleNamespace(_results=results)
    names: dict[str, Any] = {}
    for _ in range(3):
        assert _metrics.step_metrics(trainer, names) == {"loss": loss._forward_cache}
    assert results.forked == 1  # worked out at the first step only
    # The key is logged anew with other flags: a new meta, so a new name.
    results.items["training_step.loss"] = _result("loss", torch.tensor(3.0), on_epoch=True)
    got = _metrics.step_metrics(trainer, names)
    assert list(got) == ["loss_step"] and float(got["loss_step"]) == 3.0
    assert results.forked == 2


def test_to_floats_of_host_tensors_equals_their_float64_values() -> None:
    values = {
        "f32": torch.tensor(0.1),
        "f16": torch.tensor(0.1, dtype=torch.float16),
        "i64": torch.tensor(7),
        "one": torch.tensor([0.3]),
        "plain": 2.5,
    }
    got = _metrics.to_floats(values)
    assert got == {
        "f32": torch.tensor(0.1).double().item(),
        "f16": torch.tensor(0.1, dtype=torch.float16).double().item(),
        "i64": 7.0,
        "one": torch.tensor(0.3).double().item(),
        "plain": 2.5,
    }
    assert all(type(v) is float for v in got.values())
