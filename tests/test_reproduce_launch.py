"""`reprolog reproduce` of every way a training is launched: -m modules, console scripts,
torchrun; plus unseeded entropy, a missing commit, the JSON verdict and the show link."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import reprolog
from reprolog._cli import main
from reprolog._reproduce import ReproduceError, reproduce
from tests._git import git, isolate_git

TRAIN_MODULE = """\
import sys
import numpy as np
import reprolog
from mypkg.model import scale

def main() -> int:
    run = reprolog.init(params={"scale": scale()})
    rng = np.random.default_rng()  # unseeded: fresh OS entropy, recorded and replayed
    w = rng.standard_normal(4)
    for step in range(6):
        w = w * 0.9 + 0.01 * rng.standard_normal(4)
        run.log({"loss": float((w**2).sum())}, step=step)
    run.finish()
    return 0

if __name__ == "__main__":
    sys.exit(main())
"""

PYPROJECT = """\
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


@pytest.fixture(autouse=True)
def _git_and_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_git(tmp_path, monkeypatch)
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A src-layout project with a module entry and a console script, committed."""
    root = tmp_path / "proj"
    pkg = root / "src" / "mypkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "model.py").write_text("def scale():\n    return 2.0\n")
    (pkg / "train.py").write_text(TRAIN_MODULE)
    (root / "pyproject.toml").write_text(PYPROJECT)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    return root


def run_in(cwd: Path, store: Path, *cmd: str, env: dict[str, str] | None = None) -> str:
    full = {**os.environ, "REPROLOG_DIR": str(store), **(env or {})}
    proc = subprocess.run(list(cmd), cwd=cwd, env=full, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return str(reprolog.Store(store).run_ids()[-1])


def test_python_m_module_reproduces_from_the_recorded_commit(project: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    src = {"PYTHONPATH": str(project / "src")}
    original = run_in(project, store, sys.executable, "-m", "mypkg.train", env=src)
    rec = reprolog.Store(store).run(original)
    assert rec.section("command")["entry_kind"] == "module"
    assert rec.section("command")["entry_file"] == str(project / "src/mypkg/train.py")
    # The repository moves on: the re-run must still use the recorded commit's code.
    (project / "src/mypkg/model.py").write_text("def scale():\n    return 5.0\n")
    git(project, "commit", "-qam", "later")
    result = reproduce(original, store=store)
    assert result.verdict == "identical", (result.error, result.diff)
    assert result.command[1:3] == ["-m", "mypkg.train"]
    new = reprolog.Store(store).run(str(result.new))
    assert new.params["scale"] == 2.0
    assert new.section("seeds")["numpy_entropy_replayed"] >= 1
    # Names that are not differences are never causes: PYTHONPATH into the tree, paths.
    assert not any(d.key.startswith("environment.env.PYTHONPATH") for d in result.diff.differences)


@pytest.fixture
def user_venv(tmp_path: Path) -> Path:
    """A venv that sees this test environment's packages (a .pth) and has mypkg installed."""
    venv = tmp_path / "uservenv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    import sysconfig

    parent = sysconfig.get_paths()["purelib"]
    (site / "zz_parent.pth").write_text(f"import site; site.addsitedir({parent!r})\n")
    return venv


def test_console_script_reproduces(project: Path, user_venv: Path, tmp_path: Path) -> None:
    uv = Path(sys.executable).parent / "uv"
    python = user_venv / "bin" / "python"
    done = subprocess.run(
        [str(uv), "pip", "install", "-q", "--python", str(python), "--no-deps",
         "-e", str(project)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    store = tmp_path / "store"
    script = user_venv / "bin" / "my-train"
    original = run_in(project, store, str(script))
    command = reprolog.Store(store).run(original).section("command")
    assert command["launcher"]["kind"] == "console_script"
    assert command["launcher"]["console_script"]["entry_point"] == "mypkg.train:main"
    assert command["entry_file"] == str(project / "src/mypkg/train.py")
    # An edit after the run: the editable install now points at it, the re-run must not.
    (project / "src/mypkg/model.py").write_text("def scale():\n    return 9.0\n")
    # reproduce from the user's venv, as the user would
    proc = subprocess.run(
        [str(python), "-m", "reprolog._cli", "--dir", str(store), "reproduce", original, "--json"],
        cwd=project, capture_output=True, text=True,
        env={**os.environ, "REPROLOG_DIR": str(store)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    got = json.loads(proc.stdout)
    assert got["verdict"] == "identical" and got["command"][1] == str(script)
    assert reprolog.Store(store).run(got["new"]).params["scale"] == 2.0


def test_missing_commit_is_one_clean_error(project: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    (project / "src/mypkg/model.py").write_text("def scale():\n    return 3.0\n")
    git(project, "commit", "-qam", "to be dropped")
    dropped = git(project, "rev-parse", "HEAD")
    original = run_in(
        project,
        store,
        sys.executable,
        "-m",
        "mypkg.train",
        env={"PYTHONPATH": str(project / "src")},
    )
    git(project, "reset", "-q", "--hard", "HEAD~1")
    git(project, "reflog", "expire", "--expire=now", "--all")
    git(project, "gc", "-q", "--prune=now")
    with pytest.raises(ReproduceError, match=f"commit {dropped} is not in repository"):
        reproduce(original, store=store)
    res = CliRunner().invoke(main, ["--dir", str(store), "reproduce", original])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and dropped in lines[0]


def test_json_verdict_and_show_link_both_ways(project: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    original = run_in(
        project,
        store,
        sys.executable,
        "-m",
        "mypkg.train",
        env={"PYTHONPATH": str(project / "src")},
    )
    res = CliRunner().invoke(main, ["--dir", str(store), "reproduce", original, "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)
    for key in ("verdict", "first_divergent", "causes", "env_differences", "checkpoints", "new"):
        assert key in got
    assert got["verdict"] == "identical" and got["causes"] == [] and got["env_mode"] == "current"
    new = got["new"]
    shown_new = CliRunner().invoke(main, ["--dir", str(store), "show", new]).output
    assert any(
        ln.split() == ["reproduces", original, "(verdict:", "identical)"]
        for ln in shown_new.splitlines()
    ), shown_new
    shown_old = CliRunner().invoke(main, ["--dir", str(store), "show", original]).output
    assert "reproduced by" in shown_old and new in shown_old


STEPPED = """\
import sys
import numpy as np
import reprolog
from reprolog import RunOwner

run = reprolog.init()
limit = RunOwner("plain").max_steps
data = [float(x) for x in open("data.txt").read().split()]
rng = np.random.default_rng(0)
for step in range(len(data)):
    if limit is not None and step >= limit:
        break
    run.log({"loss": data[step] + rng.random()}, step=step)
run.finish()
"""


def test_steps_stop_the_rerun_and_compare_the_prefix(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "train.py").write_text(STEPPED)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    (root / "data.txt").write_text(" ".join(str(i) for i in range(40)) + "\n")
    store = tmp_path / "store"
    original = run_in(root, store, sys.executable, "train.py")
    short = reproduce(original, store=store, steps=5)
    assert short.verdict == "identical", (short.error, short.diff)
    assert short.steps == 5 and short.new_steps == 4
    assert len(reprolog.Store(store).run(str(short.new)).metrics(keys=["loss"])) == 5


EARLY_ENTROPY = """\
import numpy as np
rng = np.random.default_rng()  # fresh OS entropy, drawn before reprolog can see it
import reprolog
run = reprolog.init()
for step in range(3):
    run.log({"x": float(rng.random())}, step=step)
run.finish()
"""


def test_entropy_the_record_cannot_replay_is_named_as_the_cause(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "train.py").write_text(EARLY_ENTROPY)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    store = tmp_path / "store"
    original = run_in(root, store, sys.executable, "train.py")
    result = reproduce(original, store=store)
    assert result.verdict == "diverged" and result.diverged_at == 0
    assert result.causes[0].category == "entropy", result.causes
    assert "before `import reprolog`" in result.causes[0].explanation
    assert result.likely_cause is not None and result.likely_cause.startswith("entropy:")


TORCHRUN = """\
import torch
import torch.distributed as dist
import reprolog

dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
w = torch.zeros(3)
run = reprolog.init() if rank == 0 else None
for step in range(4):
    grad = torch.randn(3) * (rank + 1)
    dist.all_reduce(grad)
    w -= 0.1 * grad
    if run is not None:
        run.log({"w0": float(w[0])}, step=step)
if run is not None:
    run.finish()
dist.destroy_process_group()
"""


def test_torchrun_launch_is_recorded_and_relaunched(tmp_path: Path) -> None:
    torchrun = Path(sys.executable).parent / "torchrun"
    if not torchrun.is_file():
        pytest.skip("torchrun is not installed")
    root = tmp_path / "repo"
    root.mkdir()
    (root / "train.py").write_text(TORCHRUN)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    store = tmp_path / "store"
    launch = [str(torchrun), "--standalone", "--nproc-per-node", "2", "train.py"]
    original = run_in(root, store, *launch, env={"OMP_NUM_THREADS": "1"})
    launcher = reprolog.Store(store).run(original).section("command")["launcher"]
    assert launcher["kind"] == "torchrun" and launcher["from"] == "parent process"
    assert launcher["argv"][-4:] == ["--standalone", "--nproc-per-node", "2", "train.py"]
    result = reproduce(original, store=store, timeout=300)
    assert result.verdict == "identical", (result.error, result.diff)
    assert "--nproc-per-node" in result.command and result.command[-1] == "train.py"


def test_notebook_run_is_re_executed_with_nbclient(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    root = tmp_path / "repo"
    root.mkdir()
    (root / "helpers.py").write_text("SCALE = 3.0\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    store = tmp_path / "store"
    for name in list(os.environ):
        if name.startswith("REPROLOG_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("REPROLOG_DIR", str(store))
    monkeypatch.setenv("REPROLOG_NOTEBOOK", str(root / "analysis.ipynb"))
    cells = [
        "import numpy as np\nimport reprolog\nfrom helpers import SCALE",
        "run = reprolog.init('nb')\nrng = np.random.default_rng()",
        "for step in range(4):\n    run.log({'x': SCALE * float(rng.random())}, step=step)",
        "run.finish()",
    ]
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbclient.NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(root)}}
    ).execute()
    original = reprolog.Store(store).run_ids()[-1]
    assert reprolog.Store(store).run(original).section("notebook")["cells"] == cells
    (root / "helpers.py").write_text("SCALE = 5.0\n")  # after the run: not what the cells saw
    git(root, "commit", "-qam", "later")
    monkeypatch.delenv("REPROLOG_NOTEBOOK")
    result = reproduce(original, store=store, timeout=300)
    assert result.launch == "notebook" and result.command[1:3] == [
        "-m",
        "reprolog._reproduce._notebook",
    ]
    assert result.verdict == "identical", (result.error, result.diff)
    new = reprolog.Store(store).run(str(result.new))
    assert new.section("notebook")["cells"] == cells
    # the notebook's path, mapped into the work tree, and so not a difference
    assert new.section("notebook")["path"] == os.path.join(result.workdir, "analysis.ipynb")
    assert not [d for d in result.diff.differences if d.key.startswith(("notebook.", "command."))]


def test_reprolog_run_launch_is_relaunched_through_reprolog_run(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "train.py").write_text(
        "import numpy as np, reprolog\nrun = reprolog.init()\nrng = np.random.default_rng()\n"
        "for s in range(3):\n    run.log({'x': float(rng.random())}, step=s)\nrun.finish()\n"
    )
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    store = tmp_path / "store"
    cli = [sys.executable, "-m", "reprolog._cli", "run", "--", sys.executable, "train.py"]
    original = run_in(root, store, *cli)
    launcher = reprolog.Store(store).run(original).section("command")["launcher"]
    assert launcher["argv"] == [sys.executable, "train.py"]
    assert launcher["from"] == "REPROLOG_LAUNCH" and launcher["kind"] == "python"
    result = reproduce(original, store=store, timeout=300)
    assert result.command[1:5] == ["-m", "reprolog._cli", "run", "--"]
    assert result.command[5:] == [sys.executable, "train.py"]
    assert result.verdict == "identical", (result.error, result.diff)


def test_accelerate_launch_is_recorded_and_relaunched(tmp_path: Path) -> None:
    accelerate = Path(sys.executable).parent / "accelerate"
    if not accelerate.is_file():
        pytest.skip("accelerate is not installed")
    root = tmp_path / "repo"
    root.mkdir()
    (root / "train.py").write_text(
        "import random, reprolog\nrun = reprolog.init()\n"
        "for s in range(3):\n    run.log({'x': random.random()}, step=s)\nrun.finish()\n"
    )
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    store = tmp_path / "store"
    flags = ["--cpu", "--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no",
             "--dynamo_backend", "no"]  # fmt: skip
    original = run_in(root, store, str(accelerate), "launch", *flags, "train.py")
    launcher = reprolog.Store(store).run(original).section("command")["launcher"]
    assert launcher["kind"] == "accelerate" and launcher["argv"][-1] == "train.py"
    result = reproduce(original, store=store, timeout=300)
    assert result.launch == "accelerate" and "launch" in result.command
    assert result.verdict == "identical", (result.error, result.diff)


def test_another_name_of_the_same_interpreter_is_not_a_difference(tmp_path: Path) -> None:
    other = Path(sys.executable).with_name("python3")
    if not other.exists() or other == Path(sys.executable):
        pytest.skip("no python3 beside this interpreter")
    root = tmp_path / "repo"
    root.mkdir()
    (root / "train.py").write_text(STEPPED)
    (root / "data.txt").write_text("1 2 3\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    store = tmp_path / "store"
    original = run_in(root, store, str(other), "train.py")
    assert reprolog.Store(store).run(original).section("command")["executable"] == str(other)
    result = reproduce(original, store=store)  # re-run with sys.executable: .../python
    assert result.verdict == "identical" and result.diff is not None
    assert result.diff.differences == [], result.diff.differences
    assert {"command.executable", "environment.python_executable"} <= {
        d.key for d in result.expected
    }


def test_script_importing_an_editable_src_project_runs_the_recorded_code(
    project: Path, user_venv: Path, tmp_path: Path
) -> None:
    uv = Path(sys.executable).parent / "uv"
    python = user_venv / "bin" / "python"
    done = subprocess.run(
        [str(uv), "pip", "install", "-q", "--python", str(python), "--no-deps", "-e", str(project)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (project / "run.py").write_text("from mypkg.train import main\nmain()\n")
    git(project, "add", "run.py")
    git(project, "commit", "-qm", "a script at the root")
    store = tmp_path / "store"
    original = run_in(project, store, str(python), "run.py")
    # The editable install points at the checkout, which moves on after the run.
    (project / "src/mypkg/model.py").write_text("def scale():\n    return 8.0\n")
    proc = subprocess.run(
        [str(python), "-m", "reprolog._cli", "--dir", str(store), "reproduce", original, "--json"],
        cwd=project, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    got = json.loads(proc.stdout)
    assert got["verdict"] == "identical"
    assert reprolog.Store(store).run(got["new"]).params["scale"] == 2.0


NO_LIMIT = """\
import sys
import reprolog
path = sys.argv[1]
data = [float(x) for x in open(path).read().split()]
run = reprolog.init()
run.log_dataset("train", path)
for step, value in enumerate(data):
    run.log({"loss": value}, step=step)
run.finish()
"""


def test_steps_on_a_training_without_steps_and_a_json_divergence(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "train.py").write_text(NO_LIMIT)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    data = tmp_path / "data.txt"
    data.write_text("1 2 3 4\n")
    store = tmp_path / "store"
    original = run_in(root, store, sys.executable, "train.py", str(data))
    whole = reproduce(original, store=store, steps=2)
    assert whole.verdict == "identical" and whole.new_steps == 3
    assert any("did not stop early" in n for n in whole.notes)
    data.write_text("1 2 9 4 \n")  # the data changed after the run
    res = CliRunner().invoke(main, ["--dir", str(store), "reproduce", original, "--json"])
    got = json.loads(res.output)
    assert res.exit_code == 1 and got["verdict"] == "diverged"
    assert got["first_divergent"] == {"loss": 2} and got["diverged_at"] == 2
    assert got["causes"][0]["category"] == "data" and got["causes"][0]["source"] == "record"
    assert got["new"] and got["env_differences"] == [] and got["checkpoints"] == []
