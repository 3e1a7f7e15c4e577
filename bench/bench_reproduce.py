"""Bench `reprolog reproduce`: the numpy example (current env), `--env recorded` with a warm venv
cache, and `--steps 20` of a 2,000-step Lightning run against the full reproduce.

Run: python bench/bench_reproduce.py [--repeats 5] [--skip-recorded] [--skip-lightning]
Prints medians of repeated wall-clock timings of `reprolog.reproduce(...)` (git work tree,
patch, child process with its interpreter start-up and imports, record diff, verdict).

How it is set up (in a temporary folder, removed after):
- each training script is committed to its own git repository and run once as a user would;
- `--env recorded`: the numpy example is recorded from a venv made with uv (reprolog editable
  + numpy and its few dependencies), so the record names a small package set; the first
  reproduce builds the venv (cold, reported), the repeats reuse it (warm). "Over the run's own
  time" is the reproduce's wall time minus the re-run's own (child) time, `Reproduction.seconds`.
- Lightning: a one-layer regressor, 2,000 optimizer steps, no checkpointing; the full
  reproduce against `steps=20`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import reprolog
from reprolog._reproduce import reproduce

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import row

ROOT = Path(__file__).resolve().parents[1]
UV = Path(sys.executable).parent / "uv"

LIGHTNING = """\
import tempfile
import torch
from torch.utils.data import DataLoader, TensorDataset
import lightning.pytorch as pl
from reprolog_lightning import ReprologCallback


class Net(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(8, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


pl.seed_everything(0)
x = torch.randn(4000, 8)
y = x.sum(dim=1, keepdim=True)
trainer = pl.Trainer(
    max_steps=2000, accelerator="cpu", logger=False, enable_progress_bar=False,
    enable_model_summary=False, enable_checkpointing=False,
    default_root_dir=tempfile.mkdtemp(), callbacks=[ReprologCallback()],
)
trainer.fit(Net(), DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True))
"""


def git_env(base: Path) -> dict[str, str]:
    return {
        **os.environ,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": str(base / "gitconfig"),
        "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
    }  # fmt: skip


def repo_with(base: Path, name: str, script: str) -> Path:
    repo = base / name
    repo.mkdir()
    (repo / "train.py").write_text(script)
    env = git_env(base)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", *args], cwd=repo, check=True, env=env, capture_output=True)
    return repo


def record(repo: Path, store: Path, python: str) -> str:
    env = {**git_env(repo.parent), "REPROLOG_DIR": str(store), "PYTHONWARNINGS": "ignore"}
    subprocess.run([python, "train.py"], cwd=repo, env=env, check=True, capture_output=True)
    return str(reprolog.Store(store).run_ids()[-1])


def timed(fn: object, repeats: int) -> tuple[float, list[float], list[object]]:
    times, results = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        results.append(fn())  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-recorded", action="store_true")
    parser.add_argument("--skip-lightning", action="store_true")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="reprolog-bench-reproduce-"))
    tempfile.tempdir = str(base)
    os.environ.update(git_env(base))
    os.environ["REPROLOG_CACHE_DIR"] = str(base / "cache")
    print(f"bench_reproduce: {args.repeats} repeats, load average {os.getloadavg()[0]:.1f}")
    try:
        numpy_script = (ROOT / "examples/plain/train_numpy.py").read_text()
        repo = repo_with(base, "numpy", numpy_script)
        store = base / "store-numpy"
        original = record(repo, store, sys.executable)
        med, times, results = timed(lambda: reproduce(original, store=store), args.repeats)
        assert all(r.verdict == "identical" for r in results), [r.verdict for r in results]
        child = statistics.median(r.seconds for r in results)
        each = ", ".join(f"{t:.2f}" for t in times)
        row("reproduce the numpy example, current env", f"{med:.2f} s", "<= 2 s",
            f"(re-run itself {child:.2f} s; all {each})")  # fmt: skip

        if not args.skip_recorded and UV.is_file():
            venv = base / "uservenv"
            subprocess.run([str(UV), "venv", "-q", "--python", sys.executable, str(venv)],
                           check=True)  # fmt: skip
            subprocess.run(
                [str(UV), "pip", "install", "-q", "--python", str(venv / "bin/python"),
                 "--index-strategy", "unsafe-best-match", "-e", str(ROOT), "numpy"],
                check=True,
            )  # fmt: skip
            store_r = base / "store-recorded"
            orig_r = record(repo, store_r, str(venv / "bin/python"))
            start = time.perf_counter()
            cold = reproduce(orig_r, store=store_r, env="recorded")
            cold_s = time.perf_counter() - start
            assert cold.verdict == "identical", (cold.error, cold.diff)
            n = len(reprolog.Store(store_r).run(orig_r).section("environment")["packages"])
            row(f"  cold: build the venv ({n} packages, uv) + reproduce", f"{cold_s:.2f} s", "",
                f"(build {cold.build_seconds:.2f} s)")  # fmt: skip
            med_r, times_r, res_r = timed(
                lambda: reproduce(orig_r, store=store_r, env="recorded"), args.repeats
            )
            assert all(r.venv_cached and r.verdict == "identical" for r in res_r)
            over = statistics.median(
                t - r.seconds  # type: ignore[attr-defined]
                for t, r in zip(times_r, res_r, strict=True)
            )
            row("reproduce --env recorded, warm venv cache: over the run's time",
                f"{over:.2f} s", "<= 5 s", f"(total {med_r:.2f} s)")  # fmt: skip
        elif not args.skip_recorded:
            row("reproduce --env recorded", "skipped", "", "(uv not installed)")

        if not args.skip_lightning:
            repo_l = repo_with(base, "lightning", LIGHTNING)
            store_l = base / "store-lightning"
            orig_l = record(repo_l, store_l, sys.executable)
            reps = max(1, min(args.repeats, 3))
            full, _, res_f = timed(lambda: reproduce(orig_l, store=store_l), reps)
            short, _, res_s = timed(lambda: reproduce(orig_l, store=store_l, steps=20), reps)
            assert all(r.verdict == "identical" for r in res_f + res_s)
            child_f = statistics.median(r.seconds for r in res_f)  # type: ignore[attr-defined]
            child_s = statistics.median(r.seconds for r in res_s)  # type: ignore[attr-defined]
            row("reproduce a 2,000-step Lightning run (full)", f"{full:.2f} s", "",
                f"(re-run itself {child_f:.2f} s)")  # fmt: skip
            row("--steps 20 of it", f"{short:.2f} s", "<= 15 %",
                f"({100 * short / full:.1f} %; re-run itself {child_s:.2f} s)")  # fmt: skip
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", "import lightning.pytorch, reprolog_lightning"], check=True
            )
            row("  floor: python -c 'import lightning.pytorch, reprolog_lightning'",
                f"{time.perf_counter() - start:.2f} s")  # fmt: skip
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
