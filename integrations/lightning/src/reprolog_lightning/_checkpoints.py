"""Catch every checkpoint file a Trainer writes and keep its best/last/deleted flags current."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reprolog_lightning._capture import Capture

if TYPE_CHECKING:
    from reprolog import Run

# Marks our wrappers so that a second callback (or a second fit) never wraps twice.
_WRAPPED = "__reprolog_wrapped__"


@dataclass
class _Entry:
    """One recorded checkpoint file and the flags last written to its metadata."""

    artifact_id: str
    flags: dict[str, Any] = field(default_factory=dict)


class CheckpointTracker:
    """Record checkpoint files through `Run.log_artifact` and update their flags later.

    `trainer.save_checkpoint` is the one door through which both `ModelCheckpoint` and user
    code write checkpoints, so the tracker wraps it on the Trainer instance; it also wraps
    `strategy.remove_checkpoint` to see top-k rotation delete files.

    Args:
        on_saved: called with the path after each successful save.
        on_removed: called with the path after each removal.
    """

    def __init__(self, on_saved: Callable[[str], None], on_removed: Callable[[str], None]) -> None:
        self._on_saved = on_saved
        self._on_removed = on_removed
        self.entries: dict[str, _Entry] = {}

    def install(self, trainer: Any) -> None:
        """Wrap the Trainer's save and the strategy's remove, once per instance."""
        save = trainer.save_checkpoint
        if not getattr(save, _WRAPPED, False):
            trainer.save_checkpoint = _after(save, self._saved)
        strategy = trainer.strategy
        remove = strategy.remove_checkpoint
        if not getattr(remove, _WRAPPED, False):
            strategy.remove_checkpoint = _after(remove, self._removed)

    def _saved(self, filepath: Any, *_: Any, **__: Any) -> None:
        self._on_saved(os.fspath(filepath))

    def _removed(self, filepath: Any, *_: Any, **__: Any) -> None:
        self._on_removed(os.fspath(filepath))


def _after(method: Callable[..., Any], then: Callable[..., None]) -> Callable[..., Any]:
    """Return `method` followed by `then(*same args)`; `then` only runs when `method` succeeded."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = method(*args, **kwargs)
        then(*args, **kwargs)
        return result

    setattr(wrapper, _WRAPPED, True)
    return wrapper


def checkpoint_callbacks(trainer: Any) -> list[Any]:
    """Return the Trainer's ModelCheckpoint-like callbacks (public `checkpoint_callbacks`)."""
    return list(getattr(trainer, "checkpoint_callbacks", []) or [])


def _same(a: str, b: str) -> bool:
    return bool(a) and bool(b) and os.path.abspath(a) == os.path.abspath(b)


def describe(trainer: Any, path: str) -> dict[str, Any]:
    """Return the step, epoch, monitor, score and best/last flags of a checkpoint path.

    Args:
        trainer: the Trainer that wrote it.
        path: the checkpoint file.

    Returns:
        Metadata for `Run.log_artifact`: `global_step`, `epoch`, `monitor`, `score`, `best`,
        `last`, and `callback` (the ModelCheckpoint that wrote it, or "manual").
    """
    meta: dict[str, Any] = {
        "global_step": int(trainer.global_step),
        "epoch": int(trainer.current_epoch),
        "callback": "manual",
    }
    for callback in checkpoint_callbacks(trainer):
        dirpath = getattr(callback, "dirpath", None)
        best_k = getattr(callback, "best_k_models", {}) or {}
        known = path in best_k or _same(path, getattr(callback, "last_model_path", ""))
        known = known or _same(path, getattr(callback, "best_model_path", ""))
        if not known and not (dirpath and _same(os.path.dirname(path), os.fspath(dirpath))):
            continue
        monitor = getattr(callback, "monitor", None)
        meta["callback"] = type(callback).__name__
        meta["monitor"] = monitor
        if monitor:
            score = best_k.get(path)
            if score is None:
                score = trainer.callback_metrics.get(monitor)
            meta["score"] = _number(score)
        meta.update(flags(callback, path))
        break
    return meta


def flags(callback: Any, path: str) -> dict[str, bool]:
    """Return whether `path` is the callback's best and/or last checkpoint right now."""
    return {
        "best": _same(path, getattr(callback, "best_model_path", "")),
        "last": _same(path, getattr(callback, "last_model_path", "")),
    }


def current_flags(trainer: Any, path: str) -> dict[str, bool] | None:
    """Return best/last flags of `path` from the first ModelCheckpoint that knows it."""
    for callback in checkpoint_callbacks(trainer):
        now = flags(callback, path)
        best_k = getattr(callback, "best_k_models", {}) or {}
        if any(now.values()) or path in best_k:
            return now
    # No callback claims it (a manual save, or rotated out): it is neither best nor last.
    return {"best": False, "last": False} if checkpoint_callbacks(trainer) else None


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError):
        return None


def last_links(trainer: Any) -> list[str]:
    """Return `last` paths that ModelCheckpoint linked (save_last="link") instead of saving."""
    out = []
    for callback in checkpoint_callbacks(trainer):
        last = getattr(callback, "last_model_path", "")
        if last and os.path.islink(last):
            out.append(last)
    return out


class CheckpointCapture(Capture):
    """Records into the run every checkpoint its Trainer writes, and keeps the flags current.

    Args:
        run: a run the user started, or None (see `Capture`).
        init_kwargs: keyword arguments for `reprolog.init` (see `Capture`).
    """

    def __init__(self, run: Run | None, init_kwargs: dict[str, Any]) -> None:
        super().__init__(run, init_kwargs)
        # True while this process writes the run's record (global rank 0 with an open run).
        self._writer = False
        self._checkpoints = CheckpointTracker(self._on_saved, self._on_removed)

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
        meta = describe(trainer, path)
        if linked:
            meta["link"] = True
        art_id = run.log_artifact(path, kind="checkpoint", step=meta["global_step"], metadata=meta)
        flags: dict[str, Any] = {k: meta[k] for k in ("best", "last") if k in meta}
        self._checkpoints.entries[path] = _Entry(art_id, flags)
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
        for link in last_links(trainer):
            if link not in self._checkpoints.entries:
                self._record_checkpoint(trainer, link, linked=True)
        for path, entry in self._checkpoints.entries.items():
            if path == skip:
                continue
            now = current_flags(trainer, path)
            if now is not None and now != entry.flags:
                run.update_artifact(entry.artifact_id, metadata=dict(now))
                entry.flags = now
