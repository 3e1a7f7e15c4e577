"""Shared fixtures for the core's tests: an isolated store per test and a script runner."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import reprolog

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may find or create a store outside its own tmp_path."""
    monkeypatch.delenv("REPROLOG_DIR", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    """Where this test's store lives (created by the first run)."""
    return tmp_path / "store"


@pytest.fixture
def make_run(store_dir: Path) -> Iterator[Callable[..., reprolog.Run]]:
    """Start runs in the test's store (capture off: fast); any left live are finished after."""
    started: list[reprolog.Run] = []

    def factory(name: str | None = None, **kwargs: Any) -> reprolog.Run:
        kwargs.setdefault("dir", store_dir)
        kwargs.setdefault("capture", False)
        run = reprolog.init(name, **kwargs)
        started.append(run)
        return run

    yield factory
    for run in started:
        run.finish()


def script_env(**extra: str) -> dict[str, str]:
    """The environment for a child interpreter that imports this checkout's reprolog."""
    env = dict(os.environ)
    env.pop("REPROLOG_DIR", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def run_script(
    code: str, *, cwd: Path, timeout: float = 60, check: bool = False, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run `code` (dedented) in a fresh interpreter and return the finished process."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=script_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"script failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def start_script(code: str, *, cwd: Path, **env: str) -> subprocess.Popen[str]:
    """Start `code` in a fresh interpreter; the caller waits for or kills it."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=script_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(name="run_script")
def _run_script_fixture() -> Callable[..., subprocess.CompletedProcess[str]]:
    """`run_script(code, cwd=..., **env)`: run code in a fresh interpreter, wait for it."""
    return run_script


@pytest.fixture(name="start_script")
def _start_script_fixture() -> Callable[..., subprocess.Popen[str]]:
    """`start_script(code, cwd=..., **env)`: start code in a fresh interpreter."""
    return start_script
