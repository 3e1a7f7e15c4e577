"""The code section: git commit, branch, remotes, diff, untracked files and submodules."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import IO, Any

from reprolog._capture.redact import redact_text, redact_url
from reprolog._capture.report import CaptureReport

__all__ = ["DIFF_CAP", "capture_code"]

DIFF_CAP = 1 << 20  # bytes of diff text kept in the record
DIFF_HASH_CAP = 256 << 20  # past this, git is stopped and the diff goes unhashed
CONTENT_CAP = 64 << 10  # untracked text files up to this size are stored whole
CONTENT_TOTAL_CAP = 4 << 20  # total untracked content stored
HASH_CAP = 64 << 20  # untracked files above this size are not hashed (only sized)
HASH_TOTAL_CAP = 256 << 20  # total untracked bytes hashed
MAX_UNTRACKED = 2000  # untracked files described
GIT_TIMEOUT = 20.0  # seconds; a hung git (network filesystem, lock) must not hang training


def _git_env() -> dict[str, str]:
    env = dict(os.environ)
    # Never take .git/index.lock (status would otherwise refresh the index and race with the
    # user's own git commands); never prompt; stable, untranslated output.
    env.update({"GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"})
    return env


def _start(git: str, cwd: str, *args: str, stderr: IO[bytes] | int = subprocess.PIPE) -> Any:
    return subprocess.Popen(
        [git, "-c", "core.quotepath=off", "-c", "color.ui=never", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=stderr,
        stdin=subprocess.DEVNULL,
        env=_git_env(),
    )


def _finish(proc: Any) -> tuple[int, bytes, str]:
    with proc:  # closes every pipe and reaps the child, whatever happens
        try:
            out, err = proc.communicate(timeout=GIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return 124, b"", f"git timed out after {GIT_TIMEOUT:.0f} s"
        return proc.returncode, out, (err or b"").decode("utf-8", "replace").strip()


def _stream_diff(proc: Any) -> tuple[int, bytes, str | None, int]:
    """Read a diff: hash every byte, keep the first DIFF_CAP bytes, give up past DIFF_HASH_CAP."""
    with proc:  # closes every pipe and reaps the child, whatever happens
        return _read_diff(proc)


def _read_diff(proc: Any) -> tuple[int, bytes, str | None, int]:
    digest = hashlib.sha256()
    kept = bytearray()
    total = 0
    assert proc.stdout is not None
    while chunk := proc.stdout.read(1 << 16):
        digest.update(chunk)
        total += len(chunk)
        if len(kept) < DIFF_CAP:
            kept += chunk[: DIFF_CAP - len(kept)]
        if total > DIFF_HASH_CAP:
            proc.kill()
            proc.stdout.close()
            proc.wait()
            return 0, bytes(kept), None, total
    proc.stdout.close()
    try:
        proc.wait(timeout=GIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return proc.returncode, bytes(kept), digest.hexdigest(), total


def _parse_status(raw: bytes) -> dict[str, Any]:
    """Parse ``git status --porcelain=v2 -z --branch`` (paths are relative to the root)."""
    oid: str | None = None
    head: str | None = None
    changed: dict[str, str] = {}
    untracked: list[str] = []
    records = raw.decode("utf-8", "surrogateescape").split("\0")
    i = 0
    while i < len(records):
        rec = records[i]
        i += 1
        if not rec:
            continue
        if rec.startswith("# branch.oid "):
            value = rec[len("# branch.oid ") :]
            oid = None if value == "(initial)" else value
        elif rec.startswith("# branch.head "):
            head = rec[len("# branch.head ") :]
        elif rec.startswith("1 "):
            parts = rec.split(" ", 8)
            changed[parts[8]] = parts[1]
        elif rec.startswith("2 "):
            parts = rec.split(" ", 9)
            changed[parts[9]] = parts[1]
            i += 1  # the original path of a rename/copy follows in its own record
        elif rec.startswith("u "):
            parts = rec.split(" ", 10)
            changed[parts[10]] = parts[1]
        elif rec.startswith("? "):
            untracked.append(rec[2:])
    return {"oid": oid, "head": head, "changed": changed, "untracked": untracked}


class _Budget:
    def __init__(self) -> None:
        self.content = CONTENT_TOTAL_CAP
        self.hashing = HASH_TOTAL_CAP


def _describe_untracked(
    root: Path, rel: str, budget: _Budget, report: CaptureReport
) -> dict[str, Any]:
    path = root / rel
    entry: dict[str, Any] = {"size": None, "sha256": None}
    try:
        if path.is_symlink():
            entry["symlink"] = redact_text(os.readlink(path))[0]
            return entry
        size = path.stat().st_size
        entry["size"] = size
        if size > HASH_CAP or size > budget.hashing:
            report.skip(f"code.untracked.{rel}", f"not hashed: {size} bytes is over the cap")
            return entry
        budget.hashing -= size
        with open(path, "rb") as fh:
            head = fh.read(CONTENT_CAP + 1)
            digest = hashlib.sha256(head)
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        entry["sha256"] = digest.hexdigest()
    except OSError as exc:
        report.skip(f"code.untracked.{rel}", f"unreadable: {type(exc).__name__}")
        return entry
    if b"\0" in head[:8192]:
        entry["binary"] = True
        return entry
    if len(head) > CONTENT_CAP or len(head) > budget.content:
        entry["truncated"] = True
        report.skip(f"code.untracked.{rel}", "content not stored: over the size cap")
        return entry
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        entry["binary"] = True
        return entry
    budget.content -= len(head)
    masked, hits = redact_text(text)
    if hits:
        report.redact([f"code.untracked.{rel}"])
    entry["content"] = masked
    return entry


def _remotes(raw: bytes) -> dict[str, str]:
    remotes: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").splitlines():
        key, _, url = line.partition(" ")
        if key.startswith("remote.") and key.endswith(".url"):
            remotes[key[len("remote.") : -len(".url")]] = url
    return remotes


def _submodules(git: str, root: Path, report: CaptureReport) -> dict[str, str]:
    if not (root / ".gitmodules").exists():
        return {}
    rc, out, err = _finish(_start(git, str(root), "submodule", "status", "--recursive"))
    if rc != 0:
        report.error("code.submodules", err or f"git submodule status exited {rc}")
        return {}
    subs: dict[str, str] = {}
    for line in out.decode("utf-8", "replace").splitlines():
        fields = line[1:].split()  # first column: ' ', '+', '-' or 'U'
        if len(fields) >= 2:
            subs[fields[1]] = fields[0]
    return subs


def _no_git(reason: str) -> dict[str, Any]:
    return {
        "git": False,
        "reason": reason,
        "root": None,
        "commit": None,
        "branch": None,
        "detached": False,
        "remote_url": None,
        "remotes": {},
        "dirty": False,
        "changed": {},
        "diff": "",
        "diff_sha256": None,
        "diff_bytes": 0,
        "diff_truncated": False,
        "untracked": {},
        "submodules": {},
    }


def capture_code(
    report: CaptureReport, where: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """Capture the code section with four concurrent git calls (see sections.md for every key).

    Args:
        report: collects skipped items, masked names and errors.
        where: a folder inside the work tree (the entry script's folder); the cwd by default.

    Returns:
        The section; ``git`` is false with a ``reason`` outside a repository or without git.
    """
    cwd = str(where) if where is not None else os.getcwd()
    git = shutil.which("git")
    if git is None:
        report.skip("code", "git executable not found on PATH")
        return _no_git("git executable not found")
    status = _start(git, cwd, "status", "--porcelain=v2", "-z", "--branch", "--untracked-files=all")
    toplevel = _start(git, cwd, "rev-parse", "--show-toplevel")
    config = _start(git, cwd, "config", "--get-regexp", r"^remote\..*\.url$")
    with tempfile.TemporaryFile() as diff_err:
        diff = _start(
            git,
            cwd,
            "diff",
            "HEAD",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "--submodule=short",
            stderr=diff_err,
        )
        rc, out, err = _finish(status)
        _, top_out, _ = _finish(toplevel)
        cfg_rc, cfg_out, _ = _finish(config)
        diff_rc, diff_text, diff_sha, diff_total = _stream_diff(diff)
    if rc != 0:
        first = err.splitlines()[0] if err else f"git status exited {rc}"
        reason = "not a git repository" if "not a git repository" in err else first
        report.skip("code", f"{reason} ({cwd})")
        return _no_git(reason)
    root = Path(top_out.decode("utf-8", "surrogateescape").strip() or cwd)
    parsed = _parse_status(out)
    if diff_rc != 0:
        # An unborn branch has no HEAD: diff the index and the work tree instead.
        diff_rc, diff_text, diff_sha, diff_total = _stream_diff(
            _start(
                git,
                str(root),
                "diff",
                "--cached",
                "--no-color",
                "--no-ext-diff",
                "--no-textconv",
                stderr=subprocess.DEVNULL,
            )
        )
    remotes = {n: redact_url(u) for n, u in _remotes(cfg_out if cfg_rc == 0 else b"").items()}
    raw_remotes = _remotes(cfg_out if cfg_rc == 0 else b"")
    if any(remotes[n] != raw_remotes[n] for n in remotes):
        report.redact(["code.remote_url"])
    head = parsed["head"]
    detached = head == "(detached)"
    text = diff_text.decode("utf-8", "replace")
    text, hits = redact_text(text)
    if hits:
        report.redact(["code.diff"])
    if diff_total > DIFF_CAP:
        report.skip("code.diff", f"truncated: {diff_total} bytes, kept the first {DIFF_CAP}")
    if diff_sha is None and diff_rc == 0:
        report.skip("code.diff_sha256", f"not computed: the diff is over {DIFF_HASH_CAP} bytes")
    budget = _Budget()
    untracked: dict[str, Any] = {}
    for rel in parsed["untracked"][:MAX_UNTRACKED]:
        untracked[rel] = _describe_untracked(root, rel, budget, report)
    if len(parsed["untracked"]) > MAX_UNTRACKED:
        report.skip(
            "code.untracked",
            f"{len(parsed['untracked'])} untracked files, described the first {MAX_UNTRACKED}",
        )
    section = {
        "git": True,
        "reason": None,
        "root": str(root),
        "commit": parsed["oid"],
        "branch": None if detached else head,
        "detached": detached,
        "remote_url": remotes.get("origin", next(iter(remotes.values()), None)),
        "remotes": remotes,
        "dirty": bool(parsed["changed"] or parsed["untracked"]),
        "changed": parsed["changed"],
        "diff": text,
        "diff_sha256": diff_sha if diff_rc == 0 else None,
        "diff_bytes": diff_total,
        "diff_truncated": diff_total > DIFF_CAP,
        "untracked": untracked,
        "submodules": _submodules(git, root, report),
    }
    if diff_rc != 0:
        report.error("code.diff", f"git diff exited {diff_rc}")
    report.done("code")
    return section
