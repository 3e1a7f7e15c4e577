"""`Store`: read a store as pandas DataFrames, one run as a `RunRecord`, or SQL via DuckDB.

The public face of the read side: every read goes through its `StoreReader` (`_reader`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from reprolog._errors import ArgumentError
from reprolog._storage._layout import ENV_DIR
from reprolog._storage._remote import display_uri, is_uri
from reprolog._store._frames import metrics_frame
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
        dir: the store folder; None means `$REPROLOG_DIR` (a folder or a URI), else the
            nearest `.reprolog` in this folder or a parent. A URI `pyarrow.fs` understands
            (`s3://bucket/prefix`, `gs://...`) reads the store published there (`reprolog
            push`), read-only: listing reads its summary index, and a run's files are
            fetched on first use into a local cache (`$REPROLOG_CACHE_DIR/stores/<hash>/`,
            `Store.dir`).
            `file:///path` is the folder `/path`.
        read_only: never write to the store (what `reprolog ui` uses). Listing keeps its
            summary index in memory instead of writing `index/runs.parquet`; a dead
            `running` run is reported `crashed` (ending at its last heartbeat, its metrics
            read from its log) without being recovered on disk; a live or dead run's points
            are read from its log without compacting it. Default (None): False for a
            folder (a reader recovers dead runs and refreshes the index, as the CLI does),
            True for a URI, where False is refused.

    Raises:
        StoreError: no store at that place.
        RemoteStoreError: the store at a URI cannot be reached or read (one line, no secret).
        ArgumentError: `read_only=False` for a URI, or a URI pyarrow does not understand.

    Example:
        >>> store = reprolog.Store()                                   # doctest: +SKIP
        >>> store.runs()[["id", "status", "params.lr", "metrics.loss.last"]]  # doctest: +SKIP
        >>> store.sql("SELECT key, count(*) FROM metrics GROUP BY 1")  # doctest: +SKIP
    """

    def __init__(
        self, dir: str | os.PathLike[str] | None = None, *, read_only: bool | None = None
    ) -> None:
        if read_only is not None and not isinstance(read_only, bool):
            raise ArgumentError(f"read_only must be True, False or None, got {read_only!r}")
        if dir is None and is_uri(os.environ.get(ENV_DIR)):
            dir = os.environ[ENV_DIR]  # REPROLOG_DIR=s3://... reprolog ls reads that store
        if isinstance(dir, str) and dir[:7].lower() == "file://":
            from urllib.parse import unquote, urlsplit

            dir = unquote(urlsplit(dir).path)  # a shared folder is a local store
        if is_uri(dir):
            assert isinstance(dir, str)
            if read_only is False:
                raise ArgumentError(
                    f"a store at a URI is read-only here: Store({display_uri(dir)!r}) reads "
                    "it; to add runs, record them in a local store and publish them with "
                    f"`reprolog push --to {display_uri(dir)}`"
                )
            from reprolog._store._remote_reader import RemoteStoreReader

            self._reader: StoreReader = RemoteStoreReader.open_uri(dir)
            return
        self._reader = StoreReader.open(dir, read_only=bool(read_only))

    @classmethod
    def _of_run_dir(cls, run_dir: str | os.PathLike[str], *, read_only: bool = False) -> Store:
        """The store that holds the run folder `run_dir` (`<store>/runs/<id>/`)."""
        store = cls.__new__(cls)
        store._reader = StoreReader.of_run_dir(run_dir, read_only=read_only)
        return store

    def __repr__(self) -> str:
        return f"Store({self.uri or str(self.dir)!r})"

    @property
    def dir(self) -> Path:
        """The store folder (absolute); for a store at a URI, its local cache folder."""
        return self._reader.layout.root

    @property
    def uri(self) -> str | None:
        """A store at a URI: that URI as it may be shown (no credentials); a folder: None."""
        remote = getattr(self._reader, "remote", None)
        return None if remote is None else str(remote.display)

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
        return self._reader.runs_frame(experiment)

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

        On a store at a URI, `runs` and `params` come from its summary index; `metrics` and
        `artifacts` need the runs' files, which the first query naming them fetches into
        the local cache (every run listed; later queries fetch only new or re-published
        runs).

        Raises:
            ArgumentError: `query` is not a non-empty string.
            QueryError: DuckDB rejected the query (the message says why).
        """
        return run_sql(self._reader, query)
