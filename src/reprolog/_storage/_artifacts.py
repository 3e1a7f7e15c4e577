"""Artifacts: content hashes computed off the caller's thread, and content-addressed copies."""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hash a file, through the capture's file-hash cache (path, size, mtime, inode): an
    unchanged checkpoint or data file is never hashed twice."""
    from reprolog._storage._filecache import file_sha256

    return file_sha256(path)[0]


def _copy_and_hash(path: Path, copy_to: Path) -> str:
    """Stream `path` into `copy_to`, hashing the bytes on the way."""
    digest = hashlib.sha256()
    with open(path, "rb") as src, open(copy_to, "wb") as dst:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            dst.write(chunk)
    return digest.hexdigest()


def _store_blob(path: Path, blobs_root: Path) -> tuple[str, str]:
    """Copy a file into the blob store; return (sha256, blob path relative to the store root)."""
    tmp_dir = blobs_root / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f"{os.getpid()}-{threading.get_ident()}-{path.name}"
    try:
        sha = _copy_and_hash(path, tmp)
        final = blobs_root / "sha256" / sha[:2] / sha
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():  # deduplicated: identical content is stored once
            tmp.unlink()
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    return sha, f"blobs/sha256/{sha[:2]}/{sha}"


def describe_artifact(path: Path, *, copy: bool, blobs_root: Path) -> dict[str, Any]:
    """Hash (and optionally copy) a file or a folder; returns fields to merge into its entry.

    A folder's hash is the sha256 of its sorted "relative path NUL sha256 LF" lines, so it
    changes when any file's content or name changes.
    """
    if path.is_file():
        if copy:
            sha, blob = _store_blob(path, blobs_root)
        else:
            sha, blob = sha256_file(path), None
        return {"sha256": sha, "size": path.stat().st_size, "blob": blob, "status": "ok"}
    if path.is_dir():
        files = []
        total = 0
        folder_digest = hashlib.sha256()
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            rel = file.relative_to(path).as_posix()
            if copy:
                sha, blob = _store_blob(file, blobs_root)
            else:
                sha, blob = sha256_file(file), None
            size = file.stat().st_size
            total += size
            files.append({"path": rel, "size": size, "sha256": sha, "blob": blob})
            folder_digest.update(f"{rel}\0{sha}\n".encode())
        return {"sha256": folder_digest.hexdigest(), "size": total, "files": files, "status": "ok"}
    return {"status": "missing", "problem": f"{path} no longer exists"}


class ArtifactWorker:
    """One background thread that hashes artifacts in the order they were logged."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future[None]] = []
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reprolog-hash")
            self._pending = [f for f in self._pending if not f.done()]
            self._pending.append(self._pool.submit(job))

    def wait(self) -> None:
        """Block until every submitted job has finished (their errors are handled by the job)."""
        with self._lock:
            pending = list(self._pending)
        for future in pending:
            future.exception()

    def shutdown(self) -> None:
        self.wait()
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None


def remove_tree(path: Path) -> None:
    """Delete a folder, tolerating files that vanish underneath."""
    shutil.rmtree(path, ignore_errors=True)
