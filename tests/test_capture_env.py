"""Tests for the environment, command and determinism sections, risks and capture_all."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import reprolog._capture.sections as capture_pkg
from reprolog._capture.command import capture_command
from reprolog._capture.determinism import capture_determinism
from reprolog._capture.environment import capture_env_vars, capture_environment, packages
from reprolog._capture.redact import REDACTED
from reprolog._capture.report import CaptureReport
from reprolog._capture.sections import capture_all, compute_risks, requirements_txt

SRC = Path(__file__).resolve().parents[1] / "src"
HF = "hf_" + "Qw3Er5Ty7Ui9Op1As3Df5Gh7Jk9Lz1Xc3V"


def test_environment_facts() -> None:
    report = CaptureReport()
    env = capture_environment(report)
    assert env["python_version"].count(".") == 2
    assert env["python_executable"] == sys.executable
    assert env["cpu_count"] == os.cpu_count()
    assert env["ram_bytes"] is None or env["ram_bytes"] > 0
    assert isinstance(env["gpus"], list)
    assert "environment" in report.captured
    json.dumps(env)  # the section is plain JSON


def test_packages_match_importlib_metadata() -> None:
    pkgs = packages()
    for dist in ("numpy", "pytest", "pyarrow"):
        assert pkgs[dist] == importlib.metadata.version(dist)
    assert all(name == name.lower() and "_" not in name for name in pkgs)
    text = requirements_txt({"packages": pkgs})
    assert f"numpy=={pkgs['numpy']}\n" in text
    assert len(text.splitlines()) == len(pkgs)


def test_env_vars_allow_list_and_redaction() -> None:
    environ = {
        "HF_TOKEN": HF,
        "WANDB_API_KEY": "plainvalue",
        "CUDA_VISIBLE_DEVICES": "0,1",
        "PYTHONHASHSEED": "0",
        "TOKENIZERS_PARALLELISM": "false",
        "MY_APP_PASSWORD": "hunter2",
        "HOME": "/root",
    }
    report = CaptureReport()
    env = capture_env_vars(report, environ)
    assert env == {
        "CUDA_VISIBLE_DEVICES": "0,1",
        "HF_TOKEN": REDACTED,
        "PYTHONHASHSEED": "0",
        "TOKENIZERS_PARALLELISM": "false",
    }
    assert report.redacted == ["env.HF_TOKEN"]


def test_command_masks_secret_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["train.py", "--hf-token", HF, "--lr", "0.1"])
    report = CaptureReport()
    cmd = capture_command(report)
    assert cmd["argv"] == ["train.py", "--hf-token", REDACTED, "--lr", "0.1"]
    assert report.redacted[0] == "argv[2]"
    assert cmd["cwd"] == os.getcwd() and cmd["executable"] == sys.executable


def test_script_entry_and_hash(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(
        "import json, sys\n"
        "from reprolog._capture.command import capture_command\n"
        "from reprolog._capture.report import CaptureReport\n"
        "print(json.dumps(capture_command(CaptureReport())))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run(
        [sys.executable, str(script), "--api-key=abc"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout
    cmd = json.loads(out)
    assert cmd["entry_kind"] == "script" and cmd["entry"] == str(script)
    import hashlib

    assert cmd["script_sha256"] == hashlib.sha256(script.read_bytes()).hexdigest()
    assert cmd["argv"][1] == f"--api-key={REDACTED}"


def test_module_entry(tmp_path: Path) -> None:
    (tmp_path / "mytrain.py").write_text(
        "import json\n"
        "from reprolog._capture.command import capture_command\n"
        "from reprolog._capture.report import CaptureReport\n"
        "print(json.dumps(capture_command(CaptureReport())))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(tmp_path)])}
    out = subprocess.run(
        [sys.executable, "-m", "mytrain"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout
    cmd = json.loads(out)
    assert (cmd["entry_kind"], cmd["entry"]) == ("module", "mytrain")
    assert cmd["script_sha256"] is not None


def test_capture_imports_no_framework_and_is_json(tmp_path: Path) -> None:
    code = (
        "import sys, json, pathlib\n"
        "from reprolog._capture.sections import capture_all\n"
        f"r = capture_all(pathlib.Path({str(tmp_path / 'run')!r}))\n"
        "json.dumps(r.sections); json.dumps(r.report)\n"
        "heavy = ('torch', 'numpy', 'pandas', 'pyarrow')\n"
        "print(json.dumps([m for m in heavy if m in sys.modules]))\n"
        "print(json.dumps(r.sections['determinism']))\n"
        "print(json.dumps(sorted(r.sections)))\n"
        "import numpy\n"  # the probe sees a module once it is imported
        "print(json.dumps([m for m in heavy if m in sys.modules]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout.splitlines()
    assert json.loads(out[0]) == []
    det = json.loads(out[1])
    assert det["torch_loaded"] is False and det["cudnn_benchmark"] is None
    assert {"environment", "code", "command", "seeds", "determinism"} <= set(json.loads(out[2]))
    assert json.loads(out[3]) == ["numpy"]


@pytest.fixture
def torch_flags() -> Any:
    import torch

    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )
    yield torch
    torch.use_deterministic_algorithms(saved[0])
    torch.backends.cudnn.benchmark = saved[1]
    torch.backends.cudnn.deterministic = saved[2]


def test_determinism_flags_with_torch(torch_flags: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    torch = torch_flags
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    torch.backends.cudnn.benchmark = True
    torch.use_deterministic_algorithms(False)
    det = capture_determinism(CaptureReport())
    assert det["torch_loaded"] is True
    assert det["cudnn_benchmark"] is True and det["torch_deterministic_algorithms"] is False
    assert det["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
    assert det["float32_matmul_precision"] == torch.get_float32_matmul_precision()
    ids = [r["id"] for r in compute_risks({"determinism": det})]
    assert "cudnn_benchmark" in ids and "nondeterministic_algorithms" in ids
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True)
    det = capture_determinism(CaptureReport())
    ids = [r["id"] for r in compute_risks({"determinism": det, "data": {"d": {}}})]
    assert ids == []


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        ({"data": {"train": {"method": "full"}}}, []),
        ({}, ["data_not_fingerprinted"]),
        ({"data": {"t": {"method": "sample"}}}, ["data_sampled"]),
        ({"seeds": {"env": {}}, "data": {"t": {}}}, ["unseeded"]),
        ({"seeds": {"env": {"PL_GLOBAL_SEED": "3"}}, "data": {"t": {}}}, []),
        ({"seeds": {"seed_everything": {"seed": 1}}, "data": {"t": {}}}, []),
        ({"seeds": {"torch_seed": 42}, "data": {"t": {}}}, []),
        ({"seeds": {"torch_seed": 2**40 + 7}, "data": {"t": {}}}, ["unseeded"]),
        ({"code": {"git": False, "reason": "x"}, "data": {"t": {}}}, ["no_git"]),
        (
            {
                "code": {"git": True, "changed": {"a": ".M"}, "untracked": {"b": {}}},
                "data": {"t": {}},
            },
            ["dirty_tree", "untracked_files"],
        ),
        ({"determinism": {"torch_loaded": False, "cudnn_benchmark": None}, "data": {"t": {}}}, []),
    ],
)
def test_compute_risks(sections: dict[str, Any], expected: list[str]) -> None:
    assert [r["id"] for r in compute_risks(sections)] == expected


def test_capture_all_sections_and_report(tmp_path: Path) -> None:
    result = capture_all(tmp_path / "run")
    assert list(result.sections) == ["environment", "code", "command", "seeds", "determinism"]
    assert set(result.report) == {"captured", "skipped", "redacted", "errors", "seconds"}
    # The test runs in tmp_path, outside git: the code section says so and is not "captured".
    assert result.report["captured"] == ["command", "environment", "seeds", "determinism"]
    assert result.sections["code"]["git"] is False
    assert result.report["errors"] == []
    assert isinstance(result.sections["determinism"]["risks"], list)
    assert (tmp_path / "run" / result.sections["seeds"]["files"]["python_random"]).is_file()


def test_capture_all_never_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(report: CaptureReport) -> dict[str, Any]:
        raise RuntimeError(f"broken probe with {HF}")

    monkeypatch.setattr(capture_pkg, "capture_environment", boom)
    result = capture_all(tmp_path / "run")
    assert result.sections["environment"] == {}
    assert result.sections["command"]["argv"]
    [error] = result.report["errors"]
    assert error["what"] == "environment" and "RuntimeError: broken probe" in error["error"]
    assert HF not in error["error"]
