"""``ReprologCallback``: maps the Hugging Face Trainer's events onto reprolog core calls."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

import reprolog
from reprolog_transformers import _facts, _steps
from reprolog_transformers._checkpoints import CheckpointTracker
from reprolog_transformers._patch import AUTO_ATTR, install_train_wrapper

if TYPE_CHECKING:
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from reprolog import Run

__all__ = ["ReprologCallback"]

_SECTION = "transformers"


class ReprologCallback(TrainerCallback):
    """Record a whole ``transformers.Trainer`` training into a reprolog run.

    Captures every ``TrainingArguments`` field, the model (class, config, parameter counts,
    PEFT and generation configs), the tokenizer/processor, seeds, dataset fingerprints and
    lengths, every ``on_log`` entry at its global step, each saved checkpoint folder (hashed
    off the training thread; best and rotated-away flags kept up to date) and the true end
    status of ``train()``. Only the world main process writes.

    Args:
        run: an existing run to record into. The user owns it: the callback never finishes it.
            None, with no ``init_kwargs``: the run you have open (``reprolog.active_run()``)
            is used the same way, with the callback's params under ``transformers.``.
        step_fingerprints: per-step fingerprints of each optimizer step's model inputs (every
            micro-batch), RNG states, and of the weights and gradients every K steps, kept in
            the run's ``steps.parquet`` for ``reprolog diff``. None:
            ``$REPROLOG_STEP_FINGERPRINTS``, else on with K = 100; False: off; an int: K.
        **init_kwargs: passed to ``reprolog.init`` when the callback starts its own run at the
            beginning of each ``train()`` call; that run is finished when ``train()`` returns
            (``completed``) or raises (``failed``, or ``interrupted`` for KeyboardInterrupt
            and SIGTERM).

    Raises:
        reprolog.ArgumentError: when both ``run`` and ``init_kwargs`` are given.

    Example:
        >>> trainer = Trainer(model, args, train_dataset=ds, callbacks=[ReprologCallback()])
        >>> trainer.train()
    """

    def __init__(
        self,
        run: Run | None = None,
        *,
        step_fingerprints: bool | int | None = None,
        **init_kwargs: Any,
    ) -> None:
        self._fp_every = reprolog.RunOwner.check_step_fingerprints(step_fingerprints)
        if run is not None and init_kwargs:
            raise reprolog.ArgumentError(
                f"ReprologCallback got run={run!r} and init arguments {sorted(init_kwargs)}; "
                "pass either an existing run or reprolog.init arguments, not both"
            )
        self._owner = reprolog.RunOwner("transformers", run, init_kwargs)
        self._run: Run | None = None
        self._closed = False  # True once this train() ended for the callback
        self._trainer: Any = None
        self._train_call: dict[str, Any] = {}
        self._in_wrapped_train = False
        self._checkpoints = CheckpointTracker()
        self._last_eval: dict[str, float] = {}
        self._epoch_logged_at = -1
        self._step_limit: int | None = None
        self._trace = _steps.StepTrace()
        setattr(self, AUTO_ATTR, False)
        # Without the wrapper a failed train() could not be told apart from a finished one.
        install_train_wrapper()

    # ---- helpers -------------------------------------------------------------------------
    @property
    def run(self) -> Run | None:
        """The run being recorded into (None before the first ``train()`` on the main process)."""
        return self._run

    def _live(self, state: TrainerState) -> bool:
        return self._run is not None and not self._closed and state.is_world_process_zero

    def _guard(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run one capture step; a failure is recorded on the run, never raised into training."""
        return self._owner.guard(what, fn, *args)

    # ---- train() wrapper events (see _patch.py) --------------------------------------------
    def _train_started(
        self, trainer: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> None:
        self._trainer = trainer
        self._in_wrapped_train = True
        resume = kwargs.get("resume_from_checkpoint", args[0] if args else None)
        self._train_call = {"resume_from_checkpoint": None if resume is False else resume}

    def _train_ended(self, exc: BaseException | None) -> None:
        self._in_wrapped_train = False
        run = self._run
        if run is None or self._closed or not self._is_main():
            return
        status, cause = self._owner.outcome(exc)
        if cause is not None and run.status == "running":
            self._guard(
                "train_status",
                run.update_section,
                _SECTION,
                {"train_status": status, "train_error": f"{type(cause).__name__}: {cause}"},
            )
        self._finish(exc)

    def _is_main(self) -> bool:
        trainer = self._trainer
        return trainer is None or bool(trainer.is_world_process_zero())

    def _finish(self, exc: BaseException | None) -> None:
        self._trace.close()
        if self._run is None or self._closed:
            return
        # A given or adopted run lives on (evaluate() after train() still records into it).
        self._closed = self._owner.owns
        self._owner.close(exc)  # finishes only a run this callback started

    # ---- Trainer events ------------------------------------------------------------------
    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if not state.is_world_process_zero:
            self._read_step_limit()  # every process stops at the same step
            return
        if self._run is not None and not self._closed:
            if self._owner.owns:
                return  # a retry inside the same train() (auto_find_batch_size): same run
        else:
            self._run = self._owner.open()
            if self._run is None:
                self._read_step_limit()
                return  # no run could be started: training goes on, uncaptured
            self._closed = False
            self._checkpoints = CheckpointTracker()
            self._last_eval, self._epoch_logged_at = {}, -1
        self._capture_start(args, state, kwargs)

    def _read_step_limit(self) -> None:
        self._step_limit = self._guard("step limit", lambda: self._owner.max_steps)

    def _capture_start(self, args: TrainingArguments, state: TrainerState, kw: Any) -> None:
        run = self._run
        assert run is not None
        self._read_step_limit()  # with the run open: a bad limit lands in its capture report
        trainer = self._trainer
        model = getattr(trainer, "model", None) or kw.get("model")
        processing = getattr(trainer, "processing_class", None) or kw.get("processing_class")
        g = self._guard
        log_params = self._owner.log_params
        g("training_args", lambda: log_params({"args": _facts.training_args_params(args)}))
        if model is not None:
            g("model", lambda: log_params(_facts.model_params(model)))
        g("tokenizer", lambda: self._log_tokenizer(processing))
        g("seeds", lambda: run.update_section("seeds", {_SECTION: _seed_facts(args)}))
        g("trainer", lambda: run.update_section(_SECTION, self._trainer_facts(args, state)))
        if model is not None:
            g("step fingerprints", self._trace.open, run, model, self._fp_every)
        self._log_datasets(run, trainer, kw)

    def _log_tokenizer(self, processing: Any) -> None:
        facts = _facts.tokenizer_params(processing)
        if facts:
            self._owner.log_params({"tokenizer": facts})

    def _trainer_facts(self, args: TrainingArguments, state: TrainerState) -> dict[str, Any]:
        import transformers

        trainer = self._trainer
        collator = getattr(trainer, "data_collator", None)
        return {
            "transformers_version": transformers.__version__,
            "trainer_class": _facts.qualname(trainer) if trainer is not None else None,
            "data_collator": _facts.qualname(collator) if collator is not None else None,
            "max_steps": state.max_steps,
            "num_train_epochs": state.num_train_epochs,
            "train_batch_size": state.train_batch_size,
            "world_size": args.world_size,
            "parallel_mode": str(getattr(args.parallel_mode, "value", args.parallel_mode)),
            "device": str(args.device),
            "step_limit": self._step_limit,
            **self._train_call,
        }

    def _log_datasets(self, run: Run, trainer: Any, kw: Mapping[str, Any]) -> None:
        train = getattr(trainer, "train_dataset", None)
        if trainer is None and kw.get("train_dataloader") is not None:
            # Without the train() wrapper only the dataloader's (column-pruned) dataset is known.
            train = getattr(kw["train_dataloader"], "dataset", None)
        items = _facts.dataset_items(train, "train")
        items += _facts.dataset_items(getattr(trainer, "eval_dataset", None), "eval")
        for name, dataset in items:
            self._guard(f"dataset.{name}", run.log_dataset, name, dataset)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if logs and self._run is not None and not self._closed and state.is_world_process_zero:
            try:  # _live and the guard inlined: this runs at every logging step
                self._log_metrics(logs, state)
            except Exception as exc:
                self._owner.report("log", exc)

    def _log_metrics(self, logs: Mapping[str, Any], state: TrainerState) -> None:
        assert self._run is not None
        values = _facts.numeric_logs(logs)
        step = state.global_step
        # Train and eval entries both carry "epoch": keep one point per step.
        if "epoch" in values:
            if self._epoch_logged_at == step:
                del values["epoch"]
            else:
                self._epoch_logged_at = step
        if values:
            self._run.log(values, step=step, epoch=_facts.epoch_index(state.epoch))

    def on_step_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self._trace.fp is not None:
            try:  # the guard inlined: this runs at every step
                self._trace.begin(state.global_step, state.epoch)
            except Exception as exc:
                self._owner.report("step fingerprints", exc)

    def on_pre_optimizer_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self._trace.fp is not None:
            try:
                self._trace.before_optimizer()
            except Exception as exc:
                self._owner.report("step fingerprints", exc)

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        # `reprolog reproduce --steps N`: every process stops after N optimizer steps, the
        # Trainer's own way (on_train_end runs and train() returns normally).
        limit = self._step_limit
        if limit is not None and state.global_step >= limit:
            control.should_training_stop = True

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # The values themselves arrive through on_log; keep them to score the next checkpoint.
        if metrics:
            self._last_eval = _facts.numeric_logs(metrics)

    def on_predict(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # Trainer.predict does not go through on_log, so its metrics are logged here.
        if metrics and self._live(state):
            self._guard("predict", self._log_metrics, metrics, state)

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if not self._live(state):
            return
        assert self._run is not None
        self._guard(
            "checkpoint",
            self._checkpoints.on_save,
            self._run,
            args.output_dir,
            state.global_step,
            state.epoch,
            state.best_model_checkpoint,
            self._score(args),
        )

    def _score(self, args: TrainingArguments) -> tuple[str, float] | None:
        name = args.metric_for_best_model
        if not name:
            return None
        key = name if name.startswith("eval_") else f"eval_{name}"
        value = self._last_eval.get(key)
        return None if value is None else (name, value)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if not self._live(state):
            return
        run = self._run
        assert run is not None
        # save_total_limit=1 with a best checkpoint deletes the others after the last on_save.
        self._guard(
            "checkpoint",
            self._checkpoints.refresh,
            run,
            state.global_step,
            state.best_model_checkpoint,
        )
        summary = {
            "global_step": state.global_step,
            "epoch": state.epoch,
            "best_model_checkpoint": state.best_model_checkpoint,
            "best_metric": state.best_metric,
            "best_global_step": state.best_global_step,
        }
        self._guard("train_end", run.update_section, _SECTION, summary)
        if not self._in_wrapped_train:
            # A Trainer subclass that bypasses Trainer.train: end here, the best we can do.
            self._finish(None)


def _seed_facts(args: TrainingArguments) -> dict[str, Any]:
    return {
        "seed": args.seed,
        "data_seed": args.data_seed,
        "full_determinism": args.full_determinism,
    }
