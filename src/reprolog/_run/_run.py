"""`Run` and `init`: a live run's lifecycle, metrics, params, tags, artifacts and sections."""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from reprolog._errors import ArgumentError, RunStateError
from reprolog._run import _job, _lifecycle
from reprolog._run._facts import RunFactsMixin
from reprolog._storage import _locks
from reprolog._storage._artifacts import ArtifactWorker
from reprolog._storage._compact import compact, finalize, wait_for_rank_writers
from reprolog._storage._ids import new_run_id
from reprolog._storage._layout import RunLayout, StoreLayout, resolve_store_dir
from reprolog._storage._livelog import LiveLog
from reprolog._storage._recordfile import RECORD_FORMAT_VERSION, write_json_atomic

logger = logging.getLogger("reprolog")

_FINISH_STATUSES = ("completed", "failed", "interrupted")


def init(
    name: str | None = None,
    *,
    experiment: str | None = None,
    dir: str | os.PathLike[str] | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    capture: bool = True,
    flush_interval: float = 1.0,
    console: bool | None = None,
    system_metrics: float | bool | None = None,
) -> Run:
    """Start a run and return it.

    Args:
        name: a human name; `reprolog show NAME` finds it. Need not be unique.
        experiment: groups runs; "default" when None.
        dir: the store folder. None: `$REPROLOG_DIR`, else the nearest `.reprolog` in this
            folder or a parent, else `./.reprolog` (created, with a `.gitignore` inside).
        params: hyperparameters, as with `Run.log_params`.
        tags: string labels, as with `Run.set_tags`.
        capture: record environment, code, command, seeds and determinism at start.
        flush_interval: seconds between background flushes to disk (bounds loss on power
            failure; the death of the process alone loses nothing).
        console: record this process's sys.stdout/sys.stderr in the run (`console.jsonl`).
            None: on inside a Jupyter kernel, off elsewhere (`reprolog run -- CMD` records
            the whole console of a command, its subprocesses and C code included).
        system_metrics: seconds between samples of CPU, memory, disk, network and GPUs,
            stored as `sys/*` metrics (True: 10 s; False or 0: off). None:
            `$REPROLOG_SYSTEM_METRICS` when set, else off (`reprolog run` samples every 10 s).

    Returns:
        The live `Run`; use it as a context manager or call `finish()`.

    Raises:
        ArgumentError: an argument of the wrong type or value.

    Example:
        >>> with reprolog.init(experiment="mnist", params={"lr": 1e-3}) as run:  # doctest: +SKIP
        ...     run.log({"loss": 0.25}, step=1)
    """
    from reprolog._capture.notebook import finish_previous

    finish_previous()  # in a notebook, a second init() ends the run of the first
    return Run(
        name,
        experiment=experiment,
        dir=dir,
        params=params,
        tags=tags,
        capture=capture,
        flush_interval=flush_interval,
        console=console,
        system_metrics=system_metrics,
    )


def _error_info(exc: BaseException) -> dict[str, Any]:
    from reprolog._capture.redact import redact_text

    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-12:])
    if isinstance(exc, _lifecycle.Signal):
        kind = "Signal"  # one record for a termination signal, whoever ended the run
    else:
        kind = f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins.")
    return {
        "type": kind,
        "message": redact_text(str(exc))[0],
        "traceback": redact_text(tb)[0],
    }


class Run(RunFactsMixin):
    """A live training run: append metrics, params, tags, artifacts; end with a true status.

    Create runs with `reprolog.init`. Logging a metric costs about a microsecond: points go
    into a memory-mapped log that survives the death of the process and is compacted to
    Parquet by `finish()`.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        experiment: str | None = None,
        dir: str | os.PathLike[str] | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        capture: bool = True,
        flush_interval: float = 1.0,
        console: bool | None = None,
        system_metrics: float | bool | None = None,
    ) -> None:
        if name is not None and not isinstance(name, str):
            raise ArgumentError(f"name must be a str or None, got {type(name).__name__}: {name!r}")
        if experiment is not None and (not isinstance(experiment, str) or not experiment):
            raise ArgumentError(f"experiment must be a non-empty str or None, got {experiment!r}")
        if not isinstance(capture, bool):
            raise ArgumentError(f"capture must be True or False, got {capture!r}")
        if (
            isinstance(flush_interval, bool)
            or not isinstance(flush_interval, (int, float))
            or not 0 < flush_interval <= 3600
        ):
            raise ArgumentError(
                f"flush_interval must be a number of seconds in (0, 3600], got {flush_interval!r}"
            )
        if console is not None and not isinstance(console, bool):
            raise ArgumentError(f"console must be True, False or None, got {console!r}")
        try:
            from reprolog._capture.sysmetrics import interval_from

            interval_from(system_metrics)
        except ValueError as exc:
            raise ArgumentError(str(exc)) from None
        for label, value in (("params", params), ("tags", tags)):
            if value is not None and not isinstance(value, Mapping):
                raise ArgumentError(
                    f"{label} must be a mapping or None, got {type(value).__name__}: {value!r}"
                )

        self._store = StoreLayout(resolve_store_dir(dir, must_exist=False))
        # Services (_job.start_services) and the launcher's hold on record writes.
        self._console: Any = None
        self._sampler: Any = None
        self._notebook: Any = None
        self._held_errors: int | None = None
        self._at_exit_outcome: Any = None
        # In a job launched by `reprolog run`: a seat in the launcher's run, not a new run.
        self._seat = _job.take_seat(self._store)
        if self._seat is None:
            self._store.ensure()
            self.id = new_run_id()
            self._layout = RunLayout(self._store.run_dir(self.id))
            self._layout.log_dir.mkdir(parents=True)
        else:
            self.id = self._seat.run_id
            self._layout = self._seat.layout
        self._pid = os.getpid()
        self._record_lock = threading.RLock()
        self._finish_lock = threading.RLock()
        self._finished = False
        self._warned: set[str] = set()
        self._artifacts = ArtifactWorker()

        now = time.time()
        self._record: dict[str, Any] = (
            self._seat.record
            if self._seat
            else {
                "format_version": RECORD_FORMAT_VERSION,
                "id": self.id,
                "name": name,
                "experiment": experiment or "default",
                "status": "running",
                "start_time": now,
                "end_time": None,
                "host": socket.gethostname(),
                "pid": self._pid,
                "flush_interval": float(flush_interval),
                "params": {},
                "param_history": [],
                "param_types": {},
                "tags": {},
                "error": None,
                "sections": {},
                "capture_report": {"captured": [], "skipped": [], "redacted": [], "errors": []},
                "artifacts": [],
                "metrics_summary": None,
            }
        )
        if self._seat is not None:  # `reprolog run --name/--experiment` win over the code's
            if name is not None and self._record.get("name") is None:
                self._record["name"] = name
            if experiment is not None and self._record.get("experiment") in (None, "default"):
                self._record["experiment"] = experiment
        log_dir = self._seat.metrics_dir if self._seat else self._layout.log_dir
        self._live = LiveLog(
            log_dir,
            heartbeat=(
                RunLayout.writer_heartbeat(log_dir) if self._seat else self._layout.heartbeat
            ),
            interval=float(flush_interval),
            closed_error=self._closed_error,
            lock_fd=None if self._seat else _locks.hold(self._layout.lock),
        )
        self._metrics = self._live.writer

        if capture:
            self._capture()
        if os.environ.get("REPROLOG_REPRODUCES"):  # a re-run by `reprolog reproduce`
            try:
                from reprolog._reproduce import on_run_start

                on_run_start(self)  # tags the run, restores the original's RNG states
            except Exception as exc:
                self.record_capture_error("reproduce", exc)
        self._take_pending_seeding()
        self._refresh_risks()
        if params:
            self.log_params(params)
        if tags:
            self.set_tags(tags)
        self._save()
        _lifecycle.register(self)
        _job.start_services(self, console=console, system_metrics=system_metrics)

    # ------------------------------------------------------------------ identity

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, name={self.name!r}, status={self.status!r})"

    @property
    def name(self) -> str | None:
        return self._record["name"]  # type: ignore[no-any-return]

    @property
    def experiment(self) -> str:
        return str(self._record["experiment"])

    @property
    def dir(self) -> Path:
        """The run's folder inside the store."""
        return self._layout.dir

    @property
    def store_dir(self) -> Path:
        return self._store.root

    @property
    def status(self) -> str:
        return str(self._record["status"])

    @property
    def start_time(self) -> float:
        """When the run started (unix seconds)."""
        return float(self._record["start_time"])

    @property
    def params(self) -> dict[str, Any]:
        with self._record_lock:
            return dict(self._record["params"])

    # ------------------------------------------------------------------ metrics

    def log(
        self, metrics: Mapping[str, Any], step: int | None = None, *, epoch: int | None = None
    ) -> None:
        """Record one or many scalar points.

        Args:
            metrics: key -> number (float, int, numpy scalar, 0-d array, 1-element tensor).
                NaN and ±inf are stored as given.
            step: the step of every point in this call; None continues each key from its
                last step (0 for a new key).
            epoch: an optional epoch number stored with each point.

        Raises:
            MetricKeyError, MetricValueError, StepError: bad input; nothing is written.
            RunStateError: the run has finished.
        """
        self._metrics.log(metrics, step, epoch=epoch)

    def _closed_error(self) -> RunStateError:
        if self._pid != os.getpid():
            return RunStateError(
                f"run {self.id} belongs to process {self._pid}; this forked child "
                f"({os.getpid()}) cannot write to it",
                run_id=self.id,
            )
        return RunStateError(
            f"run {self.id} has finished with status {self.status!r}; start a new run to log more",
            run_id=self.id,
        )

    def _check_live(self) -> None:
        if self._finished or self._pid != os.getpid():
            raise self._closed_error()

    # ------------------------------------------------------------------ record I/O

    def _save(self) -> None:
        if self._held_errors is not None:
            return  # a launcher while its job's processes write the record (see _job)
        if self._seat is not None and not self._seat.writes_record:
            return  # a DDP rank's seat: rank 0 writes the job's record
        with self._record_lock:
            write_json_atomic(self._layout.record, self._record)

    def _save_quietly(self) -> None:
        try:
            self._save()
        except Exception:
            logger.exception("reprolog: could not write the record of run %s", self.id)

    # ------------------------------------------------------------------ lifecycle

    def finish(self, status: str = "completed", *, error: BaseException | None = None) -> None:
        """End the run: compact metrics to Parquet and write the final record. Idempotent.

        Args:
            status: "completed", "failed" or "interrupted".
            error: the exception that ended the run, recorded with type, message and traceback.

        Raises:
            ArgumentError: an unknown status.
        """
        if status not in _FINISH_STATUSES:
            raise ArgumentError(f"status must be one of {_FINISH_STATUSES}, got {status!r}")
        with self._finish_lock:
            if self._finished or self._pid != os.getpid():
                return
            if self._seat is not None:  # a process of a launched job: the launcher ends it
                _job.stop_services(self)
                self._finished = True
                _lifecycle.unregister(self)
                _job.leave(self, status, error)
                return
            _job.stop_services(self)
            self._finished = True
            _lifecycle.unregister(self)
            self._live.close()
            self._artifacts.shutdown()
            wait_for_rank_writers(self._layout)
            with self._record_lock:
                record = self._record
                record["status"] = status
                record["end_time"] = time.time()
                if error is not None:
                    record["error"] = _error_info(error)
                try:
                    problems = compact(self._layout, record)
                    if problems:
                        record["capture_report"].setdefault("recovery", []).extend(problems)
                except Exception as exc:  # the log stays; the next reader compacts it
                    logger.exception("reprolog: compaction of run %s failed", self.id)
                    record["capture_report"]["errors"].append(
                        {"what": "compaction", "error": f"{type(exc).__name__}: {exc}"}
                    )
                self._refresh_risks()
                finalize(self._layout, record)
            self._live.release()  # readers now see the run's writer gone

    def _refresh_risks(self) -> None:
        try:
            from reprolog._capture import compute_risks

            sections = self._record["sections"]
            determinism = sections.get("determinism")
            if (
                determinism is not None
                and not determinism.get("torch_loaded")
                and "torch" in sys.modules
            ):
                # torch was imported after init: its determinism flags are knowable only now.
                from reprolog._capture.determinism import capture_determinism
                from reprolog._capture.report import CaptureReport

                determinism.update(capture_determinism(CaptureReport()))
            if "determinism" in sections:
                sections["determinism"]["risks"] = compute_risks(sections)
        except Exception as exc:
            self._record["capture_report"]["errors"].append(
                {"what": "determinism risks", "error": f"{type(exc).__name__}: {exc}"}
            )

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # The same rule as every integration's: a SIGTERM that turned into a framework's own
        # exception (Lightning's SIGTERMException) still ends the run "interrupted".
        status, error = _lifecycle.outcome(exc, self.start_time)
        self.finish(status, error=error)

    def _detach_after_fork(self) -> None:
        # The child shares the parent's mapping; it must never write, flush or finish it.
        self._live.detach()
        self._finished = True
        if self._seat is not None:  # else a forked worker would hold the job's record seat
            self._seat.release()
