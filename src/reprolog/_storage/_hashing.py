"""Streaming sha256 of open files, on every supported Python."""

from __future__ import annotations

import hashlib
from typing import Any, BinaryIO

_CHUNK = 1 << 20


def sha256_fileobj(fh: BinaryIO) -> Any:
    """Return a sha256 object over the rest of `fh` (hashlib.file_digest where it exists)."""
    file_digest = getattr(hashlib, "file_digest", None)  # Python 3.11+
    if file_digest is not None:
        return file_digest(fh, "sha256")
    digest = hashlib.sha256()
    while chunk := fh.read(_CHUNK):
        digest.update(chunk)
    return digest
