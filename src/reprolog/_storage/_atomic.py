"""Atomic file replacement: a reader sees the old file or the new one, never half of either.

Every file a store replaces in place (run.json, summary.json, metrics.parquet, steps.parquet,
the index, store.json) is written through `replacing`: a temp file beside it, an optional
fsync, then `os.replace`. A plain rename already survives the writer's death; the fsync also
survives power loss and is used when a run ends.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path


def temp_path(path: Path) -> Path:
    """A hidden temp name beside `path`, unique per process and thread."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


@contextlib.contextmanager
def replacing(path: Path, *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temp path to write; on success it replaces `path`, on failure it is removed.

    Args:
        path: the file to replace (or create).
        fsync: flush the temp file to disk before the rename.
    """
    tmp = temp_path(path)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text(path: Path, text: str, *, fsync: bool = False) -> None:
    """Replace `path` with `text` (UTF-8) atomically."""
    with replacing(path, fsync=fsync) as tmp:
        tmp.write_text(text, encoding="utf-8")
