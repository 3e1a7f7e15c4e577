"""Tests for the code section, against real git repositories built in temporary folders."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from reprolog._capture import code as code_module
from reprolog._capture.code import capture_code
from reprolog._capture.redact import REDACTED
from reprolog._capture.report import CaptureReport

GHP = "ghp_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2"


@pytest.fixture(autouse=True)
def _git_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reproducible git: no user/system config, a fixed identity, no parent repository."""
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "test@example.com")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "protocol.file.allow=always", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def make_repo(root: Path, files: int = 3) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    (root / ".gitignore").write_text("*.log\n")
    for i in range(files):
        (root / f"mod{i}.py").write_text(f"x = {i}\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    return root


def capture(where: Path) -> tuple[dict[str, Any], CaptureReport]:
    report = CaptureReport()
    return capture_code(report, where), report


def test_clean_repository(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    section, report = capture(repo)
    assert section["git"] is True and section["reason"] is None
    assert section["commit"] == git(repo, "rev-parse", "HEAD")
    assert section["branch"] == "main" and section["detached"] is False
    assert section["root"] == str(repo)
    assert section["dirty"] is False
    assert section["changed"] == {} and section["untracked"] == {} and section["diff"] == ""
    assert section["remote_url"] is None and section["submodules"] == {}
    assert report.errors == [] and "code" in report.captured


def test_staged_and_unstaged_changes_are_in_the_diff(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "mod0.py").write_text("x = 'unstaged'\n")
    (repo / "mod1.py").write_text("x = 'staged'\n")
    git(repo, "add", "mod1.py")
    section, _ = capture(repo)
    assert section["dirty"] is True
    assert section["changed"] == {"mod0.py": ".M", "mod1.py": "M."}
    assert "+x = 'unstaged'" in section["diff"] and "+x = 'staged'" in section["diff"]
    full = subprocess.run(
        [
            "git",
            "diff",
            "HEAD",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "--submodule=short",
        ],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout
    assert section["diff_sha256"] == hashlib.sha256(full).hexdigest()
    assert section["diff_bytes"] == len(full) and section["diff_truncated"] is False


def test_untracked_files_text_binary_big_and_ignored(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "notes.txt").write_text("hello\n")
    (repo / "sub").mkdir()
    (repo / "sub" / "blob.bin").write_bytes(b"\x00\x01\x02" * 10)
    big = "y" * (code_module.CONTENT_CAP + 10)
    (repo / "big.txt").write_text(big)
    (repo / "run.log").write_text("ignored\n")
    section, report = capture(repo)
    untracked = section["untracked"]
    assert set(untracked) == {"notes.txt", "sub/blob.bin", "big.txt"}
    assert untracked["notes.txt"] == {
        "size": 6,
        "sha256": hashlib.sha256(b"hello\n").hexdigest(),
        "content": "hello\n",
    }
    assert untracked["sub/blob.bin"]["binary"] is True
    assert "content" not in untracked["sub/blob.bin"]
    assert untracked["big.txt"]["truncated"] is True and "content" not in untracked["big.txt"]
    assert untracked["big.txt"]["sha256"] == hashlib.sha256(big.encode()).hexdigest()
    assert {"what": "code.untracked.big.txt", "why": "content not stored: over the size cap"} in (
        report.skipped
    )
    assert section["dirty"] is True and section["changed"] == {}


def test_unreadable_untracked_file_is_reported_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "secret.txt").write_text("data\n")

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied")

    # Tests run as root here, so chmod cannot make a file unreadable: refuse at open() instead.
    monkeypatch.setattr(code_module, "open", refuse, raising=False)
    section, report = capture(repo)
    assert section["untracked"]["secret.txt"] == {"size": 5, "sha256": None}
    assert {"what": "code.untracked.secret.txt", "why": "unreadable: PermissionError"} in (
        report.skipped
    )


def test_huge_diff_is_capped_and_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "mod0.py").write_text("".join(f"line {i}\n" for i in range(2000)))
    monkeypatch.setattr(code_module, "DIFF_CAP", 256)
    section, report = capture(repo)
    assert section["diff_truncated"] is True
    assert len(section["diff"].encode()) <= 256
    assert section["diff_bytes"] > 256
    full = subprocess.run(
        [
            "git",
            "diff",
            "HEAD",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "--submodule=short",
        ],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout
    assert section["diff_sha256"] == hashlib.sha256(full).hexdigest()
    assert any(s["what"] == "code.diff" and "truncated" in s["why"] for s in report.skipped)


def test_detached_head(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    first = git(repo, "rev-parse", "HEAD")
    (repo / "mod0.py").write_text("x = 'second'\n")
    git(repo, "commit", "-q", "-am", "second")
    git(repo, "checkout", "-q", "--detach", first)
    section, report = capture(repo)
    assert section["detached"] is True and section["branch"] is None
    assert section["commit"] == first
    assert report.errors == []


def test_repository_without_commits(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "a.py").write_text("a = 1\n")
    git(repo, "add", "a.py")
    section, _ = capture(repo)
    assert section["git"] is True and section["commit"] is None
    assert "+a = 1" in section["diff"]
    assert section["changed"] == {"a.py": "A."}


def test_outside_git_is_recorded_plainly(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    section, report = capture(plain)
    assert section["git"] is False and section["reason"] == "not a git repository"
    assert section["commit"] is None and section["untracked"] == {}
    assert report.skipped[0]["what"] == "code"
    assert report.errors == []


def test_no_git_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path / "repo")
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    section, report = capture(repo)
    assert section["git"] is False and section["reason"] == "git executable not found"
    assert {"what": "code", "why": "git executable not found on PATH"} in report.skipped


def test_remote_credentials_are_stripped(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    git(repo, "remote", "add", "origin", f"https://bob:{GHP}@github.com/org/repo.git")
    git(repo, "remote", "add", "mirror", "git@gitlab.com:org/repo.git")
    section, report = capture(repo)
    assert section["remote_url"] == "https://github.com/org/repo.git"
    assert section["remotes"] == {
        "origin": "https://github.com/org/repo.git",
        "mirror": "git@gitlab.com:org/repo.git",
    }
    assert "code.remote_url" in report.redacted
    assert GHP not in repr(section) and GHP not in repr(report.to_dict(0.0))


def test_secrets_in_diff_and_untracked_content_are_masked(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "mod0.py").write_text(f'HF = "{GHP}"\n')
    (repo / ".env").write_text("WANDB_API_KEY=plainvalue123\nBATCH=4\n")
    section, report = capture(repo)
    assert GHP not in section["diff"] and REDACTED in section["diff"]
    assert section["untracked"][".env"]["content"] == f"WANDB_API_KEY={REDACTED}\nBATCH=4\n"
    assert {"code.diff", "code.untracked..env"} <= set(report.redacted)


def test_submodule_commits(tmp_path: Path) -> None:
    lib = make_repo(tmp_path / "lib")
    repo = make_repo(tmp_path / "repo")
    git(repo, "submodule", "add", "-q", str(lib), "vendor/lib")
    git(repo, "commit", "-q", "-m", "add submodule")
    section, report = capture(repo)
    assert section["submodules"] == {"vendor/lib": git(lib, "rev-parse", "HEAD")}
    assert report.errors == []


def test_capture_from_a_subfolder_reports_root_relative_paths(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "pkg").mkdir()
    (repo / "pkg" / "new.py").write_text("n = 1\n")
    section, _ = capture(repo / "pkg")
    assert section["root"] == str(repo)
    assert list(section["untracked"]) == ["pkg/new.py"]


def test_file_names_with_spaces_and_renames(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    git(repo, "mv", "mod0.py", "renamed file.py")
    section, _ = capture(repo)
    assert section["changed"] == {"renamed file.py": "R."}
    assert os.path.basename(section["root"]) == "repo"
