"""Export a run's record: requirements, a git patch of its code state, JSON.

`reprolog export` dispatches every format (these, pylock.toml, a Dockerfile) through
`reprolog._reproduce._export_env.export`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from reprolog._errors import StoreError


def requirements(record: Any) -> str:
    """Return the run's recorded installed distributions as a pip requirements file.

    Args:
        record: a ``RunRecord``.

    Returns:
        A header comment naming the run and Python version, then sorted ``name==version`` lines.

    Raises:
        StoreError: the run recorded no packages (``capture=False``, or capture failed).
    """
    env = _section(record, "environment")
    packages = env.get("packages")
    if not isinstance(packages, Mapping) or not packages:
        raise StoreError(
            f"run {record.id} recorded no installed packages (environment.packages is "
            f"{'missing' if packages is None else 'empty'}); was it started with capture=False?"
        )
    head = f"# requirements of reprolog run {record.id}"
    if env.get("python_version"):
        head += f" (Python {env['python_version']})"
    lines = [f"{name}=={version}" for name, version in sorted(packages.items())]
    return "\n".join([head, *lines]) + "\n"


def patch(record: Any) -> str:
    """Return the run's uncommitted code state as a patch that ``git apply`` accepts on its commit.

    The patch holds the recorded ``git diff HEAD`` followed by every untracked file whose content
    was recorded, as new-file diffs. Untracked files recorded by hash only (binary or too big)
    cannot be rebuilt; they are listed in the leading comment, which ``git apply`` ignores.

    Args:
        record: a ``RunRecord``.

    Returns:
        The patch text; empty-bodied (comment only) when the tree was clean.

    Raises:
        StoreError: the run recorded no git state, or its diff was truncated at capture, so the
            patch would be incomplete.
    """
    code = _section(record, "code")
    if not code.get("git"):
        why = code.get("reason") or "no code section"
        raise StoreError(f"run {record.id} recorded no git state ({why}); there is no patch")
    if code.get("diff_truncated"):
        raise StoreError(
            f"run {record.id}: the recorded diff was truncated at capture "
            f"({code.get('diff_bytes')} bytes in full); a patch from it would be incomplete"
        )
    body = str(code.get("diff") or "")
    if body and not body.endswith("\n"):
        body += "\n"
    missing: list[str] = []
    untracked = code.get("untracked") or {}
    for path in sorted(untracked):
        info = untracked[path] or {}
        content = info.get("content")
        if not isinstance(content, str) or info.get("truncated"):
            missing.append(f"{path} (sha256 {info.get('sha256')})")
            continue
        body += new_file_diff(path, content)
    head = [f"reprolog run {record.id}: apply on commit {code.get('commit')} with `git apply`"]
    if missing:
        head.append("untracked files recorded by hash only (not in this patch):")
        head += [f"  {m}" for m in missing]
    # git apply skips everything before the first "diff --git" line, so this note is harmless.
    return "".join(f"# {line}\n" for line in head) + body


def new_file_diff(path: str, content: str) -> str:
    """Return a git-style diff that creates ``path`` with ``content``.

    Args:
        path: the file's path relative to the repository root (posix).
        content: its text.

    Returns:
        The diff text, ending in a newline.
    """
    out = [f"diff --git a/{path} b/{path}\n", "new file mode 100644\n"]
    if not content:
        return "".join(out)
    lines = content.split("\n")
    ends_with_newline = content.endswith("\n")
    if ends_with_newline:
        lines = lines[:-1]
    out += ["--- /dev/null\n", f"+++ b/{path}\n", f"@@ -0,0 +1,{len(lines)} @@\n"]
    out += [f"+{line}\n" for line in lines]
    if not ends_with_newline:
        out.append("\\ No newline at end of file\n")
    return "".join(out)


def record_json(record: Any) -> str:
    """Return the whole run record as indented JSON (non-finite floats as JSON's NaN/Infinity)."""
    return json.dumps(record.raw, indent=2, sort_keys=True, default=repr) + "\n"


def _section(record: Any, name: str) -> dict[str, Any]:
    value = (record.raw.get("sections") or {}).get(name)
    return dict(value) if isinstance(value, Mapping) else {}
