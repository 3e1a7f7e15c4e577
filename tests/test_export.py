"""`reprolog export`: requirements, a patch that `git apply` accepts, and JSON, from real runs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

import reprolog
from reprolog._cli import main
from reprolog._store._export import new_file_diff


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@example.com")
    _git(repo, "config", "user.name", "t")
    (repo / "train.py").write_text("lr = 0.1\nepochs = 3\n")
    (repo / "pkg" / "model.py").write_text("layers = 2\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "init")
    monkeypatch.chdir(repo)
    return repo


def test_patch_applies_on_the_recorded_commit(repo: Path, tmp_path: Path) -> None:
    (repo / "train.py").write_text("lr = 0.05\nepochs = 3\n")  # unstaged
    (repo / "pkg" / "model.py").write_text("layers = 3\n")
    _git(repo, "add", "pkg/model.py")  # staged
    (repo / "notes.txt").write_text("new untracked file\nno newline at end")
    (repo / "empty.cfg").write_text("")
    store = tmp_path / "store"
    run = reprolog.init(dir=store)
    run.finish()
    expected = {
        p: (repo / p).read_text() for p in ("train.py", "pkg/model.py", "notes.txt", "empty.cfg")
    }

    res = CliRunner().invoke(main, ["--dir", str(store), "export", run.id, "--patch"])
    assert res.exit_code == 0, res.output
    patch = tmp_path / "run.patch"
    patch.write_text(res.output)

    # Back to the recorded commit, clean, then apply.
    _git(repo, "reset", "-q", "--hard")
    _git(repo, "clean", "-qfd")
    assert not (repo / "notes.txt").exists()
    _git(repo, "apply", str(patch))
    for path, text in expected.items():
        assert (repo / path).read_text() == text


def test_patch_of_a_run_outside_git_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    run = reprolog.init(dir=tmp_path / "store")
    run.finish()
    res = CliRunner().invoke(main, ["--dir", str(tmp_path / "store"), "export", run.id, "--patch"])
    assert res.exit_code == 2
    assert "recorded no git state" in res.output


def test_requirements_and_json(tmp_path: Path) -> None:
    run = reprolog.init(dir=tmp_path, params={"lr": 0.1})
    run.finish()
    out = tmp_path / "requirements.txt"
    res = CliRunner().invoke(
        main, ["--dir", str(tmp_path), "export", run.id, "--requirements", "-o", str(out)]
    )
    assert res.exit_code == 0, res.output
    lines = out.read_text().splitlines()
    assert lines[0].startswith(f"# requirements of reprolog run {run.id}")
    assert "numpy==" + __import__("numpy").__version__ in lines
    names = [line.split("==")[0] for line in lines[1:]]
    assert names == sorted(names)

    res = CliRunner().invoke(main, ["--dir", str(tmp_path), "export", run.id, "--json"])
    record = json.loads(res.output)
    assert record["id"] == run.id and record["params"] == {"lr": 0.1}


@pytest.mark.parametrize(
    ("content", "tail"),
    [
        ("a\nb\n", "+b\n"),
        ("a\nb", "\\ No newline at end of file\n"),
        ("", "new file mode 100644\n"),
    ],
)
def test_new_file_diff(content: str, tail: str) -> None:
    assert new_file_diff("x.txt", content).endswith(tail)
