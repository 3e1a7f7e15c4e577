"""`RunOwner`: the one policy by which every integration picks, adopts or starts its run."""

from __future__ import annotations

import inspect
import logging
import re
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from reprolog._errors import ArgumentError
from reprolog._fingerprint import _steptrace
from reprolog._run import _steplimit
from reprolog._run._run import Run, active_run, init
from reprolog._run._status import outcome

_INIT_ARGS = tuple(name for name in inspect.signature(init).parameters)
_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")

# Runs some RunOwner started: never adopted as "the active run" by another integration, so a
# run an integration failed to end cannot swallow the next training, and a Tracked fit made
# inside a Lightning training gets its own run rather than the Trainer's.
_started: weakref.WeakSet[Run] = weakref.WeakSet()


class RunOwner:
    """Which run an integration records into, whether it must finish it, and its capture guard.

    `open()` decides, in this order:

    1. `run` given: record into it; never finish it.
    2. no `init_kwargs` and a run the user started is active (`reprolog.active_run()`):
       adopt it and never finish it; params logged through `log_params` go under the
       integration's namespace (`"<integration>.<name>"`) so they cannot collide with the
       user's own.
    3. otherwise: start a run with `reprolog.init(**defaults, **init_kwargs)`; `close()`
       finishes it with the true status (see `outcome`).

    Explicit `init_kwargs` (a name, a store folder...) ask for a run of their own, so they
    skip step 2. A failure to capture is recorded in the run with the label
    `"<integration>: <what>"`, logged once on the logger `reprolog.<integration>`, and never
    raised into training.

    Args:
        integration: the integration's short name, a lowercase identifier ("lightning").
        run: a run the user started and hands over, or None.
        init_kwargs: arguments of `reprolog.init` the user gave the integration.
        defaults: arguments of `reprolog.init` the integration fills in itself (a default
            run name); they never count as the user asking for a run of their own.

    Raises:
        ArgumentError: `integration` is not a lowercase identifier, `run` is not a `Run`, or
            `init_kwargs`/`defaults` hold a name `reprolog.init` does not accept.

    Example:
        >>> owner = RunOwner("mylib", init_kwargs={"experiment": "demo"})  # doctest: +SKIP
        >>> run = owner.open()
        >>> owner.log_params({"epochs": 3})
        >>> owner.guard("model facts", capture_model, model)  # recorded, never raised
        >>> owner.close(error)  # None on success; the run ends completed/failed/interrupted
    """

    def __init__(
        self,
        integration: str,
        run: Run | None = None,
        init_kwargs: Mapping[str, Any] | None = None,
        *,
        defaults: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(integration, str) or not _NAME.match(integration):
            raise ArgumentError(
                f"integration must be a lowercase identifier such as 'lightning', "
                f"got {integration!r}"
            )
        if run is not None and not isinstance(run, Run):
            raise ArgumentError(
                f"run must be a reprolog Run from reprolog.init() or None, "
                f"got {type(run).__name__}: {run!r}"
            )
        for label, given in (("init_kwargs", init_kwargs), ("defaults", defaults)):
            unknown = sorted(set(given or {}) - set(_INIT_ARGS))
            if unknown:
                raise ArgumentError(
                    f"{label} holds {unknown}, which reprolog.init does not accept; "
                    f"accepted: {list(_INIT_ARGS)}"
                )
        self.integration = integration
        self.logger = logging.getLogger(f"reprolog.{integration}")
        self._given = run
        self._init_kwargs = dict(init_kwargs or {})
        self._defaults = dict(defaults or {})
        self._run: Run | None = run
        self._owns = False
        self._adopted = False
        self._reported: set[str] = set()

    # ------------------------------------------------------------------ which run

    @property
    def run(self) -> Run | None:
        """The run being recorded into; None before `open()` or when none could be started."""
        return self._run

    @property
    def owns(self) -> bool:
        """True while this owner started the run and has yet to finish it."""
        return self._owns

    @property
    def adopted(self) -> bool:
        """True when the run is the user's active run, adopted by `open()`."""
        return self._adopted

    @property
    def max_steps(self) -> int | None:
        """The number of optimizer steps after which training must stop, or None for no limit.

        Set by `reprolog reproduce --steps N` for its re-run (``$REPROLOG_MAX_STEPS``). An
        integration stops the training after that many steps the way its framework allows;
        the run then ends "completed" with only that prefix of steps.

        Raises:
            ArgumentError: the limit in the environment is not a positive integer.
        """
        return _steplimit.max_steps()

    @staticmethod
    def check_step_fingerprints(value: Any) -> bool | int | None:
        """Validate an integration's ``step_fingerprints`` argument; return it as given.

        None: ``$REPROLOG_STEP_FINGERPRINTS`` decides (else on); True/False: on/off; an int
        K >= 1: on, weights every K steps (``Run.step_fingerprints``'s ``every``).

        Raises:
            ArgumentError: any other value.
        """
        return _steptrace.check_every(value, name="step_fingerprints")

    def open(self) -> Run | None:
        """Pick the run to record into, by the policy above, and return it.

        Returns:
            The run, or None when one had to be started and could not be (an unwritable
            store): the failure is logged and training goes on uncaptured.

        Raises:
            ArgumentError: the user's init arguments are invalid (theirs to fix).
        """
        if self._owns and self._run is not None:
            # The last training never told how it ended; "completed" would be a guess.
            self.close(RuntimeError("a new training started before this one ended"))
        self._owns = self._adopted = False
        self._reported = set()  # each run records its own first failures
        if self._given is not None:
            self._run = self._given
            return self._run
        active = active_run()
        if not self._init_kwargs and active is not None and active not in _started:
            self._run, self._adopted = active, True
            return active
        try:
            run = init(**{**self._defaults, **self._init_kwargs})
        except ArgumentError:
            raise
        except Exception as exc:  # capture must never stop the training
            self._run = None
            self._warn_once("start", "could not start a run (%s: %s); training goes on", exc)
            return None
        _started.add(run)
        self._run, self._owns = run, True
        return run

    # ------------------------------------------------------------------ recording

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params into the run: as given, or under `"<integration>."` in an adopted run.

        Raises:
            What `Run.log_params` raises; call it through `guard`.
        """
        run = self._run
        if run is None:
            return
        run.log_params({self.integration: dict(params)} if self._adopted else params)

    def label(self, what: str) -> str:
        """Return the capture-report label of a failure to capture `what`."""
        return f"{self.integration}: {what}"

    def guard(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call `fn(*args, **kwargs)`; a failure is recorded and logged once, never raised.

        Returns:
            What `fn` returned, or None when it raised an `Exception`.
        """
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            self.report(what, exc)
            return None

    def report(self, what: str, error: BaseException) -> None:
        """Record a failure to capture `what` in the run's capture report and log it, once.

        A hook that fails fails the same way at every step: only the first failure of each
        `what` per run is recorded, so a broken per-step capture never rewrites the record
        at every step.
        """
        label = self.label(what)
        if label in self._reported:
            return
        run = self._run
        if run is not None:
            try:
                # The core's own warning would repeat ours under another logger name.
                run._facts.warned.add(label)
                run.record_capture_error(label, error)
            except Exception:  # the record itself failed: the log below still says it
                pass
        self._warn_once(label, "could not capture %s (%s: %s); training goes on", error, label)

    def _warn_once(self, key: str, message: str, error: BaseException, *lead: Any) -> None:
        if key in self._reported:
            return
        self._reported.add(key)
        self.logger.warning("reprolog: " + message, *lead, type(error).__name__, error)

    # ------------------------------------------------------------------ the end

    def outcome(self, error: BaseException | None) -> tuple[str, BaseException | None]:
        """Return the true (status, error) of the training ending now with `error` (or None).

        A termination signal received since the run started gives ("interrupted",
        `Signal(<name>)`) whatever exception it became; KeyboardInterrupt (and SystemExit
        with code 0 or None) gives "interrupted"; another exception "failed"; None
        "completed".
        """
        run = self._run
        start = run.start_time if run is not None else 0.0
        return outcome(error, start)

    def close(self, error: BaseException | None = None) -> str | None:
        """End the training: finish the run with its true status when this owner started it.

        A given or adopted run is left running for its owner. A run that already ended (the
        core's SIGTERM handler got there first) keeps its status. Never raises.

        Args:
            error: the exception that ended the training, or None when it completed.

        Returns:
            The status the training ended with, or None when there is no run.
        """
        run = self._run
        if run is None:
            return None
        status, error = self.outcome(error)
        if self._owns:
            self._owns = False
            try:
                run.finish(status, error=error)
            except Exception as exc:  # finishing must never raise into training
                self._warn_once("finish", "could not finish the run (%s: %s)", exc)
        return status
