"""One contract for every integration: a tiny real training leaves a complete, true record.

Each case trains a real model of its framework for a few steps on synthetic data, through
the integration and nothing else, into an empty store; the assertions are shared.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import reprolog

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytestmark = [
    # Framework notices that tiny CPU trainings cannot avoid.
    pytest.mark.filterwarnings("ignore:.*does not have many workers.*"),
    pytest.mark.filterwarnings("ignore:.*smaller than the logging interval.*"),
    pytest.mark.filterwarnings("ignore:`isinstance\\(treespec, LeafSpec\\)` is deprecated"),
    pytest.mark.filterwarnings("ignore:.*GPU available but not used.*"),
    # Keras 3 on the torch backend under numpy 2 (Keras's own conversion, not ours).
    pytest.mark.filterwarnings(
        "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
    ),
]


def _xy(n: int = 64, d: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    return x, y


def train_lightning(tmp_path: Path) -> str:
    import lightning.pytorch as pl
    import torch
    from reprolog_lightning import ReprologCallback
    from torch.utils.data import DataLoader, TensorDataset

    class Tiny(pl.LightningModule):
        def __init__(self, lr: float = 0.1) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(4, 2)

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], i: int) -> torch.Tensor:
            x, y = batch
            loss = torch.nn.functional.cross_entropy(self.layer(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    x, y = _xy()
    loader = DataLoader(TensorDataset(torch.tensor(x), torch.tensor(y)), batch_size=16)
    callback = ReprologCallback()
    trainer = pl.Trainer(
        max_epochs=2,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(Tiny(), loader)
    return "train_loss"


def train_transformers(tmp_path: Path) -> str:
    import torch
    from reprolog_transformers import ReprologCallback
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    class Tokens(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
        def __init__(self) -> None:
            self.ids = torch.randint(1, 50, (32, 8), generator=torch.Generator().manual_seed(0))

        def __len__(self) -> int:
            return len(self.ids)

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {"input_ids": self.ids[i], "labels": self.ids[i, 0] % 2}

    config = BertConfig(
        num_hidden_layers=1,
        hidden_size=16,
        num_attention_heads=2,
        intermediate_size=16,
        vocab_size=50,
        max_position_embeddings=8,
    )
    args = TrainingArguments(
        output_dir=str(tmp_path / "hf-out"),
        max_steps=6,
        per_device_train_batch_size=8,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    trainer = Trainer(
        model=BertForSequenceClassification(config),
        args=args,
        train_dataset=Tokens(),
        callbacks=[ReprologCallback()],
    )
    trainer.train()
    return "loss"


def train_keras(tmp_path: Path) -> str:
    import keras
    from reprolog_keras import ReprologCallback

    x, y = _xy()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(
        optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[ReprologCallback()])
    return "loss"


def train_sklearn(tmp_path: Path) -> str:
    from reprolog_sklearn import Tracked
    from sklearn.neural_network import MLPClassifier

    x, y = _xy()
    Tracked(MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0)).fit(x, y)
    return "loss_curve"


DISTRIBUTIONS = {
    "lightning": "lightning",
    "transformers": "transformers",
    "keras": "keras",
    "sklearn": "scikit-learn",
}

CASES: dict[str, Callable[[Path], str]] = {
    "lightning": train_lightning,
    "transformers": train_transformers,
    "keras": train_keras,
    "sklearn": train_sklearn,
}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("framework", sorted(CASES))
def test_a_tiny_training_leaves_a_complete_true_record(
    framework: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_dir = tmp_path / "store"
    monkeypatch.setenv("REPROLOG_DIR", str(store_dir))
    loss_key = CASES[framework](tmp_path)

    store = reprolog.Store(store_dir)
    runs = store.runs()
    assert len(runs) == 1, f"{framework}: expected one run, found {len(runs)}"
    record = store.run(runs["id"][0])
    assert record.status == "completed"
    assert reprolog.active_run() is None, "the integration left its run open"

    # Hyperparameters with no logging code.
    assert record.params, f"{framework}: no params recorded"

    # Per-step metrics at non-negative, increasing steps.
    points = record.metrics(keys=[loss_key])
    assert len(points) >= 2, (
        f"{framework}: {loss_key!r} has {len(points)} points; keys: "
        f"{sorted(record.metrics()['key'].unique())}; capture errors: "
        f"{record.capture_report.get('errors')}"
    )
    assert (points["step"] >= 0).all()
    assert points["step"].is_monotonic_increasing
    assert np.isfinite(points["value"]).all()

    # Everything needed to re-run, captured by the core at the integration's run start.
    for section in ("environment", "code", "command", "seeds", "determinism"):
        assert record.section(section), f"{framework}: section {section!r} missing"
    packages = record.section("environment")["packages"]
    assert DISTRIBUTIONS[framework] in packages, sorted(packages)[:20]

    # The training data was fingerprinted.
    data = record.section("data")
    assert any(isinstance(entry, dict) and entry.get("fingerprint") for entry in data.values()), (
        f"{framework}: no dataset fingerprint in {sorted(data)}"
    )

    # Nothing failed silently: capture errors would be listed here.
    assert record.capture_report.get("errors", []) == []
