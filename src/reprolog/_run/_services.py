"""A run's services: the console tee, the system-metrics sampler and the notebook watch.

They start with a run and stop before its metrics close; their failures are recorded in the
run's capture report, never raised. In a seat of a launched job (`_job`) the launcher already
records the console and the system, so only the notebook watch may start there.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from reprolog._run._facts import RunFacts


class ServicedRun(Protocol):
    """What the services need of their run (a `Run`)."""

    @property
    def dir(self) -> Path: ...

    def log(
        self, metrics: Mapping[str, Any], step: int | None = None, *, epoch: int | None = None
    ) -> None: ...

    def update_section(self, name: str, mapping: Mapping[str, Any]) -> None: ...

    def record_capture_error(self, what: str, error: BaseException | str) -> None: ...

    def finish(self, status: str = ..., *, error: BaseException | None = ...) -> None: ...


class Services:
    """The services of one run (none running until `start`)."""

    def __init__(self, run: ServicedRun, facts: RunFacts) -> None:
        self._run = run
        self._facts = facts
        self.console: Any = None
        self.sampler: Any = None
        self.notebook: Any = None

    def start(
        self, *, in_job: bool, console: bool | None, system_metrics: float | bool | None
    ) -> None:
        """Start the console tee, the system sampler and the notebook watch the run asked for."""
        from reprolog._capture import notebook

        run = self._run
        shell = notebook.kernel_shell()
        if not in_job:
            if console is None:
                console = shell is not None  # in a kernel nobody else sees the cell output
            if console:
                try:
                    from reprolog._capture.console import tee_std_streams

                    self.console = tee_std_streams(run.dir)
                except Exception as exc:
                    run.record_capture_error("console", exc)
            from reprolog._capture.sysmetrics import interval_from

            interval = interval_from(system_metrics)
            if interval is not None:
                self.start_sampler(interval)
        if shell is not None:
            try:
                self.notebook = notebook.NotebookWatch(run, shell)
            except Exception as exc:
                run.record_capture_error("notebook", exc)

    def start_sampler(self, interval: float, root_pid: int | None = None) -> None:
        """Sample the system into the run every `interval` s (the process tree of root_pid)."""
        run = self._run
        try:
            from reprolog._capture.sysmetrics import SystemSampler

            def log(points: dict[str, float], step: int) -> None:
                run.log(points, step=step)

            sampler = SystemSampler(
                log, interval, root_pid=root_pid, on_error=run.record_capture_error
            )
            sampler.start()
            self.sampler = sampler
        except Exception as exc:
            run.record_capture_error("system metrics", exc)

    def stop(self) -> None:
        """Stop what `start` started; the console summary goes into the record."""
        run = self._run
        sampler, self.sampler = self.sampler, None
        if sampler is not None:
            try:
                sampler.stop()
            except Exception as exc:
                run.record_capture_error("system metrics", exc)
        tee, self.console = self.console, None
        if tee is not None:
            try:
                summary = tee.stop()
                summary["source"] = "sys.stdout/sys.stderr"
                self._facts.set_section("console", summary)
            except Exception as exc:
                run.record_capture_error("console", exc)
        watch, self.notebook = self.notebook, None
        if watch is not None:
            try:
                watch.stop()
            except Exception as exc:
                run.record_capture_error("notebook", exc)

    def exit_outcome(self) -> tuple[str, BaseException | None]:
        """How the run ends when the interpreter exits with nothing else to say (its default).

        In a notebook: "failed" when the last executed cell raised; else "completed".
        """
        if self.notebook is not None:
            return self.notebook.outcome()  # type: ignore[no-any-return]
        return "completed", None
