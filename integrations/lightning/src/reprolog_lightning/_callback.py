"""ReprologCallback: maps Lightning's hooks onto one reprolog run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import reprolog
from reprolog_lightning import _facts, _metrics, _namespace, _ranks, _steps
from reprolog_lightning._checkpoints import CheckpointCapture

if TYPE_CHECKING:
    from reprolog import Run
    from reprolog_lightning._ranks import MetricSink


class ReprologCallback(CheckpointCapture):
    """Record a whole Lightning training in one reprolog run.

    Add it to the Trainer; with `lightning.pytorch` and with `pytorch_lightning` alike. It
    records hyperparameters, Trainer and optimizer settings, every logged metric at every
    training step, learning rates, checkpoints, seeds, data fingerprints and the final status.

    Args:
        run: a run you started with `reprolog.init`; the callback logs into it and leaves
            finishing it to you. When None and no `init_kwargs` are given, the run you have
            open (`reprolog.active_run()`) is used the same way, with the callback's params
            under `lightning.`; otherwise the callback starts a run at the start of each
            `fit`/`validate`/`test` and finishes it with the true status.
        every_n_steps: record training step values every this many steps (1 = every step,
            the default, whatever the Trainer's `log_every_n_steps` says).
        all_ranks: under DDP (or any multi-process strategy), also keep the metrics of the
            other ranks: each records the values it logs, the same way rank 0 does, into the
            one run, and the metrics table gains a `rank` column. False (the default) keeps
            rank 0's values only, as Lightning's loggers do, and adds no collective call.
        step_fingerprints: per-step fingerprints of each optimizer step's batch (as it
            reaches the module), RNG states, and of the weights and gradients every K steps,
            kept in the run's ``steps.parquet`` (per rank with ``all_ranks=True``) for
            ``reprolog diff``. None: ``$REPROLOG_STEP_FINGERPRINTS``, else on with K = 100;
            False: off; an int: on with that K.
        **init_kwargs: passed to `reprolog.init` when the callback starts the run
            (`name`, `experiment`, `dir`, `tags`, `params`, `capture`).

    Raises:
        ArgumentError: `every_n_steps` is not a positive integer, `all_ranks` is not a bool,
            or `run` is not a Run.

    Example:
        >>> trainer = Trainer(callbacks=[ReprologCallback(experiment="mnist")])  # doctest: +SKIP
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> ReprologCallback:
        # The public class carries no Lightning base; each instance is made from a subclass
        # that is also the `Callback` of the namespace(s) in use, which Trainers check.
        if cls is ReprologCallback:
            cls = for_namespaces(_namespace.default_namespaces())
        return super().__new__(cls)

    def __init__(
        self,
        run: Run | None = None,
        *,
        every_n_steps: int = 1,
        all_ranks: bool = False,
        step_fingerprints: bool | int | None = None,
        **init_kwargs: Any,
    ) -> None:
        if (
            isinstance(every_n_steps, bool)
            or not isinstance(every_n_steps, int)
            or every_n_steps < 1
        ):
            raise reprolog.ArgumentError(
                "every_n_steps must be a positive int (1 records every step); "
                f"got {every_n_steps!r}"
            )
        if not isinstance(all_ranks, bool):
            raise reprolog.ArgumentError(f"all_ranks must be True or False; got {all_ranks!r}")
        self._fp_every = reprolog.RunOwner.check_step_fingerprints(step_fingerprints)
        super().__init__(run, init_kwargs)
        self.every_n_steps = every_n_steps
        self.all_ranks = all_ranks
        self._autolog = False
        # Where metric points go: the run on rank 0, a rank writer on other ranks, or None.
        self._sink: MetricSink | None = None
        self._rank_writer: Any = None
        # True on every rank once rank 0's run was shared: each must then meet at teardown.
        self._ranks_meet = False
        self._lr: dict[str, float] = {}
        self._lr_groups: list[tuple[str, Any]] | None = None
        # None until known for this fit: False when no batch can only accumulate gradients.
        self._may_accumulate: bool | None = None
        self._step: int = 0
        self._last_train_step: int | None = None
        # Per result key, the name its step value goes under (see _metrics.step_metrics).
        self._names: dict[str, tuple[Any, str | None]] = {}
        self._val_data_done = False
        self._loaders: dict[str, Any] = {}
        self._step_limit: int | None = None
        self._trace = _steps.StepTrace()

    # -- lifecycle ---------------------------------------------------------------------------

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Start (or attach to) the run and record the static facts of this Trainer."""
        self._trainer = trainer
        self._writer = False
        self._sink = None
        self._close_rank_writer()
        self._step_limit = None
        if self._autolog and _user_callback_present(trainer, self):
            self.active = False  # zero-code mode yields to a callback the user added
            return
        # The same answer on every rank, so either all ranks take part in the sharing or none.
        share = self.all_ranks and _ranks.distributed(trainer)
        if not getattr(trainer, "is_global_zero", True):
            self.active = False  # one run per job: only global rank 0 writes the record
            self._apply_step_limit(trainer, stage)  # every rank stops at the same step
            if share:
                self._join_run(trainer)
            return
        opened = self.open_run()
        self._apply_step_limit(trainer, stage)  # after open: a bad limit lands in the report
        if share:  # also when no run could be opened: the other ranks wait for an answer
            self._ranks_meet = _ranks.share_run(trainer, self.run if opened else None) is not None
        if not opened:
            return
        self.active = True
        self._writer = True
        self._reset_metric_state()
        self._sink = self.run
        self._val_data_done = False
        self._loaders = {}
        self._guard("trainer hooks", self._install, trainer)
        self._guard("trainer config", self._record_setup, trainer, pl_module, stage)

    def _apply_step_limit(self, trainer: Any, stage: str) -> None:
        if stage == "fit":
            self._step_limit = self._guard("step limit", _steps.limit_steps, trainer, self._owner)

    def _reset_metric_state(self) -> None:
        self._lr = {}
        self._lr_groups = None
        self._may_accumulate = None
        self._last_train_step = None
        self._names = {}

    def _join_run(self, trainer: Any) -> None:
        # A rank other than 0 in all_ranks mode: open a writer on the run rank 0 shares.
        shared = _ranks.share_run(trainer, None)
        if shared is None:
            return
        self._ranks_meet = True  # rank 0 waits at teardown whether or not attach works here
        writer = _ranks.open_writer(shared, int(trainer.global_rank), self._reported)
        if writer is None:
            return
        self._rank_writer = writer
        self._reset_metric_state()
        self._sink = writer
        self._guard("trainer hooks", _metrics.wrap_log_metrics, trainer, self._on_logger_metrics)

    def _close_rank_writer(self) -> None:
        writer, self._rank_writer = self._rank_writer, None
        if writer is not None:
            self._sink = None
            self._guard("rank writer", writer.close)

    def _install(self, trainer: Any) -> None:
        self._checkpoints.install(trainer)
        _metrics.wrap_log_metrics(trainer, self._on_logger_metrics)

    def _record_setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        run = self.run
        assert run is not None
        params: dict[str, Any] = {"trainer": _facts.trainer_config(trainer)}
        if trainer.datamodule is not None:
            params["data"] = _facts.datamodule_facts(trainer.datamodule)
        self.log_params(params)
        ns = _namespace.namespace_of(trainer)
        root = _namespace.root(ns) if ns else None
        run.update_section(
            "lightning",
            {
                "namespace": ns,
                "version": getattr(root, "__version__", None),
                "stage": stage,
                "world_size": getattr(trainer, "world_size", 1),
                "every_n_steps": self.every_n_steps,
                "all_ranks": self.all_ranks,
                "autolog": self._autolog,
                "step_limit": self._step_limit if stage == "fit" else None,
            },
        )
        run.update_section("seeds", {"lightning": _facts.lightning_seed()})
        run.update_section("determinism", {"torch": _facts.torch_determinism()})

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        """Record the model (counts and hparams), once its parameters exist."""
        if self.active:
            self._guard("model", self._record_model, pl_module)

    def _record_model(self, pl_module: Any) -> None:
        self.log_params({"model": _facts.model_facts(pl_module)})

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Record optimizers, schedulers and the training data; start the step fingerprints."""
        self._trace.close()
        if self._sink is not None:  # rank 0, or another rank in all_ranks mode
            self._guard(
                "step fingerprints", self._trace.open, self._sink, pl_module, self._fp_every
            )
        if not self.active:
            return
        self._guard("optimizers", self._record_optimizers, trainer)
        self._guard("train data", self._record_data, trainer, "train", trainer.train_dataloader)

    def _record_optimizers(self, trainer: Any) -> None:
        self.log_params(
            {
                "optimizer": _facts.optimizer_facts(trainer.optimizers),
                "lr_scheduler": _facts.scheduler_facts(trainer.lr_scheduler_configs),
            }
        )

    def _record_data(self, trainer: Any, name: str, loader_obj: Any) -> None:
        run = self.run
        assert run is not None
        loaders = _facts.loaders(loader_obj)
        if not loaders:
            return
        facts = [_facts.dataloader_facts(loader) for loader in loaders]
        batch = facts[0]["batch_size"]
        if name == "train" and batch is not None:
            self.log_params({"data": {"batch_size": batch}})
        for index, loader in enumerate(loaders):
            key = name if len(loaders) == 1 else f"{name}/{index}"
            dataset = getattr(loader, "dataset", None)
            if dataset is not None:
                self._guard(f"{key} dataset", run.log_dataset, key, dataset)
        # The core merges sections one level deep: resend every loader seen so far.
        self._loaders[name] = facts if len(facts) > 1 else facts[0]
        run.update_section("data", {"dataloaders": dict(self._loaders)})

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        """Record the validation data the first time a real (not sanity) validation runs."""
        if self.active and not trainer.sanity_checking and not self._val_data_done:
            self._val_data_done = True
            self._guard("val data", self._record_data, trainer, "val", trainer.val_dataloaders)

    def on_test_start(self, trainer: Any, pl_module: Any) -> None:
        """Record the test data."""
        if self.active:
            self._guard("test data", self._record_data, trainer, "test", trainer.test_dataloaders)

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Bring checkpoint flags up to date; finish the run when the callback started it.

        In all_ranks mode every rank first closes its writer and then all ranks meet, so that
        rank 0 finishes the run only once the other ranks' points are in.
        """
        if self.active:
            self._guard("checkpoint flags", self._reconcile_checkpoints, trainer)
        self._sink = None
        self._trace.close()
        self._close_rank_writer()
        if self._ranks_meet:
            self._ranks_meet = False
            _ranks.meet(trainer)
        if not self.active:
            return
        self.active = False
        self.close_run(None)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """Finish the run as interrupted (Ctrl+C, SIGTERM) or failed, with the exception."""
        # No collective here: the other ranks may never reach one. A rank's points logged
        # after rank 0 finished are lost.
        self._ranks_meet = False
        self._sink = None
        self._trace.close()
        self._close_rank_writer()
        if not self.active:
            return
        self._guard("checkpoint flags", self._reconcile_checkpoints, trainer)
        self.active = False
        # The core's rule: a SIGTERM (Lightning's SIGTERMException) ends it "interrupted"
        # with the Signal record, the same as in a plain script.
        self.close_run(exception)

    # -- metrics -----------------------------------------------------------------------------

    def on_train_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        """Note the learning rates this batch trains with; fingerprint the step's inputs."""
        if self._sink is not None:
            self._guard("learning rates", self._read_lr, trainer)
        if self._trace.fp is not None:
            try:  # the guard inlined: this runs at every batch
                self._trace.batch(trainer, batch)
            except Exception as exc:
                self._owner.report("step fingerprints", exc)

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        """Fingerprint the gradients (every K steps) before the optimizer applies them."""
        fp = self._trace.fp
        if fp is not None:
            try:
                fp.grads()
            except Exception as exc:
                self._owner.report("step fingerprints", exc)

    def _read_lr(self, trainer: Any) -> None:
        groups = self._lr_groups
        if groups is None:
            optimizers = trainer.optimizers
            groups = self._lr_groups = [
                (key, group)
                for keys, optimizer in zip(_facts.lr_keys(optimizers), optimizers, strict=False)
                for key, group in zip(keys, optimizer.param_groups, strict=False)
            ]
        lr = self._lr
        for key, group in groups:
            lr[key] = group["lr"]

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Record this step's logged values and learning rates (every step by default)."""
        sink = self._sink
        if sink is not None:
            try:  # the guard inlined: this runs at every step
                self._record_step(trainer, sink, outputs)
            except Exception as exc:
                self._owner.report("step metrics", exc)

    def _record_step(self, trainer: Any, sink: MetricSink, outputs: Any) -> None:
        # This runs at every training step: anything constant within a fit is computed once.
        if self._may_accumulate is None:
            self._may_accumulate = _metrics.may_accumulate(trainer)
        if self._may_accumulate and _metrics.accumulating(trainer):
            return
        step = _metrics.logger_step(trainer)
        self._last_train_step = step
        if step % self.every_n_steps:
            return
        values = _metrics.step_metrics(trainer, self._names)
        values.pop("step", None)
        loss = _metrics.returned_loss(outputs)
        if loss is not None:
            values[_metrics.RETURNED_LOSS] = loss
        values = _metrics.to_floats(values)
        if loss is not None:
            returned = values[_metrics.RETURNED_LOSS]
            # The module logged this very value itself (`self.log("loss", loss)`): one curve.
            if any(v == returned for k, v in values.items() if k != _metrics.RETURNED_LOSS):
                del values[_metrics.RETURNED_LOSS]
        values.update(self._lr)
        if values:
            sink.log(values, step=step, epoch=trainer.current_epoch)

    def _on_logger_metrics(self, metrics: Any, step: int | None) -> None:
        # Epoch, validation and test values: whatever Lightning hands its loggers.
        trainer, sink = self._trainer, self._sink
        if sink is None or trainer is None or not metrics:
            return
        self._guard("logged metrics", self._record_logged, trainer, metrics, step, sink)

    def _record_logged(
        self, trainer: Any, metrics: Any, step: int | None, sink: MetricSink
    ) -> None:
        if trainer.sanity_checking or _metrics.in_train_step(trainer):
            return  # sanity values are not results; train steps come from on_train_batch_end
        values, at = _metrics.resolve_step(trainer, metrics, step)
        if values:
            sink.log(values, step=at, epoch=trainer.current_epoch)


def _user_callback_present(trainer: Any, me: ReprologCallback) -> bool:
    return any(
        isinstance(cb, ReprologCallback) and cb is not me and not cb._autolog
        for cb in trainer.callbacks
    )


def for_namespaces(namespaces: tuple[str, ...]) -> type[ReprologCallback]:
    """Return the ReprologCallback class that is a `Callback` of each given namespace.

    Args:
        namespaces: a subset of ("lightning.pytorch", "pytorch_lightning").

    Returns:
        The (cached) class.

    Raises:
        ArgumentError: no namespace given, or one that is not a Lightning namespace.
    """
    unknown = [ns for ns in namespaces if ns not in _namespace.NAMESPACES]
    if not namespaces or unknown:
        raise reprolog.ArgumentError(
            f"no usable Lightning namespace: got {list(namespaces)!r}; "
            f"install `lightning` or `pytorch-lightning` (accepted: {list(_namespace.NAMESPACES)})"
        )
    return _namespace.build_class(ReprologCallback, namespaces)


def __getattr__(name: str) -> Any:
    # Lets pickle find the per-namespace classes by their published qualname.
    for count in (1, 2):
        for combo in _combos(count):
            if name == _namespace.class_name(combo):
                return for_namespaces(combo)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _combos(count: int) -> list[tuple[str, ...]]:
    names = _namespace.NAMESPACES
    return [(n,) for n in names] if count == 1 else [names]
