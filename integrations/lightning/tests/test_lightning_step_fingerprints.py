"""Per-step fingerprints through a real Lightning fit, and the diff explanation they give."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow.parquet as pq
import pytest
import torch
from reprolog_lightning import ReprologCallback
from torch.utils.data import DataLoader, TensorDataset

import reprolog
from reprolog._diff import Barrier


def _fit(
    pl: ModuleType, tmp_path: Path, kit: Any, *, loader_seed: int = 0, **callback_kwargs: Any
) -> tuple[Any, str]:
    pl.seed_everything(5)
    module = kit.make_module(pl)
    gen = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(16, 3, generator=gen), torch.randn(16, 1, generator=gen))
    loader = DataLoader(
        data, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(loader_seed)
    )
    callback = ReprologCallback(dir=tmp_path / "store", **callback_kwargs)
    trainer = kit.trainer(pl, tmp_path, [callback], limit_val_batches=0, enable_checkpointing=False)
    trainer.fit(module, loader)
    return trainer, callback.run.id


def test_each_optimizer_step_is_fingerprinted(pl: ModuleType, tmp_path: Path, kit: Any) -> None:
    _, run_id = _fit(pl, tmp_path, kit, step_fingerprints=3)
    record = reprolog.Store(tmp_path / "store").run(run_id)
    table = pq.read_table(Path(record.dir) / "steps.parquet").to_pydict()
    assert table["step"] == list(range(8)) and table["epoch"] == [0] * 4 + [1] * 4
    assert None not in table["batch"] and None not in table["rng_torch"]
    assert [s for s, w in zip(table["step"], table["weights"], strict=True) if w is not None] == [
        0,
        3,
        6,
    ]
    assert [s for s, g in zip(table["step"], table["grads"], strict=True) if g is not None] == [
        0,
        3,
        6,
    ]
    assert record.sections["step_fingerprints"]["every"] == 3
    assert not [k for k in record.metrics()["key"].unique() if "fingerprint" in k]


def test_a_differently_seeded_shuffle_is_data_order(
    pl: ModuleType, tmp_path: Path, kit: Any
) -> None:
    _, a = _fit(pl, tmp_path, kit, loader_seed=0)
    _, b = _fit(pl, tmp_path, kit, loader_seed=1)
    d = reprolog.diff(a, b, store=tmp_path / "store")
    assert d.explanation is not None
    assert d.explanation.barrier is Barrier.DATA_ORDER and d.explanation.step == 0, d.explanation
    assert d.explanation.evidence["same_samples"] is True


def test_two_identical_fits_do_not_part(pl: ModuleType, tmp_path: Path, kit: Any) -> None:
    _, a = _fit(pl, tmp_path, kit)
    _, b = _fit(pl, tmp_path, kit)
    d = reprolog.diff(a, b, store=tmp_path / "store")
    assert d.explanation is not None and d.explanation.barrier is Barrier.NONE, d.explanation


def test_gradient_accumulation_folds_micro_batches_into_one_step(
    pl: ModuleType, tmp_path: Path, kit: Any
) -> None:
    pl.seed_everything(5)
    callback = ReprologCallback(dir=tmp_path / "store")
    train, _ = kit.loaders()
    t = kit.trainer(
        pl,
        tmp_path,
        [callback],
        limit_val_batches=0,
        accumulate_grad_batches=2,
        enable_checkpointing=False,
    )
    t.fit(kit.make_module(pl), train)
    table = pq.read_table(Path(callback.run.dir) / "steps.parquet").to_pydict()
    assert table["step"] == [0, 1, 2, 3]  # 8 batches, 4 optimizer steps


def test_off_switch_and_a_bad_setting(pl: ModuleType, tmp_path: Path, kit: Any) -> None:
    _, run_id = _fit(pl, tmp_path, kit, step_fingerprints=False)
    assert not (tmp_path / "store" / "runs" / run_id / "steps.parquet").exists()
    with pytest.raises(reprolog.ArgumentError, match="step_fingerprints must be"):
        ReprologCallback(step_fingerprints=0)
