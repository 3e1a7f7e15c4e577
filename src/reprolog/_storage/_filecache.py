"""File sha256, cached by path, size, mtime and inode: in memory and across processes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from reprolog._storage._hashing import sha256_fileobj

__all__ = ["file_sha256"]

_PERSIST_MIN = 1 << 20  # files from this size up are cached on disk across processes
_memory: dict[tuple[str, int, int, int], str] = {}


def _cache_db() -> Any:
    """The cross-process file-hash cache (sqlite), or None when it cannot be opened."""
    import sqlite3

    from reprolog._storage._layout import cache_root

    root = str(cache_root())
    try:
        os.makedirs(root, exist_ok=True)
        db = sqlite3.connect(os.path.join(root, "fingerprints.sqlite"), timeout=2.0)
        db.execute(
            "CREATE TABLE IF NOT EXISTS files (path TEXT, size INTEGER, mtime_ns INTEGER,"
            " inode INTEGER, sha256 TEXT, PRIMARY KEY (path, size, mtime_ns, inode))"
        )
        return db
    except (OSError, sqlite3.Error):
        return None


def file_sha256(path: Path) -> tuple[str, bool]:
    """sha256 of a file's bytes, cached by (path, size, mtime, inode): (hex, was_cached)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    if key in _memory:
        return _memory[key], True
    db = _cache_db() if st.st_size >= _PERSIST_MIN else None
    try:
        if db is not None:
            row = db.execute(
                "SELECT sha256 FROM files WHERE path=? AND size=? AND mtime_ns=? AND inode=?", key
            ).fetchone()
            if row:
                _memory[key] = row[0]
                return row[0], True
        with open(path, "rb") as fh:
            digest = sha256_fileobj(fh).hexdigest()
        _memory[key] = digest
        if db is not None:
            try:
                with db:
                    db.execute(
                        "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)", (*key, digest)
                    )
            except Exception:  # a read-only or locked cache only costs a re-hash next time
                pass
        return digest, False
    finally:
        if db is not None:
            db.close()
