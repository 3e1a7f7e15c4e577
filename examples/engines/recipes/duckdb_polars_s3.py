"""Read a reprolog store on S3 with DuckDB and with Polars, through `pyarrow.dataset` over
pyarrow's S3 filesystem (no DuckDB httpfs extension, nothing downloaded at first use), and
compute per run and key the same aggregates as `reprolog.Store(dir).sql(AGGREGATES_SQL)`.

Run: python examples/engines/recipes/duckdb_polars_s3.py s3://BUCKET/PREFIX
Credentials, region and endpoint come from the usual AWS settings: AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, and AWS_ENDPOINT_URL for an S3-compatible server
(MinIO, Ceph, moto), which `pyarrow.fs.FileSystem.from_uri` honours. A local store folder
works too (`python duckdb_polars_s3.py .reprolog`).

- runs: `runs/<id>/summary.json` (one JSON object per finished run: the documented slice of
  `run.json` that `Store.runs()` and the SQL view `runs` are built from).
- metrics: `runs/<id>/metrics.parquet`, found by listing `runs/` (pyarrow has no glob; this
  is the glob `runs/*/metrics.parquet`): every file has the same seven columns, so one
  dataset reads them all with no schema option.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

#: Per run and key: the smallest value, the highest step, the last value (at the highest step;
#: ties at that step go to the latest time, then the largest value) and the number of points.
#: The same text runs in DuckDB, Spark SQL and `reprolog.Store(dir).sql`.
AGGREGATES_SQL = """
WITH ordered AS (
    SELECT run_id, key, step, value,
           row_number() OVER (
               PARTITION BY run_id, key ORDER BY step DESC, time DESC, value DESC
           ) AS from_last
    FROM metrics
)
SELECT o.run_id, r.name, r.status, o.key,
       min(o.value) AS min_value,
       max(o.step) AS max_step,
       max(CASE WHEN o.from_last = 1 THEN o.value END) AS last_value,
       count(*) AS points
FROM ordered AS o JOIN runs AS r ON r.id = o.run_id
GROUP BY o.run_id, r.name, r.status, o.key
ORDER BY o.run_id, o.key
"""

RUN_COLUMNS = ("id", "name", "experiment", "status", "start_time", "end_time")


def open_store(uri: str) -> tuple[Any, str]:
    """The filesystem and root path of a store URI (`s3://bucket/prefix`, or a local folder)."""
    import pyarrow.fs as pafs

    if "://" not in uri:
        uri = os.path.abspath(uri)  # from_uri takes URIs and absolute paths only
    return pafs.FileSystem.from_uri(uri)  # type: ignore[no-any-return]


def _run_files(fs: Any, root: str, name: str) -> list[str]:
    """`runs/*/<name>`: one listing of `runs/`, kept to the files directly in a run folder."""
    import pyarrow.fs as pafs

    runs = f"{root.rstrip('/')}/runs"
    if fs.get_file_info(runs).type == pafs.FileType.NotFound:
        return []
    infos = fs.get_file_info(pafs.FileSelector(runs, recursive=True))
    depth = runs.count("/") + 2  # runs/<id>/<name>
    return sorted(
        info.path
        for info in infos
        if info.type == pafs.FileType.File
        and info.base_name == name
        and info.path.count("/") == depth
    )


def metrics_dataset(fs: Any, root: str) -> Any:
    """A `pyarrow.dataset` over every finished run's metrics.parquet."""
    import pyarrow.dataset as ds

    return ds.dataset(_run_files(fs, root, "metrics.parquet"), filesystem=fs, format="parquet")


def runs_table(fs: Any, root: str) -> Any:
    """One row per finished run (from its summary.json), as an Arrow table."""
    import pyarrow as pa

    rows = []
    for path in _run_files(fs, root, "summary.json"):
        with fs.open_input_stream(path) as stream:
            summary = json.loads(stream.read())
        rows.append({column: summary.get(column) for column in RUN_COLUMNS})
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("name", pa.string()),
            ("experiment", pa.string()),
            ("status", pa.string()),
            ("start_time", pa.float64()),
            ("end_time", pa.float64()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def duckdb_aggregates(uri: str) -> list[tuple[Any, ...]]:
    """`AGGREGATES_SQL` in DuckDB over the store's Arrow data (rows, in its order)."""
    import duckdb

    fs, root = open_store(uri)
    con = duckdb.connect()
    try:
        con.register("runs", runs_table(fs, root))
        con.register("metrics_files", metrics_dataset(fs, root))  # scanned by DuckDB, lazily
        con.execute(
            "CREATE VIEW metrics AS SELECT CAST(run_id AS VARCHAR) AS run_id, "
            "CAST(key AS VARCHAR) AS key, step, epoch, value, time, rank FROM metrics_files"
        )
        return con.execute(AGGREGATES_SQL).fetchall()
    finally:
        con.close()


def polars_aggregates(uri: str) -> list[tuple[Any, ...]]:
    """The same aggregates with Polars expressions (rows, in the same order)."""
    import polars as pl

    fs, root = open_store(uri)
    runs = pl.from_arrow(runs_table(fs, root))
    assert isinstance(runs, pl.DataFrame)
    metrics = pl.scan_pyarrow_dataset(metrics_dataset(fs, root)).with_columns(
        pl.col("run_id").cast(pl.String), pl.col("key").cast(pl.String)
    )
    last_first = ["step", "time", "value"]  # the last point: highest step, then time, value
    table = (
        metrics.group_by("run_id", "key")
        .agg(
            pl.col("value").min().alias("min_value"),
            pl.col("step").max().alias("max_step"),
            pl.col("value").sort_by(last_first).last().alias("last_value"),
            pl.len().alias("points"),
        )
        .join(runs.lazy().select("id", "name", "status"), left_on="run_id", right_on="id")
        .select("run_id", "name", "status", "key", "min_value", "max_step", "last_value", "points")
        .sort("run_id", "key")
        .collect()
    )
    return table.rows()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", help="s3://bucket/prefix of a store, or a local store folder")
    args = parser.parse_args(argv)
    header = ("run_id", "name", "status", "key", "min", "max_step", "last", "points")
    for engine, rows in (
        ("duckdb", duckdb_aggregates(args.store)),
        ("polars", polars_aggregates(args.store)),
    ):
        print(f"== {engine}")
        print("\t".join(header))
        for row in rows:
            print("\t".join(str(v) for v in row))


if __name__ == "__main__":
    main()
