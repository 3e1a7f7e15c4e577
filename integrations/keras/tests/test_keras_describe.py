"""Pure helpers: checkpoint name patterns, object names, config trust, fit arguments."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
from reprolog_keras._checkpoints import filepath_regex
from reprolog_keras._describe import config_is_trusted, object_name
from reprolog_keras._fitargs import datasets, fit_params


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("ck/m-{epoch:02d}.keras", "m-03.keras", True),
        ("ck/m-{epoch:02d}.keras", "m-03.keras.tmp", False),
        ("m-{epoch}-{val_loss:.2f}.weights.h5", "m-1-0.53.weights.h5", True),
        ("best.keras", "best.keras", True),
        ("best.keras", "bestXkeras", False),
    ],
)
def test_filepath_regex(pattern: str, name: str, matches: bool) -> None:
    assert bool(filepath_regex(pattern).match(name)) is matches


@pytest.mark.parametrize(
    ("serialized", "expected"),
    [
        ("mse", "mse"),
        (
            {"module": "keras.losses", "class_name": "MeanSquaredError", "config": {}},
            "MeanSquaredError",
        ),
        ({"module": "m", "class_name": "function", "config": "my_loss"}, "my_loss"),
        (["accuracy", {"class_name": "AUC", "config": {}}], ["accuracy", "AUC"]),
        ({"out_a": "mse", "out_b": "mae"}, {"out_a": "mse", "out_b": "mae"}),
    ],
)
def test_object_name(serialized: Any, expected: Any) -> None:
    assert object_name(serialized) == expected


def test_config_trust() -> None:
    class NoConfig(keras.layers.Layer):
        pass

    class OwnConfig(keras.layers.Layer):
        def get_config(self) -> dict[str, Any]:
            return super().get_config()

    class SubDense(keras.layers.Dense):
        pass

    assert config_is_trusted(keras.layers.Dense(2))
    assert config_is_trusted(OwnConfig())
    assert not config_is_trusted(NoConfig())
    assert not config_is_trusted(SubDense(2))


def test_fit_params_never_reads_a_generator() -> None:
    def batches() -> Any:
        raise AssertionError("the generator was read")
        yield

    gen = batches()
    params = fit_params({"x": gen, "epochs": 1, "batch_size": None})
    assert "batch_size" not in params and "samples" not in params
    assert list(datasets({"x": gen})) == []


def test_fit_params_multi_input_arrays() -> None:
    x = {"a": np.zeros((10, 2)), "b": np.ones((10, 3))}
    params = fit_params(
        {"x": x, "y": np.zeros(10), "epochs": 1, "batch_size": 5, "validation_split": 0.3}
    )
    assert params["samples"] == 10 and params["batch_size"] == 5
    assert (params["train_samples"], params["validation_samples"]) == (7, 3)
    assert [name for name, _ in datasets({"x": x, "y": np.zeros(10)})] == ["x.a", "x.b", "y"]
