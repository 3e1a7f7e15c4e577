"""`Store`: read a store as pandas DataFrames, one run as a `RunRecord`, or SQL via DuckDB.

The public face of the read side: every read goes through its `StoreReader` (`_reader`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from reprolog._errors import ArgumentError
from reprolog._store._frames import metrics_frame, runs_frame
from reprolog._store._reader import StoreReader
from reprolog._store._record import RunRecord
from reprolog._store._sql import run_sql

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from reprolog._storage._layout import StoreLayout


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
        self._reader = StoreReader.open(dir, read_only=read_only)

    @classmethod
    def _of_run_dir(cls, run_dir: str | os.PathLike[str], *, read_only: bool = False) -> Store:
        """The store that holds the run folder `run_dir` (`<store>/runs/<id>/`)."""
        store = cls.__new__(cls)
        store._reader = StoreReader.of_run_dir(run_dir, read_only=read_only)
        return store

    def __repr__(self) -> str:
        return f"Store({str(self.dir)!r})"

    @property
    def dir(self) -> Path:
        """The store folder (absolute)."""
        return self._reader.layout.root

    @property
    def read_only(self) -> bool:
        return self._reader.read_only

    @property
    def problems(self) -> list[str]:
        """Problems met while reading (corrupt files), as "path: what" strings."""
        return self._reader.problems

    @problems.setter
    def problems(self, value: list[str]) -> None:
        self._reader.problems = value

    @property
    def _layout(self) -> StoreLayout:
        return self._reader.layout

    # ------------------------------------------------------------------ one run

    def run_ids(self) -> list[str]:
        """Every run id in the store, oldest first."""
        return self._reader.run_ids()

    def resolve(self, ref: str) -> str:
        """Turn a full id, a unique id prefix, or a run name into a run id.

        Raises:
            RunNotFoundError: nothing matches.
            AmbiguousRunError: several runs match (`.candidates` lists them).
        """
        return self._reader.resolve(ref)

    def run(self, ref: str) -> RunRecord:
        """One run, by id, unique id prefix or name.

        Raises:
            RunNotFoundError, AmbiguousRunError: see `resolve`.
            CorruptFileError: its record cannot be read.
        """
        return self._reader.run(ref)

    # ------------------------------------------------------------------ many runs

    def runs(self, experiment: str | None = None) -> pd.DataFrame:
        """One row per run: id, name, experiment, status, start, end, duration, tags.*,
        params.*, and metrics.<key>.last / .min / .max, newest first.
        """
        rows = self._reader.summaries()
        if experiment is not None:
            rows = [r for r in rows if r.get("experiment") == experiment]
        return runs_frame(rows)

    def metrics(
        self, runs: Iterable[str] | str | None = None, keys: Iterable[str] | str | None = None
    ) -> pd.DataFrame:
        """Points of many runs as one long DataFrame: run_id, key, step, epoch, value, time.

        Args:
            runs: ids, prefixes or names (None: every run).
            keys: metric keys to keep (None: all).
        """
        return metrics_frame(self._reader.metrics_table(runs, keys))

    def metrics_table(
        self, runs: Iterable[str] | str | None = None, keys: Iterable[str] | str | None = None
    ) -> pa.Table:
        """Like `metrics`, as a pyarrow Table (no pandas conversion)."""
        return self._reader.metrics_table(runs, keys)

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
        return run_sql(self._reader, query)
