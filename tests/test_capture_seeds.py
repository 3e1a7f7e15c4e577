"""Tests for the seeds section: RNG states are observed, stored compactly and restored exactly."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from reprolog._capture.report import CaptureReport
from reprolog._capture.seeds import capture_seeds, restore_rng
from reprolog._errors import CorruptFileError

SRC = Path(__file__).resolve().parents[1] / "src"


def draw() -> tuple[list[float], list[float], list[float]]:
    return (
        [random.random() for _ in range(5)],
        np.random.rand(5).tolist(),
        torch.rand(5).tolist(),
    )


def test_capture_observes_without_changing_state(tmp_path: Path) -> None:
    before = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone())
    capture_seeds(tmp_path, CaptureReport())
    assert random.getstate() == before[0]
    assert np.array_equal(np.random.get_state()[1], before[1])
    assert torch.equal(torch.get_rng_state(), before[2])


def test_round_trip_restores_the_same_draws(tmp_path: Path) -> None:
    section = capture_seeds(tmp_path, CaptureReport())
    first = draw()
    restored = restore_rng(tmp_path, section)
    assert restored == ["python", "numpy", "torch_cpu"]
    assert draw() == first


def test_section_holds_hashes_of_the_side_files(tmp_path: Path) -> None:
    section = capture_seeds(tmp_path, CaptureReport())
    files = section["files"]
    assert files == {
        "python_random": "rng/python_random.json",
        "numpy": "rng/numpy.json",
        "torch_cpu": "rng/torch_cpu.bin",
    }
    for key, sha_key in (
        ("python_random", "python_random_sha256"),
        ("numpy", "numpy_sha256"),
        ("torch_cpu", "torch_cpu_state_sha256"),
    ):
        data = (tmp_path / files[key]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == section[sha_key]
    assert section["torch_seed"] == torch.initial_seed()
    json.dumps(section)


def test_equal_states_give_equal_hashes(tmp_path: Path) -> None:
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    a = capture_seeds(tmp_path / "a", CaptureReport())
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    b = capture_seeds(tmp_path / "b", CaptureReport())
    random.random()
    c = capture_seeds(tmp_path / "c", CaptureReport())
    for key in ("python_random_sha256", "numpy_sha256", "torch_cpu_state_sha256"):
        assert a[key] == b[key]
    assert a["python_random_sha256"] != c["python_random_sha256"]
    assert a["numpy_sha256"] == c["numpy_sha256"]


def test_tampered_side_file_is_refused(tmp_path: Path) -> None:
    section = capture_seeds(tmp_path, CaptureReport())
    path = tmp_path / section["files"]["numpy"]
    doc = json.loads(path.read_text())
    doc["pos"] = 0
    path.write_text(json.dumps(doc))
    with pytest.raises(CorruptFileError, match=r"rng/numpy\.json does not match"):
        restore_rng(tmp_path, section)


def test_round_trip_across_processes(tmp_path: Path) -> None:
    """A child captures at init then draws; this process restores and draws the same numbers."""
    code = (
        "import json, pathlib, random, numpy as np, torch\n"
        "from reprolog._capture.seeds import capture_seeds\n"
        "from reprolog._capture.report import CaptureReport\n"
        f"section = capture_seeds(pathlib.Path({str(tmp_path)!r}), CaptureReport())\n"
        "draws = [[random.random() for _ in range(3)], np.random.rand(3).tolist(),"
        " torch.rand(3).tolist()]\n"
        "print(json.dumps({'section': section, 'draws': draws}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    ).stdout
    child: dict[str, Any] = json.loads(out)
    restore_rng(tmp_path, child["section"])
    mine = [[random.random() for _ in range(3)], np.random.rand(3).tolist(), torch.rand(3).tolist()]
    assert mine == child["draws"]


def test_without_numpy_or_torch_only_python_is_captured(tmp_path: Path) -> None:
    code = (
        "import json, pathlib, sys\n"
        "from reprolog._capture.seeds import capture_seeds\n"
        "from reprolog._capture.report import CaptureReport\n"
        "r = CaptureReport()\n"
        f"s = capture_seeds(pathlib.Path({str(tmp_path)!r}), r)\n"
        "print(json.dumps([s['numpy_sha256'], s['torch_seed'], sorted(s['files']),"
        " [k['what'] for k in r.skipped], 'numpy' in sys.modules]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    ).stdout
    assert json.loads(out) == [None, None, ["python_random"], ["seeds.numpy", "seeds.torch"], False]
