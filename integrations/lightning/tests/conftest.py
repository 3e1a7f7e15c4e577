"""Fixtures for reprolog-lightning tests: both Lightning namespaces, a tiny module, tiny data."""

from __future__ import annotations

import importlib
import signal
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

NAMESPACES = ("lightning.pytorch", "pytorch_lightning")

# Lightning's own notices that these tiny CPU trainings cannot avoid.
LIGHTNING_WARNINGS = [
    pytest.mark.filterwarnings("ignore:.*does not have many workers.*"),
    pytest.mark.filterwarnings("ignore:.*smaller than the logging interval.*"),
    pytest.mark.filterwarnings("ignore:.*GPU available but not used.*"),
    pytest.mark.filterwarnings(
        "ignore:You defined a `validation_step` but have no `val_dataloader`"
    ),
    # Lightning 2.6 on torch 2.13 still builds pytree LeafSpec objects.
    pytest.mark.filterwarnings(
        "ignore:`isinstance\\(treespec, LeafSpec\\)` is deprecated:FutureWarning"
    ),
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integrations/lightning/" in str(item.fspath):
            for mark in LIGHTNING_WARNINGS:
                item.add_marker(mark)


@pytest.fixture(params=NAMESPACES)
def pl(request: pytest.FixtureRequest) -> ModuleType:
    """The Lightning namespace under test (`lightning.pytorch` or `pytorch_lightning`)."""
    return importlib.import_module(request.param)


@pytest.fixture(autouse=True)
def _keep_signal_handlers() -> Iterator[None]:
    # Lightning ignores SIGINT after a KeyboardInterrupt; never let that leak into pytest.
    sigint, sigterm = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGINT, sigint)
    signal.signal(signal.SIGTERM, sigterm)


def make_module(
    pl: ModuleType, fail_at: int | None = None, error: type[BaseException] = ValueError
) -> Any:
    """Return a tiny regression LightningModule of namespace `pl`.

    Args:
        fail_at: raise `error` in training_step when the global step reaches this value.
    """

    class Tiny(pl.LightningModule):  # type: ignore[name-defined,misc]
        def __init__(self, lr: float = 0.1, hidden: int = 3) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Linear(3, 1)
            self.frozen = torch.nn.Linear(1, 1)
            self.frozen.requires_grad_(False)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            if fail_at is not None and self.global_step >= fail_at:
                raise error(f"boom at step {self.global_step}")
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("loss", loss, on_step=True, on_epoch=True)
            self.log("gstep", float(self.global_step), on_step=True, on_epoch=False)
            return loss

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

        def test_step(self, batch: Any, batch_idx: int) -> None:
            x, y = batch
            self.log("test_loss", torch.nn.functional.mse_loss(self.net(x), y))

        def configure_optimizers(self) -> Any:
            opt = torch.optim.SGD(self.net.parameters(), lr=self.hparams.lr, momentum=0.5)
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
            return {"optimizer": opt, "lr_scheduler": sched}

    return Tiny()


def loaders(n: int = 16, batch_size: int = 4) -> tuple[DataLoader, DataLoader]:
    """Return (train, val) loaders over synthetic data built here."""
    g = torch.Generator().manual_seed(0)
    ds = TensorDataset(torch.randn(n, 3, generator=g), torch.randn(n, 1, generator=g))
    return DataLoader(ds, batch_size=batch_size, shuffle=True), DataLoader(
        ds, batch_size=batch_size
    )


def trainer(pl: ModuleType, tmp_path: Any, callbacks: list[Any], **kwargs: Any) -> Any:
    """Return a quiet CPU Trainer writing under tmp_path."""
    options: dict[str, Any] = {
        "max_epochs": 2,
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "accelerator": "cpu",
        "devices": 1,
        "log_every_n_steps": 50,
        "default_root_dir": str(tmp_path),
    }
    options.update(kwargs)
    return pl.Trainer(callbacks=callbacks, **options)


class Kit:
    """The helpers above, handed to tests as a fixture (importlib mode has no conftest import)."""

    make_module = staticmethod(make_module)
    loaders = staticmethod(loaders)
    trainer = staticmethod(trainer)


@pytest.fixture
def kit() -> Kit:
    """Helpers to build a tiny module, its data and a quiet Trainer."""
    return Kit()
