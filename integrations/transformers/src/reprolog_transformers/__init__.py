"""reprolog for the Hugging Face Trainer: ``Trainer(..., callbacks=[ReprologCallback()])``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reprolog_transformers._callback import ReprologCallback

__all__ = ["ReprologCallback"]


def __getattr__(name: str) -> Any:
    # Lazy, so that the zero-code entry point (reprolog_transformers._autolog) can be imported
    # without importing torch and transformers' training stack.
    if name == "ReprologCallback":
        from reprolog_transformers._callback import ReprologCallback

        return ReprologCallback
    raise AttributeError(f"module 'reprolog_transformers' has no attribute {name!r}")
