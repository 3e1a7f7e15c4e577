"""`reprolog export --pylock` (PEP 751, parsed and installed from) and `--dockerfile` (content)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from click.testing import CliRunner

import reprolog
from reprolog._cli import main

UV = Path(sys.executable).parent / "uv"
SCRIPT = """\
import sys
import reprolog
run = reprolog.init(params={"lr": 0.1})
run.log({"loss": 1.0}, step=0)
run.finish()
"""


@pytest.fixture
def recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """A run recorded in a git repo with a remote, an uncommitted edit and a seed variable."""
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "T")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "t@example.com")
    repo = tmp_path / "repo"
    (repo / "sub").mkdir(parents=True)
    (repo / "sub" / "train.py").write_text(SCRIPT)
    for args in (
        ["init", "-q", "-b", "main"],
        ["remote", "add", "origin", "https://example.com/team/proj.git"],
        ["add", "-A"],
        ["commit", "-q", "-m", "init"],
    ):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)
    (repo / "sub" / "train.py").write_text(SCRIPT.replace("0.1", "0.2"))
    store = tmp_path / "store"
    env = {**os.environ, "REPROLOG_DIR": str(store), "PYTHONHASHSEED": "7", "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, "train.py", "--epochs", "3"], cwd=repo / "sub", env=env, check=True
    )
    return store, str(reprolog.Store(store).run_ids()[-1])


def export(store: Path, run: str, *args: str) -> str:
    res = CliRunner().invoke(main, ["--dir", str(store), "export", run, *args])
    assert res.exit_code == 0, res.output
    return res.output


def test_dockerfile_rebuilds_python_packages_code_and_command(recorded: tuple[Path, str]) -> None:
    store, run = recorded
    text = export(store, run, "--dockerfile")
    rec = reprolog.Store(store).run(run)
    env, code = rec.section("environment"), rec.section("code")
    lines = text.splitlines()
    assert lines[0] == "# syntax=docker/dockerfile:1"
    assert f"FROM python:{env['python_version']}-slim" in lines
    assert (
        f"RUN git clone https://example.com/team/proj.git /work/src && git -C /work/src "
        f"checkout --detach {code['commit']}"
    ) in lines
    assert "RUN cd /work/src && git apply --whitespace=nowarn /tmp/run.patch" in lines
    assert '+run = reprolog.init(params={"lr": 0.2})' in text  # the patch is inline
    assert f"numpy=={env['packages']['numpy']}" in lines
    assert any(ln.startswith("RUN pip install --no-cache-dir --no-deps") for ln in lines)
    assert 'ENV PYTHONHASHSEED="7"' in lines and 'ENV OMP_NUM_THREADS="1"' in lines
    assert lines[-2:] == [
        "WORKDIR /work/src/sub",
        'CMD ["python", "train.py", "--epochs", "3"]',
    ]
    # Each inline file ends with its own delimiter, which appears nowhere inside it.
    for i, line in enumerate(lines):
        if line.startswith("COPY <<'"):
            tag = line.split("'")[1]
            assert lines[i + 1 :].count(tag) == 1


@pytest.mark.skipif(not UV.is_file(), reason="uv is not installed (reprolog[reproduce])")
def test_pylock_is_pep751_and_installs(recorded: tuple[Path, str], tmp_path: Path) -> None:
    store, run = recorded
    text = export(store, run, "--pylock")
    doc = tomllib.loads(text)
    rec = reprolog.Store(store).run(run)
    env = rec.section("environment")
    assert doc["lock-version"] == "1.0" and doc["created-by"] == "reprolog"
    assert doc["requires-python"] == f"=={env['python_version']}"
    by_name = {p["name"]: p for p in doc["packages"]}
    for pkg in doc["packages"]:  # the spec: a name, and exactly one kind of source
        sources = [k for k in ("vcs", "directory", "archive") if k in pkg]
        assert pkg["name"] and (len(sources) == 1 or "wheels" in pkg or "sdist" in pkg), pkg
        for wheel in pkg.get("wheels", []):
            assert wheel["hashes"]["sha256"] and wheel["url"].endswith(".whl")
    numpy = by_name["numpy"]
    assert numpy["version"] == env["packages"]["numpy"] and numpy["wheels"]
    assert by_name["reprolog"]["directory"]["editable"] is True
    assert doc["tool"]["reprolog"]["run"] == run
    # A real PEP 751 installer takes it: the index packages of a small slice of it.
    small = {**doc, "packages": [by_name[n] for n in ("idna", "six") if n in by_name]}
    if not small["packages"]:
        pytest.skip("neither idna nor six is in this environment")
    from reprolog._reproduce._export_env import _toml

    lock = tmp_path / "pylock.toml"
    lock.write_text(_toml(small))
    venv = tmp_path / "v"
    subprocess.run([str(UV), "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    done = subprocess.run(
        [str(UV), "pip", "install", "-q", "--preview-features", "pylock",
         "--python", str(venv / "bin" / "python"), "-r", str(lock)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    listed = subprocess.run(
        [str(UV), "pip", "list", "--format", "json", "--python", str(venv / "bin" / "python")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    got = {p["name"]: p["version"] for p in json.loads(listed)}
    for pkg in small["packages"]:
        assert got[pkg["name"]] == pkg["version"]


def test_export_needs_a_format(recorded: tuple[Path, str]) -> None:
    store, run = recorded
    res = CliRunner().invoke(main, ["--dir", str(store), "export", run])
    assert res.exit_code == 2 and "--pylock or --dockerfile" in res.output
