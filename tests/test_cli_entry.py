"""The installed `reprolog` command as users run it: a real process, stdout and stderr apart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import reprolog

# The console script pip installed next to this interpreter, not `python -m`: the entry point
# itself is under test.
REPROLOG = Path(sys.executable).with_name("reprolog")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REPROLOG_DIR", "COLUMNS")}
    env.update(extra)
    return env


def cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the installed command; stdout and stderr are kept apart."""
    return subprocess.run(
        [str(REPROLOG), *args],
        cwd=cwd,
        env=_env(**env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def piped(args: list[str], *, cwd: Path) -> tuple[int, str, str]:
    """`reprolog ARGS | head -1` through a real shell; (reprolog's exit status, stdout, stderr)."""
    script = '"$0" "$@" | head -1; exit "${PIPESTATUS[0]}"'
    proc = subprocess.run(
        ["bash", "-c", script, str(REPROLOG), *args],
        cwd=cwd,
        env=_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, proc.stdout, proc.stderr


def _strict_json(text: str) -> Any:
    """Parse JSON as jq would: NaN and Infinity are not JSON."""

    def reject(name: str) -> Any:
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=reject)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder whose `.reprolog` store holds real runs, one of them long and wide."""
    root = tmp_path_factory.mktemp("project")
    store = root / ".reprolog"
    for name, lr in (("slow", 0.01), ("fast", 0.1)):
        with reprolog.init(name, dir=store, capture=False, params={"lr": lr, "bs": 4}) as run:
            for step in range(5):
                run.log({"loss": 1.0 / (1 + step * lr * 10)}, step=step)
    # Output far past a pipe's 64 KiB buffer, so `| head -1` really closes the pipe on it.
    params = {f"layer{i}.width": i for i in range(3000)}
    with reprolog.init("long", dir=store, capture=False, params=params) as run:
        for step in range(20_000):
            run.log({"loss": 1.0 / (step + 1)}, step=step)
    return root


def test_the_console_script_is_installed() -> None:
    assert REPROLOG.is_file() and os.access(REPROLOG, os.X_OK), REPROLOG
    proc = cli("--version", cwd=Path.cwd())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("reprolog, version "), proc.stdout


# ------------------------------------------------------------------------------------ pipes


def test_ls_piped_to_head_prints_the_first_line(project: Path) -> None:
    full = cli("ls", cwd=project)
    assert full.returncode == 0, full.stderr
    status, out, err = piped(["ls"], cwd=project)
    assert out.splitlines() == [full.stdout.splitlines()[0]]
    assert err == ""
    # 1 when head closed the pipe before the footnote was written (a race), as Python and
    # click do on a broken pipe; never a traceback, never 2.
    assert status in (0, 1), (status, err)


@pytest.mark.parametrize(
    "args",
    [
        ["metrics", "long"],  # one rich table
        ["metrics", "long", "--csv"],  # one large click.echo
        ["show", "long"],  # many rich prints
        ["ls", "--wide", "--limit", "0"],  # plain lines, then rich footnotes
        ["sql", "SELECT * FROM metrics", "--json"],
    ],
    ids=lambda a: " ".join(a),
)
def test_a_closed_pipe_ends_the_command_quietly(project: Path, args: list[str]) -> None:
    full = cli(*args, cwd=project)
    assert full.returncode == 0, full.stderr
    status, out, err = piped(args, cwd=project)
    assert out.splitlines() == [full.stdout.splitlines()[0]]
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert err == ""
    # Nothing is printed; the status says the output was cut short (or, when the kernel
    # took the last write whole, that it was not): never a crash or a usage error.
    assert status in (0, 1), (status, err)


# ------------------------------------------------------------------------------------- JSON


@pytest.mark.parametrize(
    ("args", "check"),
    [
        (["ls", "--json"], lambda d: {r["name"] for r in d} == {"slow", "fast", "long"}),
        (["metrics", "slow", "--json"], lambda d: [r["step"] for r in d] == [0, 1, 2, 3, 4]),
        (
            ["sql", "SELECT name FROM runs ORDER BY name", "--json"],
            lambda d: [r["name"] for r in d] == ["fast", "long", "slow"],
        ),
        (["export", "slow", "--json"], lambda d: d["params"] == {"lr": 0.01, "bs": 4}),
    ],
    ids=lambda a: " ".join(a) if isinstance(a, list) else "",
)
def test_json_is_all_of_stdout(project: Path, args: list[str], check: Any) -> None:
    proc = cli(*args, cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert check(_strict_json(proc.stdout)), proc.stdout[:500]


def test_diff_json_is_all_of_stdout_and_exit_1_says_they_differ(project: Path) -> None:
    proc = cli("diff", "slow", "fast", "--json", cwd=project)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == ""
    result = _strict_json(proc.stdout)
    assert isinstance(result, dict) and result, proc.stdout[:500]
    assert "params.lr" in proc.stdout
    same = cli("diff", "slow", "slow", "--json", cwd=project)
    assert same.returncode == 0, same.stderr
    assert isinstance(_strict_json(same.stdout), dict)


# ------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "nope"], "no run matches 'nope'"),
        (["show", "0"], "matches 3 runs"),
        (["sql", "SELECT nope FROM runs"], "SQL error"),
        (["ls", "--where", "lr >"], "bad --where predicate"),
        (["ls", "--sort", "nope"], "cannot sort by 'nope'"),
        (["ls", "--limit", "-1"], "-1 is not in the range"),
        (
            ["export", "slow"],
            "choose one of --requirements, --patch, --json, --pylock or --docker",
        ),
        (["nope"], "No such command 'nope'"),
    ],
    ids=lambda a: " ".join(a) if isinstance(a, list) else "",
)
def test_errors_go_to_stderr_as_one_line_with_exit_2(
    project: Path, args: list[str], message: str
) -> None:
    proc = cli(*args, cwd=project)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, proc.stderr
    assert message in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------------------- store discovery


def test_the_store_is_found_in_the_working_directory_and_its_parents(project: Path) -> None:
    deeper = project / "src" / "pkg"
    deeper.mkdir(parents=True, exist_ok=True)
    for cwd in (project, deeper):
        proc = cli("ls", "--json", cwd=cwd)
        assert proc.returncode == 0, proc.stderr
        assert {r["name"] for r in _strict_json(proc.stdout)} == {"slow", "fast", "long"}


def test_reprolog_dir_names_the_store_without_dir(project: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = cli("show", "slow", cwd=elsewhere, REPROLOG_DIR=str(project / ".reprolog"))
    assert proc.returncode == 0, proc.stderr
    assert "slow" in proc.stdout and "completed" in proc.stdout
    # $REPROLOG_DIR wins over a .reprolog in the working directory.
    other = elsewhere / ".reprolog"
    with reprolog.init("other", dir=other, capture=False):
        pass
    proc = cli("ls", "--json", cwd=elsewhere, REPROLOG_DIR=str(project / ".reprolog"))
    assert {r["name"] for r in _strict_json(proc.stdout)} == {"slow", "fast", "long"}
    proc = cli("ls", "--json", cwd=elsewhere)
    assert [r["name"] for r in _strict_json(proc.stdout)] == ["other"]


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("cwd", "no reprolog store found: no .reprolog in {cwd} or any folder above it"),
        ("env", "no reprolog store found at {path} (named by $REPROLOG_DIR)"),
        ("option", "no reprolog store found at {path} (named by --dir)"),
    ],
)
def test_no_store_says_where_it_looked_in_the_commands_terms(
    tmp_path: Path, how: str, message: str
) -> None:
    cwd = tmp_path / "empty"
    cwd.mkdir()
    missing = tmp_path / "missing"
    env = {"REPROLOG_DIR": str(missing)} if how == "env" else {}
    args = ["--dir", str(missing), "ls"] if how == "option" else ["ls"]
    proc = cli(*args, cwd=cwd, **env)
    assert proc.returncode == 2, proc.stdout
    assert proc.stdout == ""
    assert proc.stderr.startswith("Error: "), proc.stderr
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert message.format(cwd=cwd, path=missing) in proc.stderr
    assert "dir=" not in proc.stderr  # the library's keyword means nothing on a command line
