"""Shared fixtures: every test writes its store under tmp_path, never the user's cwd."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def store_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh store folder, also set as $REPROLOG_DIR for runs started without dir=."""
    store = tmp_path / "store"
    monkeypatch.setenv("REPROLOG_DIR", str(store))
    return store


@pytest.fixture
def xy() -> tuple[np.ndarray, np.ndarray]:
    """A small, separable binary classification set."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    return X, y
