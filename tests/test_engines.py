"""The engine recipes (examples/engines/recipes/) read a store as it lies on disk, with no reader
options, and compute what `Store.sql` computes, row for row: Spark on the local store, DuckDB and
Polars through `pyarrow.dataset` on the loopback S3 server, and each engine's own reader over
the glob `runs/*/metrics.parquet`.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow.fs as pafs
import pytest

import reprolog
from tests import _s3
from tests._s3 import S3

moto_server = _s3.moto_server  # the loopback S3 fixtures, for this module's tests
s3 = _s3.s3

RECIPES = Path(__file__).resolve().parents[1] / "examples" / "engines" / "recipes"
METRIC_COLUMNS = ["run_id", "key", "step", "epoch", "value", "time", "rank"]


def _recipe(name: str) -> ModuleType:
    """Import an example script as a module (examples are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", RECIPES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


spark_store = _recipe("spark_store")
duckdb_polars_s3 = _recipe("duckdb_polars_s3")


def build_store(store: Path) -> dict[str, str]:
    """A small store through the public API: names -> run ids.

    `baseline`: two keys, a NaN among the losses, a step logged twice (the later value is the
    last); `ddp`: a rank writer logging the same key at the same steps as the run, later, and a
    key of its own; `broken`: a failed run; `empty`: a run without points.
    """
    ids: dict[str, str] = {}
    with reprolog.init("baseline", experiment="engines", dir=store, capture=False) as run:
        for step in range(10):
            run.log({"loss": 1.0 / (step + 1), "acc": step / 10}, step=step, epoch=step // 5)
        run.log({"loss": math.nan}, step=3)
        time.sleep(0.01)  # a later time for the same step: it is the last value
        run.log({"loss": 0.05}, step=9)
        ids["baseline"] = run.id
    run = reprolog.init("ddp", experiment="engines", dir=store, capture=False)
    for step in range(5):
        run.log({"loss": 2.0 - step / 10}, step=step)
    time.sleep(0.01)
    with reprolog.attach(run.id, rank=1, dir=store) as writer:
        for step in range(5):
            writer.log({"loss": 3.0 - step / 10}, step=step)
        writer.log({"rank1_only": 7.0}, step=0)
    run.finish()
    ids["ddp"] = run.id
    with pytest.raises(RuntimeError), reprolog.init("broken", dir=store, capture=False) as run:
        ids["broken"] = run.id
        run.log({"loss": 9.0}, step=0)
        run.log({"loss": 8.0}, step=1)
        raise RuntimeError("diverged")
    with reprolog.init("empty", dir=store, capture=False) as run:
        ids["empty"] = run.id
    return ids


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("engines") / "store"
    build_store(root)
    return root


def rows(values: Iterable[Iterable[Any]]) -> list[tuple[Any, ...]]:
    """Rows of plain Python values (numpy scalars unwrapped, NaN as "nan"), comparable with ==."""
    out = []
    for row in values:
        plain = []
        for value in row:
            if hasattr(value, "item"):
                value = value.item()
            if isinstance(value, float) and math.isnan(value):
                value = "nan"
            plain.append(value)
        out.append(tuple(plain))
    return out


def build_ids(store: Path) -> dict[str, str]:
    """Run names -> ids of the module's store."""
    return {r.name: r.id for r in reprolog.Store(store).runs().itertuples()}


def expected_aggregates(store: Path) -> list[tuple[Any, ...]]:
    frame = reprolog.Store(store).sql(spark_store.AGGREGATES_SQL)
    return rows(frame.itertuples(index=False))


def test_the_recipes_share_one_aggregate_query_and_the_store_answers_it(store: Path) -> None:
    assert spark_store.AGGREGATES_SQL == duckdb_polars_s3.AGGREGATES_SQL
    by_key = {(r[1], r[3]): r for r in expected_aggregates(store)}
    assert set(by_key) == {
        ("baseline", "acc"),
        ("baseline", "loss"),
        ("ddp", "loss"),
        ("ddp", "rank1_only"),
        ("broken", "loss"),
    }
    # min ignores the NaN; the last value is the later of the two points at step 9
    assert by_key[("baseline", "loss")][4:] == (0.05, 9, 0.05, 12)
    # rank 1 logged step 4 after rank 0 did: its value is the last
    assert by_key[("ddp", "loss")][4:] == (1.6, 4, 2.6, 10)
    assert by_key[("broken", "loss")][2] == "failed"


# ---------------------------------------------------------------- every engine, no options


def test_every_engine_reads_the_metrics_glob_with_no_options(store: Path) -> None:
    import duckdb
    import polars as pl
    import pyarrow.dataset as ds

    glob = str(store / "runs" / "*" / "metrics.parquet")
    points = reprolog.Store(store).metrics()
    assert list(points.columns) == METRIC_COLUMNS
    per_rank = sorted(points.groupby(["run_id", "rank"]).size().items())
    assert any(rank == 1 for (_, rank), _ in per_rank)  # the multi-rank run is in the store

    frame = pl.scan_parquet(glob).collect()  # raises on files of differing schemas
    assert frame.columns == METRIC_COLUMNS
    counts = frame.group_by("run_id", "rank").len().sort("run_id", "rank")
    assert [((str(r), k), n) for r, k, n in counts.rows()] == per_rank

    con = duckdb.connect()
    try:  # without union_by_name, DuckDB takes the first file's columns
        relation = con.sql(f"SELECT * FROM read_parquet('{glob}')")
        assert relation.columns == METRIC_COLUMNS
        counted = con.sql(
            f"SELECT run_id, rank, count(*) FROM read_parquet('{glob}') GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        assert [((r, k), n) for r, k, n in counted] == per_rank
    finally:
        con.close()

    files = sorted(str(p) for p in store.glob("runs/*/metrics.parquet"))
    table = ds.dataset(files, format="parquet").to_table()
    assert table.schema.names == METRIC_COLUMNS
    assert table.num_rows == len(points)


# ---------------------------------------------------------------- Spark


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local[2] SparkSession for every Spark test of this worker (it takes ~20 s to start)."""
    with warnings.catch_warnings():
        # PySpark 4.3 warns that it does not fully support pandas >= 3; these tests never
        # convert to pandas.
        warnings.simplefilter("ignore", FutureWarning)
        session = spark_store.session(
            "local[2]",
            # loopback only: a CI container's host name may not resolve
            conf={"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"},
        )
    yield session
    session.stop()


@pytest.mark.xdist_group("spark")
def test_spark_reads_runs_and_metrics_and_matches_store_sql(spark: Any, store: Path) -> None:
    names = {run_id: name for name, run_id in build_ids(store).items()}
    runs = spark_store.read_runs(spark, store).orderBy("id").collect()
    expected_runs = reprolog.Store(store).sql(
        "SELECT id, name, experiment, status FROM runs ORDER BY id"
    )
    assert rows((r.id, r.name, r.experiment, r.status) for r in runs) == rows(
        expected_runs.itertuples(index=False)
    )
    assert {names[r.id]: r.status for r in runs} == {
        "baseline": "completed",
        "ddp": "completed",
        "broken": "failed",
        "empty": "completed",
    }

    metrics = spark_store.read_metrics(spark, store)
    assert metrics.columns == METRIC_COLUMNS
    per_rank = sorted(
        ((r.run_id, r.rank), r["count"])
        for r in metrics.groupBy("run_id", "rank").count().collect()
    )
    points = reprolog.Store(store).metrics()
    assert per_rank == sorted(points.groupby(["run_id", "rank"]).size().items())

    got = rows(spark_store.aggregates(spark, store).collect())
    assert got == expected_aggregates(store)


# ---------------------------------------------------------------- DuckDB and Polars on S3


def test_duckdb_and_polars_read_the_store_on_s3_and_match_store_sql(s3: S3, store: Path) -> None:
    pafs.copy_files(str(store), s3.path(), destination_filesystem=s3.fs)
    expected = expected_aggregates(store)
    assert rows(duckdb_polars_s3.duckdb_aggregates(s3.uri)) == expected
    assert rows(duckdb_polars_s3.polars_aggregates(s3.uri)) == expected
    runs = duckdb_polars_s3.runs_table(*duckdb_polars_s3.open_store(s3.uri))
    assert sorted(runs.column("id").to_pylist()) == sorted(build_ids(store).values())


def test_the_s3_recipe_reads_a_local_store_the_same_way(store: Path) -> None:
    expected = expected_aggregates(store)
    assert rows(duckdb_polars_s3.duckdb_aggregates(str(store))) == expected
    assert rows(duckdb_polars_s3.polars_aggregates(str(store))) == expected
