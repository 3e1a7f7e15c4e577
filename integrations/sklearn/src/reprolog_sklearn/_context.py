"""Which fits record a run: the outermost fit does; scikit-learn's internal fits do not."""

from __future__ import annotations

import contextlib
import enum
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from types import FrameType
from typing import Any

# Frames of these modules mean "scikit-learn is fitting clones on its own behalf":
# `sklearn.utils.parallel` wraps every job of a search, cross_val_score, learning_curve,
# OvR, bagging, ColumnTransformer(n_jobs=...)... in-process or in a joblib worker, where
# no parent frame or context variable survives; `estimator_checks` fits hundreds of
# throwaway estimators.
_PARALLEL_MODULE = "sklearn.utils.parallel"
_CHECKS_MODULE = "sklearn.utils.estimator_checks"
_SEARCH_MODULE = "sklearn.model_selection._search"
# Deep enough for pytest + joblib + nested pipelines; a bound keeps pathological stacks cheap.
_MAX_FRAMES = 256

_recording: ContextVar[bool] = ContextVar("reprolog_sklearn_recording", default=False)


class Role(enum.Enum):
    """What a fit that starts now should do."""

    TOP = "top"  # records a run
    NESTED = "nested"  # inside a fit being recorded in this context: passes through
    INTERNAL = "internal"  # a job of scikit-learn's Parallel (CV folds, search candidates)
    CHECK = "check"  # made by sklearn.utils.estimator_checks


def is_recording() -> bool:
    """Whether a fit is being recorded in the current context (thread or task)."""
    return _recording.get()


@contextlib.contextmanager
def recording() -> Iterator[None]:
    """Mark the current context as recording, so that fits started inside pass through."""
    token = _recording.set(True)
    try:
        yield
    finally:
        _recording.reset(token)


def fit_role() -> Role:
    """Classify a fit about to start from the call stack; costs a few microseconds.

    Returns:
        Role.NESTED inside a recorded fit, Role.INTERNAL for a job dispatched by
        scikit-learn's Parallel, Role.CHECK under scikit-learn's estimator checks, else
        Role.TOP.
    """
    if _recording.get():
        return Role.NESTED
    frame: FrameType | None = sys._getframe(1)
    seen = 0
    while frame is not None and seen < _MAX_FRAMES:
        module = frame.f_globals.get("__name__")
        if module == _PARALLEL_MODULE:
            return Role.INTERNAL
        if module == _CHECKS_MODULE:
            return Role.CHECK
        frame = frame.f_back
        seen += 1
    return Role.TOP


def calling_search() -> Any | None:
    """Return the search (GridSearchCV, ...) whose refit is calling us, or None.

    A search refits its best candidate from its own `fit`, outside Parallel, so that fit
    is a TOP fit; knowing the search lets its run say so (best params and score are set
    on the search before the refit starts).
    """
    frame: FrameType | None = sys._getframe(1)
    seen = 0
    while frame is not None and seen < _MAX_FRAMES:
        if frame.f_globals.get("__name__") == _SEARCH_MODULE and frame.f_code.co_name == "fit":
            return frame.f_locals.get("self")
        frame = frame.f_back
        seen += 1
    return None
