"""Zero-code mode: Lightning's callbacks_factory entry points attach the callback exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from reprolog_lightning import ReprologCallback, _autolog

import reprolog


@pytest.fixture
def autolog_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("REPROLOG_AUTOLOG", "1")
    monkeypatch.setenv("REPROLOG_DIR", str(tmp_path / "store"))
    monkeypatch.setattr(_autolog, "_enabled", False)
    _autolog.enable()
    _autolog.enable()  # idempotent
    return tmp_path / "store"


def _ours(trainer: Any) -> list[Any]:
    return [cb for cb in trainer.callbacks if isinstance(cb, ReprologCallback)]


def test_factory_adds_nothing_when_autolog_is_off(
    pl: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REPROLOG_AUTOLOG", raising=False)
    monkeypatch.setattr(_autolog, "_enabled", False)
    assert _autolog.lightning_callbacks() == [] and _autolog.pytorch_lightning_callbacks() == []
    assert _ours(pl.Trainer(logger=False, enable_progress_bar=False)) == []


def test_autolog_attaches_once_and_records_a_run(
    pl: ModuleType, tmp_path: Path, kit: Any, autolog_on: Path
) -> None:
    train, val = kit.loaders()
    t = kit.trainer(pl, tmp_path, [], max_epochs=1, enable_checkpointing=False)
    (auto,) = _ours(t)
    assert isinstance(auto, pl.Callback)
    t.fit(kit.make_module(pl), train, val)
    (row,) = reprolog.Store(autolog_on).runs().itertuples()
    assert row.status == "completed"
    record = reprolog.Store(autolog_on).run(row.id)
    assert record.sections["lightning"]["autolog"] is True
    assert sorted(record.metrics(keys=["gstep"])["step"]) == [0, 1, 2, 3]


def test_autolog_yields_to_a_callback_the_user_added(
    pl: ModuleType, tmp_path: Path, kit: Any, autolog_on: Path
) -> None:
    mine = ReprologCallback(experiment="mine")
    train, _ = kit.loaders()
    t = kit.trainer(pl, tmp_path, [mine], max_epochs=1, enable_checkpointing=False)
    assert len(_ours(t)) == 2  # Lightning adds the factory's; it stands down at setup
    t.fit(kit.make_module(pl), train)
    runs = reprolog.Store(autolog_on).runs()
    assert runs["id"].tolist() == [mine.run.id]
    assert runs["experiment"].tolist() == ["mine"]


_SCRIPT = """
import torch
import {ns} as pl
from torch.utils.data import DataLoader, TensorDataset

class Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(2, 1)
    def training_step(self, batch, batch_idx):
        loss = self.net(batch[0]).pow(2).mean()
        self.log("loss", loss)
        return loss
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

data = DataLoader(TensorDataset(torch.ones(8, 2)), batch_size=2)
trainer = pl.Trainer(max_steps=3, logger=False, enable_progress_bar=False,
                     enable_model_summary=False, enable_checkpointing=False, accelerator="cpu")
trainer.fit(Tiny(), data)
"""


def _run_autologged(tmp_path: Path, code: str) -> reprolog.Store:
    """Run `code` as a script with only REPROLOG_AUTOLOG=1 set; return the store it wrote."""
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(code))
    env = {**os.environ, "REPROLOG_AUTOLOG": "1", "REPROLOG_DIR": str(tmp_path / "store")}
    env["PYTHONWARNINGS"] = "ignore"
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return reprolog.Store(tmp_path / "store")


@pytest.mark.parametrize("ns", ["lightning.pytorch", "pytorch_lightning"])
def test_env_switch_alone_records_a_script_with_no_reprolog_code(tmp_path: Path, ns: str) -> None:
    store = _run_autologged(tmp_path, _SCRIPT.format(ns=ns))
    (row,) = store.runs().itertuples()
    assert row.status == "completed"
    assert sorted(store.run(row.id).metrics(keys=["loss"])["step"]) == [0, 1, 2]


_BORING = """
from lightning.pytorch import Trainer
from lightning.pytorch.demos.boring_classes import BoringModel

trainer = Trainer(max_steps=4, limit_val_batches=0, logger=False, enable_progress_bar=False,
                  enable_model_summary=False, enable_checkpointing=False, accelerator="cpu")
trainer.fit(BoringModel())
"""


def test_boring_model_with_no_reprolog_code_has_its_per_step_loss(tmp_path: Path) -> None:
    # Lightning's own demo returns its loss from training_step and never calls self.log.
    store = _run_autologged(tmp_path, _BORING)
    (row,) = store.runs().itertuples()
    assert row.status == "completed"
    loss = store.run(row.id).metrics(keys=["train/returned_loss"])
    assert sorted(loss["step"]) == [0, 1, 2, 3]
