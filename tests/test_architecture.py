"""The core's import arrows point down its layers, and no two modules import each other.

Read from the source with `ast` (nothing is imported): every import of a `reprolog` module is an
arrow, at module level, inside a function or under `if TYPE_CHECKING:`. The layers, bottom up,
are the packages of `src/reprolog/` (see ARCHITECTURE.md); `_run` and `_store` are siblings on
one level and neither imports the other.
"""

from __future__ import annotations

import ast
import functools
import io
import re
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import reprolog

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "reprolog"

# Bottom up. A module may import modules of its own layer and of any level below its own.
LEVELS: list[tuple[str, ...]] = [
    ("_errors",),
    ("_storage",),
    ("_capture",),
    ("_fingerprint",),
    ("_run", "_store"),
    ("_diff",),
    ("_reproduce",),
    ("_ui",),
    ("_cli",),
    ("<top>",),  # the facade (reprolog/__init__.py), reprolog.ui and _autoboot (the .pth target)
]
TOP = {"reprolog", "reprolog.ui", "reprolog._autoboot"}

# Import cycles that must be, as (importer, imported, why). The import in the importer carries a
# comment saying why, on the line of the import.
ALLOWED_CYCLES: list[tuple[str, str, str]] = []


@dataclass(frozen=True)
class Arrow:
    source: str  # importing module
    target: str  # imported module
    line: int
    path: Path
    end_line: int  # last line of the import statement (a parenthesised one spans several)

    def __str__(self) -> str:
        where = self.path.relative_to(SRC.parent)
        return f"{self.source} imports {self.target} ({where}:{self.line})"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The longest known module that `name` is, or is inside (`a.b.C` -> `a.b`)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def _literal_import(node: ast.Call) -> str | None:
    """`importlib.import_module("reprolog.x")` / `__import__("reprolog.x")`: a module name."""
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if called not in ("import_module", "__import__") or not node.args:
        return None
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    return None


def arrows_of(name: str, path: Path, known: dict[str, Path]) -> Iterator[Arrow]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the importing module's package
                base = name if is_package else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                origin = f"{base}.{node.module}" if node.module else base
            else:
                origin = node.module or ""
            for alias in node.names:
                submodule = f"{origin}.{alias.name}"
                targets.append(submodule if submodule in known else origin)
        elif isinstance(node, ast.Call):
            literal = _literal_import(node)
            targets = [literal] if literal else []
        for target in targets:
            if target != "reprolog" and not target.startswith("reprolog."):
                continue
            resolved = _resolve(target, known)
            if resolved is not None and resolved != name:
                yield Arrow(name, resolved, node.lineno, path, node.end_lineno or node.lineno)


@functools.cache
def all_arrows() -> tuple[Arrow, ...]:
    known = modules()
    found = {a for name, path in known.items() for a in arrows_of(name, path, known)}
    return tuple(sorted(found, key=lambda a: (a.source, a.line, a.target)))


def layer_of(module: str) -> str:
    if module in TOP:
        return "<top>"
    parts = module.split(".")
    assert parts[0] == "reprolog" and len(parts) > 1, module
    return parts[1]


def level_of(layer: str) -> int:
    for i, layers in enumerate(LEVELS):
        if layer in layers:
            return i
    raise AssertionError(f"{layer} is in no layer of LEVELS: add it (and to ARCHITECTURE.md)")


def test_every_module_is_in_a_layer() -> None:
    for module in modules():
        level_of(layer_of(module))


def test_imports_point_down_the_layers() -> None:
    wrong = []
    for arrow in all_arrows():
        src, dst = layer_of(arrow.source), layer_of(arrow.target)
        if src == dst or dst == "_errors":
            continue
        if level_of(dst) >= level_of(src):
            kind = "its sibling" if level_of(dst) == level_of(src) else "a layer above it"
            wrong.append(f"{arrow}: {src} imports {kind}, {dst}")
    assert not wrong, "imports that point up (or sideways):\n" + "\n".join(wrong)


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _comment_lines(path: Path) -> set[int]:
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
    return {t.start[0] for t in tokens if t.type == tokenize.COMMENT}


def test_no_import_cycles() -> None:
    arrows = all_arrows()
    allowed = {(a, b) for a, b, _ in ALLOWED_CYCLES}
    graph: dict[str, set[str]] = {m: set() for m in modules()}
    for arrow in arrows:
        if (arrow.source, arrow.target) not in allowed:
            graph[arrow.source].add(arrow.target)
    cycles = _strongly_connected(graph)
    report = []
    for component in cycles:
        members = set(component)
        inside = [
            str(a)
            for a in arrows
            if a.source in members and a.target in members and (a.source, a.target) not in allowed
        ]
        report.append(f"cycle among {', '.join(component)}:\n  " + "\n  ".join(inside))
    assert not cycles, "import cycles (a module that imports itself back):\n" + "\n".join(report)


def test_allowed_cycles_are_real_and_commented() -> None:
    arrows = all_arrows()
    for importer, imported, why in ALLOWED_CYCLES:
        assert why, f"{importer} -> {imported}: the allowlist entry needs a reason"
        lines = [a for a in arrows if (a.source, a.target) == (importer, imported)]
        assert lines, f"{importer} no longer imports {imported}: drop it from ALLOWED_CYCLES"
        for arrow in lines:
            lines_of_import = set(range(arrow.line, arrow.end_line + 1))
            assert lines_of_import & _comment_lines(arrow.path), f"{arrow}: no comment says why"


def test_the_facade_exports_reprolog_objects_under_their_own_names() -> None:
    for name in reprolog.__all__:
        if name == "__version__":
            continue
        obj = getattr(reprolog, name)
        assert obj.__module__.startswith("reprolog."), f"{name} comes from {obj.__module__}"
        assert obj.__name__ == name, f"reprolog.{name} is an alias of {obj.__qualname__}"


def test_the_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text(
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "import reprolog._errors\n"
        "from reprolog._storage import _layout, _ids as ids\n"
        "from reprolog._storage._locks import *\n"
        "from . import _atomic\n"
        "from ._recover import recover\n"
        "from .. import _errors\n"
        "if TYPE_CHECKING:\n"
        "    from reprolog._run._run import Run\n"
        "def f():\n"
        "    from reprolog._store import _store\n"
        "    import importlib\n"
        "    importlib.import_module('reprolog._diff._model')\n"
        "    import numpy\n",
        encoding="utf-8",
    )
    known = modules()
    found = {(a.target, a.line) for a in arrows_of("reprolog._storage._probe", source, known)}
    assert found == {
        ("reprolog._errors", 3),
        ("reprolog._storage._layout", 4),
        ("reprolog._storage._ids", 4),
        ("reprolog._storage._locks", 5),
        ("reprolog._storage._atomic", 6),
        ("reprolog._storage._recover", 7),
        ("reprolog._errors", 8),
        ("reprolog._run._run", 10),
        ("reprolog._store._store", 12),
        ("reprolog._diff._model", 14),
    }


ARCHITECTURE = SRC.parent / "ARCHITECTURE.md"


def _code_blocks_after(heading: str) -> list[list[str]]:
    """The lines of each fenced code block in a `## heading` section of ARCHITECTURE.md."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    assert f"\n## {heading}" in text, f"ARCHITECTURE.md has no '## {heading}' section"
    section = text.split(f"\n## {heading}", 1)[1].split("\n## ", 1)[0]
    blocks = section.split("```")[1::2]
    return [block.splitlines()[1:] for block in blocks]  # after the fence's language tag


def test_architecture_md_tree_is_the_package() -> None:
    # One line per module, indented two spaces per folder: `name  what it holds`.
    trees = [b for b in _code_blocks_after("Core modules") if b and b[0] == "src/reprolog/"]
    assert len(trees) == 1, (
        "ARCHITECTURE.md's Core modules needs one block that starts src/reprolog/"
    )
    lines = [line for line in trees[0] if line.strip()]
    listed: list[str] = []
    folders: list[str] = []
    for line in lines[1:]:
        depth, rest = divmod(len(line) - len(line.lstrip(" ")), 2)
        assert not rest and depth >= 1, f"ARCHITECTURE.md tree: odd indentation: {line!r}"
        name = line.split()[0]
        assert len(line.split(maxsplit=1)) == 2, f"ARCHITECTURE.md tree: {name} says nothing"
        folders[depth - 1 :] = []
        path = "/".join([*folders, name.rstrip("/")])
        if name.endswith("/"):
            folders.append(name.rstrip("/"))
        listed.append(path)
    on_disk = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")}
    in_tree = {p for p in listed if p.endswith(".py")}
    assert not on_disk - in_tree, (
        f"modules missing from ARCHITECTURE.md: {sorted(on_disk - in_tree)}"
    )
    assert not in_tree - on_disk, (
        f"ARCHITECTURE.md lists no such module: {sorted(in_tree - on_disk)}"
    )
    for path in listed:
        assert (PACKAGE / path).exists(), f"ARCHITECTURE.md tree: no {path} in src/reprolog"
    assert len(listed) == len(set(listed)), "ARCHITECTURE.md tree lists a path twice"


def test_architecture_md_public_api_is_all() -> None:
    block = "\n".join(_code_blocks_after("Public API")[0])

    def named(name: str) -> bool:  # a function as `reprolog.name(`, anything else as a word
        if callable(getattr(reprolog, name)) and not isinstance(getattr(reprolog, name), type):
            return f"reprolog.{name}(" in block
        return re.search(rf"\b{re.escape(name)}\b", block) is not None

    missing = [n for n in reprolog.__all__ if not named(n)]
    assert not missing, f"ARCHITECTURE.md's Public API block does not name {missing}"
    named = set(re.findall(r"\breprolog\.(\w+)", block))
    extra = named - set(reprolog.__all__) - {"ui"}
    assert not extra, f"ARCHITECTURE.md's Public API block names {sorted(extra)}, not in __all__"
