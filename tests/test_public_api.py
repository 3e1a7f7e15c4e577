"""The public surface: a pinned `__all__`, one error tree, and a light `import reprolog`."""

from __future__ import annotations

import json
import sys
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
import json, sys, time
start = time.perf_counter()
import reprolog
seconds = time.perf_counter() - start
heavy = {heavy!r}
after_import = [m for m in heavy if m in sys.modules]
run = reprolog.init(dir="store", capture=True)
run.log({{"loss": 0.5}}, step=0)
run.finish()
after_run = [m for m in heavy if m in sys.modules]
print(json.dumps({{"seconds": seconds, "after_import": after_import, "after_run": after_run}}))
"""


def test_import_is_light_and_imports_no_framework(
    tmp_path: Path, run_script: Callable[..., Any]
) -> None:
    results = []
    for _ in range(3):
        proc = run_script(_PROBE.format(heavy=HEAVY), cwd=tmp_path, check=True)
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert results[0]["after_import"] == []  # not even numpy, pandas or pyarrow
    # A whole run, capture included, still imports no ML framework.
    assert not set(results[0]["after_run"]) & {
        "torch",
        "tensorflow",
        "keras",
        "jax",
        "lightning",
        "pytorch_lightning",
        "transformers",
        "sklearn",
    }
    best = min(r["seconds"] for r in results)
    print(f"import reprolog: {best * 1000:.0f} ms (best of 3)")
    assert best < 0.3


def test_version() -> None:
    assert reprolog.__version__ == "0.1.0"
    assert sys.modules["reprolog"] is reprolog


@pytest.mark.parametrize("name", ["init", "Store", "Run", "active_run"])
def test_public_objects_are_documented(name: str) -> None:
    doc = getattr(reprolog, name).__doc__
    assert doc and len(doc.strip()) > 20
