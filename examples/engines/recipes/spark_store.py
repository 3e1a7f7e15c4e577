"""Read a reprolog store with PySpark: runs and metrics with no reader options, then per run and
key the same aggregates as `reprolog.Store(dir).sql(AGGREGATES_SQL)`.

Run: python examples/engines/recipes/spark_store.py STORE [--master local[2]]
STORE is a store folder (`.reprolog`) on a local or shared filesystem, or a URI Spark reads
(`hdfs://…`; `s3a://…` needs the hadoop-aws jars, see examples/engines/README.md).

- runs: `runs/*/summary.json`, one JSON object on one line per finished run (Spark's default
  JSON Lines reader): the documented slice of `run.json` that listing is built from, and what
  `Store.runs()` and the SQL view `runs` read. `run.json` is the full record (large, and its
  nested sections would make Spark infer a huge schema); `index/runs.parquet` is only a cache.
- metrics: `runs/*/metrics.parquet`: every finished run's file has the same seven columns
  (run_id, key, step, epoch, value, time, rank), so Spark needs no `mergeSchema`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

#: Per run and key: the smallest value, the highest step, the last value (at the highest step;
#: ties at that step go to the latest time, then the largest value) and the number of points.
#: The same text runs in Spark SQL, DuckDB and `reprolog.Store(dir).sql`.
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


def session(master: str = "local[2]", conf: dict[str, str] | None = None) -> Any:
    """A quiet SparkSession (no web UI, no progress bars, errors only in the log)."""
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(master)
        .appName("reprolog-store")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")  # a store's aggregates are small
        .config("spark.sql.session.timeZone", "UTC")
    )
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _root(store: str | Path) -> str:
    """A URI Spark reads: URIs as given, local paths made absolute `file://` URIs."""
    text = str(store)
    if "://" in text:
        return text.rstrip("/")
    return Path(text).resolve().as_uri()


def read_runs(spark: Any, store: str | Path) -> Any:
    """One row per finished run: id, name, experiment, status, start_time, end_time."""
    summaries = spark.read.json(f"{_root(store)}/runs/*/summary.json")
    return summaries.select("id", "name", "experiment", "status", "start_time", "end_time")


def read_metrics(spark: Any, store: str | Path) -> Any:
    """Every point of every finished run: run_id, key, step, epoch, value, time, rank."""
    return spark.read.parquet(f"{_root(store)}/runs/*/metrics.parquet")


def aggregates(spark: Any, store: str | Path) -> Any:
    """`AGGREGATES_SQL` over the store, as a Spark DataFrame."""
    read_runs(spark, store).createOrReplaceTempView("runs")
    read_metrics(spark, store).createOrReplaceTempView("metrics")
    return spark.sql(AGGREGATES_SQL)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", help="the store folder (.reprolog) or a URI")
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args(argv)
    spark = session(args.master)
    try:
        aggregates(spark, args.store).show(100, truncate=False)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
