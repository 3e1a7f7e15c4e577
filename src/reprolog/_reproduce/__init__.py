"""`reproduce(run)`: re-run a recorded run from its recorded code, command and seeds; judge it."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprolog._reproduce._model import (
    ENV_FROM,
    ENV_ID,
    ENV_REPORT,
    Cause,
    CheckpointComparison,
    EnvDifference,
    ReproduceError,
    Reproduction,
)
from reprolog._reproduce._plan import command_line, plan_rerun
from reprolog._reproduce._rerun import apply_code, make_tree, remove_tree, run_child
from reprolog._run import _hooks

if TYPE_CHECKING:
    from reprolog._store._record import RunRecord
    from reprolog._store._store import Store

__all__ = [
    "Cause",
    "CheckpointComparison",
    "EnvDifference",
    "ReproduceError",
    "Reproduction",
    "on_run_start",
    "reproduce",
]


ENV_MODES = ("current", "recorded")


def reproduce(
    run: str | RunRecord,
    *,
    store: Store | str | os.PathLike[str] | None = None,
    workdir: str | os.PathLike[str] | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    exact: bool = False,
    dry_run: bool = False,
    timeout: float | None = None,
    keep: bool = False,
    env: str = "current",
    strict: bool = False,
    steps: int | None = None,
    installer: str | None = None,
) -> Reproduction:
    """Re-run a recorded run from its recorded commit, uncommitted changes, command and RNG states.

    The recorded commit is checked out in a fresh git work tree, the recorded patch (uncommitted
    and untracked changes) applied, and the recorded command re-launched the way it was started
    (``python script.py``, ``python -m pkg.mod``, a console script, ``torchrun`` or ``accelerate
    launch``) with the recorded seed, determinism and thread variables; the original RNG states
    (and numpy's fresh entropy) are restored when the script calls ``reprolog.init``. The new
    run is then compared with the original.

    Args:
        run: the recorded run: an id, unique id prefix or name, or a ``RunRecord``.
        store: the store (or its folder); default: the one ``Store()`` finds.
        workdir: an empty or absent folder for the work tree; default: a new temporary folder.
        rtol: relative tolerance for metrics (default: ``diff``'s).
        atol: absolute tolerance for metrics (default: ``diff``'s).
        exact: metrics must match bit for bit (rtol = atol = 0).
        dry_run: check and plan only: make no work tree, build no venv and run nothing.
        timeout: seconds the re-run may take; then it is stopped and the verdict is "failed".
        keep: leave the work tree in place (remove it with ``git worktree remove``).
        env: ``"current"`` (default: this interpreter and its packages) or ``"recorded"`` (a
            venv rebuilt from the recorded packages, cached under ``$REPROLOG_CACHE_DIR/venvs``
            by a hash of the requirement set; uv when installed, else pip).
        strict: refuse to run when the environment differs from the record in an ML-relevant
            package (Python, torch, CUDA/cuDNN, numpy, the frameworks).
        steps: stop the re-run after this many training steps (``$REPROLOG_MAX_STEPS``, which
            the integrations honour) and compare only that prefix.
        installer: ``"uv"`` or ``"pip"`` for ``env="recorded"``; default: uv when installed.

    Returns:
        A ``Reproduction``; ``verdict`` says whether the run reproduced.

    Raises:
        ReproduceError: the record lacks a commit, a command or a script; its repository or
            commit is not here; no interpreter of the recorded Python version (``--env
            recorded``); the rebuild failed; or ``strict`` found an ML-relevant mismatch.
        RunNotFoundError, AmbiguousRunError: ``run`` names no run, or several.
        ArgumentError: a bad tolerance, timeout, env, steps or installer.
    """
    from reprolog._diff import DEFAULT_ATOL, DEFAULT_RTOL
    from reprolog._errors import ArgumentError
    from reprolog._reproduce._envdiff import strict_refusal
    from reprolog._reproduce._venv import (
        build_env,
        find_interpreter,
        install_project,
        locked,
        requirements_of,
    )
    from reprolog._reproduce._verdict import judge
    from reprolog._run._steplimit import ENV_MAX_STEPS
    from reprolog._store._store import Store

    if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
        raise ArgumentError(f"timeout must be a number of seconds > 0 or None, got {timeout!r}")
    if env not in ENV_MODES:
        raise ArgumentError(f"env must be one of {', '.join(ENV_MODES)}, got {env!r}")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ArgumentError(f"steps must be a positive int or None, got {steps!r}")
    if installer not in (None, "uv", "pip"):
        raise ArgumentError(f"installer must be 'uv', 'pip' or None, got {installer!r}")
    rtol, atol = (0.0, 0.0) if exact else (_tol(rtol, DEFAULT_RTOL), _tol(atol, DEFAULT_ATOL))
    if isinstance(store, Store):
        st = store
    elif store is not None or isinstance(run, str):
        st = Store(store)
    else:  # a RunRecord and no store: the one that holds it
        from reprolog._store._remote_reader import RemoteStoreReader

        if isinstance(run._reader, RemoteStoreReader):  # its folder is only a local cache
            raise ArgumentError(
                f"run {run.id} was read from {run._reader.remote.display}, which is read-only "
                "here: pass store= a local store for the re-run (or `reprolog pull` it first)"
            )
        st = Store._of_run_dir(run.dir)
    record = st.run(run) if isinstance(run, str) else run
    plan = plan_rerun(record, st)
    if steps is not None:
        plan.env[ENV_MAX_STEPS] = str(steps)
    recorded_env = record.section("environment")
    built = None
    if env == "recorded" and not dry_run:
        built = build_env(recorded_env, str(plan.root), installer=installer)
        plan.python = built.python
        plan.notes += built.notes
    env_diffs = _env_differences(recorded_env, built, plan)
    refusal = strict_refusal(env_diffs, "rebuilt" if env == "recorded" else "current")
    if strict and refusal:
        raise ReproduceError(refusal)
    if dry_run:
        where = str(workdir) if workdir is not None else "<a new temporary folder>"
        cwd = plan.cwd if plan.cwd_rel is None else os.path.join(where, plan.cwd_rel)
        if env == "recorded":
            python, _, notes = find_interpreter(recorded_env)
            plan.python = "<venv from " + python + ">"
            plan.notes += notes + requirements_of(recorded_env, str(plan.root)).notes
        out = Reproduction(
            record.id, None, command_line(plan, where), cwd, where, kept=False,
            exact=not plan.notes, notes=list(plan.notes), env=dict(plan.env),
        )  # fmt: skip
        out.env_mode, out.python, out.steps = env, plan.python, steps  # type: ignore[assignment]
        out.launch = plan.kind
        out.env_differences = env_diffs
        return out
    tree = make_tree(plan, workdir)
    try:
        notes = plan.notes + apply_code(record, plan.root, tree)
        lock = locked(Path(built.path)) if built is not None else contextlib.nullcontext()
        with lock, _cells_file(plan):
            if built is not None:
                notes += install_project(built, tree)
            result, new_dir = run_child(plan, tree, st, timeout)
        result.launch = plan.kind
        result.notes = notes
        result.exact = not notes
        result.kept = keep
        result.env_mode = env  # type: ignore[assignment]
        result.python = plan.python
        result.env_differences = env_diffs
        result.steps = steps
        if built is not None:
            result.venv, result.venv_cached = built.path, built.cached
            result.build_seconds = built.seconds
            result.restored = _current_differences(recorded_env, set(built.requirements.project))
        injected = [os.path.normpath(os.path.join(tree, rel)) for rel in plan.pythonpath]
        judge(result, new_dir, record, rtol=rtol, atol=atol, injected_pythonpath=injected)
        _link(result, new_dir)
        return result
    finally:
        if not keep:
            remove_tree(plan.root, tree)


@contextlib.contextmanager
def _cells_file(plan: Any) -> Iterator[None]:
    """A notebook re-run: its cells in a temporary file outside the work tree."""
    if plan.kind != "notebook":
        yield
        return
    fd, path = tempfile.mkstemp(prefix="reprolog-reproduce-cells-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(plan.cells, fh)
        plan.cells_file = path
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _tol(value: float | None, default: float) -> float:
    return default if value is None else value


def _env_differences(recorded: dict[str, Any], built: Any, plan: Any) -> list[EnvDifference]:
    """The record against the environment the re-run uses (the rebuilt venv, or this one)."""
    import platform

    from reprolog._capture.environment import packages
    from reprolog._reproduce._envdiff import compare_env
    from reprolog._reproduce._venv import venv_packages

    if built is not None:
        project = set(built.requirements.project)
        return compare_env(recorded, venv_packages(built.path), built.version, skip=project)
    if str(plan.python).startswith("<"):  # a dry run of --env recorded: nothing built yet
        return []
    return compare_env(recorded, packages(), platform.python_version())


def _current_differences(recorded: dict[str, Any], skip: set[str]) -> list[EnvDifference]:
    import platform

    from reprolog._capture.environment import packages
    from reprolog._reproduce._envdiff import compare_env

    found = compare_env(recorded, packages(), platform.python_version(), skip=skip)
    return [d for d in found if d.recorded is not None]  # what the venv put back, not removed


def _link(result: Reproduction, new_dir: str | None) -> None:
    """Write the verdict into the re-run's ``reproduce`` section (``reprolog show`` reads it)."""
    if new_dir is None:
        return
    try:
        from reprolog._storage._recordfile import read_json, write_json_atomic

        path = Path(new_dir) / "run.json"
        raw = read_json(path)
        section = raw.setdefault("sections", {}).setdefault("reproduce", {})
        section.update(
            verdict=result.verdict, diverged_at=result.diverged_at,
            likely_cause=result.likely_cause, env=result.env_mode, steps=result.steps,
        )  # fmt: skip
        write_json_atomic(path, raw)
    except Exception as exc:  # the verdict stands even if the record cannot take it
        result.notes.append(f"the verdict could not be written into the re-run's record: {exc}")


# ---------------------------------------------------------------------------------- child hook

_hooked = False


def on_run_start(run: Any) -> None:
    """In a re-run made by `reproduce`: tag the run and restore the original's RNG states.

    A run start hook (registered below, so active whenever ``reprolog`` is imported): acts
    only when ``$REPROLOG_REPRODUCES`` is set, and only on the process's first run. The seeds
    section is captured again after the restore, so it records the state training starts
    from. Never raises: failures are capture errors.

    Args:
        run: the live ``Run`` being started.
    """
    global _hooked
    original = os.environ.get(ENV_ID)
    if not original or _hooked:
        return
    _hooked = True
    try:
        from reprolog._capture.report import CaptureReport
        from reprolog._capture.seeds import capture_seeds, restore_rng
        from reprolog._storage._layout import RunLayout, StoreLayout
        from reprolog._storage._recordfile import read_json

        run.set_tags({"reproduces": original})
        report = os.environ.get(ENV_REPORT)
        if report:
            with open(report, "a") as fh:
                fh.write(json.dumps({"id": run.id, "dir": str(run.dir)}) + "\n")
        source = Path(os.environ.get(ENV_FROM) or StoreLayout(run.store_dir).run_dir(original))
        seeds = (read_json(RunLayout(source).record).get("sections") or {}).get("seeds") or {}
        restored = restore_rng(source, seeds)
        run.update_section("seeds", capture_seeds(Path(run.dir), CaptureReport()))
        run.update_section("reproduce", {"of": original, "restored": restored})
    except Exception as exc:
        run.record_capture_error("reproduce", exc)


_hooks.on_run_start(on_run_start, what="reproduce")  # Run.__init__ calls it; never imports us
