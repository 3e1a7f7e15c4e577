"""Every example runs end to end, as a user would run it, and leaves completed runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import reprolog

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(ROOT.glob("examples/*/*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_example_runs_and_records_completed_runs(script: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    env = {
        **os.environ,
        "REPROLOG_DIR": str(store),
        "KERAS_BACKEND": "torch",
        "HF_HUB_OFFLINE": "1",
        "PYTHONWARNINGS": "ignore",  # the examples' framework chatter is not under test here
    }
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = reprolog.Store(store).runs()
    assert len(runs) >= 1
    assert set(runs["status"]) == {"completed"}
    assert not list(tmp_path.glob("checkpoints")), "an example wrote into the working directory"
