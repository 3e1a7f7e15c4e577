"""Reading a store: runs table, one run, metrics, SQL, run resolution and corrupt files."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import reprolog
from reprolog import (
    AmbiguousRunError,
    ArgumentError,
    CorruptFileError,
    QueryError,
    Run,
    RunNotFoundError,
    RunRecord,
    Store,
    StoreError,
)

MakeRun = Callable[..., Run]


@pytest.fixture
def three_runs(make_run: MakeRun) -> list[Run]:
    """Three finished runs: two of experiment "a" (one failed), one of "b"."""
    runs = []
    for i, (name, exp) in enumerate([("alpha", "a"), ("beta", "a"), ("gamma", "b")]):
        run = make_run(
            name,
            experiment=exp,
            params={"lr": 0.1 * (i + 1), "opt": {"name": f"o{i}"}},
            tags={"i": i},
        )
        for step in range(4):
            run.log({"loss": 1.0 / (step + 1 + i), "acc": step * 0.25}, step=step, epoch=step // 2)
        run.finish("failed" if name == "beta" else "completed")
        runs.append(run)
    return runs


def test_store_requires_an_existing_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=rf"no reprolog store found at {tmp_path / 'nowhere'}"):
        Store(tmp_path / "nowhere")
    with pytest.raises(StoreError, match="no reprolog store found"):
        Store()  # cwd is an empty tmp_path


def test_store_is_found_in_a_parent_folder(
    make_run: MakeRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = reprolog.init(capture=False)  # ./.reprolog
    run.finish()
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "sub" / "deeper")
    assert Store().run_ids() == [run.id]
    assert repr(Store()) == f"Store({str((tmp_path / '.reprolog').resolve())!r})"


def test_runs_table(three_runs: list[Run], store_dir: Path) -> None:
    df = Store(store_dir).runs()
    assert df["name"].tolist() == ["gamma", "beta", "alpha"]  # newest first
    assert df["id"].tolist() == [r.id for r in reversed(three_runs)]
    assert df["status"].tolist() == ["completed", "failed", "completed"]
    assert df["experiment"].tolist() == ["b", "a", "a"]
    for column in [
        "id",
        "name",
        "experiment",
        "status",
        "start",
        "end",
        "duration",
        "params.lr",
        "params.opt.name",
        "tags.i",
        "metrics.loss.last",
        "metrics.loss.min",
        "metrics.loss.max",
        "metrics.acc.last",
        "metrics.acc.min",
        "metrics.acc.max",
    ]:
        assert column in df.columns, column
    assert str(df["start"].dt.tz) == "UTC"
    assert (df["duration"] >= 0).all()
    assert df["params.lr"].tolist() == pytest.approx([0.3, 0.2, 0.1])
    assert df["params.opt.name"].tolist() == ["o2", "o1", "o0"]
    alpha = df[df["name"] == "alpha"].iloc[0]
    assert (alpha["metrics.loss.last"], alpha["metrics.loss.min"], alpha["metrics.loss.max"]) == (
        0.25,
        0.25,
        1.0,
    )
    assert alpha["metrics.acc.last"] == 0.75
    assert Store(store_dir).runs(experiment="a")["name"].tolist() == ["beta", "alpha"]


def test_runs_of_an_empty_store(store_dir: Path) -> None:
    reprolog.init(dir=store_dir, capture=False).finish()
    store = Store(store_dir)
    assert len(store.runs()) == 1  # then the run is removed by hand
    for run_dir in (store_dir / "runs").iterdir():
        for f in run_dir.iterdir():
            f.unlink()
        run_dir.rmdir()
    df = store.runs()
    assert len(df) == 0
    assert list(df.columns)[:7] == [
        "id",
        "name",
        "experiment",
        "status",
        "start",
        "end",
        "duration",
    ]
    assert len(store.metrics()) == 0
    assert list(store.metrics().columns) == [
        "run_id", "key", "step", "epoch", "value", "time", "rank"
    ]  # fmt: skip
    assert store.sql("SELECT count(*) AS n FROM metrics")["n"].tolist() == [0]


def test_run_record(three_runs: list[Run], store_dir: Path) -> None:
    rec = Store(store_dir).run("alpha")
    assert isinstance(rec, RunRecord)
    assert repr(rec) == f"RunRecord(id={three_runs[0].id!r}, name='alpha', status='completed')"
    assert rec.id == three_runs[0].id
    assert rec.experiment == "a"
    assert rec.params == {"lr": 0.1, "opt.name": "o0"}
    assert rec.tags == {"i": "0"}
    assert rec.duration is not None and rec.duration >= 0
    assert rec.dir == three_runs[0].dir
    assert rec.metrics_summary["loss"]["count"] == 4
    assert rec.artifacts == []
    assert rec.section("environment") == {}
    loss = rec.metrics(keys="loss")
    assert loss["step"].tolist() == [0, 1, 2, 3]
    assert loss["epoch"].tolist() == [0, 0, 1, 1]
    assert loss["value"].tolist() == [1.0, 0.5, 1 / 3, 0.25]


def test_metrics_long_table(three_runs: list[Run], store_dir: Path) -> None:
    store = Store(store_dir)
    df = store.metrics()
    assert len(df) == 3 * 2 * 4
    assert set(df["run_id"]) == {r.id for r in three_runs}
    only = store.metrics(runs=["beta", three_runs[2].id[:20]], keys=["acc"])
    assert set(only["run_id"]) == {three_runs[1].id, three_runs[2].id}
    assert set(only["key"]) == {"acc"}
    assert len(only) == 8
    assert store.metrics(runs="alpha", keys="nope").empty


def test_metrics_of_many_runs_reads_every_point(make_run: MakeRun, store_dir: Path) -> None:
    """Every point of 20 runs, in one frame (its speed: bench/bench_core.py, 50 runs)."""
    import numpy as np

    values = np.random.default_rng(0).random(2000)
    ids = []
    for r in range(20):
        run = make_run()
        for step, v in enumerate((values + r).tolist()):
            run.log({"loss": v, "acc": -v, "lr": v / 2}, step=step)
        run.finish()
        ids.append(run.id)
    df = Store(store_dir).metrics()
    assert len(df) == 20 * 3 * 2000
    for r, run_id in enumerate(ids):
        loss = df[(df["run_id"] == run_id) & (df["key"] == "loss")].sort_values("step")
        assert loss["step"].tolist() == list(range(2000))
        np.testing.assert_array_equal(loss["value"].to_numpy(), values + r)
        acc = df[(df["run_id"] == run_id) & (df["key"] == "acc")].sort_values("step")
        np.testing.assert_array_equal(acc["value"].to_numpy(), -(values + r))


# ---------------------------------------------------------------- resolution


def test_resolve_by_id_prefix_and_name(three_runs: list[Run], store_dir: Path) -> None:
    store = Store(store_dir)
    alpha = three_runs[0]
    assert store.resolve(alpha.id) == alpha.id
    assert store.resolve(alpha.id[:-1]) == alpha.id
    assert store.resolve(alpha.id.upper()[:-2]) == alpha.id  # ids are case-insensitive to type
    assert store.resolve("gamma") == three_runs[2].id
    assert store.run("beta").status == "failed"


def test_ambiguous_prefix_lists_candidates(three_runs: list[Run], store_dir: Path) -> None:
    prefix = os.path.commonprefix([r.id for r in three_runs])  # noqa: RUF071 (a string prefix)
    assert prefix  # ids share at least their leading time digits
    with pytest.raises(
        AmbiguousRunError, match=rf"'{prefix}' matches 3 runs: .*give more characters"
    ) as info:
        Store(store_dir).run(prefix)
    assert info.value.candidates == [r.id for r in three_runs]
    assert info.value.query == prefix


def test_ambiguous_name(make_run: MakeRun, store_dir: Path) -> None:
    first, second = make_run("same"), make_run("same")
    first.finish()
    second.finish()
    with pytest.raises(AmbiguousRunError, match="'same' matches 2 runs") as info:
        Store(store_dir).run("same")
    assert sorted(info.value.candidates) == sorted([first.id, second.id])


def test_unknown_run(three_runs: list[Run], store_dir: Path) -> None:
    with pytest.raises(
        RunNotFoundError, match=r"no run matches 'zzz' \(as an id, id prefix or name\)"
    ) as info:
        Store(store_dir).run("zzz")
    assert info.value.query == "zzz"
    assert isinstance(info.value, LookupError)
    with pytest.raises(RunNotFoundError):
        Store(store_dir).metrics(runs=["nope"])
    with pytest.raises(ArgumentError, match="non-empty id, id prefix or name; got ''"):
        Store(store_dir).run("")


# ---------------------------------------------------------------- SQL


def test_sql_views(three_runs: list[Run], store_dir: Path) -> None:
    store = Store(store_dir)
    runs = store.sql("SELECT name, status FROM runs ORDER BY name")
    assert runs.values.tolist() == [
        ["alpha", "completed"],
        ["beta", "failed"],
        ["gamma", "completed"],
    ]
    best = store.sql(
        "SELECT r.name, min(m.value) AS best FROM metrics m JOIN runs r ON r.id = m.run_id "
        "WHERE m.key = 'loss' GROUP BY r.name ORDER BY best"
    )
    assert best.values.tolist() == [["gamma", pytest.approx(1 / 6)], ["beta", 0.2], ["alpha", 0.25]]
    params = store.sql(
        f"SELECT key, value, value_num FROM params WHERE run_id = '{three_runs[0].id}' ORDER BY key"
    )
    assert params[["key", "value"]].values.tolist() == [["lr", "0.1"], ["opt.name", '"o0"']]
    assert params["value_num"].iloc[0] == 0.1
    assert pd.isna(params["value_num"].iloc[1])
    counts = store.sql("SELECT count(*) AS n FROM metrics")
    assert counts["n"].tolist() == [24]
    assert store.sql("SELECT count(*) AS n FROM artifacts")["n"].tolist() == [0]


def test_sql_over_runs_columns_builds_no_other_view(
    three_runs: list[Run], store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reprolog._store._reader import StoreReader

    store = Store(store_dir)
    store.runs()  # the index is current

    def no_summaries(self: StoreReader) -> list[dict[str, Any]]:
        raise AssertionError("the params view was built for a query that does not name it")

    monkeypatch.setattr(StoreReader, "summaries", no_summaries)
    got = store.sql('SELECT name, "params.lr" FROM runs WHERE "params.lr" > 0.15 ORDER BY name')
    assert got.values.tolist() == [["beta", pytest.approx(0.2)], ["gamma", pytest.approx(0.3)]]
    with pytest.raises(AssertionError, match="params view"):
        store.sql("SELECT count(*) FROM params")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELEC * FROM runs", "syntax error"),
        ("SELECT * FROM no_such_table", "no_such_table"),
        ("SELECT no_such_column FROM metrics", "no_such_column"),
    ],
)
def test_bad_sql_raises_query_error(
    three_runs: list[Run], store_dir: Path, query: str, message: str
) -> None:
    with pytest.raises(QueryError, match=rf"SQL error: .*{message}"):
        Store(store_dir).sql(query)


def test_sql_needs_a_query(three_runs: list[Run], store_dir: Path) -> None:
    with pytest.raises(ArgumentError, match="sql\\(\\) takes a non-empty SQL string, got ''"):
        Store(store_dir).sql("")


# ---------------------------------------------------------------- corrupt files


def test_corrupt_run_json_is_reported_and_the_rest_stays_readable(
    three_runs: list[Run], store_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = three_runs[1].dir / "run.json"
    broken.write_text('{"id": "01', encoding="utf-8")  # torn
    (three_runs[1].dir / "summary.json").unlink()  # nothing to fall back on
    store = Store(store_dir)
    with pytest.raises(CorruptFileError, match=rf"{broken}: unreadable JSON") as info:
        store.run(three_runs[1].id)
    assert info.value.path == str(broken)
    with caplog.at_level(logging.WARNING, logger="reprolog"):
        df = store.runs()
    assert df["name"].tolist() == ["gamma", "alpha"]
    assert any(str(broken) in p for p in store.problems)
    assert str(broken) in caplog.text
    assert len(store.metrics()) == 24  # every run's metrics, the broken record's included
    assert store.sql("SELECT count(*) AS n FROM runs")["n"].tolist() == [2]


def test_corrupt_summary_falls_back_to_the_record(three_runs: list[Run], store_dir: Path) -> None:
    (three_runs[0].dir / "summary.json").write_text("not json")
    store = Store(store_dir)
    df = store.runs()
    assert sorted(df["name"]) == ["alpha", "beta", "gamma"]
    assert df[df["name"] == "alpha"]["metrics.loss.last"].tolist() == [0.25]


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_metrics_parquet_is_reported_and_the_rest_stays_readable(
    three_runs: list[Run], store_dir: Path, damage: str
) -> None:
    path = three_runs[0].dir / "metrics.parquet"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"garbage" * 50)
    store = Store(store_dir)
    df = store.metrics()
    assert set(df["run_id"]) == {three_runs[1].id, three_runs[2].id}
    assert any(str(path) in p and "unreadable metrics file" in p for p in store.problems)
    assert len(store.runs()) == 3  # the summary still lists it
    # SQL over the metrics view skips the broken file too.
    assert store.sql("SELECT count(*) AS n FROM metrics")["n"].tolist() == [16]
    # One run's metrics: empty, with the problem reported, never half-read.
    fresh = Store(store_dir)
    assert fresh.run(three_runs[0].id).metrics().empty
    assert any(str(path) in p for p in fresh.problems)


def test_a_folder_without_a_record_is_reported(three_runs: list[Run], store_dir: Path) -> None:
    stray = store_dir / "runs" / "01zzzzzzzzzzzzzzzzzzzzzzzz"
    stray.mkdir()
    long_ago = time.time() - 3600  # not a run being created right now
    os.utime(stray, (long_ago, long_ago))
    store = Store(store_dir)
    assert len(store.runs()) == 3
    assert any(str(stray / "run.json") in p and "missing" in p for p in store.problems)


def test_a_writer_that_died_before_its_record_is_reported(
    three_runs: list[Run], store_dir: Path
) -> None:
    stray = store_dir / "runs" / "01zzzzzzzzzzzzzzzzzzzzzzzz"
    (stray / "log").mkdir(parents=True)
    (stray / "run.lock").touch()  # nobody holds it: the writer is gone
    store = Store(store_dir)
    assert len(store.runs()) == 3
    assert len(store.metrics()) == 24
    assert store.problems == [f"{stray / 'run.json'}: missing"]


def test_newer_format_version_is_refused_with_advice(
    three_runs: list[Run], store_dir: Path
) -> None:
    path = three_runs[0].dir / "run.json"
    path.write_text(path.read_text().replace('"format_version": 1', '"format_version": 99'))
    with pytest.raises(
        CorruptFileError, match=rf"{path}: format_version 99 is newer .* upgrade reprolog"
    ):
        Store(store_dir).run(three_runs[0].id)


def test_store_views_are_pandas(three_runs: list[Run], store_dir: Path) -> None:
    store = Store(store_dir)
    assert isinstance(store.runs(), pd.DataFrame)
    assert isinstance(store.metrics(), pd.DataFrame)
    assert isinstance(store.sql("SELECT 1 AS x"), pd.DataFrame)


# ------------------------------------------------------------------ the reader behind Store


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under root: (size, mtime_ns), to show a reader wrote nothing."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_records_sql_and_store_share_one_reader(three_runs: list[Run], store_dir: Path) -> None:
    from reprolog._store._reader import StoreReader

    store = Store(store_dir)
    rec = store.run("alpha")
    assert rec._reader is store._reader  # a record reads its points through what made it
    assert (
        rec.metrics(keys="loss")["value"].tolist()
        == store.metrics("alpha", "loss")["value"].tolist()
    )
    # The store of a run folder, without the caller knowing the layout.
    again = StoreReader.record_at(rec.dir)
    assert (again.id, again.dir) == (rec.id, rec.dir)
    assert StoreReader.of_run_dir(rec.dir).layout == store._layout
    assert Store._of_run_dir(rec.dir).dir == store.dir
    # The public face shows no private type: the layout is `_layout`, the folder is `dir`.
    assert not hasattr(store, "layout") and isinstance(store.dir, Path)


def test_a_read_only_reader_never_writes(
    make_run: MakeRun, store_dir: Path, tmp_path: Path, run_script: Callable[..., Any]
) -> None:
    done = make_run("done")
    done.log({"loss": 1.0}, step=0)
    done.finish()
    proc = run_script(
        f"""
        import os, signal, reprolog
        run = reprolog.init("dead", dir={str(store_dir)!r}, capture=False)
        for step in range(20):
            run.log({{"loss": 1.0 / (step + 1)}}, step=step)
        os.kill(os.getpid(), signal.SIGKILL)
        """,
        cwd=tmp_path,
    )
    assert proc.returncode == -9, proc.stderr
    before = _tree(store_dir)
    store = Store(store_dir, read_only=True)
    rows = store.runs().set_index("name")
    assert rows.loc["dead", "status"] == "crashed"  # viewed crashed, in memory
    rec = store.run("dead")
    assert rec.status == "crashed" and rec._reader is store._reader
    assert len(rec.metrics()) == 20  # read from its log
    assert store.sql("SELECT count(*) AS n FROM metrics")["n"].iloc[0] == 21
    assert store.sql("SELECT count(*) AS n FROM artifacts")["n"].iloc[0] == 0
    assert _tree(store_dir) == before  # nothing recovered, compacted or indexed on disk
    assert Store(store_dir).run("dead").status == "crashed"  # a writer-mode store recovers it
    assert _tree(store_dir) != before
