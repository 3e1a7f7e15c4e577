"""Per-step fingerprints of a Trainer's optimizer steps: RNG states, inputs, weights, grads."""

from __future__ import annotations

from typing import Any


class StepTrace:
    """Feeds the core's recorder: RNG at ``on_step_begin``, each micro-batch's model inputs
    from a forward pre-hook on the model (training forwards inside a step only), gradients at
    ``on_pre_optimizer_step``."""

    def __init__(self) -> None:
        self.fp: Any = None
        self._hook: Any = None
        self._in_step = False

    def open(self, run: Any, model: Any, every: bool | int | None) -> None:
        self.close()
        fp = run.step_fingerprints(model, every=every)
        if fp is None:
            return
        self._hook = model.register_forward_pre_hook(self._inputs, with_kwargs=True)
        self.fp = fp

    def close(self) -> None:
        hook, self._hook = self._hook, None
        if hook is not None:
            hook.remove()
        self.fp = None
        self._in_step = False

    def begin(self, step: int, epoch: float | None) -> None:
        fp = self.fp
        if fp is not None:
            fp.step(step, None, epoch=None if epoch is None else int(epoch))
            self._in_step = True

    def _inputs(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        fp = self.fp
        if fp is not None and self._in_step and module.training:
            fp.add_batch(kwargs if not args else (args, kwargs))

    def before_optimizer(self) -> None:
        fp = self.fp
        self._in_step = False
        if fp is not None:
            fp.grads()
