"""Fixtures for reprolog-transformers tests: a tiny random BERT, synthetic token ids, fast args."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# Nothing in these tests may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
from transformers import BertConfig, BertForSequenceClassification, TrainingArguments

SEQ_LEN = 8
VOCAB = 100


class TokenIds(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """A map-style torch Dataset of random token ids and binary labels, fixed by a seed."""

    def __init__(self, n: int, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.input_ids = torch.randint(1, VOCAB, (n, SEQ_LEN), generator=gen)
        self.labels = torch.randint(0, 2, (n,), generator=gen)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {
            "input_ids": self.input_ids[i],
            "attention_mask": torch.ones(SEQ_LEN, dtype=torch.long),
            "labels": self.labels[i],
        }


def tiny_bert(seed: int = 0) -> BertForSequenceClassification:
    """A 2-layer, 32-wide BERT classifier with random weights (nothing downloaded)."""
    torch.manual_seed(seed)
    config = BertConfig(
        num_hidden_layers=2,
        hidden_size=32,
        num_attention_heads=2,
        intermediate_size=37,
        vocab_size=VOCAB,
        max_position_embeddings=32,
        num_labels=2,
    )
    return BertForSequenceClassification(config)


def tiny_args(output_dir: Path, **overrides: Any) -> TrainingArguments:
    """Fast CPU TrainingArguments: a few steps, no reporting integrations, no progress bars."""
    values: dict[str, Any] = {
        "output_dir": str(output_dir),
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 8,
        "max_steps": 4,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "use_cpu": True,
        "dataloader_num_workers": 0,
        "seed": 7,
    }
    values.update(overrides)
    return TrainingArguments(**values)


@pytest.fixture(scope="session")
def make_bert() -> Callable[..., BertForSequenceClassification]:
    return tiny_bert


@pytest.fixture(scope="session")
def make_data() -> type[TokenIds]:
    return TokenIds


@pytest.fixture(scope="session")
def make_args() -> Callable[..., TrainingArguments]:
    return tiny_args


@pytest.fixture
def store_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh store; REPROLOG_DIR points at it so runs the callback starts land there."""
    path = tmp_path / "store"
    monkeypatch.setenv("REPROLOG_DIR", str(path))
    return path
