"""A re-run's mechanics: make the work tree, apply the recorded patch, run the child."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from reprolog._reproduce._model import (
    ENV_REPORT,
    REDACTED,
    ReproduceError,
    Reproduction,
)
from reprolog._reproduce._plan import Plan, command_line, git, map_path

if TYPE_CHECKING:
    from reprolog._store._record import RunRecord
    from reprolog._store._store import Store

_TAIL = 4000  # bytes of the child's stderr kept when it fails


# ---------------------------------------------------------------------------------- work tree


def make_tree(plan: Plan, workdir: str | os.PathLike[str] | None) -> str:
    if workdir is None:
        tree = tempfile.mkdtemp(prefix="reprolog-reproduce-")
    else:
        tree = os.fspath(workdir)
        if os.path.exists(tree) and (not os.path.isdir(tree) or os.listdir(tree)):
            raise ReproduceError(f"workdir {tree} exists and is not an empty folder")
    tree = os.path.realpath(tree)  # the child sees the resolved path as its cwd
    done = git(plan.root, "worktree", "add", "--detach", tree, plan.commit)
    if done.returncode != 0:
        if workdir is None:
            shutil.rmtree(tree, ignore_errors=True)
        raise ReproduceError(
            f"git worktree add of commit {plan.commit} failed: {done.stderr.strip()}"
        )
    return tree


def remove_tree(root: Path, tree: str) -> None:
    if git(root, "worktree", "remove", "--force", tree).returncode != 0:
        shutil.rmtree(tree, ignore_errors=True)
        git(root, "worktree", "prune")


def apply_code(record: RunRecord, root: Path, tree: str) -> list[str]:
    """Apply the recorded patch in the tree; return what could not be rebuilt exactly."""
    from reprolog._storage._hashing import sha256_fileobj
    from reprolog._store._export import patch

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
        record = record._with_raw(raw)
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


def run_child(
    plan: Plan, tree: str, store: Store, timeout: float | None
) -> tuple[Reproduction, str | None]:
    """Run the command in the tree; return the outcome so far and the new run's folder."""
    cmd = command_line(plan, tree)
    cwd = plan.cwd if plan.cwd_rel is None else os.path.normpath(os.path.join(tree, plan.cwd_rel))
    env = {k: v for k, v in os.environ.items() if plan.env.get(k, "") is not None}
    env.update({k: v for k, v in plan.env.items() if v is not None})
    if plan.kind == "notebook" and env.get("REPROLOG_NOTEBOOK"):
        env["REPROLOG_NOTEBOOK"] = map_path(env["REPROLOG_NOTEBOOK"], plan, tree)
    if plan.pythonpath:
        first = [os.path.normpath(os.path.join(tree, rel)) for rel in plan.pythonpath]
        env["PYTHONPATH"] = os.pathsep.join([*first, *filter(None, [env.get("PYTHONPATH")])])
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
        record = store.run(run_id)
        if record.tags.get("reproduces") == original:
            return str(record.dir)
    return None
