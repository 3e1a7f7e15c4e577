"""`reprolog reproduce`: re-runs of real recorded scripts in real git repositories."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import reprolog
from reprolog._cli import main
from reprolog._reproduce import ReproduceError, reproduce
from tests._git import git, isolate_git

# A tiny training: loss curve from numpy (and Python random) draws, plus one data file per step.
SCRIPT = """\
import os, random, sys, time
import numpy as np
import reprolog
import config

run = reprolog.init(params={"scale": config.SCALE})
if "--seed" in sys.argv:
    np.random.seed(0)
    random.seed(0)
data = None
if "--data" in sys.argv:
    path = sys.argv[sys.argv.index("--data") + 1]
    run.log_dataset("train", path)
    data = [float(x) for x in open(path).read().split()]
w = np.random.randn(4) * config.SCALE
bias = random.random()
for step in range(8):
    w = w * 0.8 + 0.01 * np.random.randn(4)
    extra = data[step] if data else 0.0
    run.log({"loss": float((w**2).sum()) + bias + extra}, step=step)
if "--hang" in sys.argv and os.environ.get("REPROLOG_REPRODUCES"):
    time.sleep(120)  # only in the re-run
run.finish()
"""


@pytest.fixture(autouse=True)
def _git_and_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_git(tmp_path, monkeypatch)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "train.py").write_text(SCRIPT)
    (root / "config.py").write_text("SCALE = 1.0\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    return root


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


def record(repo: Path, store: Path, *args: str, script: str = "train.py") -> str:
    """Run the script as a user would and return the id of the run it recorded."""
    env = {**os.environ, "REPROLOG_DIR": str(store)}
    env.pop("PYTHONHASHSEED", None)
    proc = subprocess.run(
        [sys.executable, script, *args], cwd=repo, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return str(reprolog.Store(store).run_ids()[-1])


def cli(store: Path, *args: str) -> tuple[int, str]:
    res = CliRunner().invoke(main, ["--dir", str(store), "reproduce", *args])
    return res.exit_code, res.output


def test_seeded_script_reproduces_identical_and_cleans_up(
    repo: Path, store: Path, tmp_path: Path
) -> None:
    original = record(repo, store, "--seed")
    code, out = cli(store, original)
    assert code == 0, out
    assert "Verdict: identical" in out
    new = reprolog.Store(store).run_ids()[-1]
    assert new != original and reprolog.Store(store).run(new).tags["reproduces"] == original
    assert not list(tmp_path.glob("reprolog-reproduce-*"))  # the work tree was removed
    assert "reprolog-reproduce" not in git(repo, "worktree", "list")


def test_unseeded_script_reproduces_through_rng_restore(repo: Path, store: Path) -> None:
    first, second = record(repo, store), record(repo, store)
    # The script never seeds: two plain runs differ, and diff blames the RNG state.
    plain = reprolog.diff(first, second, store=store)
    assert plain.metric("loss") is not None and plain.metric("loss").status.value == "diverged"
    result = reproduce(first, store=store)
    assert result.verdict == "identical", (result.error, result.diff)
    assert result.exact and result.likely_cause is None and result.diff is not None
    assert result.diff.differences == []  # seeds match after restore; tree paths are expected
    rec = reprolog.Store(store).run(str(result.new))
    assert set(rec.section("reproduce")["restored"]) == {"python", "numpy"}
    assert any(d.key == "tags.reproduces" for d in result.expected)


def test_uncommitted_edit_and_untracked_file_are_applied(repo: Path, store: Path) -> None:
    (repo / "config.py").write_text("SCALE = 3.0\n")
    (repo / "data.txt").write_text("0.5 0.25 0.125 1 2 3 4 5\n")
    original = record(repo, store, "--seed", "--data", "data.txt")
    # Put the repository back: only the recorded patch can bring the edit and the file back.
    git(repo, "checkout", "--", "config.py")
    (repo / "data.txt").unlink()
    result = reproduce(original, store=store, exact=True)
    assert result.verdict == "identical", (result.error, result.notes)
    assert result.exact and result.notes == []
    assert reprolog.Store(store).run(str(result.new)).params["scale"] == 3.0


def test_changed_external_data_diverges_at_its_step(
    repo: Path, store: Path, tmp_path: Path
) -> None:
    data = tmp_path / "outside" / "train.txt"
    data.parent.mkdir()
    data.write_text("1 1 1 1 1 1 1 1\n")
    original = record(repo, store, "--seed", "--data", str(data))
    data.write_text("1 1 1 2.5 1 1 1 1\n")  # row 3 changed (and the size: no stat-cache doubt)
    result = reproduce(original, store=store)
    assert result.verdict == "diverged"
    assert (result.diverged_at, result.diverged_metric) == (3, "loss")
    assert result.likely_cause is not None and result.likely_cause.startswith("data:")
    code, out = cli(store, original)
    assert code == 1
    assert "Verdict: diverged at step 3 (loss: " in out and "Likely cause: data:" in out


def test_refuses_records_it_cannot_rerun(repo: Path, store: Path, tmp_path: Path) -> None:
    bare = tmp_path / "nocommit"
    bare.mkdir()
    git(bare, "init", "-q")
    (bare / "train.py").write_text(SCRIPT)
    (bare / "config.py").write_text("SCALE = 1.0\n")
    no_commit = record(bare, store, "--seed")
    code, out = cli(store, no_commit)
    assert code == 2 and "recorded no git commit" in out
    with pytest.raises(ReproduceError, match="recorded no git commit"):
        reproduce(no_commit, store=store)
    env = {**os.environ, "REPROLOG_DIR": str(store)}
    subprocess.run(
        [sys.executable, "-c", "import reprolog; reprolog.init().finish()"],
        cwd=repo, env=env, check=True,
    )  # fmt: skip
    with pytest.raises(ReproduceError, match=r"started as a command entry.*re-runs scripts"):
        reproduce(reprolog.Store(store).run_ids()[-1], store=store)


def test_dry_run_and_failed_rerun(repo: Path, store: Path, tmp_path: Path) -> None:
    original = record(repo, store, "--seed")
    plan = reproduce(original, store=store, dry_run=True)
    assert plan.verdict is None and plan.new is None
    assert plan.command[-1].endswith("--seed") and plan.env["REPROLOG_REPRODUCES"] == original
    assert plan.env["PYTHONHASHSEED"] is None  # recorded unset: unset in the re-run too
    # Data the script reads is gone: the re-run fails, and the verdict says so with its stderr.
    data = tmp_path / "gone.txt"
    data.write_text("1 2 3 4 5 6 7 8\n")
    needs_data = record(repo, store, "--seed", "--data", str(data))
    data.unlink()
    result = reproduce(needs_data, store=store)
    assert result.verdict == "failed" and result.returncode == 1
    assert result.error is not None and "FileNotFoundError" in result.error
    code, out = cli(store, needs_data)
    assert code == 1 and "Verdict: failed" in out


def test_timeout_stops_the_rerun_and_keep_leaves_the_tree(repo: Path, store: Path) -> None:
    original = record(repo, store, "--seed", "--hang")
    result = reproduce(original, store=store, timeout=2, keep=True)
    assert result.verdict == "failed" and result.returncode is None
    assert result.error is not None and "longer than 2 s" in result.error
    assert result.kept and (Path(result.workdir) / "train.py").is_file()
    assert result.workdir in git(repo, "worktree", "list")
    git(repo, "worktree", "remove", "--force", result.workdir)


# Dropout draws from torch's global generator, which the script reseeds from the clock after
# init: the re-run restores the recorded RNG state, then throws it away.
CLOCK_SEEDED = """\
import time
import torch
import reprolog

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x = torch.linspace(-1, 1, 32).reshape(8, 4)
y = x.sum(dim=1, keepdim=True)
with reprolog.init() as run:
    torch.manual_seed(time.time_ns())
    fp = run.step_fingerprints(model, every=1)
    for step in range(6):
        fp.step(step, (x, y))
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        run.log({"loss": loss.item()}, step=step)
"""


def test_a_divergence_is_explained_by_the_step_fingerprints(repo: Path, store: Path) -> None:
    (repo / "clock.py").write_text(CLOCK_SEEDED)
    git(repo, "add", "clock.py")
    git(repo, "commit", "-q", "-m", "clock-seeded dropout")
    original = record(repo, store, script="clock.py")
    result = reproduce(original, store=store)
    assert result.verdict == "diverged", result
    assert result.diff is not None and result.diff.explanation is not None
    assert result.diff.explanation.barrier.value == "randomness"
    cause = next(c for c in result.causes if c.source == "step fingerprints")
    assert (cause.category, cause.step) == ("seeds", 0)
    assert "randomness" in cause.explanation
