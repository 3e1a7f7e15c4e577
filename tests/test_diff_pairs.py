"""The diff suite: pairs of real runs that differ in exactly one thing; diff must rank it first."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import reprolog
from reprolog._diff import Category, MetricStatus, diff

STEPS = 12
RTOL, ATOL = 1e-5, 1e-8


def _data(change_row: bool = False) -> tuple[np.ndarray, np.ndarray]:
    # The data come from their own generator, so the global seed never changes them.
    rng = np.random.default_rng(1234)
    x = rng.normal(size=(32, 4)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 3.0], dtype=np.float32)).astype(np.float32)
    if change_row:
        x = x.copy()
        x[7, 2] += 1.0
    return x, y


def train(
    store: Path,
    *,
    seed: int = 0,
    lr: float = 0.05,
    change_row: bool = False,
    deterministic: bool = False,
    lr_file: Path | None = None,
) -> tuple[str, list[float]]:
    """Seed, start a run, train a tiny linear model full-batch, log the loss; return id, losses."""
    reprolog.seed_everything(seed, deterministic=deterministic)
    x, y = _data(change_row)
    if lr_file is not None:  # the learning rate lives in code, as a constant in a tracked file
        lr = float(lr_file.read_text().split("=")[1])
    run = reprolog.init(dir=store, params={"lr": lr} if lr_file is None else None)
    run.log_dataset("train", x)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)[:, None]
    losses = []
    for step in range(STEPS):
        loss = torch.nn.functional.mse_loss(model(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
        run.log({"loss": losses[-1]}, step=step)
    run.finish()
    return run.id, losses


def expected_first_divergence(a: list[float], b: list[float]) -> int | None:
    """The oracle, in plain Python: the first step whose values differ beyond tolerance."""
    for step, (va, vb) in enumerate(zip(a, b, strict=True)):
        if abs(va - vb) > ATOL + RTOL * abs(vb):
            return step
    return None


def check(
    store: Path, a: tuple[str, list[float]], b: tuple[str, list[float]], first: Category
) -> Any:
    d = diff(a[0], b[0], store=store, rtol=RTOL, atol=ATOL)
    assert d.differences, "the pair differs in one thing, so diff must find something"
    assert d.differences[0].category is first, [(x.category, x.key) for x in d.differences[:5]]
    assert d.differences[0].rank == 1
    loss = d.metric("loss")
    assert loss is not None
    step = expected_first_divergence(a[1], b[1])
    if step is None:
        assert loss.status in (MetricStatus.IDENTICAL, MetricStatus.WITHIN_TOLERANCE)
        assert loss.step is None
    else:
        assert loss.status is MetricStatus.DIVERGED
        assert loss.step == step
        assert loss.a == pytest.approx(a[1][step], rel=1e-6)
        assert loss.b == pytest.approx(b[1][step], rel=1e-6)
    assert d.differs
    return d


@pytest.fixture(autouse=True)
def _restore_torch(monkeypatch: pytest.MonkeyPatch) -> Any:
    # seed_everything(deterministic=True) and set_num_threads change process-wide state.
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    bench = torch.backends.cudnn.benchmark
    cudnn_det = torch.backends.cudnn.deterministic
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(det)
    torch.backends.cudnn.benchmark = bench
    torch.backends.cudnn.deterministic = cudnn_det


def test_same_seeded_deterministic_training_shows_no_difference(tmp_path: Path) -> None:
    a = train(tmp_path, deterministic=True)
    b = train(tmp_path, deterministic=True)
    d = diff(a[0], b[0], store=tmp_path, rtol=0.0, atol=0.0)
    assert d.differences == [], [(x.key, x.a, x.b) for x in d.differences]
    assert [m.status for m in d.metrics] == [MetricStatus.IDENTICAL]
    assert d.metric("loss").shared_steps == STEPS  # type: ignore[union-attr]
    assert not d.differs


def test_seed(tmp_path: Path) -> None:
    d = check(tmp_path, train(tmp_path, seed=0), train(tmp_path, seed=1), Category.SEEDS)
    assert d.metric("loss").step == 0  # type: ignore[union-attr]  # different initial weights


def test_one_data_row(tmp_path: Path) -> None:
    d = check(tmp_path, train(tmp_path), train(tmp_path, change_row=True), Category.DATA)
    assert d.differences[0].key == "data.train.fingerprint"


def test_one_hyperparameter(tmp_path: Path) -> None:
    d = check(
        tmp_path, train(tmp_path, lr=0.05), train(tmp_path, lr=0.02), Category.HYPERPARAMETERS
    )
    top = d.differences[0]
    assert (top.key, top.a, top.b) == ("params.lr", 0.05, 0.02)
    # The loss at step 0 is computed before the first update, so the curves part at step 1.
    assert d.metric("loss").step == 1  # type: ignore[union-attr]


def test_package_version(tmp_path: Path) -> None:
    a = train(tmp_path)
    b = train(tmp_path)
    # A package version cannot change inside one test process: edit the recorded environment of
    # run B's real record instead (the only edit; everything else stays as captured).
    path = tmp_path / "runs" / b[0] / "run.json"
    record = json.loads(path.read_text())
    packages = record["sections"]["environment"]["packages"]
    assert "numpy" in packages
    packages["numpy"] = "1.26.4"
    path.write_text(json.dumps(record))
    d = check(tmp_path, a, b, Category.PACKAGES)
    assert (d.differences[0].key, d.differences[0].b) == ("packages.numpy", "1.26.4")


def test_ml_packages_rank_above_other_packages(tmp_path: Path) -> None:
    a = train(tmp_path)
    b = train(tmp_path)
    path = tmp_path / "runs" / b[0] / "run.json"
    record = json.loads(path.read_text())  # edited for the same reason as above
    record["sections"]["environment"]["packages"]["click"] = "0.1"
    record["sections"]["environment"]["packages"]["torch"] = "1.0.0"
    path.write_text(json.dumps(record))
    keys = [x.key for x in diff(a[0], b[0], store=tmp_path).differences]
    assert keys == ["packages.torch", "packages.click"]


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_dirty_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@example.com")
    _git(repo, "config", "user.name", "t")
    cfg = repo / "hparams.py"
    cfg.write_text("LR = 0.05\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "init")
    monkeypatch.chdir(repo)
    store = tmp_path / "store"
    a = train(store, lr_file=cfg)
    cfg.write_text("LR = 0.02\n")  # an uncommitted edit
    b = train(store, lr_file=cfg)
    d = check(store, a, b, Category.CODE)
    assert d.differences[0].key == "code.diff.hparams.py"
    assert "hparams.py" in d.differences[0].explanation
    assert d.metric("loss").step == 1  # type: ignore[union-attr]


def test_deterministic_flag(tmp_path: Path) -> None:
    a = train(tmp_path, deterministic=False)
    b = train(tmp_path, deterministic=True)
    check(tmp_path, a, b, Category.DETERMINISM)


def test_thread_count(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    a = train(tmp_path)
    torch.set_num_threads(2)
    b = train(tmp_path)
    d = check(tmp_path, a, b, Category.HARDWARE)
    assert "thread" in d.differences[0].key
