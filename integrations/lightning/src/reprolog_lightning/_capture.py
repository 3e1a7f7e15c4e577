"""Run ownership and the guard that turns capture failures into records, never into raises."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import reprolog

if TYPE_CHECKING:
    from reprolog import Run

_log = logging.getLogger("reprolog_lightning")


class Capture:
    """Holds the run a callback writes to and whether the callback must finish it.

    Args:
        run: a run the user started (never finished here), or None.
        init_kwargs: keyword arguments for `reprolog.init` when the callback starts a run.
    """

    def __init__(self, run: Run | None, init_kwargs: dict[str, Any]) -> None:
        self.run: Run | None = run
        self._given: Run | None = run
        self._init_kwargs = dict(init_kwargs)
        self._owns = False
        self._trainer: Any = None
        self._reported: set[str] = set()
        self.active = False

    def open_run(self, *, autolog: bool = False) -> bool:
        """Make `self.run` the run to write to; start one when none was given.

        In zero-code mode a run the user already has open (`reprolog.active_run()`) is used
        rather than starting a second one.

        Returns:
            False when no run could be started (training goes on, uncaptured).
        """
        self._owns = False
        if self._given is not None:
            self.run = self._given
            return True
        current = reprolog.active_run() if autolog else None
        if current is not None:
            self.run = current
            return True
        try:
            self.run = reprolog.init(**self._init_kwargs)
        except Exception as exc:  # capture must never stop the training
            _log.warning(
                "reprolog: could not start a run (%s: %s); training goes on",
                type(exc).__name__,
                exc,
            )
            self.run = None
            return False
        self._owns = True
        return True

    def close_run(self, status: str, error: BaseException | None = None) -> None:
        """Record how the Trainer ended; finish the run with `status` if the callback started it."""
        run = self.run
        if run is None:
            return
        if run.status != "running":
            return  # already ended (e.g. by the core's SIGTERM handler): its status stands
        outcome: dict[str, Any] = {"trainer_status": status}
        if error is not None:
            outcome["exception"] = {"type": type(error).__qualname__, "message": str(error)}
        self._guard("trainer status", run.update_section, "lightning", outcome)
        if not self._owns:
            return
        self._owns = False
        try:
            run.finish(status, error=error)
        except Exception as exc:
            _log.warning("reprolog: could not finish run %s (%s)", getattr(run, "id", "?"), exc)

    def _guard(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call `fn`; on failure record it on the run (once per `what` in the log) and go on."""
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            run = self.run
            if run is not None:
                try:
                    run.record_capture_error(f"lightning: {what}", exc)  # logs once per `what`
                    return None
                except Exception:  # the record itself failed: fall back to the log
                    pass
            if what not in self._reported:
                self._reported.add(what)
                _log.warning(
                    "reprolog: capturing %s failed (%s: %s)", what, type(exc).__name__, exc
                )
            return None
