"""run.json on disk: its format version, the statuses it may hold, an atomic write, a checked read.

The write side (`_run`) and the read side (`_store`) both go through here; `RunRecord`, the
reader's view of a record, lives in `reprolog._store._record`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reprolog._errors import CorruptFileError
from reprolog._storage._atomic import write_text
from reprolog._storage._values import dumps

RECORD_FORMAT_VERSION = 1
TERMINAL_STATUSES = ("completed", "failed", "interrupted", "crashed")
STATUSES = ("running", *TERMINAL_STATUSES)


def write_json_atomic(path: Path, data: Any, *, fsync: bool = False) -> None:
    """Write JSON through a temp file and rename, so readers never see half a record.

    `fsync` makes it durable against power loss too (used when a run ends); a plain
    rename already survives the death of the process.
    """
    write_text(path, dumps(data), fsync=fsync)


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object; a missing, torn or corrupt file raises CorruptFileError naming it."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError as exc:
        raise CorruptFileError(f"{path}: missing", path=str(path)) from exc
    except (OSError, ValueError) as exc:
        raise CorruptFileError(f"{path}: unreadable JSON: {exc}", path=str(path)) from exc
    if not isinstance(data, dict):
        raise CorruptFileError(
            f"{path}: expected a JSON object, found {type(data).__name__}", path=str(path)
        )
    version = data.get("format_version")
    if isinstance(version, int) and version > RECORD_FORMAT_VERSION:
        raise CorruptFileError(
            f"{path}: format_version {version} is newer than this reprolog understands "
            f"({RECORD_FORMAT_VERSION}); upgrade reprolog",
            path=str(path),
        )
    return data
