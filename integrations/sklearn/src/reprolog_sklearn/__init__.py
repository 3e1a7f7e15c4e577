"""reprolog for scikit-learn: `Tracked(estimator).fit(X, y)` records the fit as a reprolog run."""

from __future__ import annotations

from reprolog_sklearn._query import cv_results
from reprolog_sklearn._tracked import Tracked

__all__ = ["Tracked", "cv_results"]
