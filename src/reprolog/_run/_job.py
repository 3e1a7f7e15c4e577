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

Also here: the run's services (console tee, system-metrics sampler, notebook watch), which
start with a run and stop before its metrics close.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprolog._storage import _locks
from reprolog._storage._layout import ENV_DIR, RunLayout, StoreLayout
from reprolog._storage._livelog import claim_rank_folder
from reprolog._storage._recordfile import read_json, write_json_atomic
from reprolog._storage._recover import lock_is_free

if TYPE_CHECKING:
    from reprolog._run._run import Run

logger = logging.getLogger("reprolog")

ENV_RUN = "REPROLOG_RUN"
RECORD_LOCK = "record.lock"
WORKER_PREFIX = "worker-"
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
                os.close(fd)
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
            lock = layout.log_dir / RECORD_LOCK
            fd = _locks.try_hold(lock)
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
    folder = layout.log_dir / f"{WORKER_PREFIX}{os.getpid()}"
    folder.mkdir(exist_ok=True)
    return Seat(run_id, layout, record, folder, -1, False, [])


def leave(run: Run, status: str, error: BaseException | None) -> None:
    """A seat's `finish()`: flush its points, write its facts and its proposed end, leave."""
    from reprolog._run._run import _error_info

    seat = run._seat
    assert seat is not None
    run._live.close()
    run._artifacts.shutdown()
    if seat.writes_record:
        with run._record_lock:
            record = run._record
            job = record["sections"].setdefault("job", {})
            end: dict[str, Any] = {"pid": os.getpid(), "status": status, "time": time.time()}
            if error is not None:
                end["error"] = _error_info(error)
                record["error"] = end["error"]
            job.setdefault("ends", []).append(end)
            try:
                write_json_atomic(seat.layout.record, record)
            except Exception:
                logger.exception("reprolog: could not write the record of run %s", run.id)
    seat.release()


# ---------------------------------------------------------------------------- the launcher


def hold(run: Run) -> None:
    """Stop the launcher's own record writes: from now on seats in the job may write it."""
    with run._record_lock:
        run._held_errors = len(run._record["capture_report"].get("errors", []))


def absorb(run: Run, timeout: float = 5.0) -> dict[str, Any] | None:
    """Take the record back from disk, with every seat's facts, and resume the launcher's writes.

    Returns:
        The last proposed end of a record seat (`{"status", "error"?, ...}`), or None.
    """

    lock = run._layout.log_dir / RECORD_LOCK
    deadline = time.monotonic() + timeout
    while not _locks.is_free(lock) and time.monotonic() < deadline:
        time.sleep(0.05)
    with run._record_lock:
        held = run._held_errors
        run._held_errors = None
        if held is None:
            return None
        mine = run._record
        try:
            disk = read_json(run._layout.record)
        except Exception as exc:
            run.record_capture_error("job record", exc)
            return None
        merged = dict(disk)
        for key in _KEPT_BY_LAUNCHER:
            merged[key] = mine.get(key)
        report = merged.setdefault("capture_report", {})
        report.setdefault("errors", []).extend(mine["capture_report"].get("errors", [])[held:])
        workers = len(list(run._layout.log_dir.glob(WORKER_PREFIX + "*")))
        if workers:
            report.setdefault("skipped", []).append(
                {
                    "what": "worker processes",
                    "why": f"{workers} worker process(es) of the job called init() while the "
                    "main process held the run; what they logged was not kept",
                }
            )
        run._record = merged
        ends = (merged.get("sections", {}).get("job") or {}).get("ends") or []
        return dict(ends[-1]) if ends else None


# ---------------------------------------------------------------------------- services


def start_services(run: Run, *, console: bool | None, system_metrics: float | bool | None) -> None:
    """Start the console tee, the system sampler and the notebook watch a run asked for.

    In a seat of a launched job, the launcher already records the console and the system,
    so neither starts here. Failures are recorded in the capture report.
    """
    from reprolog._capture import notebook

    shell = notebook.kernel_shell()
    if run._seat is None:
        if console is None:
            console = shell is not None  # in a kernel nobody else sees the cell output
        if console:
            try:
                from reprolog._capture.console import tee_std_streams

                run._console = tee_std_streams(run.dir)
            except Exception as exc:
                run.record_capture_error("console", exc)
        from reprolog._capture.sysmetrics import interval_from

        interval = interval_from(system_metrics)
        if interval is not None:
            start_sampler(run, interval)
    if shell is not None:
        try:
            run._notebook = notebook.NotebookWatch(run, shell)
        except Exception as exc:
            run.record_capture_error("notebook", exc)


def start_sampler(run: Run, interval: float, root_pid: int | None = None) -> None:
    """Sample the system into `run` every `interval` seconds (the process tree of root_pid)."""
    try:
        from reprolog._capture.sysmetrics import SystemSampler

        def log(points: dict[str, float], step: int) -> None:
            run.log(points, step=step)

        sampler = SystemSampler(log, interval, root_pid=root_pid, on_error=run.record_capture_error)
        sampler.start()
        run._sampler = sampler
    except Exception as exc:
        run.record_capture_error("system metrics", exc)


def stop_services(run: Run) -> None:
    """Stop what `start_services` started; the console summary goes into the record."""
    sampler, run._sampler = run._sampler, None
    if sampler is not None:
        try:
            sampler.stop()
        except Exception as exc:
            run.record_capture_error("system metrics", exc)
    tee, run._console = run._console, None
    if tee is not None:
        try:
            summary = tee.stop()
            summary["source"] = "sys.stdout/sys.stderr"
            with run._record_lock:
                run._record["sections"]["console"] = summary
        except Exception as exc:
            run.record_capture_error("console", exc)
    watch, run._notebook = run._notebook, None
    if watch is not None:
        try:
            watch.stop()
        except Exception as exc:
            run.record_capture_error("notebook", exc)
