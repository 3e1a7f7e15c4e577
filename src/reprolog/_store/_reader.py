"""`StoreReader`: the one reader of a store, behind `Store`, `RunRecord`, SQL, diff and the UI.

It turns a ref (id, id prefix or name) into a run id, loads a run's record (recovering a dead
run first, or, read-only, viewing it crashed in memory), gives the summary rows through the
index, and each run's points: its finished metrics file or, while it lives, its log.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprolog._errors import AmbiguousRunError, ArgumentError, CorruptFileError, RunNotFoundError
from reprolog._storage._compact import read_live_table, summary_row
from reprolog._storage._encode import metrics_schema, read_parquet
from reprolog._storage._index import IndexMemo, Listing, SummaryRow, load_listing
from reprolog._storage._layout import RunLayout, StoreLayout, resolve_store_dir
from reprolog._storage._listing import parse_summaries
from reprolog._storage._recordfile import RECORD_FORMAT_VERSION, TERMINAL_STATUSES, read_json
from reprolog._storage._recover import crashed_view, lock_is_free, recover, writer_is_dead
from reprolog._store._frames import listing_frame, runs_frame
from reprolog._store._record import RunRecord

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

logger = logging.getLogger("reprolog")

# A run folder with neither run.json nor run.lock is taken for a run being created this long.
_STARTING_GRACE_S = 10.0


class StoreReader:
    """Reads the runs of one store; never writes when `read_only` (see `Store`).

    Attributes:
        layout: the store's paths.
        read_only: True: the summary index lives in memory, a dead run is viewed crashed
            without being recovered on disk, and a run's log is read without compacting it.
        problems: problems met while reading (corrupt files), as "path: what" strings.
    """

    def __init__(self, layout: StoreLayout, *, read_only: bool = False) -> None:
        self.layout = layout
        self.read_only = read_only
        # read-only: the summary index, in memory
        self._memo: IndexMemo | None = IndexMemo() if read_only else None
        self.problems: list[str] = []

    @classmethod
    def open(cls, dir: str | os.PathLike[str] | None, *, read_only: bool = False) -> StoreReader:
        """The reader of the store at `dir` (None: `$REPROLOG_DIR`, else the nearest one).

        Raises:
            StoreError: no store at that place.
        """
        return cls(StoreLayout(resolve_store_dir(dir, must_exist=True)), read_only=read_only)

    @classmethod
    def of_run_dir(cls, run_dir: str | os.PathLike[str], *, read_only: bool = False) -> StoreReader:
        """The reader of the store that holds the run folder `run_dir`."""
        return cls.open(RunLayout(Path(os.fspath(run_dir))).store_root, read_only=read_only)

    @classmethod
    def record_at(cls, run_dir: str | os.PathLike[str], *, read_only: bool = False) -> RunRecord:
        """The record of the run in folder `run_dir`, read through the store that holds it."""
        return cls.of_run_dir(run_dir, read_only=read_only).run(
            RunLayout(Path(os.fspath(run_dir))).run_id
        )

    @property
    def where(self) -> str:
        """The store as messages name it: its folder (a store at a URI: its display URI)."""
        return str(self.layout.root)

    def problem(self, message: str) -> None:
        """Note a problem once (and log it): the rest of the store stays readable."""
        if message not in self.problems:
            self.problems.append(message)
            logger.warning("reprolog: %s (skipped; the rest of the store is readable)", message)

    # ------------------------------------------------------------------ refs

    def run_ids(self) -> list[str]:
        """Every run id in the store, oldest first."""
        try:
            return sorted(
                e.name
                for e in os.scandir(self.layout.runs)
                if e.is_dir() and not e.name.startswith(".")
            )
        except FileNotFoundError:
            return []

    def resolve(self, ref: str) -> str:
        """Turn a full id, a unique id prefix, or a run name into a run id.

        Raises:
            ArgumentError: `ref` is not a non-empty string.
            RunNotFoundError: nothing matches.
            AmbiguousRunError: several runs match (`.candidates` lists them).
        """
        if not isinstance(ref, str) or not ref:
            raise ArgumentError(f"a run is named by a non-empty id, id prefix or name; got {ref!r}")
        ids = self.run_ids()
        if ref in ids:
            return ref
        matches = [i for i in ids if i.startswith(ref.lower())]
        if not matches:
            matches = [s["id"] for s in self._named_rows() if s.get("name") == ref]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise RunNotFoundError(
                f"no run matches {ref!r} (as an id, id prefix or name) in {self.where}",
                query=ref,
                path=self.where,
            )
        raise AmbiguousRunError(
            f"{ref!r} matches {len(matches)} runs: {', '.join(matches[:10])}"
            + (" ..." if len(matches) > 10 else "")
            + "; give more characters of the id",
            query=ref,
            candidates=matches,
        )

    def _named_rows(self) -> list[dict[str, Any]]:
        """The summary rows `resolve` looks names up in."""
        return self.summaries()

    def prefetch(self, run_ids: Iterable[str]) -> None:
        """Make these runs' files readable in `layout` before many of them are read.

        A folder has them already (nothing to do); a store at a URI fetches them into its
        cache (`RemoteStoreReader`), all at once rather than one per read.
        """

    # ------------------------------------------------------------------ records

    def load_record(self, run_id: str) -> dict[str, Any]:
        """Read a record; recover it first when its writer is dead (read-only: in memory).

        Raises:
            CorruptFileError: the record is missing or cannot be read.
        """
        layout = self.layout.run_layout(run_id)
        record = read_json(layout.record)
        status = record.get("status")
        dead = (status not in TERMINAL_STATUSES or layout.log_dir.is_dir()) and writer_is_dead(
            layout, record
        )
        if dead:  # not ended, or ended but compaction never completed
            record = crashed_view(layout, record) if self.read_only else recover(layout, record)
        return record

    def record(self, run_id: str) -> RunRecord:
        """The `RunRecord` of run `run_id` (an exact id), reading its points through this reader."""
        return RunRecord(self.load_record(run_id), self.layout.run_layout(run_id), self)

    def run(self, ref: str) -> RunRecord:
        """The `RunRecord` of a ref: see `resolve` and `load_record` for what it raises."""
        return self.record(self.resolve(ref))

    # ------------------------------------------------------------------ summaries

    def load_summary(self, run_id: str) -> dict[str, Any] | None:
        """One run's summary row (summary.json, else from its record), or None if unreadable."""
        # str paths and one open(): a cold listing of a large store calls this once per run
        run_dir = f"{os.fspath(self.layout.root)}/runs/{run_id}"
        if not os.path.isdir(f"{run_dir}/log"):
            try:
                return _read_summary(f"{run_dir}/summary.json")
            except FileNotFoundError:
                pass
            except CorruptFileError as exc:  # the record holds the same facts: fall back on it
                self.problem(str(exc))
        layout = self.layout.run_layout(run_id)
        try:
            return summary_row(self.load_record(run_id))
        except CorruptFileError as exc:
            if not _being_created(layout):
                self.problem(str(exc))
            return None

    def summaries(self) -> list[dict[str, Any]]:
        """Every readable run's summary row, through the index (kept in memory when read-only)."""
        return self._local_listing().summaries()

    def runs_frame(self, experiment: str | None = None) -> pd.DataFrame:
        """The runs table (`_frames.runs_frame` of the summary rows of `experiment`, or all).

        A local store builds it from the index's listing columns; a reader with rows of its
        own (a store at a URI) from its summary rows.
        """
        if type(self).summaries is not StoreReader.summaries:
            rows = self.summaries()
            if experiment is not None:
                rows = [r for r in rows if r.get("experiment") == experiment]
            return runs_frame(rows)
        return listing_frame(self._local_listing(texts=False).columns(), experiment)

    def _local_listing(self, *, texts: bool = True) -> Listing:
        return load_listing(
            self.layout,
            self.load_summary,
            memo=self._memo,
            load_many=self._read_summaries,
            texts=texts,
        )

    def _read_summaries(self, run_ids: list[str]) -> tuple[pa.Table | None, list[str], list[str]]:
        """`load_many` of the index: the summary.json of runs with no log, parsed at once."""
        root = os.fspath(self.layout.root)
        texts: list[bytes] = []
        read: list[str] = []
        rest: list[str] = []
        for run_id in run_ids:
            run_dir = f"{root}/runs/{run_id}"
            if os.path.isdir(f"{run_dir}/log"):
                rest.append(run_id)
                continue
            try:
                texts.append(_read_bytes(f"{run_dir}/summary.json"))
            except OSError:
                rest.append(run_id)  # no summary (or unreadable): load_summary says why
                continue
            read.append(run_id)
        table, kept, left = parse_summaries(texts)
        return table, [read[i] for i in kept], rest + [read[i] for i in left]

    # ------------------------------------------------------------------ points

    def metrics_table(
        self, runs: Iterable[str] | str | None = None, keys: Iterable[str] | str | None = None
    ) -> pa.Table:
        """The points of runs (refs; None: every run), keys (None: all), as one Arrow table."""
        import pyarrow as pa

        if isinstance(runs, str):
            runs = [runs]
        if isinstance(keys, str):
            keys = [keys]
        key_list = list(keys) if keys is not None else None
        run_ids = self.run_ids() if runs is None else [self.resolve(r) for r in runs]
        tables = []
        for run_id in run_ids:
            table = self.run_metrics(run_id, key_list)
            if table is not None and table.num_rows:
                tables.append(table)
        if not tables:
            return metrics_schema().empty_table()
        table = pa.concat_tables(tables, promote_options="permissive")
        return table.unify_dictionaries()

    def run_metrics(self, run_id: str, keys: list[str] | None) -> pa.Table | None:
        """One run's points: its log while it lives, else its metrics file (None: neither)."""
        layout = self.layout.run_layout(run_id)
        try:
            if layout.log_dir.is_dir():  # live (or awaiting recovery): read the log itself
                if not self.read_only:
                    self.load_record(run_id)  # recovers the run first if its writer is dead
                table = _live_metrics(run_id, layout)
                if table is not None:
                    if keys is not None:
                        import pyarrow as pa
                        import pyarrow.compute as pc

                        table = table.filter(
                            pc.is_in(
                                table.column("key").cast("string"), pa.array(keys, pa.string())
                            )
                        )
                    return table
            if not layout.metrics.exists():
                return None
            return read_parquet(layout.metrics, keys)
        except CorruptFileError as exc:
            if not _being_created(layout):
                self.problem(str(exc))
            return None

    def metric_sources(self, run_ids: Iterable[str]) -> tuple[list[str], list[pa.Table]]:
        """Where runs' points are: finished runs' metrics files, and live runs' points as tables.

        A live run's log is read now (a run that finishes meanwhile gives its complete file's
        table); runs with no points give nothing.
        """
        files: list[str] = []
        live: list[pa.Table] = []
        for run_id in run_ids:
            layout = self.layout.run_layout(run_id)
            if layout.log_dir.is_dir():  # a live run: its points are still in the log
                table = self.run_metrics(run_id, None)
                if table is not None and table.num_rows:
                    live.append(table)
            elif layout.metrics.exists():
                files.append(str(layout.metrics))
        return files, live


def _live_metrics(run_id: str, layout: RunLayout) -> pa.Table | None:
    """The points of a live run, or None when it finished (log gone) while we looked."""
    try:
        table, _ = read_live_table(layout, run_id)
    except FileNotFoundError:
        return None  # compacted meanwhile: its Parquet file is complete now
    if not layout.log_dir.is_dir():
        return None  # finished during the read: prefer the compacted file
    return table


_CHUNK = 1 << 16


def _read_bytes(path: str) -> bytes:
    """A small file's bytes with the fewest calls (half the time of open().read())."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        data = os.read(fd, _CHUNK)
        if len(data) < _CHUNK:  # a short read of a regular file is its end
            return data
        chunks = [data]
        while data:
            data = os.read(fd, _CHUNK)
            chunks.append(data)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _read_summary(path: str) -> dict[str, Any]:
    """`read_json` of a summary.json (FileNotFoundError when there is none), cheaper."""
    try:
        text = _read_bytes(path).decode("utf-8")
        data = json.loads(text)
    except (OSError, ValueError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        data = None
    if isinstance(data, dict):
        version = data.get("format_version")
        if not (isinstance(version, int) and version > RECORD_FORMAT_VERSION):
            return SummaryRow(data, text)
    return read_json(Path(path))  # raises the CorruptFileError that names the damage


def _being_created(layout: RunLayout) -> bool:
    """True for a run folder whose record is not written yet because its run is starting.

    `init` creates the folder, takes run.lock, captures the environment, and only then writes
    run.json: while its writer holds the lock (or, before the lock file exists, for a few
    seconds) a missing record is no damage.
    """
    if layout.record.exists():
        return False
    if layout.lock.exists():
        return not lock_is_free(layout)
    try:
        age = time.time() - layout.dir.stat().st_mtime
    except FileNotFoundError:
        return True  # deleted meanwhile: nothing to report
    return age < _STARTING_GRACE_S
