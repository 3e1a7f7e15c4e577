"""`reprolog.diff` explains, from per-step fingerprints, which barrier made two runs part.

Each pair is two real trainings of a tiny torch model, differing in one thing, recorded
through the core API the integrations use (`Run.step_fingerprints`).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch.utils.data import DataLoader, TensorDataset

import reprolog
from reprolog._cli import main as cli
from reprolog._diff import Barrier, Explanation


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _data(change_sample: bool = False) -> TensorDataset:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(48, 8, generator=gen)
    y = x.sum(dim=1, keepdim=True) + 0.1 * torch.randn(48, 1, generator=gen)
    if change_sample:
        x[17, 3] += 1.0
    return TensorDataset(x, y)


def train(
    store: Path,
    *,
    loader_seed: int = 0,
    change_sample: bool = False,
    dropout_seed: int = 0,
    threads: int | None = None,
    wide: bool = False,
    metric: str = "mse",
    epochs: int = 2,
    every: int = 2,
    steps: int | None = None,
) -> str:
    """Train a tiny MLP for `epochs` epochs of 6 steps; return the run id."""
    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(0)  # the same initial weights in every run
    if wide:  # a mean over 1M outputs: its float32 sum depends on how threads split it
        model: torch.nn.Module = torch.nn.Linear(8, 16384)
    else:
        model = torch.nn.Sequential(
            torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(16, 1)
        )
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    loader = DataLoader(
        _data(change_sample),
        batch_size=8,
        shuffle=True,
        generator=torch.Generator().manual_seed(loader_seed),
    )
    torch.manual_seed(dropout_seed)  # the global generator: dropout's masks
    random.seed(0)
    np.random.seed(0)
    with reprolog.init(dir=store) as run:
        fp = run.step_fingerprints(model, every=every)
        assert fp is not None
        step = 0
        for epoch in range(epochs):
            for x, y in loader:
                if step == steps:
                    break
                fp.step(step, (x, y), epoch=epoch)
                out = model(x)
                if wide:
                    loss = (out.mean() - y.mean()).pow(2)
                else:
                    loss = torch.nn.functional.mse_loss(out, y)
                opt.zero_grad()
                loss.backward()
                fp.grads()
                opt.step()
                with torch.no_grad():
                    value = loss if metric == "mse" else (out - y).abs().mean()
                run.log({"loss": float(value.detach())}, step=step, epoch=epoch)
                step += 1
        return run.id


def explain(store: Path, a: str, b: str) -> Explanation:
    d = reprolog.diff(a, b, store=store)
    assert d.explanation is not None
    return d.explanation


def test_a_differently_seeded_shuffle_is_data_order_at_step_0(tmp_path: Path) -> None:
    a, b = train(tmp_path, loader_seed=0), train(tmp_path, loader_seed=1)
    e = explain(tmp_path, a, b)
    assert e.barrier is Barrier.DATA_ORDER and e.step == 0, e.summary
    assert e.evidence["same_samples"] is True and e.evidence["epoch"] == 0
    assert e.evidence["a"] != e.evidence["b"] and e.evidence["rng_differs"] == []
    assert str(e).startswith("data order from step 0: ")


def test_one_changed_sample_is_data_content(tmp_path: Path) -> None:
    a, b = train(tmp_path), train(tmp_path, change_sample=True)
    e = explain(tmp_path, a, b)
    assert e.barrier is Barrier.DATA_CONTENT, e.summary
    assert e.evidence["same_samples"] is False
    # The first step is the one whose batch holds sample 17 (the same order in both runs).
    data = _data()
    loader = DataLoader(
        data, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    row = data.tensors[0][17]
    holds = [bool((x == row).all(dim=1).any()) for x, _ in loader]
    assert e.step == holds.index(True)


def test_another_dropout_generator_is_randomness(tmp_path: Path) -> None:
    a, b = train(tmp_path, dropout_seed=0), train(tmp_path, dropout_seed=1)
    e = explain(tmp_path, a, b)
    assert e.barrier is Barrier.RANDOMNESS and e.step == 0, e.summary
    assert e.evidence["generators"] == ["torch CPU"]
    assert "another seed or generator" in e.summary


def test_a_thread_count_that_changes_a_reduction_is_numerics(tmp_path: Path) -> None:
    a = train(tmp_path, threads=1, wide=True)
    b = train(tmp_path, threads=2, wide=True)
    e = explain(tmp_path, a, b)
    assert e.barrier is Barrier.NUMERICS, e.summary
    # Seen first in the gradients of a fingerprinted step (every=2), whose weights agree.
    assert e.evidence["field"] == "grads" and e.step is not None and e.step % 2 == 0
    assert e.evidence["last_equal_step"] == e.step
    assert any("torch_num_threads" in fact and "1 vs 2" in fact for fact in e.evidence["recorded"])
    assert "torch_num_threads" in e.summary


def test_the_same_metric_by_another_formula_is_code_or_logging(tmp_path: Path) -> None:
    a, b = train(tmp_path, metric="mse"), train(tmp_path, metric="mae")
    e = explain(tmp_path, a, b)
    assert e.barrier is Barrier.CODE and e.step == 0, e.summary
    assert e.evidence["metric"] == "loss"
    assert e.evidence["last_equal_weights"] == 10  # every=2 over 12 steps: 0, 2, ..., 10


def test_two_runs_of_a_deterministic_training_do_not_differ(tmp_path: Path) -> None:
    a, b = train(tmp_path), train(tmp_path)
    d = reprolog.diff(a, b, store=tmp_path)
    assert d.explanation is not None and d.explanation.barrier is Barrier.NONE
    assert d.explanation.shared_steps == 12 and not d.explanation.differs
    assert d.explanation.step is None


def test_the_table_has_every_step_and_weights_every_k(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    run_id = train(tmp_path, every=4)
    record = reprolog.Store(tmp_path).run(run_id)
    table = pq.read_table(Path(record.dir) / "steps.parquet")
    assert table.column("step").to_pylist() == list(range(12))
    assert table.column("epoch").to_pylist() == [0] * 6 + [1] * 6
    weights = table.column("weights").to_pylist()
    assert [s for s, w in enumerate(weights) if w is not None] == [0, 4, 8]
    grads = table.column("grads").to_pylist()
    assert [s for s, g in enumerate(grads) if g is not None] == [0, 4, 8]
    assert None not in table.column("batch").to_pylist()
    assert None not in table.column("rng_python").to_pylist()
    assert record.sections["step_fingerprints"]["every"] == 4
    # Never in the metrics.
    assert set(record.metrics()["key"]) == {"loss"}


def test_the_cli_prints_the_explanation_line_and_json(tmp_path: Path) -> None:
    a, b = train(tmp_path, loader_seed=0), train(tmp_path, loader_seed=1)
    result = CliRunner().invoke(cli, ["--dir", str(tmp_path), "diff", a, b])
    assert result.exit_code == 1, result.output
    assert "Why they part: data order from step 0" in result.output.replace("\n", " ")
    result = CliRunner().invoke(cli, ["--dir", str(tmp_path), "diff", a, b, "--json"])
    data: dict[str, Any] = json.loads(result.output)
    assert data["explanation"]["barrier"] == "data order"
    assert data["explanation"]["step"] == 0


def test_runs_without_fingerprints_are_unknown(tmp_path: Path) -> None:
    ids = []
    for value in (1.0, 2.0):
        with reprolog.init(dir=tmp_path, capture=False) as run:
            run.log({"loss": value}, step=0)
            ids.append(run.id)
    e = explain(tmp_path, *ids)
    assert e.barrier is Barrier.UNKNOWN and e.step == 0
    assert "no step fingerprints in run A and B" in e.summary


def _two_ranks(store: Path, rank1_bias: float) -> str:
    """One run, ranks 0 and 1 each recording the same batches; rank 1's model shifted."""
    torch.manual_seed(0)
    models = [torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)]
    models[1].load_state_dict(models[0].state_dict())
    with torch.no_grad():
        models[1].bias += rank1_bias
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
    with reprolog.init(dir=store, capture=False) as run:
        fps = [run.step_fingerprints(models[0], every=1)]
        with reprolog.attach(run.id, rank=1, dir=store) as writer:
            fps.append(writer.step_fingerprints(models[1], every=1))
            for step in range(3):
                for fp in fps:
                    fp.step(step, x, epoch=0)  # type: ignore[union-attr]
        return run.id


def test_a_rank_that_desynchronised_is_named(tmp_path: Path) -> None:
    a, b = _two_ranks(tmp_path, 0.0), _two_ranks(tmp_path, 0.5)
    e = explain(tmp_path, a, b)
    assert e.barrier is Barrier.NUMERICS and e.rank == 1 and e.step == 0, e
    assert "(rank 1)" in e.summary
    assert e.notes == [
        "run B: rank 1's weights differ from rank 0's at step 0 (the ranks desynchronised)"
    ]


def _summation_order(store: Path, *, reverse_from: int | None) -> str:
    """SGD on a linear model whose gradient is a float32 sum, reversed from one step on."""
    torch.manual_seed(0)
    w = torch.zeros(64)
    xs = torch.randn(10, 256, 64, generator=torch.Generator().manual_seed(4))
    with reprolog.init(dir=store, capture=False) as run:
        fp = run.step_fingerprints([w], every=6)
        assert fp is not None
        for step, x in enumerate(xs):
            fp.step(step, x, epoch=0)
            err = x @ w - 1.0
            rows = err[:, None] * x
            if reverse_from is not None and step >= reverse_from:
                rows = rows.flip(0)  # the same terms, summed in another order
            grad = torch.zeros(64)
            for r in rows:  # sequential float32 sums: order-dependent rounding
                grad += r
            w -= 0.01 * grad / len(x)
            run.log({"loss": float((err**2).mean())}, step=step)
        return run.id


def test_numerics_between_weight_checks_is_not_taken_for_code(tmp_path: Path) -> None:
    # Weights are compared every 6 steps; the arithmetic changes at step 1, the exact metric
    # parts a few steps later (before step 6), and the weights differ at the check of step 6.
    a = _summation_order(tmp_path, reverse_from=None)
    b = _summation_order(tmp_path, reverse_from=1)
    d = reprolog.diff(a, b, store=tmp_path, rtol=0, atol=0)
    e = d.explanation
    assert e is not None and e.barrier is Barrier.NUMERICS, e
    metric = d.metric("loss")
    assert metric is not None and metric.step is not None and 1 < metric.step < 6
    assert e.step == metric.step and e.evidence["checked_step"] == 6
    assert e.evidence["last_equal_step"] == 0 and e.evidence["field"] == "weights"


def test_a_run_cut_short_inside_the_epoch_is_data_order_or_content(tmp_path: Path) -> None:
    a = train(tmp_path, loader_seed=0)
    b = train(tmp_path, loader_seed=1, steps=3)  # as reproduce --steps 3 would
    e = explain(tmp_path, a, b)
    assert e.barrier is Barrier.DATA and e.step == 0, e
    assert e.evidence["same_samples"] is None and e.shared_steps == 3
