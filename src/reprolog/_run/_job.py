"""One run per launched job: processes started by `reprolog run` record into the launcher's run.

`reprolog run -- CMD` starts a run in its own process (the launcher) and hands its id to the
command through `$REPROLOG_RUN` (with `$REPROLOG_DIR`). A process of that job that calls
`reprolog.init()` (itself, or through an integration's `RunOwner`) takes a *seat* in that run
instead of making a new one:

- the job's main process (`$RANK` unset or 0) becomes the record writer: it writes the run's
  params, tags, sections and artifacts into run.json and its metrics into `log/rank-0/`,
  merged with the launcher's own points as rank 0. One record writer at a time
  (`log/record.lock`); a later `init()` in the job takes the seat again once it is free.
- a process with `$RANK` = r >= 1 (a DDP rank) logs its metrics as rank r; its record facts
  stay in memory (rank 0 records the job's facts).
- any other process asking while the record seat is held (a joblib or multiprocessing
  worker) makes no run: it gets a worker seat whose facts and points are not kept.

A seat's `finish()` ends nothing: it proposes its end (status, error) in the record's `job`
section and leaves. The launcher, which sees the exit status, ends the run. While seats may
write, the launcher holds back its own record writes (`hold`) and takes the record back from
disk at the end (`absorb`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprolog._run._facts import RunFacts
from reprolog._run._status import error_info
from reprolog._storage import _locks
from reprolog._storage._layout import ENV_DIR, RunLayout, StoreLayout
from reprolog._storage._livelog import claim_rank_folder
from reprolog._storage._recordfile import read_json, write_json_atomic
from reprolog._storage._recover import lock_is_free

logger = logging.getLogger("reprolog")

ENV_RUN = "REPROLOG_RUN"
_KEPT_BY_LAUNCHER = ("format_version", "id", "status", "start_time", "end_time", "host", "pid")


@dataclass
class Seat:
    """A process's place in a launched job's run."""

    run_id: str
    layout: RunLayout
    record: dict[str, Any]
    metrics_dir: Path
    rank: int
    writes_record: bool
    fds: list[int] = field(default_factory=list)

    def release(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                _locks.release(fd)
        self.fds = []


def _rank_from_env() -> int:
    raw = os.environ.get("RANK", "").strip()
    return int(raw) if raw.isdigit() else 0


def take_seat(store: StoreLayout) -> Seat | None:
    """A seat in the run `$REPROLOG_RUN` names, when this process belongs to that live job.

    None (make a run of one's own) when no job is named, the store differs, the run is not
    live, or the record writer's seat is taken by another process of the job.
    """

    run_id = os.environ.get(ENV_RUN, "").strip()
    env_dir = os.environ.get(ENV_DIR)
    if not run_id or not env_dir:
        return None
    try:
        if Path(env_dir).expanduser().resolve() != store.root:
            return None  # init(dir=elsewhere): the user asked for a run of its own
        layout = RunLayout(store.run_dir(run_id))
        record = read_json(layout.record)
        if record.get("status") != "running" or lock_is_free(layout):
            return None  # the job's launcher is gone: this process is on its own
        rank = _rank_from_env()
        fds: list[int] = []
        if rank == 0:
            fd = _locks.try_hold(layout.record_lock)
            if fd is None:
                return _worker_seat(layout, run_id, record)
            fds.append(fd)
            record = read_json(layout.record)  # the last seat's facts, now that we hold it
        folder, folder_fd = claim_rank_folder(layout, rank, run_id)
        fds.append(folder_fd)
    except Exception as exc:  # never let a stale or odd job block the user's own run
        logger.warning("reprolog: could not join the launched run %s (%s)", run_id, exc)
        return None
    return Seat(run_id, layout, record, folder, rank, rank == 0, fds)


def _worker_seat(layout: RunLayout, run_id: str, record: dict[str, Any]) -> Seat:
    """A seat for a worker of the job (a joblib/multiprocessing worker calling init()).

    The record seat is held by the job's main process: the worker makes no run of its own,
    and what it records is not kept (its points go to `log/worker-<pid>/`, which compaction
    skips); the launcher notes how many workers did so.
    """
    folder = layout.worker_dir(os.getpid())
    folder.mkdir(exist_ok=True)
    return Seat(run_id, layout, record, folder, -1, False, [])


def leave(seat: Seat, facts: RunFacts, status: str, error: BaseException | None) -> None:
    """A seat's `finish()` (its points flushed): write its facts and its proposed end, leave."""
    if seat.writes_record:
        with facts.lock:
            record = facts.record
            job = record["sections"].setdefault("job", {})
            end: dict[str, Any] = {"pid": os.getpid(), "status": status, "time": time.time()}
            if error is not None:
                end["error"] = error_info(error)
                record["error"] = end["error"]
            job.setdefault("ends", []).append(end)
            try:
                write_json_atomic(seat.layout.record, record)
            except Exception:
                logger.exception("reprolog: could not write the record of run %s", seat.run_id)
    seat.release()


# ---------------------------------------------------------------------------- the launcher


def hold(facts: RunFacts) -> None:
    """Stop the launcher's own record writes: from now on seats in the job may write it."""
    with facts.lock:
        facts.held = len(facts.record["capture_report"].get("errors", []))


def absorb(facts: RunFacts, timeout: float = 5.0) -> dict[str, Any] | None:
    """Take the record back from disk, with every seat's facts, and resume the launcher's writes.

    Returns:
        The last proposed end of a record seat (`{"status", "error"?, ...}`), or None.
    """
    layout = facts.layout
    deadline = time.monotonic() + timeout
    while not _locks.is_free(layout.record_lock) and time.monotonic() < deadline:
        time.sleep(0.05)
    with facts.lock:
        held = facts.held
        facts.held = None
        if held is None:
            return None
        mine = facts.record
        try:
            disk = read_json(layout.record)
        except Exception as exc:
            facts.record_capture_error("job record", exc)
            return None
        merged = dict(disk)
        for key in _KEPT_BY_LAUNCHER:
            merged[key] = mine.get(key)
        report = merged.setdefault("capture_report", {})
        report.setdefault("errors", []).extend(mine["capture_report"].get("errors", [])[held:])
        workers = len(layout.worker_dirs())
        if workers:
            report.setdefault("skipped", []).append(
                {
                    "what": "worker processes",
                    "why": f"{workers} worker process(es) of the job called init() while the "
                    "main process held the run; what they logged was not kept",
                }
            )
        facts.record = merged
        ends = (merged.get("sections", {}).get("job") or {}).get("ends") or []
        return dict(ends[-1]) if ends else None
