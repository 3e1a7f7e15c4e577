"""Wrap ``Trainer.train`` so the callbacks learn the trainer and how ``train()`` ended.

Callbacks get no exception event from the Trainer, so a failed or interrupted training would
otherwise leave its run without a true status. The wrapper is installed once on the class and
is a pass-through for trainers that carry no reprolog callback.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

__all__ = ["AUTO_ATTR", "MARK_ATTR", "install_train_wrapper", "reprolog_callbacks"]

_log = logging.getLogger("reprolog.transformers")

# Set on every wrapper we install, so that installing twice (or over a subclass) is a no-op.
MARK_ATTR = "__reprolog_wrapped__"
# Present (True/False) on every ReprologCallback: True when zero-code mode attached it.
AUTO_ATTR = "_reprolog_auto"


def reprolog_callbacks(trainer: Any) -> list[Any]:
    """The reprolog callbacks on ``trainer``, after dropping duplicates that autolog added.

    A callback the user attached wins over one that zero-code mode attached, and zero-code
    mode never contributes more than one, whatever the order they were added in.

    Args:
        trainer: a ``transformers.Trainer``.

    Returns:
        The callbacks that will record this training.
    """
    handler = getattr(trainer, "callback_handler", None)
    if handler is None:
        return []
    ours = [cb for cb in handler.callbacks if hasattr(cb, AUTO_ATTR)]
    user = [cb for cb in ours if not getattr(cb, AUTO_ATTR)]
    auto = [cb for cb in ours if getattr(cb, AUTO_ATTR)]
    extra = auto if user else auto[1:]
    for cb in extra:
        handler.callbacks.remove(cb)
    return user or auto[:1]


def _wrap_train(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def train(self: Any, *args: Any, **kwargs: Any) -> Any:
        callbacks = reprolog_callbacks(self)
        if not callbacks:
            return original(self, *args, **kwargs)
        for cb in callbacks:
            cb._train_started(self, args, kwargs)
        try:
            result = original(self, *args, **kwargs)
        except BaseException as exc:
            for cb in callbacks:
                cb._train_ended(exc)
            raise
        for cb in callbacks:
            cb._train_ended(None)
        return result

    setattr(train, MARK_ATTR, True)
    return train


def install_train_wrapper() -> bool:
    """Wrap ``transformers.Trainer.train`` once per process.

    Imports ``transformers.trainer``; call it only when a Trainer is about to be used.

    Returns:
        True when the wrapper is in place (now or before), False when it could not be.
    """
    try:
        from transformers import trainer as trainer_module
    except Exception as exc:  # a broken transformers install must not break the user's code
        _log.warning("reprolog: cannot wrap Trainer.train (%s: %s)", type(exc).__name__, exc)
        return False
    cls = trainer_module.Trainer
    if not getattr(cls.train, MARK_ATTR, False):
        cls.train = _wrap_train(cls.train)  # type: ignore[method-assign]  # patching is the point
    return True
