"""Per-step fingerprints through a real Trainer, and the diff explanation they give."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from reprolog_transformers import ReprologCallback
from transformers import Trainer

import reprolog
from reprolog._diff import Barrier


def _train(
    tmp_path: Path,
    make_bert: Callable[..., Any],
    make_data: Any,
    make_args: Callable[..., Any],
    *,
    seed: int = 7,
    name: str = "a",
    **callback_kwargs: Any,
) -> Any:
    callback = ReprologCallback(**callback_kwargs)
    # data_seed fixes the sampler's order; seed alone drives dropout (the global generator).
    args = make_args(tmp_path / name, seed=seed, data_seed=0, max_steps=6)
    trainer = Trainer(
        model=make_bert(), args=args, train_dataset=make_data(16), callbacks=[callback]
    )
    trainer.train()
    return callback.run


def test_each_step_is_fingerprinted(
    tmp_path: Path, store_dir: Path, make_bert: Any, make_data: Any, make_args: Any
) -> None:
    run = _train(tmp_path, make_bert, make_data, make_args, step_fingerprints=2)
    table = pq.read_table(run.dir / "steps.parquet").to_pydict()
    assert table["step"] == list(range(6))
    assert table["epoch"] == [0] * 4 + [1] * 2  # 16 samples, batch 4
    assert None not in table["batch"] and None not in table["samples"]
    assert [s for s, w in zip(table["step"], table["weights"], strict=True) if w is not None] == [
        0,
        2,
        4,
    ]
    assert [s for s, g in zip(table["step"], table["grads"], strict=True) if g is not None] == [
        0,
        2,
        4,
    ]


def test_another_seed_with_the_same_data_seed_is_randomness(
    tmp_path: Path, store_dir: Path, make_bert: Any, make_data: Any, make_args: Any
) -> None:
    a = _train(tmp_path, make_bert, make_data, make_args, seed=1, name="a")
    b = _train(tmp_path, make_bert, make_data, make_args, seed=2, name="b")
    d = reprolog.diff(a.id, b.id, store=store_dir)
    e = d.explanation
    assert e is not None
    assert e.barrier is Barrier.RANDOMNESS and e.step == 0, e
    assert "torch CPU" in e.evidence["generators"]


def test_gradient_accumulation_folds_micro_batches(
    tmp_path: Path, store_dir: Path, make_bert: Any, make_data: Any, make_args: Any
) -> None:
    callback = ReprologCallback()
    args = make_args(tmp_path / "acc", max_steps=2, gradient_accumulation_steps=2)
    Trainer(model=make_bert(), args=args, train_dataset=make_data(16), callbacks=[callback]).train()
    table = pq.read_table(callback.run.dir / "steps.parquet").to_pydict()
    assert table["step"] == [0, 1]


def test_off_and_a_bad_setting(
    tmp_path: Path, store_dir: Path, make_bert: Any, make_data: Any, make_args: Any
) -> None:
    run = _train(tmp_path, make_bert, make_data, make_args, step_fingerprints=False)
    assert not (run.dir / "steps.parquet").exists()
    with pytest.raises(reprolog.ArgumentError, match="step_fingerprints must be"):
        ReprologCallback(step_fingerprints=-3)
