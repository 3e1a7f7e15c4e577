"""Several processes write runs into one store at once while another reads it: nothing is lost."""

from __future__ import annotations

import hashlib
import multiprocessing
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reprolog import Store

PROCESSES = 4
RUNS_EACH = 2
STEPS = 20_000

# Run in each spawned process through exec (picklable), so the workers need no test module.
WORKER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import reprolog

    proc, store, tmp, steps, runs_each = sys.argv_for_worker
    for r in range(runs_each):
        unique = Path(tmp) / f"unique-{proc}-{r}.bin"
        unique.write_bytes(f"{proc}/{r}".encode() * 1000)
        with reprolog.init(f"p{proc}-r{r}", dir=store, capture=False,
                           params={"proc": proc, "run": r}, flush_interval=0.01) as run:
            run.log_artifact(Path(tmp) / "shared.bin", copy=True)
            run.log_artifact(unique, copy=True)
            base = proc * 1_000_000 + r * 100_000
            for i in range(steps):
                run.log({"x": base + i, "y": -(base + i) / 4}, step=i)
    """
)


@pytest.mark.slow
def test_processes_write_one_store_at_once(tmp_path: Path, store_dir: Path) -> None:
    (tmp_path / "shared.bin").write_bytes(b"identical in every run" * 5000)
    ctx = multiprocessing.get_context("spawn")
    procs = []
    for proc in range(PROCESSES):
        args = (proc, str(store_dir), str(tmp_path), STEPS, RUNS_EACH)
        setup = f"import sys; sys.argv_for_worker = {args!r}\n"
        procs.append(ctx.Process(target=exec, args=(setup + WORKER, {"__name__": "worker"})))
    for p in procs:
        p.start()

    # Read while they write: a reader must never fail, nor mark a live run crashed, and
    # what it reads of a live run is a true prefix of what was logged.
    reads = points_seen = 0
    deadline = time.monotonic() + 120
    while any(p.is_alive() for p in procs):
        assert time.monotonic() < deadline, "writers did not finish"
        if (store_dir / "runs").is_dir():
            store = Store(store_dir)
            listing = store.runs()
            assert set(listing["status"]) <= {"running", "completed"}
            frame = store.metrics()
            points_seen += _check_prefixes(store, frame)
            assert store.problems == []  # a run being started is not a corrupt run
            reads += 1
        time.sleep(0.05)
    for p in procs:
        p.join()
        assert p.exitcode == 0

    store = Store(store_dir)
    listing = store.runs()
    assert len(listing) == PROCESSES * RUNS_EACH
    assert set(listing["status"]) == {"completed"}
    assert sorted(listing["name"]) == sorted(
        f"p{p}-r{r}" for p in range(PROCESSES) for r in range(RUNS_EACH)
    )
    df = store.metrics()
    assert len(df) == PROCESSES * RUNS_EACH * STEPS * 2
    for run_id, part in df.groupby("run_id", observed=True):
        rec = store.run(str(run_id))
        base = rec.params["proc"] * 1_000_000 + rec.params["run"] * 100_000
        steps = np.arange(STEPS)
        x = part[part["key"] == "x"]
        y = part[part["key"] == "y"]
        assert (x["step"].to_numpy() == steps).all()
        assert (x["value"].to_numpy() == base + steps).all()
        assert (y["value"].to_numpy() == -(base + steps) / 4).all()
        arts = rec.artifacts
        assert [a["status"] for a in arts] == ["ok", "ok"]
        for art in arts:
            blob = store.dir / art["blob"]
            assert hashlib.sha256(blob.read_bytes()).hexdigest() == art["sha256"]
    shared = {
        a["sha256"]
        for r in listing["id"]
        for a in store.run(r).artifacts
        if a["name"] == "shared.bin"
    }
    assert len(shared) == 1  # the same content, stored once
    blobs = [p for p in (store.dir / "blobs" / "sha256").rglob("*") if p.is_file()]
    assert len(blobs) == 1 + PROCESSES * RUNS_EACH
    assert store.problems == []
    assert reads > 0
    assert points_seen > 0  # the readers did read points while the writers were writing


def _check_prefixes(store: Store, frame: pd.DataFrame) -> int:
    """Assert each run's points in a mid-write read are steps 0..n-1 with the logged values."""
    for run_id, part in frame.groupby("run_id", observed=True):
        params = store.run(str(run_id)).params
        base = params["proc"] * 1_000_000 + params["run"] * 100_000
        for key, sign in (("x", 1.0), ("y", -0.25)):
            points = part[part["key"] == key].sort_values("step")
            steps = points["step"].to_numpy()
            assert (steps == np.arange(len(steps))).all(), (run_id, key)
            assert (points["value"].to_numpy() == sign * (base + steps)).all(), (run_id, key)
    return len(frame)


def test_a_run_being_started_is_not_reported_as_corrupt(
    store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import reprolog
    from reprolog._run._facts import RunFacts

    entered, release = threading.Event(), threading.Event()

    def slow_capture(self: RunFacts) -> None:  # capture runs before run.json first exists
        entered.set()
        release.wait(10)

    monkeypatch.setattr(RunFacts, "capture", slow_capture)
    started: list[reprolog.Run] = []
    thread = threading.Thread(target=lambda: started.append(reprolog.init(dir=store_dir)))
    thread.start()
    try:
        assert entered.wait(10)
        store = Store(store_dir)
        assert len(store.runs()) == 0
        assert store.metrics().empty
        assert store.problems == []
    finally:
        release.set()
        thread.join()
    started[0].finish()
    assert Store(store_dir).runs()["status"].tolist() == ["completed"]
