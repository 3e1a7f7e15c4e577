"""Zero-code mode: attach one ``ReprologCallback`` to every ``transformers.Trainer``.

``enable()`` is the ``reprolog.integrations`` entry point. It is called as soon as the
``transformers`` package is imported, which is cheap; ``transformers.trainer`` (torch and the
whole training stack) is not imported by it: the Trainer is patched when the application
imports it, through the core's import hook (``reprolog.when_imported``).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

import reprolog
from reprolog_transformers._patch import AUTO_ATTR, MARK_ATTR, install_train_wrapper

__all__ = ["enable"]

_log = logging.getLogger("reprolog.transformers")
_TARGET = "transformers.trainer"
_lock = threading.Lock()
_enabled = False


def enable() -> None:
    """Switch zero-code capture on for every ``transformers.Trainer`` (idempotent).

    Each Trainer built afterwards gets one ``ReprologCallback`` unless it already carries one;
    a callback the user adds later replaces it (see ``reprolog_callbacks``). Turning autolog
    off again (``reprolog.autolog(False)``) stops attaching callbacks to new Trainers.
    """
    global _enabled
    with _lock:
        if _enabled:
            return
        _enabled = True
    # Now if transformers.trainer is already imported, else right after its first import.
    reprolog.when_imported(_TARGET, _patch_module)


def _autolog_on() -> bool:
    probe = getattr(reprolog, "autolog_enabled", None)
    try:
        return True if probe is None else bool(probe())
    except Exception:
        return True  # enable() was called, which is itself the request to autolog


def _attach(trainer: Any) -> None:
    handler = getattr(trainer, "callback_handler", None)
    if handler is None or not _autolog_on():
        return
    if any(hasattr(cb, AUTO_ATTR) for cb in handler.callbacks):
        return  # the user passed one: never attach twice
    from reprolog_transformers._callback import ReprologCallback

    callback = ReprologCallback()
    setattr(callback, AUTO_ATTR, True)
    trainer.add_callback(callback)


def _wrap_init(original: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        try:
            _attach(self)
        except Exception as exc:  # zero-code capture must never stop a Trainer from being built
            _log.warning("reprolog: autolog could not attach (%s: %s)", type(exc).__name__, exc)

    setattr(__init__, MARK_ATTR, True)
    return __init__


def _patch_module(module: ModuleType) -> None:
    cls = getattr(module, "Trainer", None)
    if cls is None:  # a transformers without its Trainer here: nothing to attach to
        _log.warning("reprolog: transformers.trainer has no Trainer; autolog is off for it")
        return
    if not getattr(cls.__init__, MARK_ATTR, False):
        cls.__init__ = _wrap_init(cls.__init__)
    install_train_wrapper()
