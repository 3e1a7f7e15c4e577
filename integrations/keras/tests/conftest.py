"""Fixtures for the reprolog-keras tests: the torch backend, a store in tmp_path, tiny data."""

from __future__ import annotations

import os

# Keras reads its backend once, at import; TensorFlow is not installed here.
os.environ.setdefault("KERAS_BACKEND", "torch")

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest


@pytest.fixture
def store_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh store; runs started without dir= land here too."""
    monkeypatch.setenv("REPROLOG_DIR", str(tmp_path / "store"))
    return tmp_path / "store"


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    """64 samples of 4 features and a binary label, fixed seed."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x.sum(axis=1, keepdims=True) > 0).astype("float32")
    return x, y


def _sequential() -> Any:
    import keras

    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="relu", name="hidden"),
            keras.layers.Dense(1, activation="sigmoid", name="out"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.05), loss="binary_crossentropy", metrics=["accuracy"]
    )
    return model


@pytest.fixture
def sequential() -> Any:
    """A factory of compiled two-layer Sequential binary classifiers (hidden: Dense(8))."""
    return _sequential


@pytest.fixture
def autolog() -> Iterator[None]:
    """Zero-code mode on for one test (as REPROLOG_AUTOLOG=1 would), Keras unpatched after."""
    from reprolog_keras import _autolog

    import reprolog

    reprolog.autolog(True)
    _autolog.enable()  # the core enables a plugin once per process; be explicit per test
    try:
        yield
    finally:
        reprolog.autolog(False)
        _autolog.disable()
