"""ReprologCallback on real tiny Keras models (torch backend), plain callback mode."""

from __future__ import annotations

import gc
import threading
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from reprolog_keras import ReprologCallback

import reprolog

# Keras's own optimizer.get_config() reads a Variable through numpy, which numpy 2 warns about
# on the torch backend; it is Keras's code, not ours.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


class Boom(keras.callbacks.Callback):
    """Raise `error` at the end of the first epoch, the way a failing training would."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        raise self.error


def only_run(store_dir: Path) -> Any:
    store = reprolog.Store(store_dir)
    runs = store.runs()
    assert len(runs) == 1
    return store.run(runs["id"].iloc[0])


def series(record: Any, key: str) -> list[tuple[int, float]]:
    frame = record.metrics(keys=[key]).sort_values("step")
    return list(zip(frame["step"].tolist(), frame["value"].tolist(), strict=True))


def test_sequential_records_params_metrics_and_completes(
    sequential: Any, store_dir: Path, data: Any
) -> None:
    x, y = data
    model = sequential()
    model.fit(
        x,
        y,
        epochs=2,
        batch_size=16,
        verbose=0,
        callbacks=[ReprologCallback(log_every_n_batches=1)],
    )

    record = only_run(store_dir)
    assert record.status == "completed"
    params = record.params
    assert params["model.kind"] == "sequential"
    assert params["model.total_params"] == 4 * 8 + 8 + 8 + 1
    assert params["model.trainable_params"] == 49
    assert params["model.layers.hidden"].startswith("Dense(")
    assert "units=8" in params["model.layers.hidden"]
    assert params["optimizer.class"] == "SGD"
    assert params["optimizer.learning_rate"] == pytest.approx(0.05)
    assert params["compile.loss"] == "binary_crossentropy"
    assert params["compile.metrics"] == ["accuracy"]
    assert params["fit.epochs"] == 2
    assert params["fit.steps_per_epoch"] == 4
    # Keras gives callbacks neither batch_size nor the data; the callback reads them from the
    # running fit's frame, so the plain callback sees them too.
    assert params["fit.batch_size"] == 16
    assert record.sections["keras"]["fit_arguments_from"] == "fit frame"
    assert record.sections["keras"]["unseen"] == {}
    assert record.sections["data"]["x"]["fingerprint"] == reprolog.fingerprint(x)
    assert record.sections["keras"]["backend"] == "torch"
    assert record.sections["keras"]["model"]["config"]["layers"]

    assert [step for step, _ in series(record, "loss")] == [4, 8]
    assert [step for step, _ in series(record, "learning_rate")] == [4, 8]
    batch = series(record, "batch/loss_running_mean")
    assert [step for step, _ in batch] == list(range(1, 9))
    # Keras's batch value is the epoch's running mean: at the epoch's last batch it is the
    # epoch value itself.
    assert dict(batch)[4] == pytest.approx(dict(series(record, "loss"))[4], rel=1e-6)


def test_functional_with_validation_split(sequential: Any, store_dir: Path, data: Any) -> None:
    x, y = data
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Dense(4)(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(
        x,
        y,
        epochs=3,
        batch_size=8,
        validation_split=0.25,
        verbose=0,
        callbacks=[ReprologCallback()],
    )

    record = only_run(store_dir)
    assert record.status == "completed"
    assert record.params["model.kind"] == "functional"
    assert record.params["fit.steps_per_epoch"] == 6  # 48 training samples after the split
    assert [step for step, _ in series(record, "val_loss")] == [6, 12, 18]
    assert len(series(record, "val_accuracy")) == 3
    assert series(record, "batch/loss_running_mean") == []  # 18 steps < the default 50


def test_attaches_to_a_given_run_and_leaves_it_open(
    sequential: Any, store_dir: Path, data: Any
) -> None:
    x, y = data
    with reprolog.init(name="mine") as run:
        sequential().fit(x, y, epochs=1, verbose=0, callbacks=[ReprologCallback(run=run)])
        assert run.status == "running"
        run.log({"after_fit": 1.0}, step=0)
    record = only_run(store_dir)
    assert record.name == "mine"
    assert record.status == "completed"
    assert {"loss", "after_fit"} <= set(record.metrics()["key"])


def test_uses_the_active_run_when_none_is_given(
    sequential: Any, store_dir: Path, data: Any
) -> None:
    x, y = data
    with reprolog.init(name="outer", params={"note": "mine"}) as run:
        sequential().fit(x, y, epochs=1, verbose=0, callbacks=[ReprologCallback()])
        assert run.status == "running"
    record = only_run(store_dir)
    assert (record.name, record.status) == ("outer", "completed")
    assert record.params["note"] == "mine"
    assert record.params["keras.model.kind"] == "sequential"  # namespaced in the user's run
    assert "model.kind" not in record.params


def test_a_caught_and_kept_failure_ends_the_run_failed_before_fit_returns(
    sequential: Any, store_dir: Path, data: Any
) -> None:
    x, y = data
    callback = ReprologCallback()
    err: RuntimeError | None = None
    try:
        sequential().fit(
            x, y, epochs=3, verbose=0, callbacks=[callback, Boom(RuntimeError("boom"))]
        )
    except RuntimeError as e:
        err = e  # kept alive: the fit's frames (and its CallbackList) stay referenced
    assert err is not None
    assert callback.run is not None and callback.run.status == "failed"
    record = only_run(store_dir)
    assert record.status == "failed"
    assert (record.error["type"], record.error["message"]) == ("RuntimeError", "boom")


def test_model_checkpoint_files_and_final_model(
    sequential: Any, store_dir: Path, tmp_path: Path, data: Any
) -> None:
    x, y = data
    every = keras.callbacks.ModelCheckpoint(str(tmp_path / "ck" / "m-{epoch:02d}.keras"))
    best = keras.callbacks.ModelCheckpoint(
        str(tmp_path / "ck" / "best.weights.h5"),
        save_best_only=True,
        save_weights_only=True,
        monitor="loss",
    )
    callback = ReprologCallback(log_model=True)
    sequential().fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[every, callback, best])

    record = only_run(store_dir)
    checkpoints = [a for a in record.artifacts if a["kind"] == "checkpoint"]
    periodic = sorted(
        (a for a in checkpoints if a["name"].startswith("m-")), key=lambda a: a["step"]
    )
    assert [a["name"] for a in periodic] == ["m-01.keras", "m-02.keras", "m-03.keras"]
    assert [a["step"] for a in periodic] == [4, 8, 12]
    assert [a["metadata"]["epoch"] for a in periodic] == [0, 1, 2]
    assert all(a["sha256"] and a["size"] > 0 for a in checkpoints)
    bests = [a for a in checkpoints if a["name"] == "best.weights.h5"]
    assert bests, "the save_best_only file was not seen"
    assert bests[-1]["metadata"]["best"] is True
    assert all(a["metadata"].get("overwritten") for a in bests[:-1])
    models = [a for a in record.artifacts if a["kind"] == "model"]
    assert len(models) == 1 and models[0]["name"] == "model.keras" and models[0]["sha256"]


def test_failure_without_wrapper_ends_the_run_failed(
    sequential: Any, store_dir: Path, data: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A training loop that bypasses Model.fit's wrapper: the CallbackList's end still tells.
    monkeypatch.setattr(keras.Model, "fit", keras.Model.fit.__wrapped__)
    x, y = data
    with pytest.raises(RuntimeError, match="boom"):
        sequential().fit(
            x, y, epochs=3, verbose=0, callbacks=[ReprologCallback(), Boom(RuntimeError("boom"))]
        )
    gc.collect()  # the exception is dropped: Keras frees the fit's CallbackList
    record = only_run(store_dir)
    assert record.status == "failed"
    assert "on_train_end" in record.error["message"]


def test_subclassed_model_records_only_what_is_known(
    sequential: Any, store_dir: Path, data: Any
) -> None:
    class Net(keras.Model):
        def __init__(self, units: int = 4, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.units = units
            self.hidden = keras.layers.Dense(units, name="hidden")
            self.out = keras.layers.Dense(1, name="out")

        def call(self, inputs: Any) -> Any:
            return self.out(self.hidden(inputs))

    x, y = data
    model = Net(units=7)
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=1, verbose=0, callbacks=[ReprologCallback()])

    record = only_run(store_dir)
    section = record.sections["keras"]["model"]
    assert record.params["model.kind"] == "subclassed"
    # Keras would report units=4 (the default) for this model: no config is recorded.
    assert section["config"] is None
    assert "get_config" in section["config_unknown"]
    assert "units=7" in record.params["model.layers.hidden"]
    assert record.params["model.total_params"] == 4 * 7 + 7 + 7 + 1


def test_seed_of_keras_set_random_seed(sequential: Any, store_dir: Path, data: Any) -> None:
    x, y = data
    keras.utils.set_random_seed(1234)
    sequential().fit(x, y, epochs=1, verbose=0, callbacks=[ReprologCallback()])
    record = only_run(store_dir)
    assert record.sections["seeds"]["keras_set_random_seed"] == 1234
    assert "python" in str(record.sections["seeds"]).lower()  # the core's own RNG capture


def test_batch_hook_stays_asynchronous(sequential: Any, store_dir: Path, data: Any) -> None:
    threads: set[str] = set()

    class Spy(keras.callbacks.Callback):
        async_safe = True

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            threads.add(threading.current_thread().name)

    x, y = data
    sequential().fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[ReprologCallback(), Spy()])
    # Had ReprologCallback forbidden it, Keras would call every batch hook on the main thread.
    assert threads and threading.main_thread().name not in threads


def test_a_capture_failure_is_recorded_and_training_goes_on(
    sequential: Any, store_dir: Path, data: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reprolog_keras import _describe

    def broken(model: Any) -> Any:
        raise ValueError("cannot describe")

    monkeypatch.setattr(_describe, "describe_model", broken)
    x, y = data
    history = sequential().fit(x, y, epochs=2, verbose=0, callbacks=[ReprologCallback()])
    assert len(history.history["loss"]) == 2
    record = only_run(store_dir)
    assert record.status == "completed"
    errors = record.capture_report["errors"]
    assert any(e["what"] == "keras: model" and "cannot describe" in e["error"] for e in errors)


@pytest.mark.parametrize("every", [-1, 1.5, True, "10"])
def test_log_every_n_batches_is_checked(every: Any) -> None:
    with pytest.raises(
        reprolog.ArgumentError, match="log_every_n_batches must be a non-negative int"
    ):
        ReprologCallback(log_every_n_batches=every)


def test_two_fits_with_one_callback_make_two_runs(
    sequential: Any, store_dir: Path, data: Any
) -> None:
    x, y = data
    callback = ReprologCallback()
    model = sequential()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    runs = reprolog.Store(store_dir).runs()
    assert sorted(runs["status"]) == ["completed", "completed"]
    assert np.isfinite(reprolog.Store(store_dir).metrics(keys=["loss"])["value"]).all()
