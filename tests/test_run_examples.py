"""The framework examples, unchanged, under `reprolog run`: one complete run each, with console
and system metrics, the integrations recording into the launcher's run."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import reprolog

ROOT = Path(__file__).resolve().parents[1]

# (example, a param or metric key the integration records into the job's run)
CASES = [
    ("plain/train_numpy.py", "train/loss"),
    ("sklearn/train.py", None),
    ("lightning/train.py", None),
    ("keras/train.py", None),
    ("transformers/train.py", None),
]


@pytest.mark.parametrize(("example", "key"), CASES, ids=[c[0] for c in CASES])
def test_example_under_reprolog_run_is_one_complete_run(
    example: str, key: str | None, tmp_path: Path
) -> None:
    framework = {"plain": "numpy"}.get(example.split("/")[0], example.split("/")[0])
    if importlib.util.find_spec(framework) is None:
        pytest.skip(f"{framework} is not installed")
    store = tmp_path / "store"
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPROLOG_")}
    env.update({"KERAS_BACKEND": "torch", "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"})
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "reprolog._cli",
            "--dir",
            str(store),
            "run",
            "--system-metrics",
            "1",
            "--",
            sys.executable,
            str(ROOT / "examples" / example),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = reprolog.Store(store)
    runs = s.runs()
    assert len(runs) == 1, runs[["id", "name", "status"]]
    record = s.run(runs["id"].iloc[0])
    assert record.status == "completed"
    keys = set(record.metrics_summary)
    assert "sys/cpu_percent" in keys and "sys/process_rss_bytes" in keys
    assert keys - {k for k in keys if k.startswith("sys/")}, "the training's own metrics are in"
    if key is not None:
        assert key in keys
    assert record.params, "the training's params are in the job's run"
    console = record.console()
    assert len(console) > 0
    assert record.section("job")["exit_code"] == 0
    assert record.section("command").get("argv")
