"""Checkpoint bookkeeping: log each saved folder, track which is best, mark rotated ones deleted."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reprolog import Run

__all__ = ["CheckpointTracker"]

# The Trainer names its checkpoint folders "<output_dir>/checkpoint-<global_step>".
_PREFIX = "checkpoint"


def _norm(path: str | os.PathLike[str]) -> str:
    return os.path.normcase(os.path.abspath(os.fspath(path)))


@dataclass
class _Logged:
    artifact_id: str
    step: int
    best: bool = False
    deleted: bool = False


@dataclass
class CheckpointTracker:
    """Remembers the checkpoints logged to one run, keyed by their normalised folder path."""

    logged: dict[str, _Logged] = field(default_factory=dict)

    def on_save(
        self,
        run: Run,
        output_dir: str,
        step: int,
        epoch: float | None,
        best_path: str | None,
        score: tuple[str, float] | None,
    ) -> None:
        """Log the folder the Trainer just saved, then refresh best and deleted flags.

        The Trainer rotates (``save_total_limit``) *before* calling ``on_save``, so a folder
        that vanished since the last call was deleted by that rotation.

        Args:
            run: the run to record into.
            output_dir: ``args.output_dir``.
            step: ``state.global_step``, the N of ``checkpoint-N``.
            epoch: ``state.epoch``.
            best_path: ``state.best_model_checkpoint``.
            score: ``(metric_for_best_model, value)`` from the latest evaluation, if any.
        """
        folder = os.path.join(output_dir, f"{_PREFIX}-{step}")
        key = _norm(folder)
        if key not in self.logged and os.path.isdir(folder):
            is_best = best_path is not None and _norm(best_path) == key
            metadata: dict[str, Any] = {"global_step": step, "best": is_best}
            if epoch is not None:
                metadata["epoch"] = float(epoch)
            if score is not None:
                metadata["metric"], metadata["score"] = score
            artifact_id = run.log_artifact(folder, kind="checkpoint", step=step, metadata=metadata)
            self.logged[key] = _Logged(artifact_id, step, best=is_best)
        self.refresh(run, step, best_path)

    def refresh(self, run: Run, step: int, best_path: str | None) -> None:
        """Mark checkpoints that have disappeared as deleted and move the best flag.

        Args:
            run: the run to record into.
            step: the current ``state.global_step`` (recorded as when the deletion was seen).
            best_path: ``state.best_model_checkpoint``.
        """
        best_key = _norm(best_path) if best_path else None
        for key, entry in self.logged.items():
            if not entry.deleted and not os.path.isdir(key):
                entry.deleted = True
                run.update_artifact(
                    entry.artifact_id, metadata={"deleted": True, "deleted_at_step": step}
                )
            is_best = key == best_key
            if is_best != entry.best:
                entry.best = is_best
                run.update_artifact(entry.artifact_id, metadata={"best": is_best})
