"""Garbage collection: remove failed and crashed runs, then blobs that no run references."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reprolog._errors import ArgumentError

if TYPE_CHECKING:
    from pathlib import Path

    from reprolog._storage._layout import StoreLayout
    from reprolog._store._store import Store

# Only runs that ended badly are removed; completed and interrupted runs are kept (an interrupted
# run is often a deliberate early stop whose checkpoints someone wants).
REMOVABLE_STATUSES = ("failed", "crashed")
# A run copies a blob into the store before its record names it; a blob younger than this may
# belong to a live run whose record has not been written yet, so it is never collected.
BLOB_GRACE_SECONDS = 3600.0
_HEX64 = re.compile(rb"[0-9a-f]{64}")


@dataclass
class GcReport:
    """What a collection removed (or, in a dry run, would remove).

    Attributes:
        runs: ids of the removed runs.
        blobs: store-relative paths of the removed blobs.
        bytes: bytes freed on disk.
        dry_run: True when nothing was actually removed.
    """

    runs: list[str] = field(default_factory=list)
    blobs: list[str] = field(default_factory=list)
    bytes: int = 0
    dry_run: bool = False


def collect(
    store: Store,
    *,
    older_than_days: float | None = None,
    dry_run: bool = False,
    now: float | None = None,
) -> GcReport:
    """Remove failed and crashed runs and unreferenced blobs from a store.

    Args:
        store: a ``Store``.
        older_than_days: only remove runs that ended (or, if they have no end, started) more than
            this many days ago, and blobs last written that long ago; None: any age (blobs still
            keep a one-hour grace, see ``BLOB_GRACE_SECONDS``).
        dry_run: report what would be removed without removing anything.
        now: the current unix time (for tests).

    Returns:
        A ``GcReport``.

    Raises:
        ArgumentError: ``older_than_days`` is negative or not a number.
    """
    if older_than_days is not None and (
        isinstance(older_than_days, bool)
        or not isinstance(older_than_days, int | float)
        or not older_than_days >= 0
    ):
        raise ArgumentError(f"older_than_days must be a number >= 0, got {older_than_days!r}")
    if store.uri is not None:
        raise ArgumentError(
            f"gc removes runs from a store, and a store at a URI is read-only here "
            f"({store.uri}); run it on a local store"
        )
    now = time.time() if now is None else now
    cutoff = None if older_than_days is None else now - older_than_days * 86400.0
    layout = store._layout
    report = GcReport(dry_run=dry_run)

    # Store.runs() also recovers runs whose process died, so "crashed" is up to date here.
    table = store.runs()
    for row in table.to_dict("records"):
        run_id = str(row["id"])
        when = _float(row.get("end")) or _float(row.get("start"))
        old_enough = cutoff is None or (when is not None and when < cutoff)
        if row.get("status") in REMOVABLE_STATUSES and old_enough:
            folder = layout.run_dir(run_id)
            report.runs.append(run_id)
            report.bytes += _size(folder)
            if not dry_run:
                shutil.rmtree(folder, ignore_errors=True)

    # Every other run folder keeps its blobs, also one the runs table could not read.
    removed = set(report.runs)
    runs_dir = layout.runs
    keep = (
        [p.name for p in runs_dir.iterdir() if p.name not in removed] if runs_dir.is_dir() else []
    )
    referenced = _referenced_hashes(layout, keep)
    blob_cutoff = min(now - BLOB_GRACE_SECONDS, cutoff if cutoff is not None else now)
    for blob in layout.blob_paths():
        if blob.name in referenced:
            continue
        stat = blob.stat()
        if stat.st_mtime >= blob_cutoff:
            continue
        report.blobs.append(blob.relative_to(layout.root).as_posix())
        report.bytes += stat.st_size
        if not dry_run:
            blob.unlink(missing_ok=True)
    return report


def _referenced_hashes(layout: StoreLayout, run_ids: list[str]) -> set[str]:
    """Every sha256 written anywhere in the kept runs' records.

    Scanning the whole record text, not only ``artifacts[].blob``, keeps any blob that a section
    or an integration refers to by hash: collecting too little is harmless, too much loses data.
    """
    found: set[str] = set()
    for run_id in run_ids:
        try:
            text = layout.run_layout(run_id).record.read_bytes()
        except OSError:
            continue
        found.update(m.decode() for m in _HEX64.findall(text))
    return found


def _size(folder: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):  # removed meanwhile
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _float(value: Any) -> float | None:
    if hasattr(value, "timestamp"):  # a pandas/datetime timestamp
        try:
            return float(value.timestamp())
        except (TypeError, ValueError):  # NaT
            return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out == out else None
