"""Pure readers that turn a Trainer, its module, optimizers and data into plain mappings."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

# Trainer settings worth recording, read through public properties or the Trainer's own fields.
_TRAINER_FIELDS = (
    "max_epochs",
    "min_epochs",
    "max_steps",
    "min_steps",
    "accumulate_grad_batches",
    "gradient_clip_val",
    "gradient_clip_algorithm",
    "limit_train_batches",
    "limit_val_batches",
    "limit_test_batches",
    "limit_predict_batches",
    "val_check_interval",
    "check_val_every_n_epoch",
    "num_sanity_val_steps",
    "log_every_n_steps",
    "num_nodes",
    "num_devices",
    "world_size",
    "precision",
    "fast_dev_run",
)

# Scheduler state entries that describe the schedule rather than its progress.
_SCHEDULER_PROGRESS = {"last_epoch", "_step_count", "_last_lr", "_get_lr_called_within_step"}


def qualname(obj: Any) -> str:
    """Return the importable dotted name of an object's class."""
    klass = obj if isinstance(obj, type) else type(obj)
    return f"{klass.__module__}.{klass.__qualname__}"


def plain(value: Any) -> Any:
    """Turn hparams (AttributeDict, Namespace, nested containers) into JSON-friendly mappings."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "__dict__") and type(value).__name__ == "Namespace":
        return plain(vars(value))
    return value


def trainer_config(trainer: Any) -> dict[str, Any]:
    """Return the Trainer settings that change what a training computes."""
    config: dict[str, Any] = {}
    for field in _TRAINER_FIELDS:
        if hasattr(trainer, field):
            config[field] = getattr(trainer, field)
    fit_loop = getattr(trainer, "fit_loop", None)
    if fit_loop is not None:
        config.setdefault("max_epochs", fit_loop.max_epochs)
        config.setdefault("max_steps", fit_loop.max_steps)
    strategy = getattr(trainer, "strategy", None)
    if strategy is not None:
        config["strategy"] = type(strategy).__name__
        accelerator = getattr(strategy, "accelerator", None)
        if accelerator is not None:
            config["accelerator"] = type(accelerator).__name__
    config["devices"] = getattr(trainer, "num_devices", None)
    config["deterministic"] = _accelerator_connector_flag(trainer, "deterministic")
    config["benchmark"] = _accelerator_connector_flag(trainer, "benchmark")
    return config


def _accelerator_connector_flag(trainer: Any, name: str) -> Any:
    # The Trainer keeps these constructor flags only on its accelerator connector.
    connector = getattr(trainer, "_accelerator_connector", None)
    return getattr(connector, name, None) if connector is not None else None


def model_facts(module: Any) -> dict[str, Any]:
    """Return the LightningModule's class, parameter counts and saved hparams."""
    params = list(module.parameters())
    facts: dict[str, Any] = {
        "class": qualname(module),
        "params_total": sum(p.numel() for p in params),
        "params_trainable": sum(p.numel() for p in params if p.requires_grad),
    }
    hparams = getattr(module, "hparams", None)
    if hparams:
        facts["hparams"] = plain(hparams)
    return facts


def datamodule_facts(datamodule: Any) -> dict[str, Any]:
    """Return the LightningDataModule's class and saved hparams."""
    facts: dict[str, Any] = {"class": qualname(datamodule)}
    hparams = getattr(datamodule, "hparams", None)
    if hparams:
        facts["hparams"] = plain(hparams)
    return facts


def optimizer_facts(optimizers: Iterable[Any]) -> dict[str, Any]:
    """Return each optimizer's class, defaults and the settings its param groups override."""
    out: dict[str, Any] = {}
    for index, optimizer in enumerate(optimizers):
        defaults = dict(getattr(optimizer, "defaults", {}))
        entry: dict[str, Any] = {"class": qualname(optimizer), **defaults}
        groups = getattr(optimizer, "param_groups", [])
        entry["param_groups"] = len(groups)
        for g, group in enumerate(groups):
            overrides = {
                k: v for k, v in group.items() if k != "params" and defaults.get(k, object()) != v
            }
            if overrides:
                entry[f"group{g}"] = overrides
        out[str(index)] = entry
    return out


def scheduler_facts(configs: Iterable[Any]) -> dict[str, Any]:
    """Return each LR scheduler's class, settings and Lightning stepping config."""
    out: dict[str, Any] = {}
    for index, config in enumerate(configs):
        scheduler = config.scheduler
        state = {}
        try:
            state = dict(scheduler.state_dict())
        except Exception:  # some schedulers cannot produce a state dict before stepping
            state = {}
        settings = {
            k: v
            for k, v in state.items()
            if k not in _SCHEDULER_PROGRESS and not k.startswith("_") and not callable(v)
        }
        out[str(index)] = {
            "class": qualname(scheduler),
            "interval": getattr(config, "interval", None),
            "frequency": getattr(config, "frequency", None),
            "monitor": getattr(config, "monitor", None),
            **settings,
        }
    return out


def lr_keys(optimizers: list[Any]) -> list[list[str]]:
    """Return a metric key per optimizer and param group, in LearningRateMonitor's style."""
    names = [type(opt).__name__ for opt in optimizers]
    keys: list[list[str]] = []
    for index, (optimizer, name) in enumerate(zip(optimizers, names, strict=True)):
        base = f"lr-{name}" if names.count(name) == 1 else f"lr-{name}-{names[:index].count(name)}"
        groups = getattr(optimizer, "param_groups", [])
        if len(groups) == 1:
            keys.append([base])
        else:
            keys.append([f"{base}/pg{g + 1}" for g in range(len(groups))])
    return keys


def dataloader_facts(loader: Any) -> dict[str, Any]:
    """Return a DataLoader's batch size, shuffle, sampler, drop_last and worker count."""
    sampler = getattr(loader, "sampler", None)
    batch_sampler = getattr(loader, "batch_sampler", None)
    batch_size = getattr(loader, "batch_size", None)
    if batch_size is None and batch_sampler is not None:
        batch_size = getattr(batch_sampler, "batch_size", None)
    inner = getattr(batch_sampler, "sampler", None) if batch_sampler is not None else None
    sampler_name = type(sampler).__name__ if sampler is not None else None
    # DistributedSampler carries its own shuffle flag; otherwise RandomSampler means shuffle.
    shuffle = getattr(sampler, "shuffle", None)
    if shuffle is None:
        shuffle = sampler_name == "RandomSampler" or type(inner).__name__ == "RandomSampler"
    return {
        "class": qualname(loader),
        "batch_size": batch_size,
        "shuffle": bool(shuffle),
        "sampler": sampler_name,
        "num_workers": getattr(loader, "num_workers", None),
        "drop_last": getattr(loader, "drop_last", None),
        "num_batches": _safe_len(loader),
    }


def loaders(obj: Any) -> list[Any]:
    """Return the DataLoaders in what a Trainer holds (one loader, a list, a dict or None)."""
    if obj is None:
        return []
    if isinstance(obj, Mapping):
        return list(obj.values())
    if isinstance(obj, (list, tuple)):
        return list(obj)
    return [obj]


def _safe_len(obj: Any) -> int | None:
    try:
        return len(obj)
    except Exception:  # iterable datasets and some samplers have no length
        return None


def lightning_seed() -> dict[str, Any]:
    """Return the seed and workers flag Lightning's `seed_everything` left in the environment."""
    seed = os.environ.get("PL_GLOBAL_SEED")
    workers = os.environ.get("PL_SEED_WORKERS")
    return {
        "seed": int(seed) if seed is not None and seed.lstrip("-").isdigit() else seed,
        "workers": workers == "1" if workers is not None else None,
    }


def torch_determinism() -> dict[str, Any]:
    """Return torch's determinism switches as they are at fit start."""
    import torch

    facts: dict[str, Any] = {
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
    }
    facts["cublas_workspace_config"] = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    return facts
