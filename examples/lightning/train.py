"""Train a tiny Lightning model for a few seconds with ReprologCallback; print the run id."""

from __future__ import annotations

import tempfile

import torch
from torch.utils.data import DataLoader, TensorDataset

try:
    import lightning.pytorch as pl
except ImportError:  # the standalone distribution works the same way
    import pytorch_lightning as pl  # type: ignore[no-redef]

from reprolog_lightning import ReprologCallback

import reprolog


class Regressor(pl.LightningModule):
    """A one-layer regressor on synthetic data."""

    def __init__(self, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Linear(8, 1)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main() -> str:
    """Train, and return the id of the recorded run."""
    pl.seed_everything(0)
    x = torch.randn(256, 8)
    y = x @ torch.randn(8, 1) + 0.1 * torch.randn(256, 1)
    data = TensorDataset(x, y)
    callback = ReprologCallback(experiment="examples")  # stores under $REPROLOG_DIR or ./.reprolog
    trainer = pl.Trainer(
        max_epochs=3,
        accelerator="cpu",
        # Checkpoints go to a scratch folder; the run records their paths, sizes and hashes.
        default_root_dir=tempfile.mkdtemp(prefix="reprolog-lightning-example-"),
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback, pl.callbacks.ModelCheckpoint(monitor="val_loss", save_last=True)],
    )
    trainer.fit(
        Regressor(), DataLoader(data, batch_size=32, shuffle=True), DataLoader(data, batch_size=64)
    )
    return callback.run.id


if __name__ == "__main__":
    run_id = main()
    record = reprolog.Store().run(run_id)
    print(f"run {run_id}: {record.status}, {len(record.artifacts)} checkpoints recorded")
    print(run_id)
