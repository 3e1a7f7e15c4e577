"""The server's cache of decoded curves: same answers as without it, re-reads, live runs, budget."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import reprolog
from reprolog._ui._cache import SeriesCache
from reprolog._ui._data import Provider
from reprolog._ui._series import series

KEYS = ["loss", "acc", "lr", "sparse"]


def _finished(root: Path, name: str, steps: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    run = reprolog.init(name, dir=root, capture=False, params={"seed": seed})
    loss = rng.standard_normal(steps).tolist()
    for step in range(steps):
        point: dict[str, Any] = {"loss": loss[step], "lr": 0.5 ** (step % 7)}
        if step % 3 == 0:
            point["acc"] = float("nan") if step == 9 else step / 7
        if step % 5 in (0, 1):  # unevenly spaced steps
            point["sparse"] = step * 1.5
        run.log(point, step=step)
    run.finish()
    return run.id


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("cache") / ".reprolog"
    ids = [_finished(root, f"r{i}", 3000 + 500 * i, i) for i in range(3)]
    return root, ids


def _body(provider: Provider, ids: list[str], **kw: Any) -> dict[str, Any]:
    body = series(provider, ids, KEYS, **kw)
    body.pop("elapsed_ms")
    return body


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"width": 50},
        {"width": 4000},
        {"xmin": 100.5, "xmax": 2222.2, "width": 333},
        {"x": "time"},
        {"group": "params.seed", "width": 64},
    ],
)
def test_finished_series_are_the_same_with_and_without_the_cache(
    store: tuple[Path, list[str]], kw: dict[str, Any]
) -> None:
    root, ids = store
    cached = Provider(root)
    uncached = Provider(root)
    uncached.series_cache = SeriesCache(uncached.store, budget=0)  # stores nothing
    first = _body(cached, ids, **kw)
    assert len(cached.series_cache) == len(ids) and len(uncached.series_cache) == 0
    assert _body(cached, ids, **kw) == first == _body(uncached, ids, **kw)
    assert cached.series_cache.decodes == len(ids)  # the second request decoded nothing


def test_whole_series_are_every_recorded_point(store: tuple[Path, list[str]]) -> None:
    root, ids = store
    provider = Provider(root)
    frame = provider.store.metrics_table(runs=[ids[2]]).to_pandas()
    got = {s["key"]: s for s in _body(provider, ids[2:], width=4000)["series"]}
    for key in KEYS:
        rows = frame[frame["key"] == key].sort_values("step")
        assert got[key]["x"] == rows["step"].tolist()
        values = [None if v != v else v for v in rows["value"].tolist()]
        assert got[key]["last"] == values and got[key]["downsampled"] is False


def test_values_keep_full_float64_precision(store: tuple[Path, list[str]]) -> None:
    root, ids = store
    provider = Provider(root)
    frame = provider.store.metrics_table(runs=[ids[0]]).to_pandas()
    loss = frame[frame["key"] == "loss"].sort_values("step")["value"].to_numpy()
    got = _body(provider, ids[:1], width=4000)["series"]
    s = next(s for s in got if s["key"] == "loss")
    assert s["last"] == loss.tolist()  # whole series: every value exactly as recorded
    curves = provider.series_cache.curves(ids[0], ["loss", "lr"], "step")
    assert curves["loss"][1].dtype == np.float64  # not exactly representable as float32
    assert curves["lr"][1].dtype == np.float32  # powers of two are: stored compactly
    assert curves["lr"][1].astype(np.float64).tolist() == [0.5 ** (i % 7) for i in range(3000)]


def test_a_changed_metrics_file_is_read_again(tmp_path: Path) -> None:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    root = tmp_path / ".reprolog"
    run_id = _finished(root, "changing", 2000, 7)
    provider = Provider(root)
    before = _body(provider, [run_id], width=4000)
    path = provider.store._layout.run_layout(run_id).metrics
    table = pq.read_table(path)
    keep = pc.less(table.column("step"), 1000)
    doubled = table.set_column(
        table.schema.get_field_index("value"),
        "value",
        pc.multiply(table.column("value"), 2.0),
    ).filter(keep)
    pq.write_table(doubled, path)
    after = _body(provider, [run_id], width=4000)
    assert provider.series_cache.decodes == 2
    loss = next(s for s in after["series"] if s["key"] == "loss")
    assert loss["points"] == 1000 and after["range"] == [0.0, 999.0]
    old = next(s for s in before["series"] if s["key"] == "loss")
    assert old["points"] == 2000
    assert loss["last"] == [2.0 * v for v in old["last"][:1000]]


def test_a_live_run_shows_its_new_points(tmp_path: Path) -> None:
    root = tmp_path / ".reprolog"
    run = reprolog.init("live", dir=root, capture=False, flush_interval=0.01)
    provider = Provider(root)

    def points() -> int:
        body = series(provider, [run.id], ["loss"])
        return sum(s["points"] for s in body["series"])

    def wait_for(n: int) -> None:
        deadline = time.monotonic() + 30
        while points() < n:
            assert time.monotonic() < deadline, f"never saw {n} points, saw {points()}"
            time.sleep(0.02)

    try:
        for step in range(10):
            run.log({"loss": float(step)}, step=step)
        wait_for(10)
        for step in range(10, 25):
            run.log({"loss": float(step)}, step=step)
        wait_for(25)
        assert len(provider.series_cache) == 0  # a live run is never cached
    finally:
        run.finish()
    body = series(provider, [run.id], ["loss"])
    assert body["series"][0]["last"] == [float(s) for s in range(25)]
    assert len(provider.series_cache) == 1  # finished: cached from now on


def test_the_memory_budget_evicts_the_least_recent(store: tuple[Path, list[str]]) -> None:
    root, ids = store
    probe = SeriesCache(Provider(root).store)
    probe.curves(ids[0], KEYS, "step")
    one = probe.used
    cache = SeriesCache(probe.store, budget=int(one * 2.5))
    full = {k: (a.copy(), b.copy()) for k, (a, b) in probe.curves(ids[0], KEYS, "step").items()}
    cache.curves(ids[0], KEYS, "step")
    cache.curves(ids[1], KEYS, "step")
    cache.curves(ids[0], KEYS, "step")  # now the most recent
    cache.curves(ids[2], KEYS, "step")
    assert cache.used <= cache.budget
    assert (ids[0], "step") in cache and (ids[1], "step") not in cache
    again = cache.curves(ids[1], KEYS, "step")  # evicted: decoded again, same curves
    assert cache.decodes == 4 and cache.used <= cache.budget
    assert sorted(again) == sorted(full)
    for curves in (again, cache.curves(ids[0], KEYS, "step")):
        assert all(len(curves[k][0]) > 0 for k in KEYS)
    for k, (x, v) in cache.curves(ids[0], KEYS, "step").items():
        assert np.array_equal(x, full[k][0]) and np.array_equal(v, full[k][1], equal_nan=True)


def test_simultaneous_requests_decode_a_run_once(store: tuple[Path, list[str]]) -> None:
    root, ids = store
    provider = Provider(root)
    results: list[dict[str, Any]] = []
    asks = KEYS * 2
    barrier = threading.Barrier(len(asks), timeout=60)

    def ask(key: str) -> None:
        barrier.wait()
        body = series(provider, ids, [key])
        body.pop("elapsed_ms")
        results.append(body)

    threads = [threading.Thread(target=ask, args=(k,)) for k in asks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == len(asks) and provider.series_cache.decodes == len(ids)
