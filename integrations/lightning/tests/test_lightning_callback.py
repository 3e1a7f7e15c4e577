"""A real Lightning training with ReprologCallback, asserted through what the store holds."""

from __future__ import annotations

import hashlib
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from reprolog_lightning import ReprologCallback

import reprolog


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _series(record: Any, key: str) -> dict[int, float]:
    frame = record.metrics(keys=[key])
    return dict(zip(frame["step"].tolist(), frame["value"].tolist(), strict=True))


def test_fit_records_params_metrics_checkpoints_seed_and_status(
    pl: ModuleType, tmp_path: Path, kit: Any
) -> None:
    pl.seed_everything(123, workers=True)
    callback = ReprologCallback(dir=tmp_path / "store", experiment="tiny")
    assert isinstance(callback, pl.Callback) and isinstance(callback, ReprologCallback)
    ckpt = pl.callbacks.ModelCheckpoint(
        dirpath=tmp_path / "ckpt", monitor="val_loss", save_last=True
    )
    train, val = kit.loaders()
    t = kit.trainer(
        pl, tmp_path, [callback, ckpt], accumulate_grad_batches=1, gradient_clip_val=0.5
    )
    t.fit(kit.make_module(pl), train, val)

    record = reprolog.Store(tmp_path / "store").run(callback.run.id)
    assert record.status == "completed"
    params = record.params
    assert params["model.hparams.lr"] == 0.1 and params["model.hparams.hidden"] == 3
    assert params["model.params_total"] == 6 and params["model.params_trainable"] == 4
    assert params["trainer.max_epochs"] == 2 and params["trainer.gradient_clip_val"] == 0.5
    assert params["trainer.log_every_n_steps"] == 50
    assert params["optimizer.0.class"] == "torch.optim.sgd.SGD"
    assert params["optimizer.0.momentum"] == 0.5
    assert params["lr_scheduler.0.class"] == "torch.optim.lr_scheduler.StepLR"
    assert params["data.batch_size"] == 4

    # Every training step is recorded although log_every_n_steps=50, at Lightning's step.
    assert _series(record, "gstep") == {s: float(s) for s in range(8)}
    assert sorted(_series(record, "loss_step")) == list(range(8))
    assert sorted(_series(record, "loss_epoch")) == [3, 7]
    # Sanity-check validation (2 batches before training) is not a result.
    assert sorted(_series(record, "val_loss")) == [3, 7]
    assert _series(record, "lr-SGD") == {s: 0.1 if s < 4 else 0.05 for s in range(8)}
    epochs = record.metrics(keys=["loss_step"])
    assert epochs.sort_values("step")["epoch"].tolist() == [0] * 4 + [1] * 4

    checkpoints = [a for a in record.artifacts if a["kind"] == "checkpoint"]
    for art in checkpoints:
        if not art["metadata"].get("deleted") and not art["metadata"].get("overwritten"):
            assert art["sha256"] == _sha256(art["path"]), art["path"]
            assert art["size"] == Path(art["path"]).stat().st_size
    live = {
        Path(a["path"]).name: a["metadata"]
        for a in checkpoints
        if not a["metadata"].get("deleted") and not a["metadata"].get("overwritten")
    }
    best = [name for name, meta in live.items() if meta["best"]]
    assert best == [Path(ckpt.best_model_path).name]
    assert live["last.ckpt"]["last"] is True and live["last.ckpt"]["global_step"] == 8
    assert live[best[0]]["monitor"] == "val_loss"
    assert live[best[0]]["score"] == pytest.approx(float(ckpt.best_model_score))

    assert record.sections["seeds"]["lightning"] == {"seed": 123, "workers": True}
    assert record.sections["determinism"]["torch"]["deterministic_algorithms"] is False
    data = record.sections["data"]
    assert data["train"]["fingerprint"] == data["val"]["fingerprint"]  # same tensors
    assert data["dataloaders"]["train"]["shuffle"] is True
    assert data["dataloaders"]["val"]["shuffle"] is False
    assert data["dataloaders"]["train"]["num_workers"] == 0
    lightning = record.sections["lightning"]
    assert lightning["namespace"] == pl.__name__ and lightning["trainer_status"] == "completed"


def test_attached_run_is_left_open_and_gets_test_results_and_manual_checkpoint(
    pl: ModuleType, tmp_path: Path, kit: Any
) -> None:
    run = reprolog.init(dir=tmp_path / "store")
    callback = ReprologCallback(run=run)
    train, val = kit.loaders()
    t = kit.trainer(pl, tmp_path, [callback], max_epochs=1, enable_checkpointing=False)
    t.fit(kit.make_module(pl), train, val)
    assert run.status == "running"
    t.test(t.lightning_module, val)
    manual = tmp_path / "manual.ckpt"
    t.save_checkpoint(manual)
    run.finish()

    record = reprolog.Store(tmp_path / "store").run(run.id)
    assert record.status == "completed"
    assert sorted(_series(record, "test_loss")) == [4]
    (art,) = [a for a in record.artifacts if a["name"] == "manual.ckpt"]
    assert art["metadata"]["callback"] == "manual" and art["step"] == 4
    assert art["sha256"] == _sha256(str(manual))


def test_exception_in_training_marks_run_failed(pl: ModuleType, tmp_path: Path, kit: Any) -> None:
    callback = ReprologCallback(dir=tmp_path)
    train, _ = kit.loaders()
    t = kit.trainer(pl, tmp_path, [callback], enable_checkpointing=False)
    with pytest.raises(ValueError, match="boom at step 2"):
        t.fit(kit.make_module(pl, fail_at=2), train)
    record = reprolog.Store(tmp_path).run(callback.run.id)
    assert record.status == "failed"
    assert record.error["type"] == "ValueError" and "boom at step 2" in record.error["message"]
    assert sorted(_series(record, "loss_step")) == [0, 1]


def test_keyboard_interrupt_marks_run_interrupted(pl: ModuleType, tmp_path: Path, kit: Any) -> None:
    callback = ReprologCallback(dir=tmp_path)
    train, _ = kit.loaders()
    t = kit.trainer(pl, tmp_path, [callback], enable_checkpointing=False)
    with pytest.raises(SystemExit):  # Lightning turns Ctrl+C into a graceful exit(1)
        t.fit(kit.make_module(pl, fail_at=1, error=KeyboardInterrupt), train)
    record = reprolog.Store(tmp_path).run(callback.run.id)
    assert record.status == "interrupted"


_SIGTERM_SCRIPT = """
import sys, time, importlib
import torch
from torch.utils.data import DataLoader, TensorDataset
from reprolog_lightning import ReprologCallback
pl = importlib.import_module(sys.argv[1])

class Slow(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(2, 1)
    def training_step(self, batch, batch_idx):
        time.sleep(0.02)  # slow enough for the parent to see a point before the end
        loss = self.net(batch[0]).pow(2).mean()
        self.log("loss", loss)
        return loss
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

data = DataLoader(TensorDataset(torch.randn(64, 2)), batch_size=2)
trainer = pl.Trainer(max_epochs=1000, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                     callbacks=[ReprologCallback(dir=sys.argv[2])])
trainer.fit(Slow(), data)
"""


def test_a_real_sigterm_marks_the_run_interrupted_with_the_signal(
    pl: ModuleType, tmp_path: Path
) -> None:
    script = tmp_path / "train.py"
    script.write_text(_SIGTERM_SCRIPT)
    store = tmp_path / "store"
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(script), pl.__name__, str(store)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        run_id = _wait_for_a_point(store, proc)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    record = reprolog.Store(store).run(run_id)
    assert record.status == "interrupted", stderr[-2000:]
    assert (record.error["type"], record.error["message"]) == ("Signal", "SIGTERM")
    assert record.sections["lightning"]["trainer_status"] == "interrupted"
    assert len(record.metrics(keys=["loss"])) >= 1


def _wait_for_a_point(store: Path, proc: subprocess.Popen[str], limit: float = 240.0) -> str:
    """Return the id of the store's one run once it is running with a metric point logged."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        try:
            store_ = reprolog.Store(store)
            ids = store_.run_ids()
            if len(ids) == 1:
                record = store_.run(ids[0])
                if record.status == "running" and len(record.metrics()):
                    return str(ids[0])
        except (reprolog.ReprologError, OSError):
            pass  # the store or the run is still being created
        time.sleep(0.1)
    raise AssertionError("the training never logged a point")


def test_the_active_run_is_adopted_with_params_under_lightning(
    pl: ModuleType, tmp_path: Path, kit: Any
) -> None:
    train, _ = kit.loaders()
    with reprolog.init("exp", dir=tmp_path / "store", params={"note": "mine"}) as run:
        t = kit.trainer(pl, tmp_path, [ReprologCallback()], max_epochs=1)
        t.fit(kit.make_module(pl), train)
        assert run.status == "running"
    (run_id,) = reprolog.Store(tmp_path / "store").run_ids()
    record = reprolog.Store(tmp_path / "store").run(run_id)
    assert (record.name, record.status) == ("exp", "completed")
    assert record.params["note"] == "mine"
    assert record.params["lightning.model.hparams.lr"] == 0.1
    assert "model.hparams.lr" not in record.params
    assert sorted(_series(record, "loss_step")) == [0, 1, 2, 3]


def test_boring_model_returned_loss_is_recorded(tmp_path: Path) -> None:
    from lightning.pytorch import Trainer
    from lightning.pytorch.demos.boring_classes import BoringModel

    callback = ReprologCallback(dir=tmp_path / "store")
    trainer = Trainer(
        max_steps=5,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        callbacks=[callback],
    )
    trainer.fit(BoringModel())
    record = reprolog.Store(tmp_path / "store").run(callback.run.id)
    loss = _series(record, "train/returned_loss")
    assert sorted(loss) == [0, 1, 2, 3, 4]
    assert all(math.isfinite(v) for v in loss.values())


def test_a_loss_the_module_logs_itself_is_not_recorded_twice(
    pl: ModuleType, tmp_path: Path, kit: Any
) -> None:
    callback = ReprologCallback(dir=tmp_path)
    train, _ = kit.loaders()
    kit.trainer(pl, tmp_path, [callback], max_epochs=1).fit(kit.make_module(pl), train)
    record = reprolog.Store(tmp_path).run(callback.run.id)
    assert sorted(_series(record, "loss_step")) == [0, 1, 2, 3]
    assert _series(record, "train/returned_loss") == {}


@pytest.mark.parametrize("every", [2, 3])
def test_every_n_steps_thins_step_values(
    pl: ModuleType, tmp_path: Path, kit: Any, every: int
) -> None:
    callback = ReprologCallback(dir=tmp_path, every_n_steps=every)
    train, _ = kit.loaders()
    t = kit.trainer(pl, tmp_path, [callback], enable_checkpointing=False)
    t.fit(kit.make_module(pl), train)
    record = reprolog.Store(tmp_path).run(callback.run.id)
    assert sorted(_series(record, "gstep")) == [s for s in range(8) if s % every == 0]
    assert sorted(_series(record, "loss_epoch")) == [3, 7]  # epoch values are never thinned


def test_accumulation_records_one_point_per_optimizer_step(
    pl: ModuleType, tmp_path: Path, kit: Any
) -> None:
    callback = ReprologCallback(dir=tmp_path)
    train, _ = kit.loaders()
    t = kit.trainer(pl, tmp_path, [callback], enable_checkpointing=False, accumulate_grad_batches=2)
    t.fit(kit.make_module(pl), train)
    record = reprolog.Store(tmp_path).run(callback.run.id)
    assert sorted(_series(record, "loss_step")) == [0, 1, 2, 3]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_every_n_steps_must_be_a_positive_int(bad: Any) -> None:
    with pytest.raises(reprolog.ArgumentError, match="every_n_steps must be a positive int"):
        ReprologCallback(every_n_steps=bad)


def test_run_must_be_a_run() -> None:
    with pytest.raises(reprolog.ArgumentError, match="run must be a reprolog Run"):
        ReprologCallback(run="abc")  # type: ignore[arg-type]
