"""Git for the tests that record runs in a real repository: isolated from the user's config."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest


def isolate_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reproducible git (no system or user config, a fixed identity, no repository above
    `tmp_path`) and temporary folders (the re-runs' work trees) under `tmp_path`."""
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "test@example.com")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


def git(repo: Path, *args: str) -> str:
    """Run git in `repo`; return its stdout, stripped."""
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()
