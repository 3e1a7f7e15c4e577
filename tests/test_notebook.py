"""Notebook runs: a real ipykernel run by nbclient records its cells and ends truly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import reprolog

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")


def execute(tmp_path: Path, cells: list[str], *, allow_errors: bool = False) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    client = nbclient.NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()


@pytest.fixture
def kernel_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The kernel inherits this process's environment: point it at a store of its own."""
    for name in list(os.environ):
        if name.startswith("REPROLOG_"):
            monkeypatch.delenv(name)
    store = tmp_path / "store"
    monkeypatch.setenv("REPROLOG_DIR", str(store))
    monkeypatch.setenv("REPROLOG_NOTEBOOK", str(tmp_path / "analysis.ipynb"))
    return store


def runs_by_name(store: Path) -> dict[str, reprolog.RunRecord]:
    s = reprolog.Store(store)
    return {rec.name: rec for rec in (s.run(i) for i in s.runs()["id"])}


def test_a_notebook_run_records_its_cells_and_ends_when_the_kernel_shuts_down(
    tmp_path: Path, kernel_env: Path
) -> None:
    cells = [
        "x = 20",  # executed before init: recorded too, the run's code depends on it
        "import reprolog\nrun = reprolog.init('nb', experiment='notebooks')",
        "y = x + 1\nprint('y is', y)",
        "run.log({'y': y}, step=0)",
    ]
    execute(tmp_path, cells)
    record = runs_by_name(kernel_env)["nb"]
    assert record.status == "completed"
    section = record.section("notebook")
    assert section["cells"] == cells
    assert section["cells_before_init"] == 1
    assert section["path"] == str(tmp_path / "analysis.ipynb")
    assert section["path_source"] == "env:REPROLOG_NOTEBOOK"
    assert section["errors"] == [] and section["last_cell_failed"] is False
    assert list(record.metrics(keys="y")["value"]) == [21.0]
    assert "y is 21" in list(record.console()["text"])  # console capture is on in a kernel


def test_a_raising_cell_is_an_event_and_the_run_goes_on(tmp_path: Path, kernel_env: Path) -> None:
    cells = [
        "import reprolog\nrun = reprolog.init('nb')",
        "raise ValueError('bad cell')",
        "run.log({'after': 1.0}, step=0)",
    ]
    execute(tmp_path, cells, allow_errors=True)
    record = runs_by_name(kernel_env)["nb"]
    assert record.status == "completed"
    errors = record.section("notebook")["errors"]
    assert [(e["type"], e["message"]) for e in errors] == [("ValueError", "bad cell")]
    assert list(record.metrics(keys="after")["value"]) == [1.0]


def test_a_notebook_that_ends_on_a_raising_cell_is_failed(tmp_path: Path, kernel_env: Path) -> None:
    cells = ["import reprolog\nrun = reprolog.init('nb')", "1 / 0"]
    with pytest.raises(nbclient.exceptions.CellExecutionError):
        execute(tmp_path, cells)
    record = runs_by_name(kernel_env)["nb"]
    assert record.status == "failed"
    assert record.error is not None and "ZeroDivisionError" in record.error["message"]
    assert record.section("notebook")["last_cell_failed"] is True


def test_a_second_init_in_the_kernel_finishes_the_first_run(
    tmp_path: Path, kernel_env: Path
) -> None:
    cells = [
        "import reprolog\nfirst = reprolog.init('first')",
        "second = reprolog.init('second')\nprint(first.status)",
    ]
    execute(tmp_path, cells)
    runs = runs_by_name(kernel_env)
    assert runs["first"].status == "completed"
    assert runs["first"].end <= runs["second"].start + 1.0
    assert runs["second"].status == "completed"
    assert "completed" in list(runs["second"].console()["text"])
