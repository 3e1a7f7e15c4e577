"""ReprologCallback: maps Lightning's hooks onto one reprolog run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import reprolog
from reprolog_lightning import _checkpoints, _facts, _metrics, _namespace
from reprolog_lightning._capture import Capture

if TYPE_CHECKING:
    from reprolog import Run


class ReprologCallback(Capture):
    """Record a whole Lightning training in one reprolog run.

    Add it to the Trainer; with `lightning.pytorch` and with `pytorch_lightning` alike. It
    records hyperparameters, Trainer and optimizer settings, every logged metric at every
    training step, learning rates, checkpoints, seeds, data fingerprints and the final status.

    Args:
        run: a run you started with `reprolog.init`; the callback logs into it and leaves
            finishing it to you. When None, the callback starts a run at the start of each
            `fit`/`validate`/`test` and finishes it with the true status.
        every_n_steps: record training step values every this many steps (1 = every step,
            the default, whatever the Trainer's `log_every_n_steps` says).
        **init_kwargs: passed to `reprolog.init` when the callback starts the run
            (`name`, `experiment`, `dir`, `tags`, `params`, `capture`).

    Raises:
        ArgumentError: `every_n_steps` is not a positive integer, or `run` is not a Run.

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
        self, run: Run | None = None, *, every_n_steps: int = 1, **init_kwargs: Any
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
        if run is not None and not callable(getattr(run, "log", None)):
            raise reprolog.ArgumentError(
                f"run must be a reprolog Run from reprolog.init(); got {type(run).__name__}"
            )
        super().__init__(run, init_kwargs)
        self.every_n_steps = every_n_steps
        self._autolog = False
        self._writer = False
        self._lr: dict[str, float] = {}
        self._lr_groups: list[tuple[str, Any]] | None = None
        # None until known for this fit: False when no batch can only accumulate gradients.
        self._may_accumulate: bool | None = None
        self._step: int = 0
        self._last_train_step: int | None = None
        self._val_data_done = False
        self._loaders: dict[str, Any] = {}
        self._checkpoints = _checkpoints.CheckpointTracker(self._on_saved, self._on_removed)

    # -- lifecycle ---------------------------------------------------------------------------

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Start (or attach to) the run and record the static facts of this Trainer."""
        self._trainer = trainer
        self._writer = False
        if self._autolog and _user_callback_present(trainer, self):
            self.active = False  # zero-code mode yields to a callback the user added
            return
        if not getattr(trainer, "is_global_zero", True):
            self.active = False  # one run per job: only global rank 0 writes
            return
        if not self.open_run(autolog=self._autolog):
            return
        self.active = True
        self._writer = True
        self._lr_groups = None
        self._may_accumulate = None
        self._val_data_done = False
        self._loaders = {}
        self._guard("trainer hooks", self._install, trainer)
        self._guard("trainer config", self._record_setup, trainer, pl_module, stage)

    def _install(self, trainer: Any) -> None:
        self._checkpoints.install(trainer)
        _metrics.wrap_log_metrics(trainer, self._on_logger_metrics)

    def _record_setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        run = self.run
        assert run is not None
        params: dict[str, Any] = {"trainer": _facts.trainer_config(trainer)}
        if trainer.datamodule is not None:
            params["data"] = _facts.datamodule_facts(trainer.datamodule)
        run.log_params(params)
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
                "autolog": self._autolog,
            },
        )
        run.update_section("seeds", {"lightning": _facts.lightning_seed()})
        run.update_section("determinism", {"torch": _facts.torch_determinism()})

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        """Record the model (counts and hparams), once its parameters exist."""
        if self.active:
            self._guard("model", self._record_model, pl_module)

    def _record_model(self, pl_module: Any) -> None:
        assert self.run is not None
        self.run.log_params({"model": _facts.model_facts(pl_module)})

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Record optimizers, schedulers and the training data."""
        if not self.active:
            return
        self._guard("optimizers", self._record_optimizers, trainer)
        self._guard("train data", self._record_data, trainer, "train", trainer.train_dataloader)

    def _record_optimizers(self, trainer: Any) -> None:
        assert self.run is not None
        self.run.log_params(
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
            run.log_params({"data": {"batch_size": batch}})
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
        """Bring checkpoint flags up to date; finish the run when the callback started it."""
        if not self.active:
            return
        self._guard("checkpoint flags", self._reconcile_checkpoints, trainer)
        self.active = False
        self.close_run("completed")

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """Finish the run as interrupted (Ctrl+C, SIGTERM) or failed, with the exception."""
        if not self.active:
            return
        self._guard("checkpoint flags", self._reconcile_checkpoints, trainer)
        self.active = False
        sigterm = bool(getattr(trainer, "received_sigterm", False))
        interrupted = isinstance(exception, KeyboardInterrupt) or sigterm
        self.close_run("interrupted" if interrupted else "failed", exception)

    # -- metrics -----------------------------------------------------------------------------

    def on_train_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        """Note the learning rates this batch trains with (schedulers may step before its end)."""
        if self.active:
            self._guard("learning rates", self._read_lr, trainer)

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
        if self.active:
            self._guard("step metrics", self._record_step, trainer)

    def _record_step(self, trainer: Any) -> None:
        # This runs at every training step: anything constant within a fit is computed once.
        if self._may_accumulate is None:
            self._may_accumulate = _metrics.may_accumulate(trainer)
        if self._may_accumulate and _metrics.accumulating(trainer):
            return
        step = _metrics.logger_step(trainer)
        self._last_train_step = step
        if step % self.every_n_steps:
            return
        values = _metrics.step_metrics(trainer)
        values.pop("step", None)
        values.update(self._lr)
        if values:
            assert self.run is not None
            self.run.log(values, step=step, epoch=trainer.current_epoch)

    def _on_logger_metrics(self, metrics: Any, step: int | None) -> None:
        # Epoch, validation and test values: whatever Lightning hands its loggers.
        trainer = self._trainer
        if not self.active or trainer is None or not metrics:
            return
        self._guard("logged metrics", self._record_logged, trainer, metrics, step)

    def _record_logged(self, trainer: Any, metrics: Any, step: int | None) -> None:
        if trainer.sanity_checking or _metrics.in_train_step(trainer):
            return  # sanity values are not results; train steps come from on_train_batch_end
        values, at = _metrics.resolve_step(trainer, metrics, step)
        if values:
            assert self.run is not None
            self.run.log(values, step=at, epoch=trainer.current_epoch)

    # -- checkpoints -------------------------------------------------------------------------

    def _writes_checkpoints(self) -> bool:
        # Also after teardown: `trainer.save_checkpoint` after fit lands in a run still open.
        run = self.run
        return self._writer and run is not None and run.status == "running"

    def _on_saved(self, path: str) -> None:
        if self._writes_checkpoints() and self._trainer is not None:
            self._guard("checkpoint", self._record_checkpoint, self._trainer, path)

    def _record_checkpoint(self, trainer: Any, path: str, linked: bool = False) -> None:
        run = self.run
        assert run is not None
        previous = self._checkpoints.entries.get(path)
        if previous is not None:  # the same path written again (e.g. last.ckpt): keep history
            run.update_artifact(
                previous.artifact_id, metadata={"overwritten": True, "best": False, "last": False}
            )
        meta = _checkpoints.describe(trainer, path)
        if linked:
            meta["link"] = True
        art_id = run.log_artifact(path, kind="checkpoint", step=meta["global_step"], metadata=meta)
        flags: dict[str, Any] = {k: meta[k] for k in ("best", "last") if k in meta}
        self._checkpoints.entries[path] = _checkpoints._Entry(art_id, flags)
        self._reconcile_checkpoints(trainer, skip=path)

    def _on_removed(self, path: str) -> None:
        if not self._writes_checkpoints() or self.run is None:
            return
        entry = self._checkpoints.entries.pop(path, None)
        if entry is not None:
            self._guard(
                "checkpoint removal",
                self.run.update_artifact,
                entry.artifact_id,
                metadata={"deleted": True, "best": False, "last": False},
            )

    def _reconcile_checkpoints(self, trainer: Any, skip: str | None = None) -> None:
        run = self.run
        if run is None:
            return
        for link in _checkpoints.last_links(trainer):
            if link not in self._checkpoints.entries:
                self._record_checkpoint(trainer, link, linked=True)
        for path, entry in self._checkpoints.entries.items():
            if path == skip:
                continue
            now = _checkpoints.current_flags(trainer, path)
            if now is not None and now != entry.flags:
                run.update_artifact(entry.artifact_id, metadata=dict(now))
                entry.flags = now


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
