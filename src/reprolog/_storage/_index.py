"""The summary index: one Parquet file that makes listing a large store cheap.

Writers never touch it. Each finished (or recovered) run leaves a small `summary.json` in
its folder; a reader compares the run folders' mtimes with the index, reads only the
summaries that are new or changed, and rewrites the index (under a lock, atomically) when
anything changed. A missing, corrupt or older-format index is rebuilt (an index of the
previous release is upgraded from the summary texts it holds). A read-only Store never
writes it: it keeps the same index in memory.

One row per finished run: `id` (its folder), `mtime_ns` (its folder's), `summary` (the
summary row as JSON text), and the same row as typed listing columns (`_listing`), so the
runs table is built from Arrow without parsing a summary.
"""

from __future__ import annotations

import gc
import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprolog._storage import _listing, _locks
from reprolog._storage._atomic import replacing
from reprolog._storage._layout import StoreLayout

if TYPE_CHECKING:
    import pyarrow as pa

logger = logging.getLogger("reprolog")

INDEX_COLUMNS = ("id", "mtime_ns", "summary")
#: bumped when the file's columns change; another version is rebuilt (v1: no listing columns)
INDEX_VERSION = 2
_VERSION = b"reprolog.index_version"


class SummaryRow(dict[str, Any]):
    """A summary row read as is from a run's summary.json, with the JSON text it was read from.

    The index stores that text, and the folder's mtime seen before the read (nothing was
    written to the folder by the read; a change meanwhile makes the next listing read again).
    """

    __slots__ = ("text",)

    def __init__(self, data: dict[str, Any], text: str) -> None:
        super().__init__(data)
        self.text = text


@dataclass
class IndexMemo:
    """Read-only mode: the index in memory, standing in for the file once it is filled."""

    table: pa.Table | None = None


@dataclass
class Listing:
    """What one listing found: the index rows of finished runs, and live runs' rows.

    Attributes:
        table: one row per finished, readable run (in index order, new runs last): the
            index's columns.
        live: the summary rows of runs still running (never cached).
    """

    table: pa.Table
    live: list[dict[str, Any]] = field(default_factory=list)

    def summaries(self) -> list[dict[str, Any]]:
        """Every summary row: live runs first, then the finished ones."""
        with _gc_paused():
            texts = self.table.column("summary").to_pylist()
            return self.live + [json.loads(t) for t in texts]

    def columns(self) -> pa.Table:
        """Every run's row as listing columns (`_listing`), the index's own columns included."""
        if not self.live:
            return self.table
        live = _rows_table([], [], self.live)
        if "summary" not in self.table.column_names:
            live = live.drop_columns(["summary"])
        return _listing.merge([live, self.table])


def _rows_table(ids: list[str], mtimes: list[int], rows: list[dict[str, Any]]) -> pa.Table:
    """Index rows for summary rows (ids and mtimes: of their folders; live rows: none)."""
    import pyarrow as pa

    n = len(rows)
    keys = {
        "id": pa.array(ids if ids else [r.get("id") for r in rows], pa.string()),
        "mtime_ns": pa.array(mtimes if mtimes else [0] * n, pa.int64()),
        "summary": pa.array(
            [r.text if type(r) is SummaryRow else json.dumps(r, default=repr) for r in rows],
            pa.string(),
        ),
    }
    return _listing.listing_table(rows, keys)


def _empty() -> pa.Table:
    return _rows_table([], [], [])


def _read_index(path: Path, *, texts: bool = True) -> tuple[pa.Table, bool]:
    """(the index table, True when it must be written again: absent, unreadable, older).

    `texts=False`: without the summary texts (a tenth of the time), when an index of this
    version is read.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
        meta = schema.metadata or {}
        for name in INDEX_COLUMNS:
            schema.field(name)
        current = meta.get(_VERSION) == str(INDEX_VERSION).encode()
        columns = None if texts or not current else [n for n in schema.names if n != "summary"]
        table = pq.read_table(path, columns=columns).replace_schema_metadata(meta)
    except FileNotFoundError:
        return _empty(), True
    except (pa.ArrowException, OSError, KeyError) as exc:
        logger.warning("reprolog: rebuilding unreadable index %s (%s)", path, exc)
        return _empty(), True
    version = meta.get(_VERSION)
    if version == str(INDEX_VERSION).encode():
        return table, False
    if version is None:  # the previous release's: its summary texts are still good
        try:
            rows = [json.loads(t) for t in table.column("summary").to_pylist()]
            upgraded = _rows_table(
                table.column("id").to_pylist(), table.column("mtime_ns").to_pylist(), rows
            )
        except (ValueError, TypeError, AttributeError, pa.ArrowException) as exc:
            logger.warning("reprolog: rebuilding unreadable index %s (%s)", path, exc)
            return _empty(), True
        return upgraded, True
    logger.info("reprolog: rebuilding index %s of version %s", path, version.decode())
    return _empty(), True


def _write_index(layout: StoreLayout, table: pa.Table) -> None:
    import pyarrow.parquet as pq

    meta = dict(table.schema.metadata or {})
    meta[_VERSION] = str(INDEX_VERSION).encode()
    table = table.replace_schema_metadata(meta)
    layout.index_dir.mkdir(parents=True, exist_ok=True)
    with _locks.held_if_free(layout.index_lock) as taken:
        if not taken:
            return  # another reader is refreshing it; ours is only a cache
        with replacing(layout.index_file) as tmp:
            pq.write_table(table, tmp, compression="zstd")


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic GC while a listing makes 100,000s of dicts and lists that all stay alive.

    Each collection would walk every one of them again (a cold listing of 100,000 runs:
    twice as long); they are freed normally, and GC runs again, when the block ends.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


#: at least this many runs to read: their summaries are parsed together (`load_many`)
BATCH_MIN = 1000

LoadOne = Callable[[str], "dict[str, Any] | None"]
#: run ids -> (listing table with `summary`, or None; its rows' run ids; ids left to load_one)
LoadMany = Callable[[list[str]], "tuple[pa.Table | None, list[str], list[str]]"]


def load_listing(
    layout: StoreLayout,
    load_one: LoadOne,
    *,
    memo: IndexMemo | None = None,
    load_many: LoadMany | None = None,
    texts: bool = True,
) -> Listing:
    """List every run folder, refreshing the index as needed.

    Args:
        layout: the store.
        load_one: callable(run_id) -> summary dict or None; called for runs that the index
            does not know or that changed since it was written (it may recover crashed runs).
        memo: read-only mode: the index is never written; this in-memory index (updated in
            place) stands in for it once a listing filled it.
        load_many: reads many runs' summaries at once where it can (`BATCH_MIN` or more to
            read, as a cold listing has); the runs it leaves go through `load_one`.
        texts: False: the listing's table may lack the `summary` column (`Listing.columns`
            only), which spares reading it when the index is current.
    """
    with _gc_paused():
        return _load_listing(layout, load_one, memo, load_many, texts)


def _load_listing(
    layout: StoreLayout,
    load_one: LoadOne,
    memo: IndexMemo | None,
    load_many: LoadMany | None,
    texts: bool,
) -> Listing:
    import pyarrow as pa

    try:
        entries = list(os.scandir(layout.runs))
    except FileNotFoundError:
        return Listing(_empty())
    if memo is not None and memo.table is not None:
        index, stale = memo.table, False
    else:
        index, stale = _read_index(layout.index_file, texts=texts or memo is not None)
    known_ids = index.column("id").to_pylist()
    known = dict(zip(known_ids, index.column("mtime_ns").to_pylist(), strict=True))
    where = {run_id: i for i, run_id in enumerate(known_ids)}
    order: list[int] = []  # the current runs' rows in index + batch + new rows
    unknown: list[tuple[str, str, int]] = []
    for entry in entries:
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        run_id = entry.name
        try:
            mtime = entry.stat().st_mtime_ns
        except FileNotFoundError:
            continue  # deleted meanwhile
        if known.get(run_id) == mtime:
            order.append(where[run_id])
        else:
            unknown.append((run_id, entry.path, mtime))
    parts = [index]
    if load_many is not None and len(unknown) >= BATCH_MIN:
        batch, batch_ids, rest = load_many([run_id for run_id, _, _ in unknown])
        if batch is not None and batch.num_rows:
            seen = {run_id: mtime for run_id, _, mtime in unknown}
            batch = batch.append_column("id", pa.array(batch_ids, pa.string()))
            batch = batch.append_column(
                "mtime_ns", pa.array([seen[i] for i in batch_ids], pa.int64())
            )
            order.extend(range(index.num_rows, index.num_rows + batch.num_rows))
            parts.append(batch)
            left = set(rest)
            unknown = [u for u in unknown if u[0] in left]
    start = sum(part.num_rows for part in parts)
    changed = len(parts) > 1
    ids: list[str] = []
    mtimes: list[int] = []
    rows: list[dict[str, Any]] = []
    live: list[dict[str, Any]] = []
    for run_id, path, mtime in unknown:
        summary = load_one(run_id)
        if summary is None:
            continue
        changed = True
        # A live run changes at every flush: never cache it.
        if summary.get("status") != "running":
            if type(summary) is not SummaryRow:  # from the record: recovery may have touched it
                try:
                    mtime = os.stat(path).st_mtime_ns
                except FileNotFoundError:
                    continue
            order.append(start + len(rows))
            ids.append(run_id)
            mtimes.append(mtime)
            rows.append(summary)
        else:
            live.append(summary)
    if changed or stale or len(order) != index.num_rows:
        if rows:
            parts.append(_rows_table(ids, mtimes, rows))
        write = memo is None
        if "summary" not in index.column_names:  # read without its texts: they are due now
            full, _ = _read_index(layout.index_file)
            if full.column("id").equals(index.column("id")):
                parts[0] = index.append_column("summary", full.column("summary"))
            else:  # another reader rewrote it meanwhile: it is theirs to keep
                parts = [p.drop_columns(["summary"]) if p is not index else p for p in parts]
                write = False
        table = _listing.merge(parts)
        if len(order) != table.num_rows:  # runs gone or changed: keep the rows still current
            table = table.take(pa.array(sorted(order), pa.int64()))
        if memo is not None:
            memo.table = table
        elif write:
            try:
                _write_index(layout, table)
            except OSError as exc:
                logger.warning("reprolog: could not write the index (%s); listing still works", exc)
    else:
        table = index
        if memo is not None:
            memo.table = table
    return Listing(table, live)


def load_summaries(
    layout: StoreLayout,
    load_one: LoadOne,
    *,
    memo: IndexMemo | None = None,
) -> list[dict[str, Any]]:
    """Return one summary row per run folder, refreshing the index as needed (`load_listing`)."""
    return load_listing(layout, load_one, memo=memo).summaries()
