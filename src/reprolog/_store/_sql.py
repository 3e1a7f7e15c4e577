"""SQL over a store: DuckDB views `runs`, `params`, `metrics` and `artifacts`."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from reprolog._errors import ArgumentError, CorruptFileError, QueryError

if TYPE_CHECKING:
    import pandas as pd

    from reprolog._store._reader import StoreReader


def run_sql(reader: StoreReader, query: str) -> pd.DataFrame:
    """`Store.sql`: see its docstring."""
    if not isinstance(query, str) or not query.strip():
        raise ArgumentError(f"sql() takes a non-empty SQL string, got {query!r}")
    import duckdb

    con = duckdb.connect()
    try:
        files, live = _register_views(reader, con, _views_used(query))
        while True:
            try:
                # Created here, inside the retry: DuckDB reads the files' schemas right away.
                _create_metrics_view(con, files, live=live)
                return con.execute(query).df()
            except duckdb.Error as exc:
                # A corrupt metrics file must not make the whole store unqueryable:
                # report it, drop it from the view and run the query again.
                bad = next((f for f in files if f in str(exc)), None)
                if bad is None:
                    raise QueryError(f"SQL error: {exc}") from None
                reader.problem(f"{bad}: unreadable metrics file: {exc}")
                files.remove(bad)
    finally:
        con.close()


def _register_views(reader: StoreReader, con: Any, used: set[str]) -> tuple[list[str], bool]:
    """Register the views the query names, except `metrics` (see `_create_metrics_view`).

    Returns the Parquet files behind `metrics`, and whether live runs' points join them.

    Building `artifacts` reads every run record, so a query pays only for the views it
    uses. On a store at a URI, `metrics` and `artifacts` fetch the runs' files into the
    reader's cache first (`RemoteStoreReader.prefetch`); `runs` and `params` need none.
    """
    import pandas as pd

    runs = reader.runs_frame()  # a local store: from the index's listing columns, no parsing
    con.register("runs", runs)
    params_rows: list[tuple[str, str, str, float | None]] = []
    artifact_rows: list[dict[str, Any]] = []
    for summary in reader.summaries() if "params" in used else []:
        run_id = summary["id"]
        for key, value in (summary.get("params") or {}).items():
            num = (
                float(value)
                if isinstance(value, (int, float)) and not isinstance(value, bool)
                else None
            )
            params_rows.append((run_id, key, json.dumps(value, default=repr), num))
    con.register(
        "params",
        pd.DataFrame(params_rows, columns=["run_id", "key", "value", "value_num"]),
    )
    if "artifacts" in used:
        reader.prefetch(runs["id"])  # a store at a URI: its runs' records, fetched at once
    for run_id in runs["id"] if "artifacts" in used else []:
        try:
            record = reader.load_record(run_id)
        except CorruptFileError as exc:
            reader.problem(str(exc))
            continue
        for art in record.get("artifacts") or []:
            artifact_rows.append({"run_id": run_id, **{k: art.get(k) for k in ARTIFACT_FIELDS}})
    con.register("artifacts", pd.DataFrame(artifact_rows, columns=["run_id", *ARTIFACT_FIELDS]))
    files, live = reader.metric_sources(runs["id"] if "metrics" in used else [])
    if live:
        import pyarrow as pa

        con.register("_live_metrics", pa.concat_tables(live).unify_dictionaries())
    return files, bool(live)


#: the columns of the `artifacts` SQL view, after run_id
ARTIFACT_FIELDS = ("id", "name", "kind", "path", "size", "sha256", "step", "status", "blob")

_COLUMNS_SQL = (
    "CAST(run_id AS VARCHAR) AS run_id, CAST(key AS VARCHAR) AS key, step, epoch, value, time, "
    "CAST(COALESCE(rank, 0) AS INTEGER) AS rank"
)


def _views_used(query: str) -> set[str]:
    """The store views a query mentions (a word match: cheap, and errs on building more).

    A quoted column of `runs` such as "params.lr" or "metrics.loss.last" names no view.
    """
    query = re.sub(r'"(?:params|metrics|tags)\.[^"]*"', " ", query.lower())
    words = set(re.findall(r"[a-z_]+", query))
    return {v for v in ("params", "metrics", "artifacts") if v in words}


def _create_metrics_view(con: Any, files: list[str], *, live: bool = False) -> None:
    parts = []
    if files:
        listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        # Format-1 files have no `rank` column (format 2 always does): union by name with an
        # empty relation that has it, so the view has it even when no file does (rank 0 then).
        files_sql = (
            f"SELECT * FROM read_parquet([{listing}], union_by_name=true) "
            "UNION ALL BY NAME SELECT NULL::INTEGER AS rank WHERE false"
        )
        parts.append(f"SELECT {_COLUMNS_SQL} FROM ({files_sql})")
    if live:
        parts.append(f"SELECT {_COLUMNS_SQL} FROM _live_metrics")
    if not parts:
        parts.append(
            "SELECT NULL::VARCHAR AS run_id, NULL::VARCHAR AS key, NULL::BIGINT AS step, "
            "NULL::INTEGER AS epoch, NULL::DOUBLE AS value, NULL::TIMESTAMPTZ AS time, "
            "NULL::INTEGER AS rank WHERE false"
        )
    con.execute("CREATE OR REPLACE VIEW metrics AS " + " UNION ALL ".join(parts))
