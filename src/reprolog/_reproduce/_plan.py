"""Plan a re-run from a record: check it, find how it was launched, build the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from reprolog._reproduce._model import ENV_FROM, ENV_ID, REDACTED, ReproduceError

if TYPE_CHECKING:
    from reprolog._store._record import RunRecord
    from reprolog._store._store import Store

__all__ = ["Plan", "command_line", "git", "map_path", "plan_rerun"]

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass
class Plan:
    record: RunRecord
    root: Path
    commit: str
    kind: str  # "script", "module", "console_script", "torchrun", "accelerate", "command"
    script: str  # the script (kind "script"), relative to root; "" otherwise
    argv0: str  # argv[0] as typed (the script, or the console script)
    args: list[str]  # argv[1:]
    flags: list[str]  # interpreter flags
    cwd_rel: str | None  # None: the recorded cwd lies outside the repository; used as is
    cwd: str
    env: dict[str, str | None]
    notes: list[str]
    module: str | None = None  # kind "module": the module run with -m
    launcher: list[str] | None = None  # torchrun / accelerate / other launcher: argv as typed
    pythonpath: list[str] = field(default_factory=list)  # dirs relative to root, put first
    python: str = sys.executable  # the interpreter of the re-run
    cells: list[str] | None = None  # kind "notebook": the executed cells, in order
    cells_file: str = ""  # where they are written for the runner (outside the tree)


# ---------------------------------------------------------------------------------- planning


def git(root: Path | str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=False
    )


def _inside(path: str, root: Path) -> str | None:
    """``path`` relative to ``root`` when it lies inside it (posix-free os.sep form), else None."""
    rel = os.path.relpath(os.path.abspath(path), root)
    return None if rel == ".." or rel.startswith(".." + os.sep) else rel


def _import_root(entry_file: str | None, module: str, root: Path) -> str | None:
    """The folder (relative to root) a module's file is imported from: src/ for src/pkg/mod.py."""
    if not entry_file:
        return None
    rel = _inside(entry_file, root)
    if rel is None:
        return None
    up = module.count(".") + (2 if os.path.basename(entry_file) == "__init__.py" else 1)
    base = rel
    for _ in range(up):
        base = os.path.dirname(base)
    return base or "."


def plan_rerun(record: RunRecord, store: Store) -> Plan:
    """Check that the record holds what a re-run needs, and plan it.

    Raises:
        ReproduceError: no commit, no command, an entry kind that cannot be re-run, masked
            arguments, or a repository or commit that is not here.
    """
    rid = record.id
    code, command = record.section("code"), record.section("command")
    if not code.get("git"):
        why = code.get("reason") or "no code section: was it started with capture=False?"
        raise ReproduceError(f"run {rid} recorded no git state ({why}); reproduce needs a commit")
    commit = code.get("commit")
    if not commit:
        raise ReproduceError(
            f"run {rid} recorded no git commit (its repository had none yet); nothing to check out"
        )
    argv = command.get("argv")
    if not isinstance(argv, list) or not argv:
        raise ReproduceError(f"run {rid} recorded no command line; there is nothing to re-run")
    kind, entry = command.get("entry_kind"), command.get("entry")
    launcher = command.get("launcher") if isinstance(command.get("launcher"), dict) else None
    notebook = record.section("notebook")
    if isinstance(notebook.get("cells"), list) and notebook["cells"]:
        return _plan_notebook(record, store, code, command, notebook)
    if kind not in ("script", "module") or not entry:
        raise ReproduceError(
            f"run {rid} was started as a {kind or 'unknown'} entry ({entry or argv[0]!r}); "
            "reproduce re-runs scripts (python path/to/script.py ...), modules (python -m "
            "pkg.mod ...), console scripts and torchrun / accelerate launches"
        )
    launch_argv = [str(a) for a in (launcher or {}).get("argv") or []]
    masked = [i for i, a in enumerate([*argv, *launch_argv]) if REDACTED in str(a)]
    if masked:
        raise ReproduceError(
            f"run {rid}: arguments were masked as secrets at capture; the command cannot be "
            "rebuilt from the record"
        )
    root = _repo_root(record, code)
    notes: list[str] = []
    launch_kind = str((launcher or {}).get("kind") or "")
    cwd = str((launcher or {}).get("cwd") or command.get("cwd") or root)
    cwd_rel: str | None = _inside(cwd, root)
    if cwd_rel is None:
        notes.append(f"the recorded cwd {cwd} is outside the repository; the re-run uses it as is")
    orig = [str(a) for a in command.get("orig_argv") or []]
    script, module, pythonpath = "", None, []
    if kind == "module":
        module = str(entry)
        found = _import_root(command.get("entry_file"), module, root)
        if found is not None:
            pythonpath.append(found)
        elif command.get("entry_file"):
            notes.append(
                f"module {module} was imported from {command.get('entry_file')}, outside the "
                "repository: the re-run runs it as installed here"
            )
        tail = ["-m", module, *[str(a) for a in argv[1:]]]
        flags = orig[1 : len(orig) - len(tail)] if orig[len(orig) - len(tail) :] == tail else []
    else:
        flags = orig[1 : len(orig) - len(argv)] if orig[len(orig) - len(argv) :] == argv else []
    from reprolog._capture.command import ENV_LAUNCH  # lazily: `import reprolog` stays cheap

    plan_kind = str(kind)
    if launcher is not None and launcher.get("from") == ENV_LAUNCH and launch_argv:
        plan_kind = "reprolog_run"  # `reprolog run -- CMD`: launched again the same way
    if plan_kind == "reprolog_run":
        if launch_kind == "console_script":
            script_info = launcher.get("console_script") or {}  # type: ignore[union-attr]
            mod = str(script_info.get("entry_point") or "").partition(":")[0]
            found = _import_root(command.get("entry_file"), mod, root) if mod else None
            if found is not None:
                pythonpath.append(found)
    elif launch_kind == "console_script" and launcher is not None:
        plan_kind = "console_script"
        script_info = launcher.get("console_script") or {}
        mod = str(script_info.get("entry_point") or "").partition(":")[0]
        found = _import_root(command.get("entry_file"), mod, root) if mod else None
        if found is not None:
            pythonpath.append(found)
    elif launch_kind in ("torchrun", "accelerate", "command") and launch_argv:
        plan_kind = launch_kind
    elif kind == "script":
        rel = _inside(str(entry), root)
        if rel is None:
            raise ReproduceError(f"run {rid}: its script {entry} lies outside repository {root}")
        script = rel
    for rel in editable_roots(record, root):
        if rel not in pythonpath:
            pythonpath.append(rel)
    return Plan(
        record, root, str(commit), plan_kind, script, str(argv[0]), [str(a) for a in argv[1:]],
        flags, cwd_rel, cwd, _child_env(record, store), notes, module=module,
        launcher=launch_argv or None, pythonpath=pythonpath,
    )  # fmt: skip


def editable_roots(record: RunRecord, root: Path) -> list[str]:
    """Import roots (relative to root) of the project's editable installs found in this env.

    An editable install of the project under training points this environment at the original
    checkout (a ``.pth`` line naming e.g. ``<root>/src``); the re-run puts the tree's copy of
    each such folder first on ``PYTHONPATH`` so the recorded commit's code is what it imports.
    """
    from reprolog._capture.environment import distributions

    sources = record.section("environment").get("package_sources") or {}
    wanted = {
        name for name, src in sources.items()
        if (src or {}).get("kind") == "editable"
        and _inside(str((src or {}).get("url") or "").removeprefix("file://"), root) is not None
    }  # fmt: skip
    if not wanted:
        return []
    found: list[str] = []
    for name, (_, folder) in distributions().items():
        if name not in wanted:
            continue
        try:
            record_lines = (folder / "RECORD").read_text().splitlines()
        except OSError:
            continue
        for line in record_lines:
            rel_file = line.split(",", 1)[0]
            if not rel_file.endswith(".pth"):
                continue
            try:
                text = (folder.parent / rel_file).read_text()
            except OSError:
                continue
            for entry in text.splitlines():
                entry = entry.strip()
                if entry and not entry.startswith(("#", "import")) and os.path.isdir(entry):
                    rel = _inside(entry, root)
                    if rel is not None and rel not in found:
                        found.append(rel)
    return found


def _repo_root(record: RunRecord, code: dict[str, object]) -> Path:
    rid, commit = record.id, code.get("commit")
    root = Path(str(code.get("root") or ""))
    if not code.get("root") or not root.is_dir():
        raise ReproduceError(
            f"run {rid} was recorded in repository {str(root)!r} on host {record.raw.get('host')}, "
            "which does not exist here; reproduce needs that repository"
        )
    if git(root, "cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        raise ReproduceError(
            f"run {rid}: commit {commit} is not in repository {root} (rebased away, or not "
            f"fetched? try: git -C {root} fetch --all)"
        )
    return root


def _plan_notebook(
    record: RunRecord, store: Store, code: dict[str, object], command: dict[str, object],
    notebook: dict[str, object],
) -> Plan:  # fmt: skip
    """A notebook run: its recorded cells, re-executed by nbclient in a fresh kernel."""
    cells = [str(c) for c in notebook.get("cells") or []]  # type: ignore[attr-defined]
    if any(REDACTED in c for c in cells):
        raise ReproduceError(
            f"run {record.id}: notebook cells had secrets masked at capture; they cannot be re-run"
        )
    root = _repo_root(record, code)
    cwd = str(command.get("cwd") or root)
    cwd_rel = _inside(cwd, root)
    notes = [] if cwd_rel is not None else [f"the kernel's cwd {cwd} is outside the repository"]
    env = _child_env(record, store)
    path = notebook.get("path")
    if isinstance(path, str) and path:
        env["REPROLOG_NOTEBOOK"] = path  # mapped into the tree in run_child when inside it
    return Plan(
        record, root, str(code.get("commit")), "notebook", "", "", [], [], cwd_rel, cwd, env,
        notes, cells=cells,
    )  # fmt: skip


def _child_env(record: RunRecord, store: Store) -> dict[str, str | None]:
    """The recorded seed, determinism and thread variables (None: unset), and reprolog's own."""
    env: dict[str, str | None] = {}
    for section in ("seeds", "determinism"):
        for name, value in (record.section(section).get("env") or {}).items():
            if value != REDACTED:
                env[str(name)] = None if value is None else str(value)
    threads = record.section("environment").get("threads") or {}
    for name in _THREAD_VARS:
        if name in threads:
            env[name] = None if threads[name] is None else str(threads[name])
    env["REPROLOG_DIR"] = str(store.dir)
    env[ENV_ID] = record.id
    env[ENV_FROM] = str(Path(record.dir).resolve())
    return env


def map_path(arg: str, plan: Plan, tree: str) -> str:
    # Absolute paths into the repository (a config file, a data folder) point into the tree.
    root = str(plan.root)
    if arg == root:
        return tree
    return arg.replace(root + os.sep, tree + os.sep)


def _beside(python: str, name: str) -> str | None:
    """An installed command next to the interpreter (the same environment's bin/)."""
    path = os.path.join(os.path.dirname(python), name)
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


def command_line(plan: Plan, tree: str) -> list[str]:
    """The command the re-run runs, with repository paths mapped into the work tree."""
    python = plan.python
    args = [map_path(a, plan, tree) for a in plan.args]
    if plan.kind == "notebook":
        cwd = (
            plan.cwd if plan.cwd_rel is None else os.path.normpath(os.path.join(tree, plan.cwd_rel))
        )
        return [python, "-m", "reprolog._reproduce._notebook", plan.cells_file or "<cells>", cwd]
    if plan.kind == "module":
        return [python, *plan.flags, "-m", str(plan.module), *args]
    if plan.kind == "console_script":
        # The installed wrapper of this environment when it has one, else the recorded one; the
        # tree's code comes first on PYTHONPATH either way.
        name = os.path.basename(plan.argv0)
        wrapper = _beside(python, name) or plan.argv0
        return [python, wrapper, *args]
    if plan.kind in ("torchrun", "accelerate", "command") and plan.launcher:
        return _launcher_line(plan, tree, python)
    if plan.kind == "reprolog_run" and plan.launcher:
        return [python, "-m", "reprolog._cli", "run", "--", *_launcher_line(plan, tree, python)]
    # A relative script path, as typed, names the same file from the mapped cwd.
    relative = not os.path.isabs(plan.argv0) and plan.cwd_rel is not None
    script = plan.argv0 if relative else os.path.join(tree, plan.script)
    return [python, *plan.flags, script, *args]


_LAUNCH_MODULES = {"torchrun": "torch.distributed.run", "accelerate": "accelerate.commands.launch"}


def _launcher_line(plan: Plan, tree: str, python: str) -> list[str]:
    argv = [map_path(a, plan, tree) for a in plan.launcher or []]
    prog = os.path.basename(argv[0])
    if prog.startswith(("python", "pypy")):
        rest = argv[1:]
        # `python .../bin/torchrun ...`: this environment's own copy of the launcher, if any
        if rest and os.path.basename(rest[0]) in ("torchrun", "accelerate"):
            rest[0] = _beside(python, os.path.basename(rest[0])) or rest[0]
        return [python, *rest]
    wrapper = _beside(python, prog)
    if wrapper is not None:
        return [wrapper, *argv[1:]]
    if prog == "torchrun":
        return [python, "-m", _LAUNCH_MODULES["torchrun"], *argv[1:]]
    if prog == "accelerate" and argv[1:2] == ["launch"]:
        return [python, "-m", _LAUNCH_MODULES["accelerate"], *argv[2:]]
    return argv
