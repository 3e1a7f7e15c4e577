"""The public surface: a pinned `__all__`, one error tree, and a light `import reprolog`."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import reprolog

PUBLIC = [
    "AmbiguousRunError",
    "ArgumentError",
    "CorruptFileError",
    "MetricError",
    "MetricKeyError",
    "MetricValueError",
    "QueryError",
    "RankWriter",
    "ReproduceError",
    "Reproduction",
    "ReprologError",
    "Run",
    "RunNotFoundError",
    "RunOwner",
    "RunRecord",
    "RunStateError",
    "StepError",
    "Store",
    "StoreError",
    "__version__",
    "active_run",
    "attach",
    "autolog",
    "autolog_enabled",
    "diff",
    "fingerprint",
    "init",
    "reproduce",
    "seed_everything",
    "when_imported",
]


def test_all_is_pinned_and_sorted() -> None:
    assert reprolog.__all__ == PUBLIC
    assert sorted(PUBLIC) == PUBLIC
    for name in PUBLIC:
        assert hasattr(reprolog, name), name


def test_every_public_error_derives_from_reprolog_error() -> None:
    errors = [getattr(reprolog, n) for n in PUBLIC if n.endswith("Error")]
    assert all(issubclass(e, reprolog.ReprologError) for e in errors)
    # Builtin parents where the meaning matches, so `except ValueError` keeps working.
    assert issubclass(reprolog.MetricValueError, TypeError)
    assert issubclass(reprolog.MetricKeyError, ValueError)
    assert issubclass(reprolog.StepError, ValueError)
    assert issubclass(reprolog.RunStateError, RuntimeError)
    assert issubclass(reprolog.RunNotFoundError, LookupError)
    assert issubclass(reprolog.AmbiguousRunError, LookupError)
    assert issubclass(reprolog.CorruptFileError, reprolog.StoreError)


HEAVY = [
    "torch",
    "tensorflow",
    "keras",
    "jax",
    "lightning",
    "pytorch_lightning",
    "transformers",
    "sklearn",
    "pandas",
    "pyarrow",
    "duckdb",
    "numpy",
]

_PROBE = """
import json, sys
import reprolog
heavy = {heavy!r}
after_import = [m for m in heavy if m in sys.modules]
run = reprolog.init(dir="store", capture=True)
run.log({{"loss": 0.5}}, step=0)
run.finish()
after_run = [m for m in heavy if m in sys.modules]
print(json.dumps({{"after_import": after_import, "after_run": after_run, "status": run.status,
                  "sections": sorted(reprolog.Store("store").run(run.id).sections)}}))
"""


def test_import_is_light_and_imports_no_framework(
    tmp_path: Path, run_script: Callable[..., Any]
) -> None:
    # How fast the import is lives in bench/bench_core.py ("import reprolog", target 0.3 s).
    proc = run_script(_PROBE.format(heavy=HEAVY), cwd=tmp_path, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["after_import"] == []  # not even numpy, pandas or pyarrow
    # The probe sees imports: finishing the run compacts its metrics with pyarrow.
    assert "pyarrow" in result["after_run"]
    # A whole run, capture included, still imports no ML framework.
    assert result["status"] == "completed"
    assert {"environment", "code", "command", "seeds", "determinism"} <= set(result["sections"])
    assert not set(result["after_run"]) & {
        "torch",
        "tensorflow",
        "keras",
        "jax",
        "lightning",
        "pytorch_lightning",
        "transformers",
        "sklearn",
    }


def test_version_is_the_distributions() -> None:
    import importlib.metadata
    import re

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    found = re.search(r'^version = "([^"]+)"$', pyproject.read_text(encoding="utf-8"), re.M)
    assert found, "no version in pyproject.toml"
    declared = found.group(1)
    assert reprolog.__version__ == declared
    assert importlib.metadata.version("reprolog") == declared


@pytest.mark.parametrize("name", ["init", "Store", "Run", "active_run"])
def test_public_objects_are_documented(name: str) -> None:
    doc = getattr(reprolog, name).__doc__
    assert doc, name
    summary = doc.strip().splitlines()[0]
    assert summary.endswith(".") and len(summary.split()) >= 5, summary  # a one-line summary
    if name in ("init", "Store"):  # the two entry points every user calls
        assert "Args:" in doc and "Raises:" in doc and "Example" in doc, name


def test_step_fingerprints_and_the_diff_explanation_are_pinned() -> None:
    # What integrations call (they import only `reprolog.__all__`) and what reproduce reads.
    import inspect

    from reprolog._diff import Barrier, Explanation, RunDiff

    for owner in (reprolog.Run, reprolog.RankWriter):
        params = inspect.signature(owner.step_fingerprints).parameters
        assert list(params) == ["self", "model", "every"], owner
        assert params["every"].kind is inspect.Parameter.KEYWORD_ONLY
    fields = [f.name for f in dataclasses.fields(Explanation)]
    assert fields == ["barrier", "step", "summary", "rank", "evidence", "notes", "shared_steps"]
    assert "explanation" in [f.name for f in dataclasses.fields(RunDiff)]
    assert [b.value for b in Barrier] == [
        "none",
        "data order",
        "data content",
        "data order or content",
        "randomness",
        "numerics",
        "code or logging",
        "unknown",
    ]
