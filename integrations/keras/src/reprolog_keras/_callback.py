"""`ReprologCallback`: a Keras 3 callback that records a whole ``fit()`` into a reprolog run."""

from __future__ import annotations

import contextlib
import sys
import threading
import weakref
from collections.abc import Mapping
from typing import Any

import keras

import reprolog
from reprolog_keras import _autolog, _describe, _fitargs, _steps
from reprolog_keras._checkpoints import CheckpointWatcher

BATCH_PREFIX = "batch/"
BATCH_SUFFIX = "_running_mean"


class ReprologCallback(keras.callbacks.Callback):  # type: ignore[misc]  # keras is untyped
    """Record a Keras ``fit()``: params, metrics, checkpoints, seeds, data and the final status.

    Per-epoch values go under Keras's own names (``loss``, ``val_loss``, ...) plus
    ``learning_rate``. Every ``log_every_n_batches`` batches, the values Keras reports for the
    batch go under ``batch/<name>_running_mean``: Keras reports the mean since the start of the
    epoch, not the batch's own value. Steps count optimizer steps from the start of the fit.

    Args:
        run: a run to record into; it is left open (the caller owns it). None: record into the
            run you have open (``reprolog.active_run()``) when there is one and no
            ``init_kwargs`` are given, with this callback's params under ``keras.``; else
            start a run at train begin and finish it with the true status (the policy of
            ``reprolog.RunOwner``).
        log_every_n_batches: record batch values every N batches; 0 records none.
        log_model: save the trained model as a ``.keras`` artifact at train end.
        step_fingerprints: per-step fingerprints of each batch (torch backend), the RNG
            states and, every K steps, the weights, kept in the run's ``steps.parquet`` for
            ``reprolog diff``. None: ``$REPROLOG_STEP_FINGERPRINTS``, else on with K = 100;
            False: off; an int: K.
        **init_kwargs: passed to ``reprolog.init`` when this callback starts the run.

    Raises:
        ArgumentError: ``log_every_n_batches`` is not a non-negative int.

    Example:
        >>> model.fit(x, y, epochs=3, callbacks=[ReprologCallback()])  # doctest: +SKIP
    """

    # Keras dispatches batch-end hooks on worker threads when every callback allows it, which
    # keeps the training loop from waiting on each batch's values. This callback only reads
    # its arguments and appends to the run (thread-safe), so it allows it.
    async_safe = True

    def __init__(
        self,
        run: reprolog.Run | None = None,
        *,
        log_every_n_batches: int = 50,
        log_model: bool = False,
        step_fingerprints: bool | int | None = None,
        **init_kwargs: Any,
    ) -> None:
        super().__init__()
        self._fp_every = reprolog.RunOwner.check_step_fingerprints(step_fingerprints)
        if (
            isinstance(log_every_n_batches, bool)
            or not isinstance(log_every_n_batches, int)
            or log_every_n_batches < 0
        ):
            raise reprolog.ArgumentError(
                "log_every_n_batches must be a non-negative int (0 turns batch values off), "
                f"got {log_every_n_batches!r}"
            )
        self._owner = reprolog.RunOwner("keras", run, init_kwargs)
        self._every = log_every_n_batches
        self._log_model = bool(log_model)
        self._run: reprolog.Run | None = None
        self._in_fit = False
        self._fit_serial = 0
        # Set by the zero-code wrapper of Model.fit for the duration of one call.
        self._fit_arguments: Mapping[str, Any] | None = None
        self._lock = threading.Lock()
        self._epoch = 0
        self._epoch_start_step = 0
        self._epoch_batches = 0
        self._step = 0
        self._last_logs: dict[str, Any] = {}
        self._checkpoints: CheckpointWatcher | None = None
        # `reprolog reproduce --steps N`: batches begun in this fit, and the limit.
        self._fit_step = 0
        self._step_limit: int | None = None
        self._steps_per_call = 1
        self._trace = _steps.StepTrace()

    @property
    def run(self) -> reprolog.Run | None:
        """The run of the current (or last) fit; None before the first fit begins."""
        return self._run

    # ------------------------------------------------------------------ hooks

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Open or attach to the run and record everything known before the first batch."""
        # The CallbackList calling this hook: its callbacks are the fit's, and it lives exactly
        # as long as the fit call (see _watch_fit_scope).
        caller = sys._getframe(1).f_locals.get("self")
        if self._in_fit:
            self._end(RuntimeError(_UNENDED))
        run = self._open_run()
        # After open, so that a bad limit lands in the capture report; with no run too.
        self._fit_step = 0
        self._step_limit = self._owner.guard("step limit", lambda: self._owner.max_steps)
        # A batch hook call covers steps_per_execution steps (always 1 on the torch backend).
        self._steps_per_call = int(getattr(self.model, "steps_per_execution", 1) or 1)
        if run is None:
            return
        self._in_fit = True
        self._fit_serial += 1
        self._epoch_start_step = self._step = self._epoch_batches = 0
        self._last_logs = {}
        self._guard("model", self._capture_model)
        self._guard("fit arguments", self._capture_fit)
        self._guard("seed", self._capture_seed)
        siblings = list(getattr(caller, "callbacks", None) or [])
        self._guard("callbacks", lambda: self._capture_callbacks(siblings))
        self._guard("fit scope", lambda: self._watch_fit_scope(caller))
        self._guard("step fingerprints", lambda: self._trace.open(run, self.model, self._fp_every))

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Start counting the epoch's batches; record checkpoints saved after our last look."""
        if self._run is None or not self._in_fit:
            return
        if self._checkpoints:
            self._guard("checkpoints", self._scan_checkpoints)
        self._epoch = epoch
        self._epoch_start_step = self._step
        self._epoch_batches = 0

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Fingerprint the step about to run; stop the fit after the step limit's last batch.

        Keras calls this synchronously, right before the batch's train step.
        """
        if self._trace.fp is not None:
            try:  # the guard inlined: this runs at every batch
                self._trace.begin(self._fit_step, self._epoch)
            except Exception as exc:
                self._owner.report("step fingerprints", exc)
        self._fit_step += self._steps_per_call
        limit = self._step_limit
        if limit is not None and self._fit_step >= limit:
            # Keras checks this flag right after the batch: exactly `limit` batches run.
            self.model.stop_training = True

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Record the epoch's running means every N batches (may run on a Keras worker thread)."""
        done = batch + 1
        with self._lock:
            if done > self._epoch_batches:
                self._epoch_batches = done
        run = self._run
        if not self._every or not self._in_fit or run is None or not logs:
            return
        step = self._epoch_start_step + done
        if step % self._every:
            return
        try:
            values = {
                f"{BATCH_PREFIX}{key}{BATCH_SUFFIX}": value
                for key, value in logs.items()
                if _is_number(value)
            }
            run.log(values, step=step, epoch=self._epoch)
        except Exception as exc:
            self._owner.report("batch metrics", exc)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Record the epoch's values (``val_*`` and the learning rate included) and checkpoints."""
        run = self._run
        if run is None or not self._in_fit:
            return
        # Keras has waited for every batch-end hook of the epoch before calling this one.
        self._step = self._epoch_start_step + self._epoch_batches
        self._last_logs = dict(logs or {})
        try:
            values = {key: value for key, value in self._last_logs.items() if _is_number(value)}
            if "learning_rate" not in values:
                lr = _learning_rate(self.model)
                if lr is not None:
                    values["learning_rate"] = lr
            run.log(values, step=self._step, epoch=epoch)
        except Exception as exc:
            self._owner.report("epoch metrics", exc)
        if self._checkpoints:
            self._guard("checkpoints", self._scan_checkpoints)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        """Record the last checkpoints and the model; finish the run if this callback owns it."""
        if self._run is None or not self._in_fit:
            return
        if self._checkpoints:
            self._guard("checkpoints", self._scan_checkpoints)
        if self._log_model:
            self._guard("final model", self._save_model)
        self._guard("fit result", self._capture_result)
        self._end(None)

    # ------------------------------------------------------------------ failure paths

    def _fit_raised(self, error: BaseException) -> None:
        """End the run with the exception that stopped ``fit`` (called by the fit wrapper)."""
        if self._in_fit:
            self._end(error)

    def _fit_scope_ended(self, serial: int) -> None:
        # The fit's CallbackList was freed: fit is over. If on_train_end never came, fit raised
        # and Keras told no callback. Without the zero-code wrapper the exception itself is not
        # visible here; an uncaught one was already recorded by the core's excepthook.
        if self._in_fit and serial == self._fit_serial:
            self._end(RuntimeError(_UNENDED))

    def _end(self, error: BaseException | None) -> None:
        self._in_fit = False
        self._trace.close()
        if self._run is not None:
            self._owner.close(error)  # finishes only a run this callback started

    # ------------------------------------------------------------------ capture steps

    def _open_run(self) -> reprolog.Run | None:
        self._run = self._owner.open()
        return self._run

    def _capture_model(self) -> None:
        assert self._run is not None
        model = self.model
        params, section = _describe.describe_model(model)
        self._owner.log_params({"model": params})
        self._owner.log_params(_describe.describe_compile(model))
        self._run.update_section(
            "keras",
            {
                **_describe.keras_facts(),
                "model": section,
                "async_safe": self.async_safe,
                "step_limit": self._step_limit,
            },
        )

    def _capture_fit(self) -> None:
        assert self._run is not None
        arguments = self._fit_arguments
        source = "fit wrapper"
        if arguments is None:
            # Without the zero-code wrapper, read the running fit's arguments from its frame.
            arguments = _fitargs.arguments_from_fit_frame(self.model)
            source = "fit frame"
        if arguments is not None:
            fit = _fitargs.fit_params(arguments)
            if fit.get("steps_per_epoch") is None:  # Keras knows it once the data is adapted
                fit["steps_per_epoch"] = (self.params or {}).get("steps")
            self._owner.log_params({"fit": fit})
            self._run.update_section(
                "keras",
                {
                    "fit_wrapped": source == "fit wrapper",
                    "fit_arguments_from": source,
                    "unseen": {},
                },
            )
            for name, obj in _fitargs.datasets(arguments):
                self._guard(f"data {name}", lambda n=name, o=obj: self._log_data(n, o))
            return
        params = self.params or {}
        self._owner.log_params(
            {"fit": {"epochs": params.get("epochs"), "steps_per_epoch": params.get("steps")}}
        )
        self._run.update_section(
            "keras",
            {
                "fit_wrapped": False,
                "unseen": {**_fitargs.UNSEEN_WITHOUT_WRAPPER, "how_to_see": _fitargs.HOW_TO_SEE},
            },
        )

    def _log_data(self, name: str, obj: Any) -> None:
        assert self._run is not None
        self._run.log_dataset(name, obj, context={"source": "keras.Model.fit"})

    def _capture_seed(self) -> None:
        assert self._run is not None
        seed = _autolog.keras_random_seed()
        self._run.update_section(
            "seeds",
            {"keras_set_random_seed": seed if seed is not None else "not called in this process"},
        )

    def _capture_callbacks(self, siblings: list[Any]) -> None:
        assert self._run is not None
        names = [type(cb).__name__ for cb in siblings if cb is not self]
        self._run.update_section("keras", {"callbacks": names})
        watcher = CheckpointWatcher(siblings)
        self._checkpoints = watcher if watcher else None

    def _watch_fit_scope(self, caller: Any) -> None:
        if isinstance(caller, keras.callbacks.CallbackList) and self in caller.callbacks:
            # A strong reference: when the fit's frames die in a garbage cycle, a weak one to
            # this callback would be cleared before the finalizer runs.
            weakref.finalize(caller, _scope_ended, self, self._fit_serial)

    def _scan_checkpoints(self) -> None:
        assert self._run is not None and self._checkpoints is not None
        self._checkpoints.scan(self._run, step=self._step, epoch=self._epoch, logs=self._last_logs)

    def _save_model(self) -> None:
        assert self._run is not None
        path = self._run.dir / "keras" / "model.keras"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.model.save(path)
        self._run.log_artifact(path, kind="model", step=self._step, metadata={"format": "keras"})

    def _capture_result(self) -> None:
        assert self._run is not None
        self._run.update_section(
            "keras",
            {
                "result": {
                    "steps": self._step,
                    "last_epoch": self._epoch,
                    "stopped_early": bool(getattr(self.model, "stop_training", False)),
                }
            },
        )

    # ------------------------------------------------------------------ helpers

    def _guard(self, what: str, step: Any) -> None:
        self._owner.guard(what, step)


_UNENDED = "fit() raised before on_train_end; Keras does not pass the exception to callbacks"


def _scope_ended(callback: ReprologCallback, serial: int) -> None:
    with contextlib.suppress(Exception):  # a finalizer has nowhere to raise to
        callback._fit_scope_ended(serial)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _learning_rate(model: Any) -> float | None:
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return None
    try:
        rate = optimizer.learning_rate
        # A keras Variable: read its backend tensor (numpy conversion of the Variable warns).
        return float(getattr(rate, "value", rate))
    except (TypeError, ValueError, AttributeError, RuntimeError):
        return None


# Installed at import: a fit that raises ends its run at once, autolog or not.
_autolog.install()
