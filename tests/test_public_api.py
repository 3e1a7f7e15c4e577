"""The public surface: a pinned `__all__`, one error tree, and a light `import reprolog`."""

from __future__ import annotations

import ast
import builtins
import dataclasses
import importlib
import inspect
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import reprolog

PUBLIC = [
    "AmbiguousRunError",
    "ArgumentError",
    "Barrier",
    "Category",
    "Cause",
    "CheckpointComparison",
    "CorruptFileError",
    "Difference",
    "EnvDifference",
    "Explanation",
    "MetricComparison",
    "MetricError",
    "MetricKeyError",
    "MetricStatus",
    "MetricValueError",
    "QueryError",
    "RankWriter",
    "ReproduceError",
    "Reproduction",
    "ReprologError",
    "Run",
    "RunDiff",
    "RunNotFoundError",
    "RunOwner",
    "RunRecord",
    "RunStateError",
    "StepError",
    "StepFingerprints",
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


def test_version_is_one_string_the_distribution_reads() -> None:
    import importlib.metadata
    import re

    root = Path(__file__).resolve().parents[1]
    pyproject = (root / "pyproject.toml").read_text(encoding="utf-8")
    project = pyproject.split("[project]", 1)[1].split("\n[", 1)[0]
    assert not re.search(r"^version\s*=", project, re.M), "pyproject.toml repeats the version"
    assert re.search(r'^dynamic = \["version"\]$', project, re.M)
    assert re.search(
        r'^\[tool\.hatch\.version\]\npath = "src/reprolog/__init__.py"$', pyproject, re.M
    )
    source = (root / "src" / "reprolog" / "__init__.py").read_text(encoding="utf-8")
    assert re.findall(r'^__version__ = "([^"]+)"$', source, re.M) == [reprolog.__version__]
    assert importlib.metadata.version("reprolog") == reprolog.__version__


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

    from reprolog import Barrier, Explanation, RunDiff

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


def _imported_names(module: ModuleType) -> dict[str, tuple[str, str | None]]:
    """Every name a module imports, `if TYPE_CHECKING:` ones too: name -> (module, attribute)."""
    names: dict[str, tuple[str, str | None]] = {}
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                names[alias.asname or alias.name] = (node.module, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = (alias.name, None)
                else:
                    top = alias.name.split(".")[0]
                    names[top] = (top, None)
    return names


def _resolve(dotted: str, module: ModuleType) -> Any:
    head, *rest = dotted.split(".")
    if head in vars(module):
        obj = vars(module)[head]
    elif hasattr(builtins, head):
        obj = getattr(builtins, head)
    else:
        origin, attribute = _imported_names(module)[head]
        obj = importlib.import_module(origin)
        obj = getattr(obj, attribute) if attribute else obj
    for part in rest:
        obj = getattr(obj, part)
    return obj


def _annotated_names(annotation: Any) -> list[str]:
    """The dotted names in an annotation string (`Literal[...]` values are not names)."""
    if not isinstance(annotation, str):
        return [annotation.__name__] if inspect.isclass(annotation) else []
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Subscript) and ast.unparse(node.value).endswith("Literal"):
            return
        if isinstance(node, (ast.Name, ast.Attribute)):
            found.append(ast.unparse(node))
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(annotation, mode="eval").body)
    return found


def _annotations_of_public(name: str) -> Iterator[tuple[str, Any, ModuleType]]:
    """(where, annotation, module it was written in) for a public name and its public members."""
    obj = getattr(reprolog, name)
    if inspect.isfunction(obj):
        for what, annotation in inspect.unwrap(obj).__annotations__.items():
            yield f"{name}() {what}", annotation, sys.modules[obj.__module__]
        return
    for klass in obj.__mro__:
        if not klass.__module__.startswith("reprolog."):
            continue
        module = sys.modules[klass.__module__]
        for what, annotation in vars(klass).get("__annotations__", {}).items():
            if not what.startswith("_"):
                yield f"{name}.{what}", annotation, module
        for attr, value in vars(klass).items():
            # Not __init__: a class users build has a public function that builds it (`init`,
            # `attach`) or plain arguments; RunRecord and StepFingerprints are handed out.
            if attr.startswith("_") and attr not in ("__enter__", "__call__"):
                continue
            function = value.fget if isinstance(value, property) else value
            function = getattr(function, "__func__", function)  # static / class methods
            if inspect.isfunction(function):
                for what, annotation in function.__annotations__.items():
                    yield f"{name}.{attr}() {what}", annotation, module


def test_the_public_api_names_no_private_type() -> None:
    # What a public function takes or returns, and what a public class's public attributes hold,
    # is a public name (`reprolog.RunDiff`), never a class only reachable through a private module.
    leaks = []
    for name in PUBLIC:
        if name == "__version__":
            continue
        for where, annotation, module in _annotations_of_public(name):
            for dotted in _annotated_names(annotation):
                target = _resolve(dotted, module)
                if not inspect.isclass(target) or not target.__module__.startswith("reprolog"):
                    continue
                if getattr(reprolog, target.__name__, None) is not target:
                    leaks.append(f"{where}: {target.__module__}.{target.__qualname__}")
    assert not leaks, "public annotations that name a private type:\n" + "\n".join(sorted(leaks))
