"""Store.runs() from the index's listing columns is runs_frame of the summary rows, exactly."""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reprolog import Run, Store
from reprolog._storage import _index, _listing
from reprolog._storage._ids import new_run_id
from reprolog._storage._recordfile import read_json, write_json_atomic
from reprolog._store._frames import listing_frame, runs_frame

MakeRun = Callable[..., Run]

ROWS: list[dict[str, Any]] = [
    {
        "id": "01a",
        "name": "a",
        "experiment": "e1",
        "status": "completed",
        "start_time": 1700000000.123456,
        "end_time": 1700000100.5,
        "params": {"lr": 0.1, "bs": 32, "opt": "adam", "amp": True, "sched": None, "ls": [1, 2]},
        "tags": {"team": "x"},
        "metrics_summary": {"loss": {"last": 0.5, "min": 0.25, "max": "inf"}},
    },
    {
        "id": "01b",
        "name": None,
        "experiment": "e2",
        "status": "failed",
        "start_time": 1700000200,
        "end_time": None,
        "params": {"lr": 1, "bs": "64", "amp": False, "big": 2**70, "d": {}},
        "tags": {},
        "metrics_summary": {"loss": {"last": "nan", "min": None, "max": None}},
    },
    {
        "id": "01c",
        "name": "c",
        "experiment": "e1",
        "status": "running",
        "start_time": 1700000300.75,
        "end_time": None,
        "params": {"lr": 0.01, "bs": 16, "only": 3},
        "tags": {"team": "y", "note": "ü"},
        "metrics_summary": {},
    },
    {"id": "01d", "name": "d", "params": {"lr": 2}, "metrics_summary": {"acc": {"last": 1.0}}},
]


def _check(rows: list[dict[str, Any]], table: pa.Table, experiment: str | None = None) -> None:
    expected = runs_frame(
        [r for r in rows if experiment is None or r.get("experiment") == experiment]
    )
    pd.testing.assert_frame_equal(listing_frame(table, experiment), expected)


@pytest.mark.parametrize("experiment", [None, "e1", "e2", "none"])
def test_every_subset_gives_back_the_reference_frame(experiment: str | None) -> None:
    """Columns, dtypes and values of the reference, for any runs kept and however split."""
    rng = random.Random(17)
    for _ in range(60):
        rows = [r for r in ROWS if rng.random() < 0.7]
        rows = [r for r in rows if "big" not in r.get("params", {})]  # runs_frame refuses it
        cut = rng.randrange(len(rows) + 1)
        # Tables encoded apart and merged (an index plus new runs) or all at once.
        merged = _listing.merge(
            [_listing.listing_table(rows[:cut]), _listing.listing_table(rows[cut:])]
        )
        _check(rows, merged, experiment)
        _check(rows, _listing.listing_table(rows), experiment)


def test_cells_keep_their_python_types() -> None:
    table = _listing.listing_table(ROWS)
    texts = _listing.json_columns(table)
    assert table.column("c:params.bs").type == pa.string() and "c:params.bs" in texts  # int + str
    assert table.column("c:params.opt").type == pa.string() and "c:params.opt" not in texts
    assert table.column("c:params.only").type == pa.int64()
    assert "c:params.lr" in texts  # 0.1, 1, 0.01, 2: int and float apart
    assert "c:params.big" in texts  # beyond int64
    assert table.column("c:metrics.loss.last").type == pa.float64()
    for name in ("big", "ls", "d", "sched", "amp"):
        column = table.column(f"c:params.{name}")
        values = _listing.decode_column(column, f"c:params.{name}" in texts, _listing.ABSENT)
        assert values == [r.get("params", {}).get(name, _listing.ABSENT) for r in ROWS]


def _summary(i: int, **more: Any) -> dict[str, Any]:
    row = {
        "id": f"01{i:03d}",
        "name": f"r{i}",
        "experiment": f"e{i % 2 + 1}",
        "status": "completed",
        "start_time": 1700000000 + i * 60.5,
        "end_time": 1700000010.25 + i * 60,
        "params": {"lr": 0.1 / (i + 1), "bs": 16 * (i + 1), "opt": "adam", "amp": i % 2 == 0},
        "tags": {"team": "x"} if i % 3 else {},
        "metrics_summary": {
            "loss": {"last": 0.5 / (i + 1), "min": 0.125, "max": 1.5, "count": 3},
            "acc": {"last": 1, "min": 0.5, "max": 1},
        },
    }
    row.update(more)
    return row


PARSED = [
    _summary(0),
    _summary(1, start_time=1700000000),  # an int start: read as its float
    _summary(2, tags={"note": "ü"}),
    _summary(3, metrics_summary={}),
    _summary(4, params={"lr": 0.0}),  # an integral float: could have been an int
    _summary(5, params={"lr": 3}),  # an int among floats: read as 3.0, so per row too
    _summary(6, params={"ls": [1, 2], "d": {}}),  # nested values
    _summary(7, name=None),  # None and an absent key look alike
    _summary(8, metrics_summary={"loss": {"last": "nan", "min": None, "max": None}}),
    _summary(9, tags={"note": "\u00e9t\u00e9"}),
    _summary(10, format_version=1),
    _summary(11, metrics_summary={"loss": {"last": 0.5}}),  # min, max absent: None
    _summary(12, status="running"),  # a live run's: never cached, so the caller's to judge
]


@pytest.mark.parametrize("experiment", [None, "e1", "e2"])
def test_summaries_parsed_at_once_give_back_the_reference_frame(experiment: str | None) -> None:
    texts = [json.dumps(r, ensure_ascii=False).encode() for r in PARSED]
    texts[9] = json.dumps(PARSED[9]).encode()  # with \u escapes
    texts.append(texts[0] + b"\n")  # a line break at the end
    rows = [*PARSED, PARSED[0]]
    table, kept, left = _listing.parse_summaries(texts)
    assert table is not None and kept == [0, 1, 2, 3]
    assert left == [4, 5, 6, 7, 8, 9, 10, 11, 12, 13]
    assert table.column("summary").to_pylist() == [texts[i].decode() for i in kept]
    others = [json.loads(texts[i]) for i in left]
    extra = {"summary": pa.array([texts[i].decode() for i in left])}
    merged = _listing.merge([table, _listing.listing_table(others, extra)])
    _check([rows[i] for i in kept + left], merged, experiment)


@pytest.mark.parametrize(
    "damage", [b'{"id": "01x", "a": 1, "a": 2}', b'{"id": "01x"} {"id": "01y"}', b'{"x": 1}']
)
def test_a_batch_the_reader_cannot_read_exactly_goes_row_by_row(damage: bytes) -> None:
    texts = [json.dumps(r).encode() for r in PARSED[:3]] + [damage]
    table, kept, left = _listing.parse_summaries(texts)
    assert table is None and kept == [] and left == [0, 1, 2, 3]


# ---------------------------------------------------------------- a real store


def _crashed_copy(live: Run, store_dir: Path) -> str:
    """A copy of a live run's folder whose writer is gone (its lock is nobody's): crashed."""
    run_id = new_run_id()
    shutil.copytree(live.dir, store_dir / "runs" / run_id)
    record = read_json(store_dir / "runs" / run_id / "run.json")
    record.update(id=run_id, name="crashed")
    write_json_atomic(store_dir / "runs" / run_id / "run.json", record)
    return run_id


def _reference(store: Store, experiment: str | None = None) -> pd.DataFrame:
    """runs_frame of every run's summary read one by one (not through the index)."""
    reader = store._reader
    rows = [r for i in reader.run_ids() if (r := reader.load_summary(i)) is not None]
    return runs_frame([r for r in rows if experiment is None or r.get("experiment") == experiment])


def _same(store: Store) -> None:
    for experiment in (None, "e1", "e2", "none"):
        pd.testing.assert_frame_equal(store.runs(experiment), _reference(store, experiment))


@pytest.fixture
def mixed(make_run: MakeRun, store_dir: Path) -> dict[str, Run]:
    runs = {}
    a = runs["a"] = make_run("a", experiment="e1", params={"lr": 0.1, "bs": 32, "opt": "adam"})
    a.set_tags(team="x")
    a.log({"loss": 0.5, "acc": 0.1}, step=0)
    a.log({"loss": float("nan")}, step=1)
    a.finish()
    b = runs["b"] = make_run("b", experiment="e2", params={"lr": 1, "bs": "64", "amp": True})
    b.finish("failed")
    c = runs["c"] = make_run(None, experiment="e1", params={"lr": 0.01, "sched": None, "ls": [1]})
    c.log({"loss": 0.25}, step=0)
    c.finish()
    live = runs["live"] = make_run("live", experiment="e2", params={"lr": 3, "new": "x"})
    live.log({"loss": 1.0, "val": 2.0}, step=0)
    live.log({"loss": 0.75}, step=1)
    _crashed_copy(live, store_dir)
    return runs


@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("read_only", [False, True])
def test_listing_matches_the_reference_as_the_store_changes(
    mixed: dict[str, Run],
    make_run: MakeRun,
    store_dir: Path,
    read_only: bool,
    batch: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if batch:  # as a cold listing of a large store: summaries parsed at once
        monkeypatch.setattr(_index, "BATCH_MIN", 1)
    store = Store(store_dir, read_only=read_only)
    frame = store.runs()
    assert sorted(frame["status"]) == ["completed", "completed", "crashed", "failed", "running"]
    _same(store)
    assert (store_dir / "index" / "runs.parquet").exists() is not read_only

    new = make_run("new", experiment="e1", params={"lr": "auto", "bs": 8})
    new.log({"acc": 0.9}, step=0)
    new.finish()
    summary = mixed["b"].dir / "summary.json"
    changed = read_json(summary)
    changed["params"]["bs"] = 64  # now an int, as every other run's
    changed["tags"] = {"late": "yes"}
    write_json_atomic(summary, changed)
    shutil.rmtree(mixed["c"].dir)
    _same(store)
    _same(Store(store_dir, read_only=read_only))

    mixed["live"].log({"loss": 0.5}, step=2)
    mixed["live"].finish()
    _same(store)
    assert len(store.runs()) == 5


def test_one_new_run_reads_only_that_run(
    mixed: dict[str, Run], make_run: MakeRun, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mixed["live"].finish()
    Store(store_dir).runs()  # the index holds every run now
    new = make_run("new", experiment="e1", params={"lr": 0.5})
    new.finish()
    store = Store(store_dir)
    read: list[str] = []
    original = store._reader.load_summary
    monkeypatch.setattr(store._reader, "load_summary", lambda i: read.append(i) or original(i))
    frame = store.runs()
    assert read == [new.id]
    assert new.id in set(frame["id"])
    _same(store)


def test_an_index_of_the_previous_release_is_upgraded(
    mixed: dict[str, Run], store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mixed["live"].finish()
    Store(store_dir).runs()
    index = store_dir / "index" / "runs.parquet"
    table = pq.read_table(index)
    old = table.select(["id", "mtime_ns", "summary"]).replace_schema_metadata(None)
    pq.write_table(old, index)  # what the previous release wrote: no version, no listing

    store = Store(store_dir)
    read: list[str] = []
    original = store._reader.load_summary
    monkeypatch.setattr(store._reader, "load_summary", lambda i: read.append(i) or original(i))
    store.runs()
    assert read == []  # its summary texts were good: no run was read again
    _same(store)
    meta = pq.read_schema(index).metadata
    assert meta[b"reprolog.index_version"] == str(_index.INDEX_VERSION).encode()


def test_an_index_of_another_version_is_rebuilt(mixed: dict[str, Run], store_dir: Path) -> None:
    mixed["live"].finish()
    Store(store_dir).runs()
    index = store_dir / "index" / "runs.parquet"
    table = pq.read_table(index)
    meta = {b"reprolog.index_version": b"99", b"reprolog.json_columns": json.dumps([]).encode()}
    pq.write_table(table.replace_schema_metadata(meta), index)
    _same(Store(store_dir))
    assert pq.read_schema(index).metadata[b"reprolog.index_version"] == b"2"


def test_an_index_rewritten_meanwhile_is_left_to_its_writer(
    mixed: dict[str, Run], make_run: MakeRun, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mixed["live"].finish()
    Store(store_dir).runs()
    index = store_dir / "index" / "runs.parquet"
    before = index.read_bytes()
    make_run("new").finish()
    read = _index._read_index

    def rewritten(path: Path, *, texts: bool = True) -> tuple[pa.Table, bool]:
        table, stale = read(path, texts=texts)
        return (table.slice(1) if texts else table), stale  # another reader's, since

    monkeypatch.setattr(_index, "_read_index", rewritten)
    store = Store(store_dir)
    frame = store.runs()
    monkeypatch.undo()
    pd.testing.assert_frame_equal(frame, _reference(store))
    assert index.read_bytes() == before  # not ours to write
