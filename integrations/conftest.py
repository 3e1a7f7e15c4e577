"""Settings every integration's tests need before any framework is imported."""

from __future__ import annotations

import os

# scikit-learn runs its array-API estimator checks only when SciPy is in array-API mode, which
# SciPy reads once, at its import: set here, before any test module imports scipy.
os.environ.setdefault("SCIPY_ARRAY_API", "1")
