"""`reprolog reproduce --steps N`: $REPROLOG_MAX_STEPS stops a real Lightning fit after N steps."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from reprolog_lightning import ReprologCallback

import reprolog


def _fit(pl: ModuleType, tmp_path: Path, kit: Any, **trainer_kwargs: Any) -> tuple[Any, Any]:
    callback = ReprologCallback(dir=tmp_path / "store")
    train, _ = kit.loaders()  # 16 samples, batch 4: 4 steps per epoch, 8 in the 2 epochs
    trainer = kit.trainer(pl, tmp_path, [callback], limit_val_batches=0, **trainer_kwargs)
    trainer.fit(kit.make_module(pl), train)
    return trainer, reprolog.Store(tmp_path / "store").run(callback.run.id)


def test_the_fit_stops_after_the_limit_and_ends_completed(
    pl: ModuleType, tmp_path: Path, kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPROLOG_MAX_STEPS", "3")
    trainer, record = _fit(pl, tmp_path, kit)
    assert trainer.global_step == 3
    assert record.status == "completed"
    steps = record.metrics(keys=["gstep"])["step"].tolist()
    assert sorted(steps) == [0, 1, 2]
    assert record.sections["lightning"]["step_limit"] == 3


def test_a_smaller_max_steps_of_the_trainer_is_kept(
    pl: ModuleType, tmp_path: Path, kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPROLOG_MAX_STEPS", "6")
    trainer, record = _fit(pl, tmp_path, kit, max_steps=2)
    assert trainer.global_step == 2
    assert sorted(record.metrics(keys=["gstep"])["step"].tolist()) == [0, 1]


def test_without_a_limit_the_whole_fit_runs(
    pl: ModuleType, tmp_path: Path, kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REPROLOG_MAX_STEPS", raising=False)
    trainer, record = _fit(pl, tmp_path, kit)
    assert trainer.global_step == 8
    assert record.sections["lightning"]["step_limit"] is None


def test_an_invalid_limit_is_reported_and_training_goes_on(
    pl: ModuleType, tmp_path: Path, kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPROLOG_MAX_STEPS", "ten")
    trainer, record = _fit(pl, tmp_path, kit)
    assert trainer.global_step == 8
    assert record.status == "completed"
    errors = record.capture_report["errors"]
    assert [e["what"] for e in errors] == ["lightning: step limit"]
    assert "REPROLOG_MAX_STEPS" in errors[0]["error"] and "'ten'" in errors[0]["error"]
