"""The summary index: listing reads only new or changed runs; a lost index is rebuilt."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from reprolog import Run, Store
from reprolog._storage._ids import new_run_id

MakeRun = Callable[..., Run]


@pytest.fixture
def finished(make_run: MakeRun) -> list[Run]:
    runs = []
    for i in range(4):
        run = make_run(f"r{i}", params={"i": i})
        run.log({"loss": float(i)}, step=0)
        run.finish()
        runs.append(run)
    return runs


class Counter:
    """Wraps the store reader's load_summary to count which runs a listing had to read."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.ids: list[str] = []
        original = store._reader.load_summary

        def counting(run_id: str) -> Any:
            self.ids.append(run_id)
            return original(run_id)

        monkeypatch.setattr(store._reader, "load_summary", counting)


def names(store: Store) -> list[str]:
    return sorted(store.runs()["name"])


def test_listing_reads_only_new_runs(
    finished: list[Run], make_run: MakeRun, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(store_dir)
    reads = Counter(store, monkeypatch)
    assert names(store) == ["r0", "r1", "r2", "r3"]
    assert sorted(reads.ids) == sorted(r.id for r in finished)  # first listing builds the index
    index = store_dir / "index" / "runs.parquet"
    assert sorted(pq.read_table(index).column("id").to_pylist()) == sorted(r.id for r in finished)

    reads.ids.clear()
    assert names(store) == ["r0", "r1", "r2", "r3"]
    assert reads.ids == []  # nothing changed: nothing read

    new = make_run("r4")
    new.finish()
    assert names(store) == ["r0", "r1", "r2", "r3", "r4"]
    assert reads.ids == [new.id]

    # Another Store over the same folder uses the same index.
    other = Store(store_dir)
    other_reads = Counter(other, monkeypatch)
    assert len(other.runs()) == 5
    assert other_reads.ids == []


def test_unchanged_runs_are_not_reparsed(finished: list[Run], store_dir: Path) -> None:
    Store(store_dir).runs()  # index built
    # Damage a finished run's summary in place (its folder's mtime does not change):
    # a listing that re-parsed it would fail or show the damage.
    summary = finished[0].dir / "summary.json"
    summary.write_text('{"id": "' + finished[0].id + '", "name": "tampered"}')
    assert names(Store(store_dir)) == ["r0", "r1", "r2", "r3"]


def test_a_changed_run_is_read_again(
    finished: list[Run], store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reprolog._storage._recordfile import read_json, write_json_atomic

    Store(store_dir).runs()
    summary = finished[1].dir / "summary.json"
    data = read_json(summary)
    data["name"] = "renamed"
    write_json_atomic(summary, data)  # an atomic rewrite changes the folder's mtime
    store = Store(store_dir)
    reads = Counter(store, monkeypatch)
    assert names(store) == ["r0", "r2", "r3", "renamed"]
    assert reads.ids == [finished[1].id]


def test_deleted_runs_leave_the_listing(finished: list[Run], store_dir: Path) -> None:
    import shutil

    Store(store_dir).runs()
    shutil.rmtree(finished[2].dir)
    assert names(Store(store_dir)) == ["r0", "r1", "r3"]
    table = pq.read_table(store_dir / "index" / "runs.parquet")
    assert finished[2].id not in table.column("id").to_pylist()


def test_missing_index_is_rebuilt(finished: list[Run], store_dir: Path) -> None:
    index = store_dir / "index" / "runs.parquet"
    Store(store_dir).runs()
    index.unlink()
    assert names(Store(store_dir)) == ["r0", "r1", "r2", "r3"]
    assert index.is_file()


@pytest.mark.parametrize("damage", [b"", b"garbage", b"PAR1" + b"\x00" * 100 + b"PAR1"])
def test_corrupt_index_is_rebuilt(
    finished: list[Run],
    store_dir: Path,
    damage: bytes,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    index = store_dir / "index" / "runs.parquet"
    Store(store_dir).runs()
    index.write_bytes(damage)
    store = Store(store_dir)
    reads = Counter(store, monkeypatch)
    with caplog.at_level(logging.WARNING, logger="reprolog"):
        assert names(store) == ["r0", "r1", "r2", "r3"]
    assert "rebuilding unreadable index" in caplog.text and str(index) in caplog.text
    assert len(reads.ids) == 4
    assert pq.read_table(index).num_rows == 4


def test_live_runs_are_never_cached(make_run: MakeRun, store_dir: Path) -> None:
    run = make_run("live")
    assert Store(store_dir).runs()["status"].tolist() == ["running"]
    run.log({"loss": 0.5}, step=0)
    run.finish()
    df = Store(store_dir).runs()
    assert df["status"].tolist() == ["completed"]
    assert df["metrics.loss.last"].tolist() == [0.5]


def test_a_large_cached_listing_reads_no_summary(
    store_dir: Path, make_run: MakeRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    """500 unchanged runs list from the index alone (its speed: bench/bench_core.py)."""
    import shutil

    template = make_run("t", params={"lr": 0.1, "opt": "adam"})
    template.log({"loss": 1.0, "acc": 0.5}, step=0)
    template.finish()
    # Clone the finished run folder: 500 runs without 500 inits.
    ids = [template.id]
    for _ in range(499):
        run_id = new_run_id()
        shutil.copytree(template.dir, store_dir / "runs" / run_id)
        summary = store_dir / "runs" / run_id / "summary.json"
        summary.write_text(summary.read_text().replace(template.id, run_id))
        ids.append(run_id)
    first = Store(store_dir)
    first_reads = Counter(first, monkeypatch)
    assert len(first.runs()) == 500
    assert sorted(first_reads.ids) == sorted(ids)  # the first listing read every run once
    store = Store(store_dir)
    reads = Counter(store, monkeypatch)
    df = store.runs()
    assert sorted(df["id"]) == sorted(ids)
    assert set(df["params.lr"]) == {0.1} and set(df["metrics.loss.last"]) == {1.0}
    assert reads.ids == []  # every row came from the index
