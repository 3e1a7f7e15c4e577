"""A real 2-process DDP training on CPU (gloo): one run, rank 0's record, other ranks on request."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import reprolog

# One launch, two fits in the same pair of processes (importing torch and Lightning twice per
# rank is most of the cost): the default callback, then one with all_ranks=True.
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
        self.log("rank_value", float(self.global_rank))
        self.log("rank_epoch", float(10 + self.global_rank), on_step=False, on_epoch=True)
        return loss
    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.net(batch[0]).pow(2).mean(), sync_dist=True)
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
data = DataLoader(TensorDataset(x), batch_size=2)
for store, all_ranks in ((sys.argv[1], False), (sys.argv[2], True)):
    callback = ReprologCallback(dir=store, all_ranks=all_ranks)
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=1,
                         num_sanity_val_steps=0,
                         strategy="ddp", devices=2, accelerator="cpu", logger=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=sys.argv[3], callbacks=[callback])
    trainer.fit(Tiny(), data, data)
"""


@pytest.fixture(scope="module")
def ddp_stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Run the two DDP fits once; return (default store, all_ranks store)."""
    tmp_path = tmp_path_factory.mktemp("ddp")
    script = tmp_path / "ddp_train.py"
    script.write_text(textwrap.dedent(_SCRIPT))
    default_store, all_store = tmp_path / "store_default", tmp_path / "store_all"
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(script), str(default_store), str(all_store), str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return default_store, all_store


def _by_rank(frame: object, key: str) -> dict[int, list[tuple[int, float]]]:
    rows = frame[frame["key"] == key].sort_values(["rank", "step"])  # type: ignore[index]
    out: dict[int, list[tuple[int, float]]] = {}
    for rank, step, value in zip(rows["rank"], rows["step"], rows["value"], strict=True):
        out.setdefault(int(rank), []).append((int(step), float(value)))
    return out


@pytest.mark.slow  # about 40 s: two processes each import torch and Lightning
def test_ddp_default_makes_one_run_written_by_rank_zero_only(
    ddp_stores: tuple[Path, Path],
) -> None:
    store = reprolog.Store(ddp_stores[0])
    (row,) = store.runs().itertuples()
    assert row.status == "completed"
    record = store.run(row.id)
    assert record.params["trainer.world_size"] == 2
    assert record.params["trainer.strategy"] == "DDPStrategy"
    assert record.sections["lightning"]["world_size"] == 2
    assert record.sections["lightning"]["all_ranks"] is False
    # Rank 1 logs rank_value=1.0; only rank 0's values are kept, all as rank 0.
    metrics = store.metrics(runs=[row.id])
    assert set(metrics["rank"]) == {0}
    assert record.metrics(keys=["rank_value"])["value"].tolist() == [0.0, 0.0, 0.0]
    assert record.metrics(keys=["rank_epoch"])["value"].tolist() == [10.0]
    assert sorted(record.metrics(keys=["loss"])["step"]) == [0, 1, 2]
    assert len(record.metrics(keys=["val_loss"])) == 1
    (ckpt,) = [a for a in record.artifacts if a["kind"] == "checkpoint"]
    assert ckpt["metadata"]["global_step"] == 3 and ckpt["status"] == "ok"
    steps = pq.read_table(Path(record.dir) / "steps.parquet").to_pydict()
    assert steps["rank"] == [0, 0, 0] and steps["step"] == [0, 1, 2]  # rank 0's alone


@pytest.mark.slow
def test_ddp_all_ranks_keeps_every_rank_in_one_run_with_a_rank_column(
    ddp_stores: tuple[Path, Path],
) -> None:
    store = reprolog.Store(ddp_stores[1])
    (row,) = store.runs().itertuples()  # one run for the job, not one per rank
    assert row.status == "completed"
    record = store.run(row.id)
    assert record.sections["lightning"]["all_ranks"] is True
    metrics = store.metrics(runs=[row.id])
    assert str(metrics["rank"].dtype).lower() == "int32"  # pandas may make it nullable
    # Each rank's own value at each of its steps, and its epoch value at the epoch's last step.
    assert _by_rank(metrics, "rank_value") == {
        0: [(0, 0.0), (1, 0.0), (2, 0.0)],
        1: [(0, 1.0), (1, 1.0), (2, 1.0)],
    }
    assert _by_rank(metrics, "rank_epoch") == {0: [(2, 10.0)], 1: [(2, 11.0)]}
    # sync_dist values are all-reduced: both ranks hold the same number at the same step.
    loss = _by_rank(metrics, "loss")
    assert [s for s, _ in loss[0]] == [0, 1, 2] and loss[0] == loss[1]
    val = _by_rank(metrics, "val_loss")
    assert len(val[0]) == 1 and val[0] == val[1]
    assert _by_rank(metrics, "lr-SGD") == {r: [(0, 0.1), (1, 0.1), (2, 0.1)] for r in (0, 1)}
    # Everything else is still rank 0's record alone.
    (ckpt,) = [a for a in record.artifacts if a["kind"] == "checkpoint"]
    assert ckpt["metadata"]["global_step"] == 3
    # Step fingerprints per rank: each rank's own batches, the same (synchronised) weights.
    steps = pq.read_table(Path(record.dir) / "steps.parquet").to_pydict()
    pairs = list(zip(steps["rank"], steps["step"], strict=True))
    assert pairs == [(r, s) for r in (0, 1) for s in range(3)]
    assert steps["batch"][:3] != steps["batch"][3:]  # DistributedSampler: other samples
    assert steps["weights"][0] is not None and steps["weights"][0] == steps["weights"][3]
    explained = reprolog.diff(row.id, row.id, store=store).explanation
    assert explained is not None and explained.notes == []  # no rank desynchronised
