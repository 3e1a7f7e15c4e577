"""metrics.parquet format 2: the `rank` column is in every file (0 for a run's own points), and a
format 1 file without it (written before) still reads everywhere in reprolog."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import reprolog
from reprolog._storage._encode import METRICS_FORMAT_VERSION

COLUMNS = ["run_id", "key", "step", "epoch", "value", "time", "rank"]


def _file(run: reprolog.Run) -> pa.Table:
    return pq.read_table(run.dir / "metrics.parquet")


def test_a_run_without_rank_writers_writes_rank_0(
    make_run: Callable[..., reprolog.Run],
) -> None:
    run = make_run()
    run.log({"loss": 1.0, "acc": 0.5}, step=0)
    run.log({"loss": 0.5}, step=1)
    run.log({"loss": 0.7}, step=0)  # a second point at step 0: kept after the first
    run.finish()
    table = _file(run)
    assert table.schema.names == COLUMNS
    assert table.schema.field("rank").type == pa.int32()
    assert table.schema.field("rank").nullable
    assert table.column("rank").to_pylist() == [0, 0, 0, 0]
    assert (
        table.schema.metadata[b"reprolog.format_version"] == b"2" == METRICS_FORMAT_VERSION.encode()
    )
    # the sort order is unchanged: (key, step), logging order kept for equal steps
    assert list(
        zip(
            table.column("key").to_pylist(),
            table.column("step").to_pylist(),
            table.column("value").to_pylist(),
            strict=True,
        )
    ) == [
        ("acc", 0, 0.5),
        ("loss", 0, 1.0),
        ("loss", 0, 0.7),
        ("loss", 1, 0.5),
    ]


def test_a_run_without_points_has_the_column_too(make_run: Callable[..., reprolog.Run]) -> None:
    run = make_run()
    run.finish()
    table = _file(run)
    assert table.num_rows == 0 and table.schema.names == COLUMNS


def test_rank_writers_points_are_sorted_by_key_step_rank(
    make_run: Callable[..., reprolog.Run], store_dir: Path
) -> None:
    run = make_run()
    with reprolog.attach(run.id, rank=1, dir=store_dir) as writer:
        writer.log({"loss": 10.0}, step=0)
        writer.log({"loss": 11.0}, step=1)
    run.log({"loss": 1.0}, step=1)
    run.log({"loss": 0.0}, step=0)
    live = reprolog.Store(store_dir).metrics(runs=[run.id])  # the live log's table
    assert list(live.columns) == COLUMNS
    run.finish()
    table = _file(run)
    assert table.schema.names == COLUMNS
    assert list(
        zip(
            table.column("step").to_pylist(),
            table.column("rank").to_pylist(),
            table.column("value").to_pylist(),
            strict=True,
        )
    ) == [
        (0, 0, 0.0),
        (0, 1, 10.0),
        (1, 0, 1.0),
        (1, 1, 11.0),
    ]


def test_a_live_runs_points_carry_rank_0(
    make_run: Callable[..., reprolog.Run], store_dir: Path
) -> None:
    run = make_run()
    run.log({"loss": 1.0}, step=0)
    live = reprolog.Store(store_dir).metrics(runs=[run.id])
    assert list(live.columns) == COLUMNS and live["rank"].tolist() == [0]
    assert reprolog.Store(store_dir).sql("SELECT count(*) AS n FROM metrics")["n"].tolist() == [1]


def _make_format_1(run: reprolog.Run) -> None:
    """Rewrite a finished run's file as the previous release wrote it: no `rank` column."""
    path = run.dir / "metrics.parquet"
    table = pq.read_table(path).drop_columns(["rank"])
    old = table.schema.with_metadata({"reprolog.format_version": "1"})
    pq.write_table(table.cast(old), path, compression="zstd")
    assert pq.read_schema(path).names == COLUMNS[:-1]


def test_a_format_1_file_without_rank_reads_everywhere(
    make_run: Callable[..., reprolog.Run], store_dir: Path
) -> None:
    points = {"loss": [1.0, 0.5, 0.25], "acc": [0.1, 0.2, 0.3]}
    old, new = make_run("old"), make_run("new")
    for run in (old, new):
        for step in range(3):
            run.log({k: v[step] for k, v in points.items()}, step=step)
        run.finish()
    _make_format_1(old)
    store = reprolog.Store(store_dir)

    # Store.metrics and RunRecord.metrics: the old file reads with rank 0, like a new one
    both = store.metrics()
    assert list(both.columns) == COLUMNS
    assert both["rank"].tolist() == [0] * 12
    record = store.run("old")
    frame = record.metrics(keys=["loss"])
    assert list(frame.columns) == COLUMNS
    assert frame["value"].tolist() == points["loss"] and frame["rank"].tolist() == [0, 0, 0]
    assert str(frame["rank"].dtype).lower() == "int32"

    # Store.sql over a store holding both formats
    sql = store.sql(
        "SELECT r.name, min(m.value) AS best, count(*) AS n FROM metrics m "
        "JOIN runs r ON r.id = m.run_id WHERE m.key = 'loss' GROUP BY 1 ORDER BY 1"
    )
    assert sql.values.tolist() == [["new", 0.25, 3], ["old", 0.25, 3]]

    # diff: an old and a new file with the same points have identical metrics
    result = reprolog.diff(old.id, new.id, store=store_dir)
    assert {m.key: m.status.value for m in result.metrics} == {
        "acc": "identical",
        "loss": "identical",
    }


def test_the_sql_metrics_view_has_rank_whatever_the_files_hold(
    make_run: Callable[..., reprolog.Run], store_dir: Path
) -> None:
    """`metrics` in SQL has `rank` for format-2 files, format-1 files only, and no files."""
    query = "SELECT rank, count(*) AS n FROM metrics GROUP BY rank ORDER BY rank"
    run = make_run("old")
    run.log({"loss": 1.0}, step=0)
    run.finish()
    assert reprolog.Store(store_dir).sql(query).values.tolist() == [[0, 1]]
    _make_format_1(run)  # the only file now lacks the column
    assert reprolog.Store(store_dir).sql(query).values.tolist() == [[0, 1]]
    ranked = make_run("ranked")
    writer = reprolog.attach(ranked.id, rank=1, dir=store_dir)
    writer.log({"loss": 2.0}, step=0)
    writer.close()
    ranked.finish()
    assert reprolog.Store(store_dir).sql(query).values.tolist() == [[0, 1], [1, 1]]
