"""reprolog for Keras 3: `ReprologCallback` records a whole ``fit()`` into a reprolog run."""

from __future__ import annotations

from reprolog_keras._callback import ReprologCallback

__all__ = ["ReprologCallback"]
