"""Every framework example reproduces `identical` in the current environment, and a 200-step
Lightning run checked with `--steps 20` is identical on that prefix and stops early."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import reprolog
from reprolog._reproduce import reproduce
from tests._git import isolate_git

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(ROOT.glob("examples/*/*.py"))
ENV = {"KERAS_BACKEND": "torch", "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}


@pytest.fixture(autouse=True)
def _git_and_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_git(tmp_path, monkeypatch)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)


def committed(tmp_path: Path, files: dict[str, str]) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    for name, text in files.items():
        (repo / name).write_text(text)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)
    return repo


def record(repo: Path, store: Path, script: str) -> str:
    env = {**os.environ, "REPROLOG_DIR": str(store)}
    proc = subprocess.run(
        [sys.executable, script], cwd=repo, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    st = reprolog.Store(store)
    return str(next(r for r in st.run_ids() if not st.run(r).tags.get("reproduces")))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.parent.name)
def test_example_reproduces_identical(example: Path, tmp_path: Path) -> None:
    repo = committed(tmp_path, {"train.py": example.read_text()})
    store = tmp_path / "store"
    original = record(repo, store, "train.py")
    result = reproduce(original, store=store, timeout=600)
    assert result.verdict == "identical", (result.error, result.diff, result.notes)
    assert result.causes == [] and result.diff is not None
    # Paths, interpreter names and bookkeeping variables are never differences.
    assert not [
        d.key
        for d in result.diff.differences
        if d.key.startswith(("command.", "environment.python", "environment.env.REPROLOG_"))
    ]
    if example.parent.name == "lightning":  # it saves checkpoints: compared at common steps
        assert {ck.step for ck in result.checkpoints} == {8, 16, 24}
    for ck in result.checkpoints:
        assert ck.original is not None and ck.new is not None


LIGHTNING = """\
import tempfile
import torch
from torch.utils.data import DataLoader, TensorDataset
import lightning.pytorch as pl
from reprolog_lightning import ReprologCallback


class Net(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


pl.seed_everything(0)
x = torch.randn(160, 4)
y = x.sum(dim=1, keepdim=True)
trainer = pl.Trainer(
    max_steps=200, accelerator="cpu", logger=False, enable_progress_bar=False,
    enable_model_summary=False, enable_checkpointing=False,
    default_root_dir=tempfile.mkdtemp(), callbacks=[ReprologCallback()],
)
trainer.fit(Net(), DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True))
"""


@pytest.mark.skipif(shutil.which("git") is None, reason="git is needed")
def test_steps_20_of_a_200_step_lightning_run(tmp_path: Path) -> None:
    repo = committed(tmp_path, {"train.py": LIGHTNING})
    store = tmp_path / "store"
    original = record(repo, store, "train.py")
    full = reprolog.Store(store).run(original).metrics(keys=["loss"])
    assert len(full) == 200
    result = reproduce(original, store=store, steps=20)
    assert result.verdict == "identical", (result.error, result.diff, result.notes)
    new = reprolog.Store(store).run(str(result.new)).metrics(keys=["loss"])
    assert len(new) == 20 and result.steps == 20
    assert new["step"].max() == result.new_steps < full["step"].max()
    assert new["value"].tolist() == full["value"].tolist()[:20]
