"""Safe file resolution (inside the store or a recorded artifact path), the token, headers."""

from __future__ import annotations

import os
import re
import secrets
import stat
from pathlib import Path
from typing import Any

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)
COOKIE = "reprolog_token"
_BLOB = re.compile(r"blobs/sha256/([0-9a-f]{2})/\1[0-9a-f]{62}")


class Refused(Exception):
    """A path that must not be served; `.status` is 403 (refused) or 404 (not there)."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.status = status


def new_token() -> str:
    return secrets.token_urlsafe(24)


def token_ok(given: str | None, token: str) -> bool:
    return given is not None and secrets.compare_digest(given.encode(), token.encode())


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def _regular_file(path: Path) -> Path:
    """`path` itself, when it is a regular file and not a symlink."""
    try:
        st = os.lstat(path)
    except OSError:
        raise Refused(f"{path.name}: no such file", 404) from None
    if stat.S_ISLNK(st.st_mode):
        raise Refused(f"{path.name}: a symlink is never served")
    if not stat.S_ISREG(st.st_mode):
        raise Refused(f"{path.name}: not a regular file", 404)
    return path


def safe_join(root: Path, relative: str) -> Path:
    """`root/relative`, refused unless it stays inside `root` with no symlink on the way.

    Refuses absolute paths, `..` parts, backslashes and NUL whatever their encoding (the
    caller passes the decoded path; a still-encoded `%2e%2e` is a literal name, never found).
    """
    if not relative or "\x00" in relative or "\\" in relative or relative.startswith("/"):
        raise Refused(f"refused path {relative!r}")
    parts = relative.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise Refused(f"refused path {relative!r}")
    real_root = root.resolve()
    candidate = real_root.joinpath(*parts)
    # Every component must be a real folder/file inside the root: no symlink anywhere.
    current = real_root
    for part in parts[:-1]:
        current = current / part
        try:
            st = os.lstat(current)
        except OSError:
            raise Refused(f"{relative}: no such file", 404) from None
        if not stat.S_ISDIR(st.st_mode):
            raise Refused(f"refused path {relative!r}")
    _regular_file(candidate)
    if os.path.commonpath([os.path.realpath(candidate), str(real_root)]) != str(real_root):
        raise Refused(f"refused path {relative!r}")
    return candidate


def artifact_file(store_root: Path, artifact: dict[str, Any]) -> Path:
    """The file to serve for a recorded file artifact: its blob copy, else its recorded path.

    The blob must be a well-formed content address inside the store; the recorded path must
    still be a regular file (no symlink) of the recorded size.
    """
    if artifact.get("type") == "dir":
        raise Refused(f"artifact {artifact.get('id')} is a folder", 404)
    blob = artifact.get("blob")
    if isinstance(blob, str) and blob:
        if not _BLOB.fullmatch(blob):
            raise Refused(f"artifact {artifact.get('id')}: bad blob path {blob!r}")
        try:
            return safe_join(store_root, blob)
        except Refused as exc:
            if exc.status != 404:
                raise
        # blob gone (gc): fall back on the recorded path
    path = artifact.get("path")
    if not isinstance(path, str) or not os.path.isabs(path) or ".." in Path(path).parts:
        raise Refused(f"artifact {artifact.get('id')}: no servable path")
    file = _regular_file(Path(path))
    size = artifact.get("size")
    if isinstance(size, int) and file.stat().st_size != size:
        raise Refused(f"artifact {artifact.get('id')}: {path} changed since it was recorded", 404)
    return file
