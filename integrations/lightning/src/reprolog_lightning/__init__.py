"""reprolog for PyTorch Lightning: one callback records a whole training."""

from __future__ import annotations

from reprolog_lightning._callback import ReprologCallback

__all__ = ["ReprologCallback"]
