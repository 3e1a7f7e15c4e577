"""`reprolog reproduce --steps N`: $REPROLOG_MAX_STEPS stops a real Trainer after N steps."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from reprolog_transformers import ReprologCallback
from transformers import Trainer

import reprolog


def _train(
    tmp_path: Path,
    store_dir: Path,
    make_bert: Callable[..., Any],
    make_data: Any,
    make_args: Callable[..., Any],
    **overrides: Any,
) -> tuple[Any, Any]:
    callback = ReprologCallback()
    args = make_args(tmp_path / "out", **overrides)
    trainer = Trainer(
        model=make_bert(), args=args, train_dataset=make_data(32), callbacks=[callback]
    )
    trainer.train()
    return trainer, reprolog.Store(store_dir).run(callback.run.id)


def test_training_stops_after_the_limit_and_ends_completed(
    tmp_path: Path,
    store_dir: Path,
    make_bert: Any,
    make_data: Any,
    make_args: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REPROLOG_MAX_STEPS", "3")
    trainer, record = _train(tmp_path, store_dir, make_bert, make_data, make_args, max_steps=8)
    assert trainer.state.global_step == 3
    assert record.status == "completed"
    assert sorted(record.metrics(keys=["loss"])["step"].tolist()) == [1, 2, 3]
    assert record.sections["transformers"]["step_limit"] == 3
    assert record.sections["transformers"]["global_step"] == 3


def test_the_limit_also_cuts_an_epoch_based_training(
    tmp_path: Path,
    store_dir: Path,
    make_bert: Any,
    make_data: Any,
    make_args: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REPROLOG_MAX_STEPS", "5")
    # 32 samples, batch 4: 8 steps per epoch, 16 in two epochs.
    trainer, _ = _train(
        tmp_path, store_dir, make_bert, make_data, make_args, max_steps=-1, num_train_epochs=2
    )
    assert trainer.state.global_step == 5


def test_an_invalid_limit_is_reported_and_training_goes_on(
    tmp_path: Path,
    store_dir: Path,
    make_bert: Any,
    make_data: Any,
    make_args: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REPROLOG_MAX_STEPS", "-2")
    trainer, record = _train(tmp_path, store_dir, make_bert, make_data, make_args, max_steps=4)
    assert trainer.state.global_step == 4
    assert record.status == "completed"
    errors = record.capture_report["errors"]
    assert [e["what"] for e in errors] == ["transformers: step limit"]
    assert "'-2'" in errors[0]["error"]
