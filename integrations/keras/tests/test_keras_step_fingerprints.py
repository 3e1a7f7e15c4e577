"""Per-step fingerprints through a real Keras fit (torch backend), and the diff they explain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from reprolog_keras import ReprologCallback

import reprolog
from reprolog._diff import Barrier

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


def _fit(
    store_dir: Path, sequential: Any, x: np.ndarray, y: np.ndarray, **kwargs: Any
) -> tuple[Any, Any]:
    import keras

    keras.utils.set_random_seed(0)
    model = sequential()
    callback = ReprologCallback(**kwargs)
    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, callbacks=[callback])
    return model, reprolog.Store(store_dir).run(callback.run.id)


def test_each_batch_is_fingerprinted(store_dir: Path, sequential: Any, data: Any) -> None:
    model, record = _fit(store_dir, sequential, *data, step_fingerprints=3)
    table = pq.read_table(Path(record.dir) / "steps.parquet").to_pydict()
    assert table["step"] == list(range(8)) and table["epoch"] == [0] * 4 + [1] * 4
    assert None not in table["batch"] and None not in table["samples"]
    assert table["batch"][:4] == table["batch"][4:]  # shuffle=False: the same batches again
    assert [s for s, w in zip(table["step"], table["weights"], strict=True) if w is not None] == [
        0,
        3,
        6,
    ]
    assert not hasattr(model.train_function, "__reprolog_traced__")  # unwrapped after fit


def test_one_changed_sample_is_data_content(store_dir: Path, sequential: Any, data: Any) -> None:
    x, y = data
    _, a = _fit(store_dir, sequential, x, y)
    changed = x.copy()
    changed[37, 1] += 0.5  # batch 2 (samples 32..47)
    _, b = _fit(store_dir, sequential, changed, y)
    e = reprolog.diff(a.id, b.id, store=store_dir).explanation
    assert e is not None
    assert e.barrier is Barrier.DATA_CONTENT and e.step == 2, e
    assert e.evidence["same_samples"] is False


def test_off_and_a_bad_setting(store_dir: Path, sequential: Any, data: Any) -> None:
    _, record = _fit(store_dir, sequential, *data, step_fingerprints=False)
    assert not (Path(record.dir) / "steps.parquet").exists()
    with pytest.raises(reprolog.ArgumentError, match="step_fingerprints must be"):
        ReprologCallback(step_fingerprints="yes")
