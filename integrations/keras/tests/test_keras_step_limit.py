"""`reprolog reproduce --steps N`: $REPROLOG_MAX_STEPS stops a real Keras fit after N batches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from reprolog_keras import ReprologCallback

import reprolog

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


class CountBatches(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.batches = 0

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.batches += 1


def _fit(
    store_dir: Path, sequential: Any, data: tuple[np.ndarray, np.ndarray], epochs: int = 3
) -> tuple[int, Any]:
    x, y = data  # 64 samples, batch 16: 4 batches per epoch
    callback, counter = ReprologCallback(log_every_n_batches=1), CountBatches()
    sequential().fit(x, y, batch_size=16, epochs=epochs, verbose=0, callbacks=[callback, counter])
    return counter.batches, reprolog.Store(store_dir).run(callback.run.id)


@pytest.mark.parametrize(("limit", "epochs_seen"), [(3, [0]), (6, [0, 1])])
def test_the_fit_stops_after_the_limit_and_ends_completed(
    store_dir: Path,
    sequential: Any,
    data: Any,
    monkeypatch: pytest.MonkeyPatch,
    limit: int,
    epochs_seen: list[int],
) -> None:
    monkeypatch.setenv("REPROLOG_MAX_STEPS", str(limit))
    batches, record = _fit(store_dir, sequential, data)
    assert batches == limit
    assert record.status == "completed"
    frame = record.metrics(keys=["batch/loss_running_mean"])
    assert sorted(frame["step"].tolist()) == list(range(1, limit + 1))
    assert sorted(set(record.metrics(keys=["loss"])["epoch"].tolist())) == epochs_seen
    assert record.sections["keras"]["step_limit"] == limit
    assert record.sections["keras"]["result"]["steps"] == limit


def test_without_a_limit_every_batch_runs(
    store_dir: Path, sequential: Any, data: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REPROLOG_MAX_STEPS", raising=False)
    batches, record = _fit(store_dir, sequential, data)
    assert batches == 12
    assert record.sections["keras"]["step_limit"] is None


def test_an_invalid_limit_is_reported_and_training_goes_on(
    store_dir: Path, sequential: Any, data: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPROLOG_MAX_STEPS", "0")
    batches, record = _fit(store_dir, sequential, data, epochs=1)
    assert batches == 4
    assert record.status == "completed"
    assert [e["what"] for e in record.capture_report["errors"]] == ["keras: step limit"]
