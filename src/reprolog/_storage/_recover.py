"""Crash detection (lock + PID + heartbeat) and recovery of runs whose writing process died.

A reader that finds a `running` run asks `writer_is_dead`; a dead run is compacted through
`_compact` and marked `crashed` (`recover`), or shown so without writing (`crashed_view`).
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from reprolog._storage import _locks
from reprolog._storage._compact import compact, finalize, read_live_table
from reprolog._storage._encode import summarize
from reprolog._storage._layout import RunLayout
from reprolog._storage._recordfile import TERMINAL_STATUSES, read_json

# A writer on another host is presumed dead when its heartbeat is older than this many
# flush intervals (and never sooner than STALE_MIN_SECONDS).
STALE_INTERVALS = 30
STALE_MIN_SECONDS = 60.0


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
    return _locks.is_free(layout.lock)


def recover(layout: RunLayout, record: dict[str, Any]) -> dict[str, Any]:
    """Compact a dead run's log and mark it crashed at its last heartbeat.

    Holds the run's lock while working so that two readers never recover the same run twice.
    Returns the updated record (unchanged when the run turned out to be alive or finished).
    """
    with _locks.held_if_free(layout.lock) as taken:
        if not taken:
            return record
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
