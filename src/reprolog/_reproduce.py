"""`reproduce(run)`: re-run a recorded run from its recorded code, command and seeds, and judge it."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from reprolog._errors import ReprologError

if TYPE_CHECKING:
    from reprolog._diff import Difference, RunDiff
    from reprolog._record import RunRecord
    from reprolog._store import Store

__all__ = ["ReproduceError", "Reproduction", "on_run_start", "reproduce"]

Verdict = Literal["identical", "within tolerance", "diverged", "failed"]

# Set in the child by `reproduce`; read by `on_run_start` (called from `Run.__init__`).
ENV_ID = "REPROLOG_REPRODUCES"
ENV_FROM = "REPROLOG_REPRODUCES_FROM"  # the original run's folder (its RNG side files)
ENV_REPORT = "REPROLOG_REPRODUCES_REPORT"  # a file where the child notes the run it made
REDACTED = "[REDACTED]"
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_TAIL = 4000


class ReproduceError(ReprologError):
    """A run that cannot be re-run: it lacks a commit, a command or a script, or its repo is gone."""


@dataclass
class Reproduction:
    """The outcome of re-running a recorded run.

    Attributes:
        original: the recorded run's id.
        new: the re-run's id (None for a dry run, or when the re-run made no run).
        command: the command line that was (or, for a dry run, would be) run.
        cwd: its working directory.
        workdir: the git work tree of the recorded commit.
        kept: the work tree was left in place (``keep=True`` or a dry run that made none).
        returncode: the child's exit status (None for a dry run or a timeout).
        diff: the original against the re-run, with the differences the re-run itself causes
            (work-tree path, detached HEAD, its own tag) moved to ``expected``.
        verdict: "identical", "within tolerance", "diverged" or "failed"; None for a dry run.
        diverged_at: the first divergent step of the first diverging metric.
        diverged_metric: that metric's key.
        likely_cause: the top-ranked recorded difference, as text.
        exact: False when the code or environment could not be rebuilt exactly (see ``notes``).
        notes: what was not exact, and other things worth knowing.
        env: the variables set (or unset, as None) for the child on top of the current ones.
        expected: differences due to re-running in a work tree, left out of ``diff``.
        error: why the re-run failed: the tail of its stderr, or the timeout.
        seconds: how long the child ran.
    """

    original: str
    new: str | None
    command: list[str]
    cwd: str
    workdir: str
    kept: bool
    returncode: int | None = None
    diff: RunDiff | None = None
    verdict: Verdict | None = None
    diverged_at: int | None = None
    diverged_metric: str | None = None
    likely_cause: str | None = None
    exact: bool = True
    notes: list[str] = field(default_factory=list)
    env: dict[str, str | None] = field(default_factory=dict)
    expected: list[Difference] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    @property
    def reproduced(self) -> bool:
        """True when the re-run is identical or within tolerance."""
        return self.verdict in ("identical", "within tolerance")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe mapping of the whole outcome."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["diff"] = self.diff.to_dict() if self.diff is not None else None
        out["expected"] = [d.to_dict() for d in self.expected]
        return out


@dataclass
class _Plan:
    record: RunRecord
    root: Path
    commit: str
    script: str  # relative to root
    args: list[str]  # argv[1:]
    flags: list[str]  # interpreter flags
    cwd_rel: str | None  # None: the recorded cwd lies outside the repository; used as is
    cwd: str
    env: dict[str, str | None]
    notes: list[str]


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
    st = store if isinstance(store, Store) else None
    if isinstance(run, str):
        st = st or Store(store)
        record = st.run(run)
    else:
        record = run
        st = st or Store(Path(record.dir).parent.parent)
    plan = _plan(record, st)
    if dry_run:
        where = str(workdir) if workdir is not None else "<a new temporary folder>"
        cwd = plan.cwd if plan.cwd_rel is None else os.path.join(where, plan.cwd_rel)
        return Reproduction(
            record.id, None, _command(plan, where), cwd, where, kept=False,
            exact=not plan.notes, notes=list(plan.notes), env=dict(plan.env),
        )  # fmt: skip
    tree = _make_tree(plan, workdir)
    try:
        notes = plan.notes + _apply_code(record, plan.root, tree)
        result, new_dir = _run_child(plan, tree, st, timeout)
        result.notes = notes
        result.exact = not notes
        result.kept = keep
        _judge(result, new_dir, record, rtol=rtol, atol=atol)
        return result
    finally:
        if not keep:
            _remove_tree(plan.root, tree)


def _tol(value: float | None, default: float) -> float:
    return default if value is None else value


# ---------------------------------------------------------------------------------- planning


def _git(root: Path | str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=False
    )


def _plan(record: RunRecord, store: Store) -> _Plan:
    """Check that the record holds what a re-run needs, and work out the command and env."""
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
    if kind != "script" or not entry:
        raise ReproduceError(
            f"run {rid} was started as a {kind or 'unknown'} entry ({entry or argv[0]!r}); "
            "reproduce re-runs scripts only (python path/to/script.py ...)"
        )
    masked = [i for i, a in enumerate(argv) if REDACTED in str(a)]
    if masked:
        raise ReproduceError(
            f"run {rid}: argv{masked} were masked as secrets at capture; the command cannot be "
            "rebuilt from the record"
        )
    root = Path(str(code.get("root") or ""))
    if not code.get("root") or not root.is_dir():
        raise ReproduceError(
            f"run {rid} was recorded in repository {str(root)!r} on host {record.raw.get('host')}, "
            "which does not exist here; reproduce needs that repository"
        )
    if _git(root, "cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        raise ReproduceError(
            f"run {rid}: commit {commit} is not in {root} (rebased away or not fetched?)"
        )
    script = os.path.relpath(str(entry), root)
    if script.startswith(".."):
        raise ReproduceError(f"run {rid}: its script {entry} lies outside repository {root}")
    cwd = str(command.get("cwd") or root)
    cwd_rel: str | None = os.path.relpath(cwd, root)
    notes: list[str] = []
    if cwd_rel is not None and cwd_rel.startswith(".."):
        cwd_rel = None
        notes.append(f"the recorded cwd {cwd} is outside the repository; the re-run uses it as is")
    orig = [str(a) for a in command.get("orig_argv") or []]
    flags = orig[1 : len(orig) - len(argv)] if orig[len(orig) - len(argv) :] == argv else []
    return _Plan(
        record, root, str(commit), script, [str(a) for a in argv[1:]], flags, cwd_rel, cwd,
        _child_env(record, store), notes,
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


def _command(plan: _Plan, tree: str) -> list[str]:
    # Absolute paths into the repository (a config file, a data folder) point into the tree.
    args = [a.replace(str(plan.root) + os.sep, tree + os.sep) for a in plan.args]
    return [sys.executable, *plan.flags, os.path.join(tree, plan.script), *args]


# ---------------------------------------------------------------------------------- work tree


def _make_tree(plan: _Plan, workdir: str | os.PathLike[str] | None) -> str:
    if workdir is None:
        tree = tempfile.mkdtemp(prefix="reprolog-reproduce-")
    else:
        tree = os.fspath(workdir)
        if os.path.exists(tree) and (not os.path.isdir(tree) or os.listdir(tree)):
            raise ReproduceError(f"workdir {tree} exists and is not an empty folder")
    tree = os.path.realpath(tree)  # the child sees the resolved path as its cwd
    done = _git(plan.root, "worktree", "add", "--detach", tree, plan.commit)
    if done.returncode != 0:
        if workdir is None:
            shutil.rmtree(tree, ignore_errors=True)
        raise ReproduceError(
            f"git worktree add of commit {plan.commit} failed: {done.stderr.strip()}"
        )
    return tree


def _remove_tree(root: Path, tree: str) -> None:
    if _git(root, "worktree", "remove", "--force", tree).returncode != 0:
        shutil.rmtree(tree, ignore_errors=True)
        _git(root, "worktree", "prune")


def _apply_code(record: RunRecord, root: Path, tree: str) -> list[str]:
    """Apply the recorded patch in the tree; return what could not be rebuilt exactly."""
    from reprolog._export import patch
    from reprolog._hashing import sha256_fileobj
    from reprolog._record import RunRecord

    code = record.section("code")
    notes: list[str] = []
    if code.get("diff_truncated"):
        notes.append(
            f"the recorded diff was truncated at capture ({code.get('diff_bytes')} bytes): "
            "uncommitted changes to tracked files are missing"
        )
        # Keep the untracked files: give the patch builder the record without the tracked diff.
        raw = json.loads(json.dumps(record.raw))
        raw["sections"]["code"].update(diff="", diff_truncated=False)
        record = RunRecord(raw, record.dir)
    elif REDACTED in str(code.get("diff") or ""):
        notes.append("the recorded diff had secrets masked: those lines differ from the original")
    text = patch(record)
    if "diff --git " in text:
        done = subprocess.run(
            ["git", "apply", "--whitespace=nowarn", "-"],
            cwd=tree, input=text, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            notes.append(f"git apply of the recorded patch failed: {done.stderr.strip()[:300]}")
    # Untracked files recorded by hash only (binary, big) or masked: copy them from the repo
    # when the file there still has the recorded content.
    for rel, info in sorted((code.get("untracked") or {}).items()):
        info = info or {}
        content = info.get("content")
        if isinstance(content, str) and not info.get("truncated") and REDACTED not in content:
            continue
        source, target = root / rel, Path(tree) / rel
        try:
            with open(source, "rb") as fh:
                same = sha256_fileobj(fh).hexdigest() == info.get("sha256")
        except OSError:
            same = False
        if same:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        else:
            notes.append(f"untracked file {rel} could not be restored (recorded by hash only)")
    if code.get("submodules"):
        notes.append("submodules are not checked out in the work tree")
    return notes


# ---------------------------------------------------------------------------------- the re-run


def _run_child(
    plan: _Plan, tree: str, store: Store, timeout: float | None
) -> tuple[Reproduction, str | None]:
    """Run the command in the tree; return the outcome so far and the new run's folder."""
    cmd = _command(plan, tree)
    cwd = plan.cwd if plan.cwd_rel is None else os.path.normpath(os.path.join(tree, plan.cwd_rel))
    env = {k: v for k, v in os.environ.items() if plan.env.get(k, "") is not None}
    env.update({k: v for k, v in plan.env.items() if v is not None})
    out = Reproduction(plan.record.id, None, cmd, cwd, tree, kept=False, env=dict(plan.env))
    with tempfile.TemporaryDirectory(prefix="reprolog-reproduce-io-") as io_dir:
        report = os.path.join(io_dir, "runs.jsonl")
        env[ENV_REPORT] = report
        with open(os.path.join(io_dir, "stderr"), "w+b") as err:
            start = time.monotonic()
            proc = subprocess.Popen(
                cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=err, start_new_session=True,
            )  # fmt: skip
            try:
                out.returncode = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _stop(proc)
                out.error = f"the re-run took longer than {timeout:g} s and was stopped"
            out.seconds = time.monotonic() - start
            err.seek(max(0, err.seek(0, os.SEEK_END) - _TAIL))
            tail = err.read().decode("utf-8", "replace")
        new_dir = _new_run(report, store, plan.record.id)
        if out.returncode not in (None, 0) and out.error is None:
            out.error = tail.strip() or f"exit status {out.returncode}"
        elif new_dir is None and out.error is None:
            out.error = "the script made no reprolog run" + (f":\n{tail.strip()}" if tail else "")
    return out, new_dir


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the child's process group (its run ends 'interrupted'), then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _new_run(report: str, store: Store, original: str) -> str | None:
    """The folder of the run the child made: from its report file, else by tag in the store."""
    try:
        lines = Path(report).read_text().splitlines()
        if lines:
            return str(json.loads(lines[0])["dir"])
    except (OSError, ValueError, KeyError):
        pass
    for run_id in reversed(store.run_ids()):
        if store.run(run_id).tags.get("reproduces") == original:
            return str(store.dir / "runs" / run_id)
    return None


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
        )

    kept = [x for x in d.differences if not is_expected(x)]
    expected = [x for x in d.differences if is_expected(x)]
    ranked = [dataclasses.replace(x, rank=i) for i, x in enumerate(kept, 1)]
    return dataclasses.replace(d, differences=ranked), expected


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
