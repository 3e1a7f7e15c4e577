"""Lightning steps: the step limit of `reprolog reproduce --steps N`, and per-step fingerprints."""

from __future__ import annotations

from typing import Any

import reprolog


class StepTrace:
    """Feeds the core's `step_fingerprints` recorder from Lightning's batch hooks."""

    __slots__ = ("fp", "step")

    def __init__(self) -> None:
        self.fp: Any = None
        self.step = -1

    def open(self, sink: Any, pl_module: Any, every: bool | int | None) -> None:
        """Start recording into `sink` (the run, or this rank's writer) for this fit."""
        self.step = -1
        self.fp = sink.step_fingerprints(pl_module, every=every)

    def close(self) -> None:
        self.fp = None

    def batch(self, trainer: Any, batch: Any) -> None:
        """At a batch's start: a new optimizer step, or one more micro-batch of the current."""
        fp = self.fp
        step = trainer.global_step
        if step != self.step:
            self.step = step
            fp.step(step, batch, epoch=trainer.current_epoch)
        else:  # gradient accumulation: global_step moves only at the optimizer step
            fp.add_batch(batch)


def limit_steps(trainer: Any, owner: reprolog.RunOwner) -> int | None:
    # `reprolog reproduce --steps N`: lower the fit's max_steps to N (never raise it), the
    # Trainer's own way to stop after N optimizer steps with a normal, completed end.
    limit = owner.max_steps
    if limit is None:
        return None
    epoch_loop = trainer.fit_loop.epoch_loop
    if epoch_loop.max_steps < 0 or epoch_loop.max_steps > limit:
        epoch_loop.max_steps = limit
    return limit
