"""The summary index: one Parquet file that makes listing a large store cheap.

Writers never touch it. Each finished (or recovered) run leaves a small `summary.json` in
its folder; a reader compares the run folders' mtimes with the index, reads only the
summaries that are new or changed, and rewrites the index (under a lock, atomically) when
anything changed. A missing or corrupt index is rebuilt from the summaries. A read-only
Store never writes it: it keeps the same index in memory.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from reprolog._storage import _locks
from reprolog._storage._atomic import replacing
from reprolog._storage._layout import StoreLayout

logger = logging.getLogger("reprolog")

INDEX_COLUMNS = ("id", "mtime_ns", "summary")


def _read_index(path: Path) -> dict[str, tuple[int, str]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
        ids = table.column("id").to_pylist()
        mtimes = table.column("mtime_ns").to_pylist()
        summaries = table.column("summary").to_pylist()
    except FileNotFoundError:
        return {}
    except (pa.ArrowException, OSError, KeyError) as exc:
        logger.warning("reprolog: rebuilding unreadable index %s (%s)", path, exc)
        return {}
    return {i: (m, s) for i, m, s in zip(ids, mtimes, summaries, strict=False)}


def _write_index(layout: StoreLayout, entries: dict[str, tuple[int, str]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    layout.index_dir.mkdir(parents=True, exist_ok=True)
    ids = sorted(entries)
    table = pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "mtime_ns": pa.array([entries[i][0] for i in ids], pa.int64()),
            "summary": pa.array([entries[i][1] for i in ids], pa.string()),
        }
    )
    with _locks.held_if_free(layout.index_lock) as taken:
        if not taken:
            return  # another reader is refreshing it; ours is only a cache
        with replacing(layout.index_file) as tmp:
            pq.write_table(table, tmp, compression="zstd")


def load_summaries(
    layout: StoreLayout,
    load_one: Any,
    *,
    memo: dict[str, tuple[int, str]] | None = None,
) -> list[dict[str, Any]]:
    """Return one summary row per run folder, refreshing the index as needed.

    Args:
        layout: the store.
        load_one: callable(run_id) -> summary dict or None; called for runs that the index
            does not know or that changed since it was written (it may recover crashed runs).
        memo: read-only mode: the index is never written; this in-memory index (updated in
            place) stands in for it, on top of what the file holds.
    """
    index = _read_index(layout.index_file)
    if memo is not None:
        index.update(memo)
    current: dict[str, tuple[int, str]] = {}
    changed = False
    rows: list[dict[str, Any]] = []
    try:
        entries = list(os.scandir(layout.runs))
    except FileNotFoundError:
        return []
    for entry in entries:
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        run_id = entry.name
        try:
            mtime = entry.stat().st_mtime_ns
        except FileNotFoundError:
            continue  # deleted meanwhile
        known = index.get(run_id)
        if known is not None and known[0] == mtime:
            current[run_id] = known
            continue
        summary = load_one(run_id)
        if summary is None:
            continue
        changed = True
        text = json.dumps(summary, default=repr)
        # A live run changes at every flush: never cache it.
        if summary.get("status") != "running":
            try:
                mtime = os.stat(entry.path).st_mtime_ns  # recovery may have touched it
            except FileNotFoundError:
                continue
            current[run_id] = (mtime, text)
        else:
            rows.append(summary)
    if memo is not None:
        memo.clear()
        memo.update(current)
    elif changed or len(current) != len(index):
        try:
            _write_index(layout, current)
        except OSError as exc:
            logger.warning("reprolog: could not write the index (%s); listing still works", exc)
    rows.extend(json.loads(text) for _, text in current.values())
    return rows
