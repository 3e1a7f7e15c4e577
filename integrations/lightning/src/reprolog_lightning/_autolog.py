"""Zero-code mode: Lightning's `callbacks_factory` entry points add the callback to Trainers."""

from __future__ import annotations

import threading
from typing import Any

_enabled = False
_lock = threading.Lock()


def enable() -> None:
    """Switch zero-code capture on for Lightning (the `reprolog.integrations` entry point).

    Lightning itself asks our `callbacks_factory` entry points for callbacks at every
    `Trainer(...)`; they answer only while reprolog's autolog is on. Calling this again is
    harmless.
    """
    global _enabled
    with _lock:
        _enabled = True


def _autolog_on() -> bool:
    import reprolog

    is_on = getattr(reprolog, "autolog_enabled", None)
    if callable(is_on):
        return bool(is_on())
    return _enabled


def _factory(namespace: str) -> list[Any]:
    if not _autolog_on():
        return []
    from reprolog_lightning._callback import for_namespaces

    callback = for_namespaces((namespace,))()
    callback._autolog = True  # yields to a ReprologCallback the user adds themselves
    return [callback]


def lightning_callbacks() -> list[Any]:
    """Entry point of group `lightning.pytorch.callbacks_factory`."""
    return _factory("lightning.pytorch")


def pytorch_lightning_callbacks() -> list[Any]:
    """Entry point of group `pytorch_lightning.callbacks_factory`."""
    return _factory("pytorch_lightning")
