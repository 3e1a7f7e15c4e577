"""Compaction of a run's live log into Parquet, and recovery of runs whose process died."""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprolog._storage._artifacts import remove_tree
from reprolog._storage._layout import RunLayout
from reprolog._store._record import TERMINAL_STATUSES, write_json_atomic

if TYPE_CHECKING:
    import pyarrow as pa

# A writer on another host is presumed dead when its heartbeat is older than this many
# flush intervals (and never sooner than STALE_MIN_SECONDS).
STALE_INTERVALS = 30
STALE_MIN_SECONDS = 60.0


def summary_row(record: dict[str, Any]) -> dict[str, Any]:
    """The small slice of a record that the summary index keeps for listing."""
    return {
        "id": record.get("id"),
        "name": record.get("name"),
        "experiment": record.get("experiment"),
        "status": record.get("status"),
        "start_time": record.get("start_time"),
        "end_time": record.get("end_time"),
        "params": record.get("params") or {},
        "tags": record.get("tags") or {},
        "metrics_summary": record.get("metrics_summary") or {},
    }


def rank_dirs(layout: RunLayout) -> list[tuple[int, Path]]:
    """The log folders of secondary rank writers, by rank.

    `log/rank-<r>/` for a rank's first writer, `log/rank-<r>-<n>/` for its n-th (re-attach).
    """
    out = []
    for path in layout.log_dir.glob("rank-*"):
        parts = path.name.removeprefix("rank-").split("-")
        if path.is_dir() and len(parts) <= 2 and all(p.isdigit() for p in parts):
            generation = int(parts[1]) if len(parts) == 2 else 1
            out.append((int(parts[0]), generation, path))
    return [(rank, path) for rank, _, path in sorted(out)]


def read_live_table(layout: RunLayout, run_id: str) -> tuple[pa.Table, list[str]]:
    """Every complete point of a run's live log, its rank writers' included, as a table."""
    from reprolog._storage._encode import combine_ranks, to_table
    from reprolog._storage._metriclog import read_log

    contents = read_log(layout.log_dir)
    ranks = rank_dirs(layout)
    if not ranks:
        return to_table(run_id, contents), contents.problems
    tables = [to_table(run_id, contents, rank=0)]
    problems = list(contents.problems)
    for rank, folder in ranks:
        part = read_log(folder)
        problems.extend(part.problems)
        tables.append(to_table(run_id, part, rank=rank))
    table = combine_ranks(tables)
    if all(rank == 0 for rank, _ in ranks):
        # `log/rank-0/`: the process of a launched job that recorded for the launcher's run
        # (see _job). Its points are the run's own: no rank column.
        table = table.drop_columns(["rank"])
    return table, problems


def wait_for_rank_writers(layout: RunLayout, timeout: float = 5.0) -> list[int]:
    """Give open rank writers up to `timeout` seconds to close; return the ranks still open.

    Their points logged after the run's compaction are lost, so integrations close rank
    writers (behind a barrier) before the run finishes; this is the backstop.
    """
    deadline = time.monotonic() + timeout
    pending = [
        (rank, folder) for rank, folder in rank_dirs(layout) if not lock_free(folder / "lock")
    ]
    while pending and time.monotonic() < deadline:
        time.sleep(0.05)
        pending = [(rank, folder) for rank, folder in pending if not lock_free(folder / "lock")]
    return sorted({rank for rank, _ in pending})


def lock_free(lock: Path) -> bool:
    """True when no process holds an flock on `lock` (the kernel drops it when one dies)."""
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing drops the probe's own lock
    return True


def compact(layout: RunLayout, record: dict[str, Any]) -> list[str]:
    """Turn the live log into metrics.parquet and fill record["metrics_summary"].

    Returns the problems met (torn records dropped, ...). The log is removed only by
    `finalize`, after the record saying so is on disk, so a crash here loses nothing.
    """
    from reprolog._storage._encode import summarize, write_parquet

    if not layout.log_dir.is_dir():
        return []
    from reprolog._storage import _steplog

    table, problems = read_live_table(layout, str(record["id"]))
    # Step fingerprints first: metrics_summary (set last) is what lets finalize drop the log.
    problems += _steplog.compact(layout.log_dir, rank_dirs(layout), layout.dir)
    write_parquet(table, layout.metrics)
    record["metrics_summary"] = summarize(table)
    return problems


def finalize(layout: RunLayout, record: dict[str, Any]) -> None:
    """Write the final record (durably) and the index summary, then drop the live log.

    The log is dropped only when `compact` succeeded (it fills `metrics_summary`): when
    compaction failed, the log is the only copy of the points and the next reader
    compacts it (see `Store._load_record`).
    """
    write_json_atomic(layout.record, record, fsync=True)
    write_json_atomic(layout.summary, summary_row(record))
    if layout.log_dir.is_dir() and record.get("metrics_summary") is not None:
        remove_tree(layout.log_dir)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def writer_is_dead(layout: RunLayout, record: dict[str, Any]) -> bool:
    """Decide whether the process that writes a "running" run is gone.

    On the writer's own host: its PID is gone, or its lock on run.lock is free (the kernel
    drops flock locks when a process dies, kill -9 included). On another host: the heartbeat
    has been silent for a long time.
    """
    if record.get("host") == socket.gethostname():
        pid = record.get("pid")
        if isinstance(pid, int) and not _pid_alive(pid):
            return True
        return lock_is_free(layout)
    try:
        last = layout.heartbeat.stat().st_mtime
    except FileNotFoundError:
        last = float(record.get("start_time") or 0)
    interval = float(record.get("flush_interval") or 1.0)
    return time.time() - last > max(STALE_MIN_SECONDS, STALE_INTERVALS * interval)


def lock_is_free(layout: RunLayout) -> bool:
    """True when no live process holds the run's lock."""
    return lock_free(layout.lock)


def recover(layout: RunLayout, record: dict[str, Any]) -> dict[str, Any]:
    """Compact a dead run's log and mark it crashed at its last heartbeat.

    Holds the run's lock while working so that two readers never recover the same run twice.
    Returns the updated record (unchanged when the run turned out to be alive or finished).
    """
    fd = os.open(layout.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return record
        from reprolog._store._record import read_json

        current = read_json(layout.record)  # someone may have finished it meanwhile
        if current.get("status") in TERMINAL_STATUSES and not layout.log_dir.is_dir():
            return current
        problems = compact(layout, current)
        if current.get("status") not in TERMINAL_STATUSES:
            _mark_crashed(layout, current)
        report = current.setdefault("capture_report", {})
        if problems:
            report.setdefault("recovery", []).extend(problems)
        finalize(layout, current)
        return current
    finally:
        os.close(fd)


def _mark_crashed(layout: RunLayout, record: dict[str, Any]) -> None:
    """Set a dead run's status to crashed, ending at its last heartbeat."""
    try:
        last_beat = layout.heartbeat.stat().st_mtime
    except FileNotFoundError:
        last_beat = float(record.get("start_time") or time.time())
    record["status"] = "crashed"
    record["end_time"] = last_beat
    record["error"] = {
        "type": "crashed",
        "message": "the writing process died without finishing the run; "
        "recovered every complete point from its log",
    }


def crashed_view(layout: RunLayout, record: dict[str, Any]) -> dict[str, Any]:
    """What `recover` would make of a dead run, computed in memory: nothing is written.

    The read-only Store shows a dead run this way; its points stay in the log, and its
    `metrics_summary` is computed from that log.
    """
    from reprolog._storage._encode import summarize

    view = dict(record)
    if view.get("status") not in TERMINAL_STATUSES:
        _mark_crashed(layout, view)
    if layout.log_dir.is_dir():
        try:
            table, _ = read_live_table(layout, str(record["id"]))
        except FileNotFoundError:  # recovered by a writer meanwhile
            return view
        view["metrics_summary"] = summarize(table)
    return view
