"""`Run` and `init`: a live run's lifecycle, metrics, params, tags, artifacts and sections."""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from reprolog import _metriclog
from reprolog._artifacts import ArtifactWorker, describe_artifact
from reprolog._errors import ArgumentError, RunStateError
from reprolog._flusher import Flusher
from reprolog._ids import new_run_id
from reprolog._layout import RunLayout, StoreLayout, resolve_store_dir
from reprolog._record import RECORD_FORMAT_VERSION, write_json_atomic
from reprolog._recover import compact, finalize
from reprolog._values import (
    check_epoch,
    check_key,
    check_metrics,
    check_step,
    flatten,
    json_safe,
    to_float,
)

logger = logging.getLogger("reprolog")

_FINISH_STATUSES = ("completed", "failed", "interrupted")
_active: list[Run] = []
_active_lock = threading.RLock()
_pack_record = _metriclog.RECORD.pack_into
_mono = time.monotonic_ns


def active_run() -> Run | None:
    """Return the most recently started run of this process that has not finished, or None."""
    with _active_lock:
        return _active[-1] if _active else None


def init(
    name: str | None = None,
    *,
    experiment: str | None = None,
    dir: str | os.PathLike[str] | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    capture: bool = True,
    flush_interval: float = 1.0,
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

    Returns:
        The live `Run`; use it as a context manager or call `finish()`.

    Raises:
        ArgumentError: an argument of the wrong type or value.

    Example:
        >>> with reprolog.init(experiment="mnist", params={"lr": 1e-3}) as run:  # doctest: +SKIP
        ...     run.log({"loss": 0.25}, step=1)
    """
    return Run(
        name,
        experiment=experiment,
        dir=dir,
        params=params,
        tags=tags,
        capture=capture,
        flush_interval=flush_interval,
    )


def _error_info(exc: BaseException) -> dict[str, Any]:
    from reprolog._redact import redact_text

    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-12:])
    return {
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins."),
        "message": redact_text(str(exc))[0],
        "traceback": redact_text(tb)[0],
    }


class Run:
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
        for label, value in (("params", params), ("tags", tags)):
            if value is not None and not isinstance(value, Mapping):
                raise ArgumentError(
                    f"{label} must be a mapping or None, got {type(value).__name__}: {value!r}"
                )

        self._store = StoreLayout(resolve_store_dir(dir, must_exist=False))
        self._store.ensure()
        self.id = new_run_id()
        self._layout = RunLayout(self._store.run_dir(self.id))
        self._layout.log_dir.mkdir(parents=True)
        self._pid = os.getpid()
        self._record_lock = threading.RLock()
        self._log_lock = threading.RLock()  # reentrant: a SIGTERM handler may finish mid-log
        self._finish_lock = threading.RLock()
        self._finished = False
        self._warned: set[str] = set()
        self._artifacts = ArtifactWorker()

        # Hold run.lock for the life of the run: its release (even by kill -9) tells readers.
        self._lock_fd: int | None = os.open(
            self._layout.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644
        )
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)

        now = time.time()
        self._record: dict[str, Any] = {
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

        self._key_ids: dict[str, int] = {}
        self._last_step: list[int] = []
        self._chunk_no = 0
        self._keyfile = _metriclog.KeyFile(self._layout.keys_file)
        self._writer: _metriclog.ChunkWriter | None = _metriclog.ChunkWriter(
            self._layout.chunk(0), 0
        )

        if capture:
            self._capture()
        self._take_pending_seeding()
        self._refresh_risks()
        if params:
            self.log_params(params)
        if tags:
            self.set_tags(tags)
        self._save()

        self._flusher = Flusher(self._flush, self._layout.heartbeat, float(flush_interval))
        self._flusher.beat()
        self._flusher.start()
        with _active_lock:
            _active.append(self)
        _install_process_hooks()

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
    def params(self) -> dict[str, Any]:
        with self._record_lock:
            return dict(self._record["params"])

    # ------------------------------------------------------------------ metrics

    def log(self, metrics: Mapping[str, Any], step: int | None = None, *, epoch: int | None = None) -> None:
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
        if type(metrics) is not dict:
            metrics = check_metrics(metrics)
        for value in metrics.values():
            if type(value) is not float:
                metrics = self._coerce(metrics)
                break
        if step is not None and (type(step) is not int or step < 0):
            step = check_step(step)
        ep = -1 if epoch is None else check_epoch(epoch)
        with self._log_lock:
            w = self._writer
            if w is None:
                raise self._closed_error()
            tms = (_mono() - w.mono0) // 1_000_000
            if tms >= _metriclog.MAX_CHUNK_MS:
                w = self._roll()
                tms = 0
            ids = self._key_ids
            last = self._last_step
            for key, value in metrics.items():
                kid = ids.get(key)
                if kid is None:
                    kid = self._add_key(key)
                s = last[kid] + 1 if step is None else step
                last[kid] = s
                if w.pos == w.end:
                    w = self._roll()
                    tms = 0
                w.seq += 1
                _pack_record(w.mm, w.pos, value, s, tms, kid, ep, w.seq)
                w.pos += 32

    def _coerce(self, metrics: dict[str, Any]) -> dict[str, Any]:
        # Validate every key and value before writing any, so a bad call writes nothing.
        out = {}
        for key, value in metrics.items():
            check_key(key)
            out[key] = value if type(value) is float else to_float(key, value)
        return out

    def _add_key(self, key: Any) -> int:
        check_key(key)
        kid = len(self._last_step)
        self._keyfile.add(kid, key)  # on disk before any point that uses it
        self._key_ids[key] = kid
        self._last_step.append(-1)
        return kid

    def _roll(self) -> _metriclog.ChunkWriter:
        old = self._writer
        assert old is not None
        self._chunk_no += 1
        new = _metriclog.ChunkWriter(self._layout.chunk(self._chunk_no), self._chunk_no)
        self._writer = new
        old.close()
        return new

    def _flush(self) -> None:
        w = self._writer
        if w is not None:
            try:
                w.flush()
            except ValueError:  # rolled and closed under us; the new chunk is flushed next time
                pass

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

    # ------------------------------------------------------------------ params, tags, sections

    def _check_live(self) -> None:
        if self._finished or self._pid != os.getpid():
            raise self._closed_error()

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record hyperparameters; nested mappings flatten to dotted keys.

        A later value for a key wins; the change is kept in the record's `param_history`.
        Values that JSON cannot hold are stored as their repr, with their type name in
        `param_types`. Secret-looking names and values are redacted before touching disk.

        Raises:
            ArgumentError: `params` is not a mapping.
            RunStateError: the run has finished.
        """
        if not isinstance(params, Mapping):
            raise ArgumentError(
                f"log_params() takes a mapping, got {type(params).__name__}: {params!r}"
            )
        self._check_live()
        from reprolog._redact import redact_mapping

        flat: dict[str, Any] = {}
        types: dict[str, str] = {}
        for key, value in flatten(params).items():
            safe, type_name = json_safe(value)
            flat[str(key)] = safe
            if type_name is not None:
                types[str(key)] = type_name
        masked, redacted = redact_mapping(flat)
        now = time.time()
        with self._record_lock:
            current = self._record["params"]
            for key, value in masked.items():
                if key in current and current[key] != value:
                    self._record["param_history"].append(
                        {"key": key, "old": current[key], "new": value, "time": now}
                    )
                current[key] = value
            self._record["param_types"].update(types)
            self._note_redacted(f"params.{name}" for name in redacted)
            self._save()

    def set_tags(self, tags: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        """Set string tags (values are converted with str); redacted like params."""
        if tags is not None and not isinstance(tags, Mapping):
            raise ArgumentError(f"set_tags() takes a mapping, got {type(tags).__name__}: {tags!r}")
        self._check_live()
        from reprolog._redact import redact_mapping

        merged = {str(k): str(v) for k, v in {**(tags or {}), **more}.items()}
        masked, redacted = redact_mapping(merged)
        with self._record_lock:
            self._record["tags"].update({k: str(v) for k, v in masked.items()})
            self._note_redacted(f"tags.{name}" for name in redacted)
            self._save()

    def update_section(self, name: str, mapping: Mapping[str, Any]) -> None:
        """Merge facts into a named section of the record (integrations use this).

        Raises:
            ArgumentError: `name` is not a non-empty string or `mapping` is not a mapping.
        """
        if not isinstance(name, str) or not name:
            raise ArgumentError(f"section name must be a non-empty str, got {name!r}")
        if not isinstance(mapping, Mapping):
            raise ArgumentError(
                f"update_section() takes a mapping, got {type(mapping).__name__}: {mapping!r}"
            )
        self._check_live()
        from reprolog._redact import redact_mapping

        masked, redacted = redact_mapping(dict(mapping))
        with self._record_lock:
            section = self._record["sections"].setdefault(name, {})
            section.update(masked)
            self._note_redacted(f"sections.{name}.{n}" for n in redacted)
            self._save()

    def record_capture_error(self, what: str, error: BaseException | str) -> None:
        """Record that capturing `what` failed; logged once, never raised."""
        message = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
        try:
            from reprolog._redact import redact_text

            message = redact_text(message)[0]
        except Exception:  # redaction itself must not turn a capture failure into a crash
            message = "<message withheld: redaction failed>"
        with self._record_lock:
            self._record["capture_report"].setdefault("errors", []).append(
                {"what": what, "error": message}
            )
            if not self._finished:
                self._save_quietly()
        if what not in self._warned:
            self._warned.add(what)
            logger.warning("reprolog: could not capture %s (%s); training goes on", what, message)

    def _note_redacted(self, names: Any) -> None:
        report = self._record["capture_report"].setdefault("redacted", [])
        for name in names:
            if name not in report:
                report.append(name)

    def log_dataset(self, name: str, obj: Any, *, context: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Fingerprint a dataset and record it under sections["data"][name].

        Returns the description (fingerprint, how it was hashed, shape or length, dtype or
        schema). A failure to fingerprint is recorded in the capture report, never raised.
        """
        if not isinstance(name, str) or not name:
            raise ArgumentError(f"dataset name must be a non-empty str, got {name!r}")
        self._check_live()
        try:
            from reprolog._fingerprint import describe_data

            desc = dict(describe_data(obj))
        except Exception as exc:
            self.record_capture_error(f"data:{name}", exc)
            from reprolog._redact import redact_text

            desc = {"fingerprint": None, "error": redact_text(f"{type(exc).__name__}: {exc}")[0]}
        if context:
            desc["context"] = dict(context)
        self.update_section("data", {name: desc})
        return desc

    # ------------------------------------------------------------------ artifacts

    def log_artifact(
        self,
        path: str | os.PathLike[str],
        *,
        kind: str = "file",
        step: int | None = None,
        copy: bool = False,
        metadata: Mapping[str, Any] | None = None,
    ) -> str:
        """Record a file or folder: path, size, sha256 and step; optionally store a copy.

        The hash (and copy) is computed on a worker thread, so a large checkpoint does not
        block training; `finish()` waits for it. With `copy=True` the content goes into the
        store's blob folder, content-addressed and deduplicated.

        Returns:
            The artifact's id, for `update_artifact`.

        Raises:
            ArgumentError: the path does not exist or an argument is of the wrong type.
        """
        if not isinstance(path, (str, os.PathLike)):
            raise ArgumentError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        if not isinstance(kind, str) or not kind:
            raise ArgumentError(f"kind must be a non-empty str, got {kind!r}")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise ArgumentError(f"metadata must be a mapping or None, got {metadata!r}")
        resolved = Path(os.fspath(path)).expanduser().absolute()
        if not resolved.exists():
            raise ArgumentError(f"log_artifact(): {resolved} does not exist")
        if step is not None:
            step = check_step(step)
        self._check_live()
        from reprolog._redact import redact_mapping

        meta, _ = redact_mapping(dict(metadata or {}))
        with self._record_lock:
            art_id = f"a{len(self._record['artifacts']) + 1}"
            entry = {
                "id": art_id,
                "path": str(resolved),
                "name": resolved.name,
                "kind": kind,
                "type": "dir" if resolved.is_dir() else "file",
                "step": step,
                "time": time.time(),
                "size": None,
                "sha256": None,
                "blob": None,
                "status": "pending",
                "metadata": meta,
            }
            self._record["artifacts"].append(entry)
            self._save()

        def job() -> None:
            try:
                fields = describe_artifact(resolved, copy=copy, blobs_root=self._store.blobs)
            except Exception as exc:
                fields = {"status": "error", "problem": f"{type(exc).__name__}: {exc}"}
                self.record_capture_error(f"artifact:{resolved}", exc)
            with self._record_lock:
                entry.update(fields)
                self._save_quietly()

        self._artifacts.submit(job)
        return art_id

    def update_artifact(self, artifact_id: str, *, metadata: Mapping[str, Any]) -> None:
        """Merge `metadata` into a logged artifact (e.g. {"deleted": True} after rotation)."""
        if not isinstance(metadata, Mapping):
            raise ArgumentError(f"metadata must be a mapping, got {metadata!r}")
        self._check_live()
        with self._record_lock:
            for entry in self._record["artifacts"]:
                if entry["id"] == artifact_id:
                    entry["metadata"].update(dict(metadata))
                    self._save()
                    return
        raise ArgumentError(f"run {self.id} has no artifact {artifact_id!r}")

    def wait(self) -> None:
        """Block until pending artifact hashes and copies are done."""
        self._artifacts.wait()

    # ------------------------------------------------------------------ capture

    def _capture(self) -> None:
        try:
            from reprolog._capture import capture_all

            result = capture_all(self._layout.dir)
        except Exception as exc:
            self.record_capture_error("capture", exc)
            return
        with self._record_lock:
            self._record["sections"].update(result.sections)
            report = self._record["capture_report"]
            for key, value in result.report.items():
                if isinstance(value, list):
                    report.setdefault(key, []).extend(value)
                else:
                    report[key] = value

    def _take_pending_seeding(self) -> None:
        try:
            from reprolog._seed import take_pending_seeding

            info = take_pending_seeding()
        except Exception as exc:
            self.record_capture_error("seed_everything", exc)
            return
        if info:
            self._record["sections"].setdefault("seeds", {})["seed_everything"] = info

    # ------------------------------------------------------------------ record I/O

    def _save(self) -> None:
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
            self._finished = True
            with _active_lock:
                if self in _active:
                    _active.remove(self)
            self._flusher.stop()
            with self._log_lock:
                writer, self._writer = self._writer, None
                if writer is not None:
                    writer.close()
                self._keyfile.close()
            self._artifacts.shutdown()
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
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def _refresh_risks(self) -> None:
        try:
            from reprolog._capture import compute_risks

            sections = self._record["sections"]
            determinism = sections.get("determinism")
            if determinism is not None and not determinism.get("torch_loaded") and "torch" in sys.modules:
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
        if exc is None:
            self.finish("completed")
        elif isinstance(exc, KeyboardInterrupt):
            self.finish("interrupted", error=exc)
        else:
            self.finish("failed", error=exc)

    def _detach_after_fork(self) -> None:
        # The child shares the parent's mapping; it must never write, flush or finish it.
        self._writer = None
        self._finished = True
        self._lock_fd = None


# ---------------------------------------------------------------------- process hooks

_hooks_installed = False
_previous_excepthook = sys.excepthook
_previous_sigterm: Any = None
_signal_received: str | None = None


def _finish_all(status: str, error: BaseException | None = None) -> None:
    with _active_lock:
        runs = list(reversed(_active))
    for run in runs:
        try:
            run.finish(status, error=error)
        except Exception:
            logger.exception("reprolog: could not finish run %s", run.id)


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    _finish_all("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed", exc)
    _previous_excepthook(exc_type, exc, tb)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _signal_received
    _signal_received = signal.Signals(signum).name
    if signal.getsignal(signum) is not _on_sigterm:
        # Another handler (e.g. Lightning's) installed itself later and chained to us: it
        # owns the shutdown and will let its framework end gracefully. Ending our runs now
        # would cut that short; atexit ends them as interrupted instead.
        return
    _finish_all("interrupted", KeyboardInterrupt(f"signal {_signal_received}"))
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
        return
    # Default action: die by the same signal, so the exit status still says SIGTERM.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _at_exit() -> None:
    if _signal_received is not None:
        _finish_all("interrupted", KeyboardInterrupt(f"signal {_signal_received}"))
    else:
        _finish_all("completed")


def _after_fork_in_child() -> None:
    with _active_lock:
        runs = list(_active)
        _active.clear()
    for run in runs:
        run._detach_after_fork()


def _install_process_hooks() -> None:
    """Once per process: atexit, excepthook and SIGTERM end every live run with a true status."""
    global _hooks_installed, _previous_excepthook, _previous_sigterm
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_at_exit)
    _previous_excepthook = sys.excepthook
    sys.excepthook = _excepthook
    os.register_at_fork(after_in_child=_after_fork_in_child)
    if threading.current_thread() is threading.main_thread():
        try:
            current = signal.getsignal(signal.SIGTERM)
            if current in (signal.SIG_DFL, None) or callable(current):
                _previous_sigterm = current
                signal.signal(signal.SIGTERM, _on_sigterm)
        except (ValueError, OSError):  # not allowed here (embedded interpreters)
            pass
