"""Tests for seed_everything: it seeds, optionally sets determinism, and records what it did."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import reprolog
from reprolog._errors import ArgumentError
from reprolog._run._seed import seed_everything, take_pending_seeding


@pytest.fixture(autouse=True)
def _restore_global_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """seed_everything changes process-wide settings: put every one of them back."""
    for name in ("PYTHONHASHSEED", "CUBLAS_WORKSPACE_CONFIG"):
        monkeypatch.setenv(name, "placeholder")  # registers the original value for teardown
        monkeypatch.delenv(name)
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    take_pending_seeding()
    yield
    take_pending_seeding()
    torch.use_deterministic_algorithms(saved[0])
    torch.backends.cudnn.deterministic = saved[1]
    torch.backends.cudnn.benchmark = saved[2]


def draws() -> tuple[Any, ...]:
    return random.random(), np.random.rand(), torch.rand(1).item()


def test_same_seed_same_draws() -> None:
    info = seed_everything(1234)
    first = draws()
    seed_everything(1234)
    assert draws() == first
    seed_everything(99)
    assert draws() != first
    assert info["seed"] == 1234 and info["deterministic"] is False
    assert info["seeded"][:3] == ["python", "numpy", "torch"]
    assert info["env_set"] == {"PYTHONHASHSEED": "1234"}
    assert os.environ["PYTHONHASHSEED"] == "99"


def test_deterministic_sets_torch_cudnn_and_cublas() -> None:
    info = seed_everything(0, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert info["env_set"]["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert info["torch_settings"]["use_deterministic_algorithms"] is True


def test_existing_cublas_setting_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    info = seed_everything(0, deterministic=True)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
    assert "CUBLAS_WORKSPACE_CONFIG" not in info["env_set"]


@pytest.mark.parametrize(
    ("seed", "message"),
    [
        (-1, r"seed must be an int in \[0, 4294967295\], got -1"),
        (2**32, "got 4294967296"),
        (1.5, "got 1.5"),
        (True, "got True"),
        ("7", "got '7'"),
    ],
)
def test_invalid_seed_is_refused(seed: Any, message: str) -> None:
    with pytest.raises(ArgumentError, match=message):
        seed_everything(seed)


def test_invalid_deterministic_is_refused() -> None:
    with pytest.raises(ArgumentError, match="deterministic must be True or False, got 1"):
        seed_everything(0, deterministic=1)  # type: ignore[arg-type]


def test_without_a_run_it_is_kept_for_the_next_one_once() -> None:
    seed_everything(5)
    pending = take_pending_seeding()
    assert pending is not None and pending["seed"] == 5
    assert take_pending_seeding() is None


def test_recorded_on_the_next_run_started(tmp_path: Path) -> None:
    seed_everything(11)
    run = reprolog.init(dir=tmp_path / "store", capture=True)
    run.finish()
    record = reprolog.Store(tmp_path / "store").run(run.id)
    assert record.sections["seeds"]["seed_everything"]["seed"] == 11
    assert not any(r["id"] == "unseeded" for r in record.sections["determinism"]["risks"])


def test_recorded_on_the_active_run(tmp_path: Path) -> None:
    run = reprolog.init(dir=tmp_path / "store", capture=True)
    seed_everything(12, deterministic=True)
    run.finish()
    record = reprolog.Store(tmp_path / "store").run(run.id)
    assert record.sections["seeds"]["seed_everything"]["seed"] == 12
    assert record.sections["determinism"]["torch_deterministic_algorithms"] is True
    assert take_pending_seeding() is None


def test_torch_not_yet_imported_is_seeded_when_imported_not_imported_by_us(
    tmp_path: Path,
) -> None:
    code = """
import sys, reprolog
info = reprolog.seed_everything(7, deterministic=True)
assert "torch" not in sys.modules, "seed_everything imported torch"
assert "torch (when imported)" in info["seeded"], info["seeded"]
import torch
drawn = torch.rand(3)
assert torch.are_deterministic_algorithms_enabled()
torch.manual_seed(7)
assert torch.equal(drawn, torch.rand(3)), "torch was not seeded at import"
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
