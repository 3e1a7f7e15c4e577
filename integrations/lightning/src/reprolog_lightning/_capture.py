"""The Lightning callback's side of the core's `reprolog.RunOwner`: one run, one guard."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import reprolog

if TYPE_CHECKING:
    from reprolog import Run


class Capture:
    """Holds the callback's `reprolog.RunOwner`, which decides the run and whether to finish it.

    Args:
        run: a run the user started (never finished here), or None.
        init_kwargs: keyword arguments for `reprolog.init` when the callback starts a run.

    Raises:
        ArgumentError: `run` is not a Run, or `init_kwargs` holds a name `init` does not take.
    """

    def __init__(self, run: Run | None, init_kwargs: dict[str, Any]) -> None:
        self._owner = reprolog.RunOwner("lightning", run, init_kwargs)
        self._trainer: Any = None
        self._reported: set[str] = set()
        self.active = False

    @property
    def run(self) -> Run | None:
        """The run this callback records into (None before `setup` or when none started)."""
        return self._owner.run

    def open_run(self) -> bool:
        """Pick the run by the core's policy (given, the user's active run, or a new one).

        Returns:
            False when no run could be started (training goes on, uncaptured).
        """
        return self._owner.open() is not None

    def log_params(self, params: dict[str, Any]) -> None:
        """Log params, under `lightning.` when the run is the user's adopted active run."""
        self._owner.log_params(params)

    def close_run(self, error: BaseException | None = None) -> None:
        """Record how the Trainer ended; finish the run with its true status if we started it."""
        run = self.run
        if run is None or run.status != "running":
            return  # already ended (e.g. by the core's SIGTERM handler): its status stands
        status, cause = self._owner.outcome(error)
        outcome: dict[str, Any] = {"trainer_status": status}
        if cause is not None:
            outcome["exception"] = {"type": type(cause).__qualname__, "message": str(cause)}
        self._guard("trainer status", run.update_section, "lightning", outcome)
        self._owner.close(error)

    def _guard(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call `fn`; on failure record it on the run (logged once per `what`) and go on."""
        return self._owner.guard(what, fn, *args, **kwargs)
