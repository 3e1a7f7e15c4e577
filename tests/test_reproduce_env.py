"""`reprolog reproduce --env recorded`: real venvs rebuilt from a record (uv, and pip), cached,
with the recorded versions; `--strict` on an ML-relevant mismatch; the venv cache key."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import reprolog
from reprolog._cli import main
from reprolog._reproduce import ReproduceError, reproduce
from reprolog._reproduce._venv import build_env, find_interpreter, requirements_of, venv_packages

ROOT = Path(__file__).resolve().parents[1]
UV = Path(sys.executable).parent / "uv"
OLD_IDNA = "3.6"  # a small pure-Python package, older than the one this environment has
OLD_NUMPY = "2.3.5"  # an ML-relevant package, older than this environment's

SCRIPT = """\
import idna
import numpy as np
import reprolog
from reprolog_sklearn import Tracked
from sklearn.linear_model import SGDClassifier

rng = np.random.default_rng(0)
X = rng.normal(size=(200, 5))
y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
with reprolog.init(params={"idna": idna.__version__}) as run:
    model = Tracked(SGDClassifier(max_iter=20, tol=None, random_state=0))
    model.fit(X, y)
    for i, loss in enumerate(np.cumsum(model.predict(X))):
        run.log({"pred_cumsum": float(loss)}, step=i)
print(run.id)
"""

pytestmark = pytest.mark.skipif(
    not UV.is_file(), reason="uv is not installed (reprolog[reproduce])"
)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, str]]:
    """A user venv (reprolog, scikit-learn, old idna and numpy), a repo, a run recorded there."""
    base = tmp_path_factory.mktemp("recorded")
    env = {
        **os.environ,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": str(base / "gitconfig"),
        "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@example.com",
    }  # fmt: skip
    venv = base / "uservenv"
    python = venv / "bin" / "python"
    subprocess.run([str(UV), "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    done = subprocess.run(
        [str(UV), "pip", "install", "-q", "--python", str(python),
         "--index-strategy", "unsafe-best-match", "-e", str(ROOT),
         "-e", str(ROOT / "integrations/sklearn"), "scikit-learn",
         f"idna=={OLD_IDNA}", f"numpy=={OLD_NUMPY}"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    repo = base / "repo"
    repo.mkdir()
    (repo / "train.py").write_text(SCRIPT)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", *args], cwd=repo, check=True, env=env, capture_output=True)
    store = base / "store"
    proc = subprocess.run(
        [str(python), "train.py"], cwd=repo, capture_output=True, text=True,
        env={**env, "REPROLOG_DIR": str(store)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    yield store, venv, proc.stdout.strip().splitlines()[-1]


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPROLOG_CACHE_DIR", str(tmp_path.parent / "reprolog-cache"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)


def test_recorded_env_reproduces_identical_with_the_recorded_versions(
    recorded: tuple[Path, Path, str],
) -> None:
    store, _, original = recorded
    env = reprolog.Store(store).run(original).section("environment")
    assert env["packages"]["idna"] == OLD_IDNA and env["installer"] == "uv"
    assert env["package_sources"]["reprolog"]["kind"] == "editable"
    first = reproduce(original, store=store, env="recorded")
    assert first.verdict == "identical", (first.error, first.diff, first.notes)
    assert first.env_mode == "recorded" and first.venv is not None
    built = venv_packages(first.venv)
    assert built["idna"] == OLD_IDNA and built["numpy"] == OLD_NUMPY
    assert first.env_differences == []  # the venv matches the record
    restored = {d.name: (d.recorded, d.actual) for d in first.restored}
    current_idna = __import__("idna").__version__
    assert restored["idna"] == (OLD_IDNA, current_idna) != (OLD_IDNA, OLD_IDNA)
    new = reprolog.Store(store).run(str(first.new))
    assert new.section("environment")["packages"]["idna"] == OLD_IDNA
    assert new.params["idna"] == OLD_IDNA
    # The CLI shows it; the second reproduce reuses the venv from the cache.
    res = CliRunner().invoke(
        main, ["--dir", str(store), "reproduce", original, "--env", "recorded"]
    )
    assert res.exit_code == 0, res.output
    assert "venv reused from the cache" in res.output and "Verdict: identical" in res.output
    here = __import__("numpy").__version__
    assert f"rebuilt as recorded: numpy {OLD_NUMPY} (this environment: {here})" in res.output


def test_strict_refuses_an_ml_mismatch_in_the_current_env(recorded: tuple[Path, Path, str]) -> None:
    store, _, original = recorded
    with pytest.raises(ReproduceError, match=rf"--strict: .*numpy {OLD_NUMPY} → "):
        reproduce(original, store=store, strict=True)
    res = CliRunner().invoke(main, ["--dir", str(store), "reproduce", original, "--strict"])
    assert res.exit_code == 2 and res.output.startswith("Error: --strict")
    plan = reproduce(original, store=store, dry_run=True)
    assert [d.name for d in plan.env_differences][:1] == ["numpy"]  # ML packages rank first
    assert next(d for d in plan.env_differences if d.name == "idna").ml is False


def test_pip_fallback_builds_the_recorded_version(tmp_path: Path) -> None:
    env = {
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "python_executable": sys.executable,
        "packages": {"idna": OLD_IDNA},
    }
    built = build_env(env, None, installer="pip")
    assert built.tool == "pip" and not built.cached
    assert venv_packages(built.path)["idna"] == OLD_IDNA
    again = build_env(env, None, installer="pip")
    assert again.cached and again.path == built.path


def test_requirements_from_sources(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "sub").mkdir(parents=True)
    env = {
        "packages": {"mine": "0.1", "vcsdep": "1.0", "gone": "2.0", "numpy": "2.0.0"},
        "package_sources": {
            "mine": {"kind": "editable", "url": (repo / "sub").as_uri()},
            "vcsdep": {"kind": "vcs", "vcs": "git", "url": "https://h/r.git", "commit": "c" * 40},
            "gone": {"kind": "directory", "url": "file:///nowhere/gone"},
        },
    }
    reqs = requirements_of(env, str(repo))
    assert reqs.project == {"mine": ("sub", True)}
    assert reqs.lines == ["numpy==2.0.0", f"vcsdep @ git+https://h/r.git@{'c' * 40}"]
    assert any("gone 2.0 was installed from file:///nowhere/gone" in n for n in reqs.notes)


def test_no_interpreter_of_the_recorded_version_is_one_line() -> None:
    with pytest.raises(ReproduceError, match=r"no CPython 2\.7 interpreter .*--env current"):
        find_interpreter({"python_version": "2.7.18", "python_implementation": "CPython"})


def test_json_of_a_recorded_env_run(recorded: tuple[Path, Path, str]) -> None:
    store, _, original = recorded
    res = CliRunner().invoke(
        main, ["--dir", str(store), "reproduce", original, "--env", "recorded", "--json"]
    )
    got = json.loads(res.output)
    assert got["verdict"] == "identical" and got["env_mode"] == "recorded"
    assert got["venv"] and shutil.which(got["python"]) is not None


EDITABLE_PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.25"]
build-backend = "hatchling.build"

[project]
name = "mypkg"
version = "0.1.0"

[project.scripts]
my-train = "mypkg.train:main"

[tool.hatch.build.targets.wheel]
packages = ["src/mypkg"]
"""

EDITABLE_TRAIN = """\
import reprolog
from mypkg.model import SCALE

def main():
    with reprolog.init(params={"scale": SCALE}) as run:
        for step in range(3):
            run.log({"y": SCALE * step}, step=step)
"""


def test_editable_project_is_installed_from_the_work_tree(tmp_path: Path) -> None:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": str(tmp_path / "gc"),
           "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@example.com"}  # fmt: skip
    repo = tmp_path / "proj"
    pkg = repo / "src" / "mypkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "model.py").write_text("SCALE = 2.0\n")
    (pkg / "train.py").write_text(EDITABLE_TRAIN)
    (repo / "pyproject.toml").write_text(EDITABLE_PYPROJECT)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", *args], cwd=repo, check=True, env=env, capture_output=True)
    venv = tmp_path / "uservenv"
    python = venv / "bin" / "python"
    subprocess.run([str(UV), "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    done = subprocess.run(
        [str(UV), "pip", "install", "-q", "--python", str(python),
         "--index-strategy", "unsafe-best-match", "-e", str(ROOT), "-e", str(repo)],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    store = tmp_path / "store"
    subprocess.run(
        [str(venv / "bin" / "my-train")], cwd=repo, check=True,
        env={**env, "REPROLOG_DIR": str(store)},
    )  # fmt: skip
    original = str(reprolog.Store(store).run_ids()[-1])
    rec = reprolog.Store(store).run(original)
    assert rec.section("environment")["package_sources"]["mypkg"]["kind"] == "editable"
    # The checkout moves on; the rebuilt venv must run the recorded commit's code.
    (pkg / "model.py").write_text("SCALE = 9.0\n")
    result = reproduce(original, store=store, env="recorded")
    assert result.verdict == "identical", (result.error, result.diff, result.notes)
    assert result.launch == "console_script" and result.venv is not None
    assert result.command[1] == os.path.join(result.venv, "bin", "my-train")
    new = reprolog.Store(store).run(str(result.new))
    assert new.params["scale"] == 2.0
    source = new.section("environment")["package_sources"]["mypkg"]
    assert source["kind"] == "editable" and source["url"] == Path(result.workdir).as_uri()


def test_a_failed_build_is_one_line_and_leaves_no_venv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPROLOG_CACHE_DIR", str(tmp_path / "own-cache"))
    env = {
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "packages": {"idna": "0.0.0.999"},  # no such release
    }
    with pytest.raises(ReproduceError, match=r"uv pip install failed .*idna==0\.0\.0\.999") as got:
        build_env(env, None)
    assert "\n" not in str(got.value)
    venvs = tmp_path / "own-cache" / "venvs"
    assert [p.name for p in venvs.iterdir() if p.is_dir()] == []
