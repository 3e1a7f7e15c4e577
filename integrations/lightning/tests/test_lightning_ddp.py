"""A real 2-process DDP training on CPU (gloo): one run, written by global rank 0 only."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import reprolog

_SCRIPT = """
import sys
import torch
import lightning.pytorch as pl
from torch.utils.data import DataLoader, TensorDataset
from reprolog_lightning import ReprologCallback

class Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.save_hyperparameters({"width": 2})
        self.net = torch.nn.Linear(2, 1)
    def training_step(self, batch, batch_idx):
        loss = self.net(batch[0]).pow(2).mean()
        self.log("loss", loss, sync_dist=True)
        self.log("rank", float(self.global_rank))
        return loss
    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.net(batch[0]).pow(2).mean(), sync_dist=True)
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
data = DataLoader(TensorDataset(x), batch_size=2)
callback = ReprologCallback(dir=sys.argv[1])
trainer = pl.Trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=1,
                     num_sanity_val_steps=0,
                     strategy="ddp", devices=2, accelerator="cpu", logger=False,
                     enable_progress_bar=False, enable_model_summary=False,
                     default_root_dir=sys.argv[2], callbacks=[callback])
trainer.fit(Tiny(), data, data)
"""


@pytest.mark.slow  # about 40 s: two processes each import torch and Lightning
def test_ddp_two_cpu_processes_make_one_run_written_by_rank_zero(tmp_path: Path) -> None:
    script = tmp_path / "ddp_train.py"
    script.write_text(textwrap.dedent(_SCRIPT))
    store_dir = tmp_path / "store"
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(script), str(store_dir), str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    store = reprolog.Store(store_dir)
    (row,) = store.runs().itertuples()
    assert row.status == "completed"
    record = store.run(row.id)
    assert record.params["trainer.world_size"] == 2
    assert record.params["trainer.strategy"] == "DDPStrategy"
    assert record.sections["lightning"]["world_size"] == 2
    # Rank 1 logs rank=1.0; only rank 0's values are kept.
    ranks = record.metrics(keys=["rank"])
    assert ranks["value"].tolist() == [0.0, 0.0, 0.0]
    assert sorted(record.metrics(keys=["loss"])["step"]) == [0, 1, 2]
    assert len(record.metrics(keys=["val_loss"])) == 1
    (ckpt,) = [a for a in record.artifacts if a["kind"] == "checkpoint"]
    assert ckpt["metadata"]["global_step"] == 3 and ckpt["status"] == "ok"
