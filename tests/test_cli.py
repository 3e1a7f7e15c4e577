"""CLI-runner tests of `reprolog` against stores built by real runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import reprolog
from reprolog._cli import main


def cli(store: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--dir", str(store), *args])


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """Three real runs: two lr values in experiment 'sweep', one in 'other'."""
    for name, lr, experiment in (
        ("slow", 0.01, "sweep"),
        ("fast", 0.1, "sweep"),
        ("x", 0.1, "other"),
    ):
        run = reprolog.init(
            name=name, experiment=experiment, dir=tmp_path, params={"lr": lr, "bs": 4}
        )
        for step in range(5):
            run.log({"loss": 1.0 / (1 + step * lr * 10)}, step=step)
        run.finish()
    return tmp_path


def test_ls_lists_runs_with_varying_params_and_final_metrics(store: Path) -> None:
    res = cli(store, "ls")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split()[0] == "params"  # the group line above the headers
    header = lines[1].split()
    assert header[:6] == ["id", "name", "experiment", "status", "duration", "start"]
    assert "lr" in header and "loss" in header
    assert "bs" not in header  # the same in every run: not shown
    assert len(lines) == 6  # group line, headers, 3 runs, a footnote counting bs
    assert all("completed" in line for line in lines[2:5])


def test_ls_experiment_where_sort_limit(store: Path) -> None:
    res = cli(store, "ls", "-e", "sweep", "--where", '"params.lr" > 0.05', "--json")
    assert res.exit_code == 0, res.output
    assert [r["name"] for r in json.loads(res.output)] == ["fast"]
    res = cli(store, "ls", "--sort", "lr", "--json")
    assert json.loads(res.output)[0]["name"] == "slow"
    res = cli(store, "ls", "--sort", "-loss", "--limit", "1")
    assert "slow" in res.output and "2 more runs" in res.output


def test_show_prints_every_section(store: Path) -> None:
    res = cli(store, "show", "slow")
    assert res.exit_code == 0, res.output
    for title in ("Params", "Metrics", "Artifacts", "Environment", "Code", "Command",
                  "Seeds and RNG state", "Determinism", "Data", "Capture report"):  # fmt: skip
        assert title in res.output
    assert "0.01" in res.output and "loss" in res.output


def test_metrics_csv_and_json(store: Path) -> None:
    res = cli(store, "metrics", "slow", "--key", "loss", "--csv")
    assert res.exit_code == 0, res.output
    rows = res.output.strip().splitlines()
    assert rows[0].startswith("key,step,epoch,value")
    assert len(rows) == 6
    res = cli(store, "metrics", "fast", "--json")
    points = json.loads(res.output)
    assert [p["step"] for p in points] == [0, 1, 2, 3, 4]
    assert points[1]["value"] == pytest.approx(0.5)


def test_sql(store: Path) -> None:
    res = cli(store, "sql", "SELECT count(*) AS n FROM runs WHERE experiment = 'sweep'", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output) == [{"n": 2}]


def test_diff_exit_status(store: Path) -> None:
    res = cli(store, "diff", "slow", "fast")
    assert res.exit_code == 1, res.output
    assert "params.lr" in res.output and "diverged at step 1" in res.output
    res = cli(store, "diff", "fast", "fast")
    assert res.exit_code == 0, res.output
    assert "do not differ" in res.output
    res = cli(store, "diff", "slow", "fast", "--json")
    body = json.loads(res.output)
    assert body["differs"] is True
    assert body["differences"][0]["key"] == "params.lr"
    assert body["metrics"][0]["step"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "nope"), "no run matches 'nope'"),
        (("show", "0"), "'0' matches 3 runs"),
        (("diff", "slow", "nope"), "no run matches 'nope'"),
        (("sql", "SELEC 1"), "SQL error"),
        (("ls", "--where", "lr >"), "bad --where predicate"),
        (("ls", "--sort", "zzz"), "cannot sort by 'zzz'"),
        (("export", "slow"), "choose one of"),
    ],
)
def test_errors_are_one_clean_line_with_exit_code_2(
    store: Path, args: tuple[str, ...], message: str
) -> None:
    res = cli(store, *args)
    assert res.exit_code == 2
    assert message in res.output
    assert "Traceback" not in res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    if args[0] != "export":  # a usage error also prints the usage line, as click does
        assert len(lines) == 1, res.output


def test_no_store_is_a_clean_error(tmp_path: Path) -> None:
    res = cli(tmp_path / "missing", "ls")
    assert res.exit_code == 2
    assert res.output.startswith("Error: no reprolog store found")


def test_help_documents_exit_codes() -> None:
    for args in ((), ("diff",), ("ls",), ("gc",)):
        res = CliRunner().invoke(main, [*args, "--help"])
        assert res.exit_code == 0
        assert "Exit codes:" in res.output and "1  diff only: the runs differ" in res.output


def test_ls_of_many_rows_prints_plain_columns(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reprolog._cli import _list

    monkeypatch.setattr(_list, "RICH_MAX_ROWS", 1)
    res = cli(store, "ls", "--limit", "0", "--sort", "name")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()[1:5]  # below the params/metrics group line
    header = ["id", "name", "experiment", "status", "duration", "start", "lr", "loss"]
    assert lines[0].split() == header
    assert [ln.split()[1] for ln in lines[1:]] == ["fast", "slow", "x"]
    assert len({ln.index("completed") for ln in lines[1:]}) == 1  # aligned
