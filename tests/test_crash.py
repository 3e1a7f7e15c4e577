"""kill -9 at random moments: every point whose log() returned survives; the run is crashed."""

from __future__ import annotations

import math
import mmap
import os
import random
import signal
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from reprolog import Store
from reprolog._storage._metriclog import HEADER_SIZE, RECORD_SIZE
from reprolog._storage._recordfile import read_json, write_json_atomic

# The child logs as fast as it can. After each log() call returns it publishes how many
# loop iterations have fully returned, alternating between two 8-byte slots of a shared
# mapping: a kill in the middle of one slot's update leaves the other slot's (smaller,
# still true) count intact, so max(slots) is always a count of returned iterations.
CHILD = """
import mmap, os, struct, reprolog
fd = os.open(os.environ["COUNTER"], os.O_RDWR)
counter = mmap.mmap(fd, 16)
publish = struct.Struct("<q").pack_into
run = reprolog.init("victim", dir=os.environ["STORE"], capture=False,
                    flush_interval=float(os.environ["FLUSH"]))
log = run.log
i = 0
while True:
    log({"a": ((i * 2654435761) % 4294967296) / 7.0,
         "b": float("nan") if i % 1000 == 999 else -i / 3.0}, step=i, epoch=i >> 12)
    if i % 7 == 0:
        log({"c": float(i)})  # step None: c continues 0, 1, 2, ...
    i += 1
    publish(counter, (i & 1) * 8, i)
"""


def value_a(step: np.ndarray) -> np.ndarray:
    return ((step * 2654435761) % 4294967296) / 7.0


def value_b(step: np.ndarray) -> np.ndarray:
    out = -step / 3.0
    out[step % 1000 == 999] = np.nan
    return out


def _same(actual: np.ndarray, expected: np.ndarray) -> bool:
    """Bit-for-bit equality, NaN included."""
    return actual.astype(np.float64).tobytes() == expected.astype(np.float64).tobytes()


def check_prefix(
    df: pd.DataFrame, key: str, returned: int, expected: Callable[[np.ndarray], np.ndarray]
) -> None:
    """Steps 0..returned-1 are all there with exact values; at most the in-flight call is extra."""
    part = df[df["key"] == key]
    steps = part["step"].to_numpy()
    assert (np.diff(steps) > 0).all(), (
        f"{key}: steps not strictly increasing (duplicates or disorder)"
    )
    assert len(steps) in (returned, returned + 1), (
        f"{key}: {len(steps)} points, {returned} returned"
    )
    assert (steps == np.arange(len(steps))).all(), f"{key}: a gap in the steps"
    assert _same(part["value"].to_numpy(), expected(steps)), f"{key}: a value was misread"


def kill_trial(
    tmp_path: Path, start_script: Callable[..., Any], trial: int, delay: float, flush: float
) -> tuple[int, Path]:
    """Start the child, kill -9 it `delay` s after its first point; return (returned, store)."""
    store_dir = tmp_path / f"store{trial}"
    counter_path = tmp_path / f"counter{trial}"
    counter_path.write_bytes(b"\0" * 16)
    with open(counter_path, "r+b") as fh:
        counter = mmap.mmap(fh.fileno(), 16)
    proc = start_script(
        CHILD, cwd=tmp_path, STORE=str(store_dir), COUNTER=str(counter_path), FLUSH=str(flush)
    )
    try:
        deadline = time.monotonic() + 60
        while max(struct.unpack("<qq", counter)) == 0:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the child never logged"
            time.sleep(0.002)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    returned = max(struct.unpack("<qq", counter))
    counter.close()
    return returned, store_dir


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_no_returned_point(
    tmp_path: Path, start_script: Callable[..., Any]
) -> None:
    rng = random.Random(os.environ.get("REPROLOG_CRASH_SEED", "20"))
    trials = 20
    chunks_seen = 0
    for trial in range(trials):
        # A few kills right after the first point; the rest spread over a second of logging,
        # long enough to cross chunk files (131,072 records each).
        delay = 0.0 if trial < 2 else rng.uniform(0.0, 1.0)
        flush = 0.01 if trial % 2 else 1.0  # also kill while the flusher msyncs
        returned, store_dir = kill_trial(tmp_path, start_script, trial, delay, flush)
        assert returned > 0
        run_dir = next((store_dir / "runs").iterdir())
        chunks_seen = max(chunks_seen, len(list((run_dir / "log").glob("*.mlog"))))
        heartbeat = (run_dir / "heartbeat").stat().st_mtime

        store = Store(store_dir)
        rec = store.run("victim")  # opening recovers the dead run
        assert rec.status == "crashed", f"trial {trial}"
        assert rec.end == heartbeat
        assert rec.error is not None and rec.error["type"] == "crashed"
        assert (run_dir / "metrics.parquet").is_file()
        assert not (run_dir / "log").exists()

        df = store.metrics()
        check_prefix(df, "a", returned, value_a)
        check_prefix(df, "b", returned, value_b)
        c_returned = math.ceil(returned / 7)
        check_prefix(df, "c", c_returned, lambda s: s * 7.0)
        epochs = df[df["key"] == "a"]
        assert (epochs["epoch"].to_numpy() == epochs["step"].to_numpy() >> 12).all()
        # The listing agrees, and a second reader does not recover the run again.
        listing = Store(store_dir).runs()
        assert listing["status"].tolist() == ["crashed"]
        assert listing["metrics.a.last"].iloc[0] == value_a(np.array([len(epochs) - 1]))[0]
        assert read_json(run_dir / "run.json")["status"] == "crashed"
    assert chunks_seen >= 2, "no trial logged past the first chunk; the test lost its reach"


def _killed_child(tmp_path: Path, start_script: Callable[..., Any]) -> tuple[int, Path, Path]:
    returned, store_dir = kill_trial(tmp_path, start_script, 0, 0.05, 1.0)
    return returned, store_dir, next((store_dir / "runs").iterdir())


def test_torn_last_record_of_a_crashed_run_is_dropped(
    tmp_path: Path, start_script: Callable[..., Any]
) -> None:
    _, store_dir, run_dir = _killed_child(tmp_path, start_script)
    chunks = sorted((run_dir / "log").glob("*.mlog"))
    written = 0
    for chunk in chunks:
        seqs = np.frombuffer(chunk.read_bytes()[HEADER_SIZE:], dtype="<u4").reshape(-1, 8)[:, 7]
        written += int(np.count_nonzero(seqs))
    chunk = chunks[-1]
    data = bytearray(chunk.read_bytes())
    last = int(np.flatnonzero(seqs)[-1])
    torn_value = struct.unpack_from("<d", data, HEADER_SIZE + last * RECORD_SIZE)[0]
    # Damage the last record's seq, as if the kill had landed while it was written.
    struct.pack_into("<I", data, HEADER_SIZE + last * RECORD_SIZE + 28, 0xFFFFFFFF)
    chunk.write_bytes(bytes(data))

    store = Store(store_dir)
    rec = store.run("victim")
    assert rec.status == "crashed"
    assert any("dropped a torn record" in p for p in rec.capture_report["recovery"])
    df = store.metrics()
    assert len(df) == written - 1  # exactly the damaged record is gone
    for key, fn in (("a", value_a), ("b", value_b), ("c", lambda s: s * 7.0)):
        part = df[df["key"] == key]
        assert _same(part["value"].to_numpy(), fn(part["step"].to_numpy()))
    assert torn_value not in df["value"].tolist() or math.isnan(torn_value)


def test_crashed_run_on_another_host_waits_for_a_stale_heartbeat(
    tmp_path: Path, start_script: Callable[..., Any]
) -> None:
    _, store_dir, run_dir = _killed_child(tmp_path, start_script)
    record = read_json(run_dir / "run.json")
    record["host"] = "some-other-host"  # its PID means nothing here
    write_json_atomic(run_dir / "run.json", record)
    os.utime(run_dir / "heartbeat")  # fresh: the writer may be alive over there
    assert Store(store_dir).run("victim").status == "running"
    assert (run_dir / "log").is_dir()
    long_ago = time.time() - 3600
    os.utime(run_dir / "heartbeat", (long_ago, long_ago))
    rec = Store(store_dir).run("victim")
    assert rec.status == "crashed"
    assert rec.end == pytest.approx(long_ago)


def test_a_crashed_run_is_recovered_by_listing_too(
    tmp_path: Path, start_script: Callable[..., Any]
) -> None:
    returned, store_dir, run_dir = _killed_child(tmp_path, start_script)
    df = Store(store_dir).runs()
    assert df["status"].tolist() == ["crashed"]
    assert df["metrics.a.last"].notna().all()
    assert (run_dir / "metrics.parquet").is_file()
    assert (
        Store(store_dir).sql("SELECT count(*) AS n FROM metrics WHERE key = 'a'")["n"].iloc[0]
        >= returned
    )


def test_ended_run_whose_compaction_failed_is_compacted_by_the_next_reader(
    tmp_path: Path, store_dir: Path, run_script: Callable[..., Any]
) -> None:
    code = """
    import os, reprolog, reprolog._run._run as r
    def broken(*args, **kwargs):
        raise OSError("disk full")
    r.compact = broken
    run = reprolog.init("half", dir=os.environ["STORE"], capture=False)
    for i in range(100):
        run.log({"x": i * 0.5}, step=i)
    run.finish()
    """
    proc = run_script(code, cwd=tmp_path, STORE=str(store_dir))
    assert proc.returncode == 0, proc.stderr
    run_dir = next((store_dir / "runs").iterdir())
    assert (run_dir / "log").is_dir()  # the log stayed: nothing was lost
    assert read_json(run_dir / "run.json")["status"] == "completed"
    store = Store(store_dir)
    rec = store.run("half")
    assert rec.status == "completed"
    assert any(e["what"] == "compaction" for e in rec.capture_report["errors"])
    assert store.metrics()["value"].tolist() == [i * 0.5 for i in range(100)]
    assert (run_dir / "metrics.parquet").is_file()
    assert not (run_dir / "log").exists()
