"""`reproduce(run)`: re-run a recorded run from its recorded code, command and seeds; judge it."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprolog._reproduce._model import ENV_FROM, ENV_ID, ENV_REPORT, ReproduceError, Reproduction
from reprolog._reproduce._rerun import (
    apply_code,
    command_line,
    make_tree,
    plan_rerun,
    remove_tree,
    run_child,
)

if TYPE_CHECKING:
    from reprolog._diff import Difference, RunDiff
    from reprolog._record import RunRecord
    from reprolog._store import Store

__all__ = ["ReproduceError", "Reproduction", "on_run_start", "reproduce"]


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
) -> Reproduction:
    """Re-run a recorded run from its recorded commit, uncommitted changes, command and RNG states.

    The recorded commit is checked out in a fresh git work tree, the recorded patch (uncommitted
    and untracked changes) applied, and the recorded script run with this interpreter, the recorded
    seed, determinism and thread variables, and the original RNG states restored when the script
    calls ``reprolog.init``. The new run is then diffed against the original.

    Args:
        run: the recorded run: an id, unique id prefix or name, or a ``RunRecord``.
        store: the store (or its folder); default: the one ``Store()`` finds.
        workdir: an empty or absent folder for the work tree; default: a new temporary folder.
        rtol: relative tolerance for metrics (default: ``diff``'s).
        atol: absolute tolerance for metrics (default: ``diff``'s).
        exact: metrics must match bit for bit (rtol = atol = 0).
        dry_run: check and plan only: make no work tree and run nothing.
        timeout: seconds the re-run may take; then it is stopped and the verdict is "failed".
        keep: leave the work tree in place (remove it with ``git worktree remove``).

    Returns:
        A ``Reproduction``; ``verdict`` says whether the run reproduced.

    Raises:
        ReproduceError: the record lacks a commit, a command or a script, or its repository or
            commit is not here.
        RunNotFoundError, AmbiguousRunError: ``run`` names no run, or several.
        ArgumentError: a bad tolerance or timeout.
    """
    from reprolog._diff import DEFAULT_ATOL, DEFAULT_RTOL
    from reprolog._errors import ArgumentError
    from reprolog._store import Store

    if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
        raise ArgumentError(f"timeout must be a number of seconds > 0 or None, got {timeout!r}")
    rtol, atol = (0.0, 0.0) if exact else (_tol(rtol, DEFAULT_RTOL), _tol(atol, DEFAULT_ATOL))
    if isinstance(store, Store):
        st = store
    elif store is not None or isinstance(run, str):
        st = Store(store)
    else:  # a RunRecord and no store: the one that holds it
        st = Store(Path(run.dir).parent.parent)
    record = st.run(run) if isinstance(run, str) else run
    plan = plan_rerun(record, st)
    if dry_run:
        where = str(workdir) if workdir is not None else "<a new temporary folder>"
        cwd = plan.cwd if plan.cwd_rel is None else os.path.join(where, plan.cwd_rel)
        return Reproduction(
            record.id, None, command_line(plan, where), cwd, where, kept=False,
            exact=not plan.notes, notes=list(plan.notes), env=dict(plan.env),
        )  # fmt: skip
    tree = make_tree(plan, workdir)
    try:
        notes = plan.notes + apply_code(record, plan.root, tree)
        result, new_dir = run_child(plan, tree, st, timeout)
        result.notes = notes
        result.exact = not notes
        result.kept = keep
        _judge(result, new_dir, record, rtol=rtol, atol=atol)
        return result
    finally:
        if not keep:
            remove_tree(plan.root, tree)


def _tol(value: float | None, default: float) -> float:
    return default if value is None else value


# ---------------------------------------------------------------------------------- verdict


def _judge(
    out: Reproduction, new_dir: str | None, original: RunRecord, *, rtol: float, atol: float
) -> None:
    """Diff the original against the re-run and set the verdict, divergence and likely cause."""
    from reprolog._diff import MetricStatus, diff
    from reprolog._store import Store

    if new_dir is None:
        out.verdict = "failed"
        return
    run_dir = Path(new_dir)
    new = Store(run_dir.parent.parent).run(run_dir.name)
    out.new = new.id
    if out.error is not None or new.status not in ("completed", original.status):
        out.verdict = "failed"
        if out.error is None:
            err = new.error or {}
            out.error = f"the re-run ended {new.status}: {err.get('type')}: {err.get('message')}"
        return
    if original.status != "completed":
        out.notes.append(f"the original run ended {original.status}, and so did the re-run")
    full = diff(original, new, rtol=rtol, atol=atol)
    out.diff, out.expected = _split_expected(full, out, original)
    d = out.diff
    diverged = [m for m in d.metrics if m.status is MetricStatus.DIVERGED]
    if diverged or d.metrics_only_in_a or d.metrics_only_in_b:
        out.verdict = "diverged"
        if diverged:
            first = min(diverged, key=lambda m: (m.step if m.step is not None else 2**63, m.key))
            out.diverged_at, out.diverged_metric = first.step, first.key
        else:
            out.diverged_metric = (d.metrics_only_in_a + d.metrics_only_in_b)[0]
    elif any(m.status is MetricStatus.WITHIN_TOLERANCE for m in d.metrics):
        out.verdict = "within tolerance"
    else:
        out.verdict = "identical"
        if not d.metrics:
            out.notes.append("the original logged no metrics: only the record was compared")
    if out.verdict != "identical":
        if d.differences:
            top = d.differences[0]
            out.likely_cause = f"{top.category.value}: {top.explanation}"
        elif out.notes:
            out.likely_cause = f"the re-run was not exact: {out.notes[0]}"
        else:
            out.likely_cause = (
                "nothing recorded differs: look outside the record (data read without "
                "log_dataset, non-deterministic kernels, thread scheduling)"
            )


def _split_expected(
    d: RunDiff, out: Reproduction, original: RunRecord
) -> tuple[RunDiff, list[Difference]]:
    """Move the differences that re-running in a work tree causes by itself out of the diff."""
    root = str(original.section("code").get("root") or "")
    cwd = str(original.section("command").get("cwd") or "")
    swaps = [(out.workdir, root), (out.cwd, cwd)]

    def unmap(value: Any) -> Any:
        if isinstance(value, str):
            for new, old in swaps:
                value = value.replace(new, old)
            return value
        if isinstance(value, list):
            return [unmap(v) for v in value]
        if isinstance(value, Mapping):
            return {k: unmap(v) for k, v in value.items()}
        return value

    def is_expected(x: Difference) -> bool:
        return (
            x.key in ("tags.reproduces", "code.branch", "code.detached", "reproduce")
            or x.key.startswith(("reproduce.", "environment.env.REPROLOG_"))
            # staged in the original, unstaged after `git apply`: same change, other letters
            or (x.key.startswith("code.changed.") and x.a is not None and x.b is not None)
            or (x.b is not None and unmap(x.b) == x.a)
            # the interpreter as typed ("python") against the one the re-run used, by path
            or (x.key == "command.orig_argv" and _tail_equal(x.a, unmap(x.b)))
        )

    kept = [x for x in d.differences if not is_expected(x)]
    expected = [x for x in d.differences if is_expected(x)]
    ranked = [dataclasses.replace(x, rank=i) for i, x in enumerate(kept, 1)]
    return dataclasses.replace(d, differences=ranked), expected


def _tail_equal(a: Any, b: Any) -> bool:
    return isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and a[1:] == b[1:]


# ---------------------------------------------------------------------------------- child hook

_hooked = False


def on_run_start(run: Any) -> None:
    """In a re-run made by `reproduce`: tag the run and restore the original's RNG states.

    Called by ``Run.__init__`` after capture when ``$REPROLOG_REPRODUCES`` is set; only the
    process's first run is treated. The seeds section is captured again after the restore, so
    it records the state training starts from. Never raises: failures are capture errors.

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
        from reprolog._record import read_json

        run.set_tags({"reproduces": original})
        report = os.environ.get(ENV_REPORT)
        if report:
            with open(report, "a") as fh:
                fh.write(json.dumps({"id": run.id, "dir": str(run.dir)}) + "\n")
        source = Path(os.environ.get(ENV_FROM) or Path(run.store_dir) / "runs" / original)
        seeds = (read_json(source / "run.json").get("sections") or {}).get("seeds") or {}
        restored = restore_rng(source, seeds)
        run.update_section("seeds", capture_seeds(Path(run.dir), CaptureReport()))
        run.update_section("reproduce", {"of": original, "restored": restored})
    except Exception as exc:
        run.record_capture_error("reproduce", exc)
