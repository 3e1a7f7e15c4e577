"""Zero-code mode: keras.Model.fit wrapped, every fit recorded once, with its arguments."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import keras
import pytest
from reprolog_keras import ReprologCallback, _autolog

import reprolog

pytestmark = pytest.mark.filterwarnings(
    # Keras's own optimizer.get_config() on the torch backend under numpy 2.
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


class Raise(keras.callbacks.Callback):
    """Raise `error` at the end of the first epoch."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        raise self.error


def runs(store_dir: Path) -> list[Any]:
    store = reprolog.Store(store_dir)
    return [store.run(run_id) for run_id in store.runs()["id"]]


@pytest.mark.usefixtures("autolog")
def test_every_fit_is_recorded_with_its_arguments_and_data(
    sequential: Any, store_dir: Path, data: Any
) -> None:
    x, y = data
    sequential().fit(x, y, epochs=2, batch_size=16, validation_split=0.25, verbose=0)

    (record,) = runs(store_dir)
    assert record.status == "completed"
    params = record.params
    assert params["fit.batch_size"] == 16
    assert params["fit.samples"] == 64
    assert params["fit.validation"] == "validation_split"
    assert params["fit.validation_split"] == 0.25
    assert (params["fit.train_samples"], params["fit.validation_samples"]) == (48, 16)
    assert params["fit.shuffle"] is True
    assert params["fit.class_weight"] is False
    assert record.sections["keras"]["fit_wrapped"] is True
    assert record.sections["keras"]["unseen"] == {}
    data_section = record.sections["data"]
    assert data_section["x"]["fingerprint"] == reprolog.fingerprint(x)
    assert data_section["y"]["fingerprint"] == reprolog.fingerprint(y)
    assert len(record.metrics(keys=["val_loss"])) == 2


@pytest.mark.usefixtures("autolog")
def test_keras_default_batch_size_is_said_to_be_the_default(
    sequential: Any, store_dir: Path, data: Any
) -> None:
    x, y = data
    sequential().fit(
        x, y, epochs=1, verbose=0, validation_data=(x[:8], y[:8]), class_weight={0: 1.0, 1: 2.0}
    )
    (record,) = runs(store_dir)
    assert record.params["fit.batch_size"] == 32
    assert record.params["fit.batch_size_is_default"] is True
    assert record.params["fit.validation_samples"] == 8
    assert record.params["fit.class_weight"] is True
    assert "validation.x" in record.sections["data"]


@pytest.mark.usefixtures("autolog")
def test_a_user_callback_is_used_never_a_second(
    sequential: Any, store_dir: Path, data: Any
) -> None:
    x, y = data
    mine = ReprologCallback(name="mine", log_every_n_batches=1)
    sequential().fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[mine])
    (record,) = runs(store_dir)
    assert record.name == "mine"
    assert record.params["fit.batch_size"] == 16  # the wrapper fed the user's callback
    assert len(record.metrics(keys=["batch/loss_running_mean"])) == 4


def test_enable_is_idempotent_and_disable_restores(autolog: None) -> None:
    wrapped, seed_fn = keras.Model.fit, keras.utils.set_random_seed
    _autolog.enable()
    _autolog.enable()
    assert keras.Model.fit is wrapped and keras.utils.set_random_seed is seed_fn
    assert not getattr(keras.Model.fit.__wrapped__, "__reprolog_wrapped__", False)
    _autolog.disable()
    assert not getattr(keras.utils.set_random_seed, "__reprolog_wrapped__", False)
    # The fit wrapper stays (installed at import): it adds nothing while autolog is off.
    assert keras.Model.fit is wrapped


def test_without_autolog_a_fit_without_our_callback_records_nothing(
    sequential: Any, store_dir: Path, data: Any
) -> None:
    x, y = data
    history = sequential().fit(x, y, epochs=1, verbose=0)
    assert len(history.history["loss"]) == 1
    assert getattr(keras.Model.fit, "__reprolog_wrapped__", False)
    assert not store_dir.exists()


@pytest.mark.usefixtures("autolog")
def test_a_fit_inside_a_recorded_fit_is_not_recorded_again(store_dir: Path, data: Any) -> None:
    class Outer(keras.Sequential):
        def fit(self, *args: Any, **kwargs: Any) -> Any:  # a subclass that adds to fit
            return super().fit(*args, **kwargs)

    x, y = data
    model = Outer([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, epochs=1, verbose=0)
    assert len(runs(store_dir)) == 1


@pytest.mark.usefixtures("autolog")
@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (ValueError("bad batch"), "failed", "ValueError"),
        (KeyboardInterrupt(), "interrupted", "KeyboardInterrupt"),
    ],
)
def test_fit_that_raises_ends_the_run_with_the_exception(
    sequential: Any, store_dir: Path, data: Any, error: BaseException, status: str, kind: str
) -> None:
    x, y = data
    with pytest.raises(type(error)):
        sequential().fit(x, y, epochs=3, verbose=0, callbacks=[Raise(error)])
    (record,) = runs(store_dir)
    assert record.status == status
    assert record.error["type"] == kind


@pytest.mark.usefixtures("autolog")
def test_set_random_seed_is_seen(sequential: Any, store_dir: Path, data: Any) -> None:
    keras.utils.set_random_seed(77)
    assert _autolog.keras_random_seed() == 77
    x, y = data
    sequential().fit(x, y, epochs=1, verbose=0)
    (record,) = runs(store_dir)
    assert record.sections["seeds"]["keras_set_random_seed"] == 77


def test_autolog_off_records_nothing(sequential: Any, store_dir: Path, data: Any) -> None:
    _autolog.enable()
    try:
        assert not reprolog.autolog_enabled()
        x, y = data
        sequential().fit(x, y, epochs=1, verbose=0)
    finally:
        _autolog.disable()
    assert not store_dir.exists()


SCRIPT = """
import numpy as np
import keras

x = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
y = x.sum(axis=1, keepdims=True)
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse")
model.fit(x, y, epochs=2, batch_size=8, verbose=0)
"""


@pytest.mark.skipif(os.environ.get("REPROLOG_AUTOLOG") is not None, reason="autolog set outside")
def test_reprolog_autolog_env_records_a_script_with_no_reprolog_code(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {
        **os.environ,
        "REPROLOG_AUTOLOG": "1",
        "REPROLOG_DIR": str(tmp_path / "store"),
        "KERAS_BACKEND": "torch",
    }
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    (record,) = runs(tmp_path / "store")
    assert record.status == "completed"
    assert record.params["fit.batch_size"] == 8
    assert len(record.metrics(keys=["loss"])) == 2
