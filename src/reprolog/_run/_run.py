"""`Run` and `init`: a live run's identity, metrics and end, and the live runs of this process.

`Run` owns the parts a live run is made of: its record keeping (`RunFacts`), its live log
(`LiveLog`: metric writer, flusher, run.lock), its services (console, sampler, notebook), its
publishing to a store at a URI (`_publishing`: snapshots, then the finished run) and, in a job
launched by `reprolog run`, its seat in the launcher's run (`_job`). What other parts
of the core do when a run starts, they register as start hooks (`_hooks.on_run_start`).
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from reprolog._errors import ArgumentError
from reprolog._run import _hooks, _job
from reprolog._run._facts import RunFacts, new_record
from reprolog._run._publishing import (
    ENV_TO,
    Publisher,
    PublishSettings,
    check_local_dir,
    check_not_own_store,
    publish_settings,
)
from reprolog._run._services import Services
from reprolog._run._status import error_info, outcome
from reprolog._storage import _locks
from reprolog._storage._compact import compact, finalize, wait_for_rank_writers
from reprolog._storage._ids import new_run_id
from reprolog._storage._layout import RunLayout, StoreLayout, resolve_store_dir
from reprolog._storage._livelog import LiveLog

if TYPE_CHECKING:
    from reprolog._fingerprint._steptrace import StepFingerprints

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
    publish_to: str | os.PathLike[str] | Literal[False] | None = None,
    publish_every: float | None = None,
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
        publish_to: a store to publish the run to: an object-store URI
            (`s3://bucket/prefix`, credentials from the usual AWS places) or a shared folder.
            The run records locally as always and is copied there when it ends (record
            last); a failure is recorded in the run and logged, never raised, and
            `reprolog push` completes it. None: `$REPROLOG_PUBLISH_TO` when set, else
            nowhere; False: nowhere.
        publish_every: minutes between snapshots published while the run lives (a lost
            node loses at most that much of what others see). None:
            `$REPROLOG_PUBLISH_EVERY` when set, else 10.

    Returns:
        The live `Run`; use it as a context manager or call `finish()`.

    Raises:
        ArgumentError: an argument of the wrong type or value (`dir` a URI: use
            `publish_to`).

    Example:
        >>> with reprolog.init(experiment="mnist", params={"lr": 1e-3}) as run:  # doctest: +SKIP
        ...     run.log({"loss": 0.25}, step=1)
        >>> run = reprolog.init(publish_to="s3://team-bucket/reprolog")  # doctest: +SKIP
    """
    given = dict(locals())  # exactly the parameters above: their one definition
    from reprolog._capture.notebook import finish_previous

    finish_previous()  # in a notebook, a second init() ends the run of the first
    return Run(RunOptions(**given))


@dataclass(frozen=True)
class RunOptions:
    """The arguments of `init` (see there), checked: how a `Run` is asked to start."""

    name: str | None
    experiment: str | None
    dir: str | os.PathLike[str] | None
    params: Mapping[str, Any] | None
    tags: Mapping[str, Any] | None
    capture: bool
    flush_interval: float
    console: bool | None
    system_metrics: float | bool | None
    publish_to: str | os.PathLike[str] | Literal[False] | None
    publish_every: float | None
    #: publish_to / publish_every resolved (environment defaults) and checked; None: off.
    publish: PublishSettings | None = field(init=False, default=None, repr=False, compare=False)

    @classmethod
    def from_init_arguments(cls, *args: Any, **kwargs: Any) -> RunOptions:
        """The options that `init(*args, **kwargs)` would start a run with."""
        try:
            bound = inspect.signature(init).bind(*args, **kwargs)
        except TypeError as exc:
            raise ArgumentError(f"{exc}; Run() takes the arguments of reprolog.init") from None
        bound.apply_defaults()
        return cls(**bound.arguments)

    def __post_init__(self) -> None:
        name, experiment, flush_interval = self.name, self.experiment, self.flush_interval
        if name is not None and not isinstance(name, str):
            raise ArgumentError(f"name must be a str or None, got {type(name).__name__}: {name!r}")
        if experiment is not None and (not isinstance(experiment, str) or not experiment):
            raise ArgumentError(f"experiment must be a non-empty str or None, got {experiment!r}")
        if not isinstance(self.capture, bool):
            raise ArgumentError(f"capture must be True or False, got {self.capture!r}")
        if (
            isinstance(flush_interval, bool)
            or not isinstance(flush_interval, (int, float))
            or not 0 < flush_interval <= 3600
        ):
            raise ArgumentError(
                f"flush_interval must be a number of seconds in (0, 3600], got {flush_interval!r}"
            )
        if self.console is not None and not isinstance(self.console, bool):
            raise ArgumentError(f"console must be True, False or None, got {self.console!r}")
        try:
            from reprolog._capture.sysmetrics import interval_from

            interval_from(self.system_metrics)
        except ValueError as exc:
            raise ArgumentError(str(exc)) from None
        for label, value in (("params", self.params), ("tags", self.tags)):
            if value is not None and not isinstance(value, Mapping):
                raise ArgumentError(
                    f"{label} must be a mapping or None, got {type(value).__name__}: {value!r}"
                )
        check_local_dir(self.dir)
        settings = publish_settings(self.publish_to, self.publish_every)
        check_not_own_store(settings, self.dir)
        # frozen: the one place this field is set
        object.__setattr__(self, "publish", settings)


# ---------------------------------------------------------------------------- live runs

_live: list[Run] = []
_live_lock = threading.RLock()


def active_run() -> Run | None:
    """Return the most recently started run of this process that has not finished, or None."""
    with _live_lock:
        return _live[-1] if _live else None


def live_runs() -> list[Run]:
    """The runs of this process that have not finished, the most recent first."""
    with _live_lock:
        return list(reversed(_live))


def _add_live(run: Run) -> None:
    with _live_lock:
        _live.append(run)
    _hooks.in_forked_child(_detach_live_runs)


def _drop_live(run: Run) -> None:
    with _live_lock:
        if run in _live:
            _live.remove(run)


def _detach_live_runs() -> None:
    # In a forked child: the parent's runs are not this process's to write, flush or finish.
    runs = list(_live)
    _live.clear()
    for run in runs:
        run._detach_after_fork()


# ---------------------------------------------------------------------------- the run


class Run:
    """A live training run: append metrics, params, tags, artifacts; end with a true status.

    Create runs with `reprolog.init`. Logging a metric costs about a microsecond: points go
    into a memory-mapped log that survives the death of the process and is compacted to
    Parquet by `finish()`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Start a run from `reprolog.init`'s arguments (see there; `init` is the usual way)."""
        if len(args) == 1 and not kwargs and isinstance(args[0], RunOptions):
            options = args[0]
        else:
            options = RunOptions.from_init_arguments(*args, **kwargs)
        self._store = StoreLayout(resolve_store_dir(options.dir, must_exist=False))
        self._pid = os.getpid()
        self._finish_lock = threading.RLock()
        # In a job launched by `reprolog run`: a seat in the launcher's run, not a new run.
        self._seat = _job.take_seat(self._store)
        if self._seat is None:
            self._store.ensure()
            self.id = new_run_id()
            self._layout = RunLayout(self._store.run_dir(self.id))
            self._layout.log_dir.mkdir(parents=True)
            record = new_record(self.id, options.name, options.experiment, options.flush_interval)
        else:
            self.id = self._seat.run_id
            self._layout = self._seat.layout
            record = self._seat.record
            # `reprolog run --name/--experiment` win over the code's
            if options.name is not None and record.get("name") is None:
                record["name"] = options.name
            if options.experiment is not None and record.get("experiment") in (None, "default"):
                record["experiment"] = options.experiment
        self._facts = RunFacts(
            record,
            self._layout,
            self._store.blobs,
            writes=self._seat is None or self._seat.writes_record,
        )
        if self._seat is None:
            # run.lock, held for the life of the run: its release (even by kill -9) tells
            # readers the writer is gone.
            self._live = LiveLog(
                self._layout.log_dir,
                heartbeat=self._layout.heartbeat,
                interval=float(options.flush_interval),
                closed_error=self._facts.closed_error,
                lock_fd=_locks.hold(self._layout.lock),
            )
        else:
            self._live = LiveLog(
                self._seat.metrics_dir,
                heartbeat=RunLayout.writer_heartbeat(self._seat.metrics_dir),
                interval=float(options.flush_interval),
                closed_error=self._facts.closed_error,
            )
        self._services = Services(self, self._facts)
        self._publisher: Publisher | None = None

        if options.capture:
            self._facts.capture()
        _hooks.run_start_hooks(self)  # seed_everything's, reproduce's, the process hooks
        self._facts.refresh_risks()
        if options.params:
            self.log_params(options.params)
        if options.tags:
            self.set_tags(options.tags)
        if options.publish is not None:
            self._start_publishing(options.publish)
        self._facts.save()
        _add_live(self)
        self._services.start(
            in_job=self._seat is not None,
            console=options.console,
            system_metrics=options.system_metrics,
        )
        if self._publisher is not None:
            self._publisher.start()

    def _start_publishing(self, settings: PublishSettings) -> None:
        facts = self._facts
        if self._seat is not None:
            # The launcher of `reprolog run` ends the job's run, so it publishes it (when it
            # was given $REPROLOG_PUBLISH_TO itself); a seat only says it was asked.
            if "publish" not in facts.record["sections"]:
                facts.record["capture_report"].setdefault("skipped", []).append(
                    {
                        "what": "publish",
                        "why": f"publish_to={settings.display} in a job of `reprolog run`: "
                        f"the launcher ends the run; set ${ENV_TO} for `reprolog run`, "
                        f"or `reprolog push --to {settings.display}` after",
                    }
                )
            return
        facts.set_section("publish", settings.section())
        self._publisher = Publisher(settings, self._store.root, facts)

    # ------------------------------------------------------------------ identity

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, name={self.name!r}, status={self.status!r})"

    @property
    def name(self) -> str | None:
        return self._facts.record["name"]  # type: ignore[no-any-return]

    @property
    def experiment(self) -> str:
        return str(self._facts.record["experiment"])

    @property
    def dir(self) -> Path:
        """The run's folder inside the store."""
        return self._layout.dir

    @property
    def store_dir(self) -> Path:
        return self._store.root

    @property
    def status(self) -> str:
        return str(self._facts.record["status"])

    @property
    def start_time(self) -> float:
        """When the run started (unix seconds)."""
        return float(self._facts.record["start_time"])

    @property
    def params(self) -> dict[str, Any]:
        with self._facts.lock:
            return dict(self._facts.record["params"])

    @property
    def _sampler(self) -> Any:
        """The running system-metrics sampler, or None."""
        return self._services.sampler

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
        self._live.writer.log(metrics, step, epoch=epoch)

    def step_fingerprints(
        self, model: Any = None, *, every: bool | int | None = None
    ) -> StepFingerprints | None:
        """Return the run's per-step fingerprint recorder (made on first call), or None if off.

        Integrations call it once per training and then, at every optimizer step,
        ``fp.step(step, batch, epoch=...)`` (RNG states, the batch's content hash, weights
        every `every` steps), ``fp.add_batch(b)`` per further micro-batch and ``fp.grads()``
        before the optimizer step. The records become ``steps.parquet`` (never metrics);
        `reprolog.diff` reads them to say what made two runs part.

        Args:
            model: what to fingerprint the weights of (a torch module, a Keras model, or an
                iterable of tensors/arrays); None: no weights. A later call replaces it.
            every: weights and gradients every this many steps; None:
                ``$REPROLOG_STEP_FINGERPRINTS`` (``off``, ``on`` or K), else 100; False: off.

        Returns:
            The recorder, or None when step fingerprints are off.

        Raises:
            ArgumentError: `every` (or the environment variable) is not a valid setting.
            RunStateError: the run has finished.
        """
        self._facts.check_live()
        from reprolog._fingerprint._steptrace import for_writer

        writer = self._live.writer
        new = writer.companion_count()
        trace = for_writer(writer, model, every, self.record_capture_error)
        if trace is not None and writer.companion_count() != new:
            self.update_section(
                "step_fingerprints",
                {"every": trace.every, "file": "steps.parquet", "rng": trace.rng_methods},
            )
        return trace

    # ------------------------------------------------------------------ facts (RunFacts)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record hyperparameters; nested mappings flatten to dotted keys.

        A later value for a key wins; the change is kept in the record's `param_history`.
        Values that JSON cannot hold are stored as their repr, with their type name in
        `param_types`. Secret-looking names and values are redacted before touching disk.

        Raises:
            ArgumentError: `params` is not a mapping.
            RunStateError: the run has finished.
        """
        self._facts.log_params(params)

    def set_tags(self, tags: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        """Set string tags (values are converted with str); redacted like params."""
        self._facts.set_tags(tags, **more)

    def update_section(self, name: str, mapping: Mapping[str, Any]) -> None:
        """Merge facts into a named section of the record (integrations use this).

        Raises:
            ArgumentError: `name` is not a non-empty string or `mapping` is not a mapping.
        """
        self._facts.update_section(name, mapping)

    def record_capture_error(self, what: str, error: BaseException | str) -> None:
        """Record that capturing `what` failed; logged once, never raised."""
        self._facts.record_capture_error(what, error)

    def log_dataset(
        self, name: str, obj: Any, *, context: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Fingerprint a dataset and record it under sections["data"][name].

        Returns the description (fingerprint, how it was hashed, shape or length, dtype or
        schema). A failure to fingerprint is recorded in the capture report, never raised.
        """
        return self._facts.log_dataset(name, obj, context=context)

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
        return self._facts.log_artifact(path, kind=kind, step=step, copy=copy, metadata=metadata)

    def update_artifact(self, artifact_id: str, *, metadata: Mapping[str, Any]) -> None:
        """Merge `metadata` into a logged artifact (e.g. {"deleted": True} after rotation)."""
        self._facts.update_artifact(artifact_id, metadata=metadata)

    def wait(self) -> None:
        """Block until pending artifact hashes and copies are done."""
        self._facts.wait()

    # ------------------------------------------------------------------ lifecycle

    def finish(self, status: str = "completed", *, error: BaseException | None = None) -> None:
        """End the run: compact metrics to Parquet and write the final record. Idempotent.

        With `publish_to`, the finished run is then published (a failure is recorded in the
        run and logged, never raised).

        Args:
            status: "completed", "failed" or "interrupted".
            error: the exception that ended the run, recorded with type, message and traceback.

        Raises:
            ArgumentError: an unknown status.
        """
        if status not in _FINISH_STATUSES:
            raise ArgumentError(f"status must be one of {_FINISH_STATUSES}, got {status!r}")
        facts = self._facts
        with self._finish_lock:
            if facts.ended or self._pid != os.getpid():
                return
            publisher = self._publisher
            if publisher is not None:
                publisher.stop()  # no snapshot from here on: the run is about to end
            self._services.stop()
            facts.ended = True
            _drop_live(self)
            self._live.close()
            facts.artifacts.shutdown()
            if self._seat is not None:  # a process of a launched job: the launcher ends it
                _job.leave(self._seat, facts, status, error)
                return
            wait_for_rank_writers(self._layout)
            with facts.lock:
                record = facts.record
                record["status"] = status
                record["end_time"] = time.time()
                if error is not None:
                    record["error"] = error_info(error)
                try:
                    problems = compact(self._layout, record)
                    if problems:
                        record["capture_report"].setdefault("recovery", []).extend(problems)
                except Exception as exc:  # the log stays; the next reader compacts it
                    logger.exception("reprolog: compaction of run %s failed", self.id)
                    record["capture_report"]["errors"].append(
                        {"what": "compaction", "error": f"{type(exc).__name__}: {exc}"}
                    )
                facts.refresh_risks()
                finalize(self._layout, record)
            self._live.release()  # readers now see the run's writer gone
            if publisher is not None:
                publisher.publish()

    def _exit_outcome(self) -> tuple[str, BaseException | None]:
        """How the run ends at interpreter exit when nothing else says (see `_lifecycle`)."""
        return self._services.exit_outcome()

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
        status, error = outcome(exc, self.start_time)
        self.finish(status, error=error)

    def _detach_after_fork(self) -> None:
        # The child shares the parent's mapping; it must never write, flush or finish it.
        self._live.detach()
        self._facts.ended = True
        if self._publisher is not None:
            self._publisher.detach()
        if self._seat is not None:  # else a forked worker would hold the job's record seat
            self._seat.release()
