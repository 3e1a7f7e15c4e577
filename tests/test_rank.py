"""Rank writers: other processes of a job log into one live run, kept with a rank column."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import reprolog

RANK_SCRIPT = """
import time, reprolog
with reprolog.attach({run_id!r}, rank={rank}, dir={store!r}) as writer:
    for step in range(50):
        writer.log({{"loss": {rank} + step / 100}}, step=step, epoch=step // 10)
    print("logged", flush=True)
    time.sleep({delay})
"""

LATE_SCRIPT = """
import time, reprolog
with reprolog.attach({run_id!r}, rank=1, dir={store!r}) as writer:
    for step in range(50):
        writer.log({{"loss": step / 100}}, step=step)
    print("logged", flush=True)
    time.sleep(0.5)
    for step in range(50, 100):
        writer.log({{"loss": step / 100}}, step=step)
"""


def _rank_process(
    start_script: Callable[..., Any], run: reprolog.Run, rank: int, delay: float, cwd: Path
) -> Any:
    code = RANK_SCRIPT.format(run_id=run.id, store=str(run.store_dir), rank=rank, delay=delay)
    return start_script(code, cwd=cwd)


def test_other_ranks_points_are_kept_with_a_rank_column(
    make_run: Callable[..., reprolog.Run], store_dir: Path, tmp_path: Path, start_script: Any
) -> None:
    run = make_run()
    run.log({"loss": 0.5}, step=0)
    ranks = [_rank_process(start_script, run, r, 0.0, tmp_path) for r in (1, 2)]
    for proc in ranks:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err

    # While the run lives, readers see every rank's points already.
    live = reprolog.Store(store_dir).metrics(runs=[run.id])
    assert sorted(live["rank"].unique().tolist()) == [0, 1, 2]

    run.finish()
    points = reprolog.Store(store_dir).metrics(runs=[run.id], keys=["loss"])
    assert len(points) == 1 + 2 * 50
    for rank in (1, 2):
        mine = points[points["rank"] == rank].sort_values("step")
        assert mine["step"].tolist() == list(range(50))
        assert mine["value"].tolist() == [rank + s / 100 for s in range(50)]
        assert mine["epoch"].tolist() == [s // 10 for s in range(50)]
    assert points[points["rank"] == 0]["value"].tolist() == [0.5]
    assert not (run.dir / "log").exists()


def test_a_run_without_rank_writers_has_no_rank_column(
    make_run: Callable[..., reprolog.Run], store_dir: Path
) -> None:
    run = make_run()
    run.log({"loss": 1.0})
    run.finish()
    points = reprolog.Store(store_dir).metrics(runs=[run.id])
    assert points["value"].tolist() == [1.0]
    assert points["rank"].tolist() == [0]  # a run's own points are rank 0


def test_finish_waits_for_an_open_rank_writer(
    make_run: Callable[..., reprolog.Run], store_dir: Path, tmp_path: Path, start_script: Any
) -> None:
    run = make_run()
    # The writer logs 50 points, says so, and logs 50 more half a second later: only a
    # finish() that waits for it to close keeps the late ones.
    late = LATE_SCRIPT.format(run_id=run.id, store=str(run.store_dir))
    proc = start_script(late, cwd=tmp_path)
    assert proc.stdout.readline().strip() == "logged"  # its lock is held
    run.finish()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    points = reprolog.Store(store_dir).metrics(runs=[run.id])
    assert sorted(points.loc[points["rank"] == 1, "step"]) == list(range(100))
    assert run.status == "completed"


def test_a_crashed_run_is_recovered_with_its_ranks(
    store_dir: Path, tmp_path: Path, start_script: Any, run_script: Any
) -> None:
    owner = start_script(
        f"""
        import sys, time, reprolog
        run = reprolog.init(dir={str(store_dir)!r}, capture=False)
        run.log({{"loss": 0.25}}, step=0)
        print(run.id, flush=True)
        time.sleep(120)
        """,
        cwd=tmp_path,
    )
    run_id = owner.stdout.readline().strip()
    run_script(
        f"""
        import reprolog
        with reprolog.attach({run_id!r}, rank=1, dir={str(store_dir)!r}) as writer:
            writer.log({{"loss": 1.25}}, step=0)
        """,
        cwd=tmp_path,
        check=True,
    )
    os.kill(owner.pid, signal.SIGKILL)
    owner.communicate(timeout=30)  # reaps it and closes its pipes
    store = reprolog.Store(store_dir)
    assert store.run(run_id).status == "crashed"
    points = store.metrics(runs=[run_id]).sort_values("rank")
    assert points["rank"].tolist() == [0, 1]
    assert points["value"].tolist() == [0.25, 1.25]


@pytest.mark.parametrize("rank", [0, -1, 1.5, True, "1"])
def test_bad_rank_is_refused(make_run: Callable[..., reprolog.Run], rank: Any) -> None:
    run = make_run()
    with pytest.raises(reprolog.ArgumentError, match="rank must be an int >= 1"):
        reprolog.attach(run.id, rank=rank, dir=run.store_dir)


def test_a_rank_can_attach_again_after_closing(
    make_run: Callable[..., reprolog.Run], store_dir: Path
) -> None:
    run = make_run()
    with reprolog.attach(run.id, rank=1, dir=store_dir) as writer:  # e.g. during fit
        writer.log({"loss": 1.0}, step=0)
    with reprolog.attach(run.id, rank=1, dir=store_dir) as writer:  # then during test
        writer.log({"test_loss": 2.0}, step=0)
    run.finish()
    points = reprolog.Store(store_dir).metrics(runs=[run.id]).sort_values("key")
    assert points[["key", "value", "rank"]].values.tolist() == [
        ["loss", 1.0, 1],
        ["test_loss", 2.0, 1],
    ]


def test_attaching_to_a_finished_run_or_twice_is_refused(
    make_run: Callable[..., reprolog.Run],
) -> None:
    run = make_run()
    with reprolog.attach(run.id, rank=1, dir=run.store_dir) as writer:
        with pytest.raises(reprolog.RunStateError, match="already attached"):
            reprolog.attach(run.id, rank=1, dir=run.store_dir)
        writer.log({"x": 1.0})
    with pytest.raises(reprolog.RunStateError, match="is closed"):
        writer.log({"x": 2.0})
    run.finish()
    with pytest.raises(reprolog.RunStateError, match="not running"):
        reprolog.attach(run.id, rank=2, dir=run.store_dir)


def test_a_rank_is_found_by_id_prefix_or_name_without_the_read_side(
    make_run: Callable[..., reprolog.Run], store_dir: Path
) -> None:
    run = make_run("ranked")
    with reprolog.attach(run.id[:20], rank=1, dir=store_dir) as writer:
        assert writer.run_id == run.id
    with reprolog.attach("ranked", rank=2, dir=store_dir) as writer:
        assert writer.run_id == run.id
    with pytest.raises(reprolog.RunNotFoundError):
        reprolog.attach("no-such-run", rank=1, dir=store_dir)
    run.finish()


PROCESS_HOOKS_SCRIPT = """
import atexit, json, os, threading
calls = {"atexit": 0, "fork": 0}
register, at_fork = atexit.register, os.register_at_fork
def counting_register(fn, *a, **k):
    calls["atexit"] += (getattr(fn, "__module__", None) or "").startswith("reprolog")
    return register(fn, *a, **k)
def counting_at_fork(**k):
    child = k.get("after_in_child")
    calls["fork"] += (getattr(child, "__module__", None) or "").startswith("reprolog")
    return at_fork(**k)
atexit.register, os.register_at_fork = counting_register, counting_at_fork
import reprolog
run = reprolog.init(dir=os.environ["STORE"], capture=False)
threads = [
    threading.Thread(target=lambda r=r: reprolog.attach(run.id, rank=r, dir=run.store_dir).close())
    for r in (1, 2, 3)
]
for t in threads: t.start()
for t in threads: t.join()
second = reprolog.init(dir=os.environ["STORE"], capture=False)
second.finish()
print(json.dumps(calls))
"""


def test_runs_and_rank_writers_share_one_set_of_process_hooks(
    tmp_path: Path, store_dir: Path, run_script: Callable[..., Any]
) -> None:
    import json

    proc = run_script(PROCESS_HOOKS_SCRIPT, cwd=tmp_path, STORE=str(store_dir), check=True)
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"atexit": 1, "fork": 1}
    record = reprolog.Store(store_dir).runs()
    assert sorted(record["status"]) == ["completed", "completed"]  # the first ended at exit
