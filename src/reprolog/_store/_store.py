"""`Store`: read a store as pandas DataFrames, one run as a `RunRecord`, or SQL via DuckDB."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprolog._errors import (
    AmbiguousRunError,
    ArgumentError,
    CorruptFileError,
    RunNotFoundError,
)
from reprolog._storage._compact import read_live_table, summary_row
from reprolog._storage._encode import from_json_number, metrics_schema, read_parquet
from reprolog._storage._index import load_summaries
from reprolog._storage._layout import RunLayout, StoreLayout, resolve_store_dir
from reprolog._storage._recordfile import TERMINAL_STATUSES, read_json
from reprolog._storage._recover import crashed_view, lock_is_free, recover, writer_is_dead
from reprolog._store._record import RunRecord

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

logger = logging.getLogger("reprolog")

# A run folder with neither run.json nor run.lock is taken for a run being created this long.
_STARTING_GRACE_S = 10.0


class Store:
    """A folder of runs, read through pandas, DuckDB or one run at a time.

    Args:
        dir: the store folder; None means `$REPROLOG_DIR`, else the nearest `.reprolog`
            in this folder or a parent.
        read_only: never write to the store (what `reprolog ui` uses). Listing keeps its
            summary index in memory instead of writing `index/runs.parquet`; a dead
            `running` run is reported `crashed` (ending at its last heartbeat, its metrics
            read from its log) without being recovered on disk; a live or dead run's points
            are read from its log without compacting it. Default False: a reader recovers
            dead runs and refreshes the index, as the CLI does.

    Raises:
        StoreError: no store at that place.

    Example:
        >>> store = reprolog.Store()                                   # doctest: +SKIP
        >>> store.runs()[["id", "status", "params.lr", "metrics.loss.last"]]  # doctest: +SKIP
        >>> store.sql("SELECT key, count(*) FROM metrics GROUP BY 1")  # doctest: +SKIP
    """

    def __init__(
        self, dir: str | os.PathLike[str] | None = None, *, read_only: bool = False
    ) -> None:
        if not isinstance(read_only, bool):
            raise ArgumentError(f"read_only must be True or False, got {read_only!r}")
        self._layout = StoreLayout(resolve_store_dir(dir, must_exist=True))
        self._read_only = read_only
        # read-only: the summary index, in memory (run id -> (folder mtime, summary JSON))
        self._memo: dict[str, tuple[int, str]] | None = {} if read_only else None
        #: problems met while reading (corrupt files), as "path: what" strings
        self.problems: list[str] = []

    def __repr__(self) -> str:
        return f"Store({str(self.dir)!r})"

    @property
    def dir(self) -> Path:
        return self._layout.root

    @property
    def layout(self) -> StoreLayout:
        return self._layout

    @property
    def read_only(self) -> bool:
        return self._read_only

    # ------------------------------------------------------------------ one run

    def _load_record(self, run_id: str) -> dict[str, Any]:
        """Read a record; recover it first when its writer is dead (read-only: in memory)."""
        layout = RunLayout(self._layout.run_dir(run_id))
        record = read_json(layout.record)
        status = record.get("status")
        dead = (status not in TERMINAL_STATUSES or layout.log_dir.is_dir()) and writer_is_dead(
            layout, record
        )
        if dead:  # not ended, or ended but compaction never completed
            record = crashed_view(layout, record) if self._read_only else recover(layout, record)
        return record

    def _load_summary(self, run_id: str) -> dict[str, Any] | None:
        layout = RunLayout(self._layout.run_dir(run_id))
        if layout.summary.exists() and not layout.log_dir.is_dir():
            try:
                return read_json(layout.summary)
            except CorruptFileError as exc:  # the record holds the same facts: fall back on it
                self._problem(str(exc))
        try:
            return summary_row(self._load_record(run_id))
        except CorruptFileError as exc:
            if not _being_created(layout):
                self._problem(str(exc))
            return None

    def _problem(self, message: str) -> None:
        if message not in self.problems:
            self.problems.append(message)
            logger.warning("reprolog: %s (skipped; the rest of the store is readable)", message)

    def run_ids(self) -> list[str]:
        """Every run id in the store, oldest first."""
        try:
            return sorted(
                e.name
                for e in os.scandir(self._layout.runs)
                if e.is_dir() and not e.name.startswith(".")
            )
        except FileNotFoundError:
            return []

    def resolve(self, ref: str) -> str:
        """Turn a full id, a unique id prefix, or a run name into a run id.

        Raises:
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
            matches = [s["id"] for s in self._summaries() if s.get("name") == ref]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise RunNotFoundError(
                f"no run matches {ref!r} (as an id, id prefix or name) in {self.dir}",
                query=ref,
                path=str(self.dir),
            )
        raise AmbiguousRunError(
            f"{ref!r} matches {len(matches)} runs: {', '.join(matches[:10])}"
            + (" ..." if len(matches) > 10 else "")
            + "; give more characters of the id",
            query=ref,
            candidates=matches,
        )

    def run(self, ref: str) -> RunRecord:
        """One run, by id, unique id prefix or name.

        Raises:
            RunNotFoundError, AmbiguousRunError: see `resolve`.
            CorruptFileError: its record cannot be read.
        """
        run_id = self.resolve(ref)
        return RunRecord(self._load_record(run_id), self._layout.run_dir(run_id), self)

    # ------------------------------------------------------------------ many runs

    def _summaries(self) -> list[dict[str, Any]]:
        return load_summaries(self._layout, self._load_summary, memo=self._memo)

    def runs(self, experiment: str | None = None) -> pd.DataFrame:
        """One row per run: id, name, experiment, status, start, end, duration, tags.*,
        params.*, and metrics.<key>.last / .min / .max, newest first.
        """
        rows = self._summaries()
        if experiment is not None:
            rows = [r for r in rows if r.get("experiment") == experiment]
        return self._runs_frame(rows)

    @staticmethod
    def _runs_frame(summaries: list[dict[str, Any]]) -> pd.DataFrame:
        """The `runs()` table built from summary rows (newest first)."""
        import pandas as pd

        rows = sorted(summaries, key=lambda r: r["id"], reverse=True)
        base = pd.DataFrame(
            {
                "id": [r["id"] for r in rows],
                "name": [r.get("name") for r in rows],
                "experiment": [r.get("experiment") for r in rows],
                "status": [r.get("status") for r in rows],
                "start": pd.to_datetime([r.get("start_time") for r in rows], unit="s", utc=True),
                "end": pd.to_datetime([r.get("end_time") for r in rows], unit="s", utc=True),
            }
        )
        base["duration"] = (base["end"] - base["start"]).dt.total_seconds()
        wide: dict[str, list[Any]] = {}
        n = len(rows)

        def put(column: str, i: int, value: Any) -> None:
            values = wide.get(column)
            if values is None:
                values = wide[column] = [None] * n
            values[i] = value

        for i, r in enumerate(rows):
            for k, v in (r.get("tags") or {}).items():
                put(f"tags.{k}", i, v)
            for k, v in (r.get("params") or {}).items():
                put(f"params.{k}", i, v)
            for k, s in (r.get("metrics_summary") or {}).items():
                for stat in ("last", "min", "max"):
                    put(f"metrics.{k}.{stat}", i, from_json_number(s.get(stat)))
        if wide:
            extra = pd.DataFrame({k: _column(v) for k, v in sorted(wide.items())})
            base = pd.concat([base, extra], axis=1)
        return base

    def metrics(
        self, runs: Iterable[str] | str | None = None, keys: Iterable[str] | str | None = None
    ) -> pd.DataFrame:
        """Points of many runs as one long DataFrame: run_id, key, step, epoch, value, time.

        Args:
            runs: ids, prefixes or names (None: every run).
            keys: metric keys to keep (None: all).
        """
        import pandas as pd
        import pyarrow as pa

        mapping = {pa.int32(): pd.Int32Dtype()}  # epoch stays an integer, with <NA> for none
        return self.metrics_table(runs, keys).to_pandas(types_mapper=mapping.get)

    def metrics_table(
        self, runs: Iterable[str] | str | None = None, keys: Iterable[str] | str | None = None
    ) -> pa.Table:
        """Like `metrics`, as a pyarrow Table (no pandas conversion)."""
        import pyarrow as pa

        if isinstance(runs, str):
            runs = [runs]
        if isinstance(keys, str):
            keys = [keys]
        key_list = list(keys) if keys is not None else None
        run_ids = self.run_ids() if runs is None else [self.resolve(r) for r in runs]
        tables = []
        for run_id in run_ids:
            table = self._run_metrics(run_id, key_list)
            if table is not None and table.num_rows:
                tables.append(table)
        if not tables:
            return metrics_schema().empty_table()
        table = pa.concat_tables(tables, promote_options="permissive")
        return table.unify_dictionaries()

    def _run_metrics(self, run_id: str, keys: list[str] | None) -> pa.Table | None:
        layout = RunLayout(self._layout.run_dir(run_id))
        try:
            if layout.log_dir.is_dir():  # live (or awaiting recovery): read the log itself
                if not self._read_only:
                    self._load_record(run_id)  # recovers the run first if its writer is dead
                table = self._live_metrics(run_id, layout)
                if table is not None:
                    if keys is not None:
                        import pyarrow.compute as pc

                        table = table.filter(
                            pc.is_in(table.column("key").cast("string"), pa_array(keys))
                        )
                    return table
            if not layout.metrics.exists():
                return None
            return read_parquet(layout.metrics, keys)
        except CorruptFileError as exc:
            if not _being_created(layout):
                self._problem(str(exc))
            return None

    @staticmethod
    def _live_metrics(run_id: str, layout: RunLayout) -> pa.Table | None:
        """The points of a live run, or None when it finished (log gone) while we looked."""
        try:
            table, _ = read_live_table(layout, run_id)
        except FileNotFoundError:
            return None  # compacted meanwhile: its Parquet file is complete now
        if not layout.log_dir.is_dir():
            return None  # finished during the read: prefer the compacted file
        return table

    # ------------------------------------------------------------------ SQL

    def sql(self, query: str) -> pd.DataFrame:
        """Run a DuckDB query over views `runs`, `params`, `metrics` and `artifacts`.

        `runs` is `Store.runs()`; `params` is long (run_id, key, value as JSON text,
        value_num); `metrics` reads every run's Parquet file, and the live log of runs still
        running; `artifacts` has one row per artifact (run_id, id, name, kind, path, size,
        sha256, step, status, blob). A query pays only for the views it names.

        Raises:
            ArgumentError: `query` is not a non-empty string.
            QueryError: DuckDB rejected the query (the message says why).
        """
        from reprolog._store._sql import run_sql

        return run_sql(self, query)


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


def pa_array(values: list[str]) -> Any:
    import pyarrow as pa

    return pa.array(values, pa.string())


def _column(values: list[Any]) -> Any:
    """Keep a column numeric when every value is a number (bools stay objects)."""
    import pandas as pd

    if all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values):
        if any(isinstance(v, float) for v in values):
            return pd.Series(
                [float("nan") if v is None else float(v) for v in values], dtype="float64"
            )
        return pd.array(values, dtype="Int64")
    return pd.Series(values, dtype=object)
