"""Zero-code mode: patch scikit-learn estimators' fit methods so top-level fits are recorded."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import reprolog
from reprolog_sklearn._context import is_recording
from reprolog_sklearn._recorder import Options, record_fit

_FIT_METHODS = ("fit", "fit_transform", "fit_predict")
# Test doubles and FrozenEstimator (whose fit is a no-op) are not training.
_SKIPPED_MODULES = (
    "sklearn.utils._mocking",
    "sklearn.utils._testing",
    "sklearn.frozen",
    "sklearn.tests",
)
_ORIGINAL = "__reprolog_original__"
_OPTIONS = Options(source="autolog")
_lock = threading.Lock()
_enabled = False
_patched: list[tuple[type, str, Any]] = []
_saved_init_subclass: Any = None


def enable() -> None:
    """Record every top-level fit of scikit-learn's own estimators; idempotent.

    Patches `fit`, `fit_transform` and `fit_predict` where scikit-learn classes define
    them, now and for classes imported later. A patched fit inside another recorded fit,
    inside scikit-learn's Parallel (search candidates, CV folds, also in joblib worker
    processes) or inside `Tracked` passes straight through.
    """
    global _enabled, _saved_init_subclass
    with _lock:
        if _enabled:
            return
        from sklearn.base import BaseEstimator

        for cls in _all_subclasses(BaseEstimator):
            _patch_class(cls)
        # Estimator modules imported later (sklearn.ensemble, ...) define their classes after
        # this point; hook class creation so they are patched too.
        _saved_init_subclass = BaseEstimator.__dict__.get("__init_subclass__")

        def init_subclass(cls: type, /, **kwargs: Any) -> None:
            if _saved_init_subclass is not None:
                _saved_init_subclass.__func__(cls, **kwargs)
            else:
                super(BaseEstimator, cls).__init_subclass__(**kwargs)
            _patch_class(cls)

        BaseEstimator.__init_subclass__ = classmethod(init_subclass)
        _enabled = True


def disable() -> None:
    """Undo `enable()`: restore every patched method (used by tests)."""
    global _enabled
    with _lock:
        if not _enabled:
            return
        from sklearn.base import BaseEstimator

        if _saved_init_subclass is not None:
            BaseEstimator.__init_subclass__ = _saved_init_subclass
        else:
            del BaseEstimator.__init_subclass__
        for cls, name, original in reversed(_patched):
            setattr(cls, name, original)
        _patched.clear()
        _enabled = False


def _all_subclasses(root: type) -> list[type]:
    seen: list[type] = []
    stack: list[type] = list(root.__subclasses__())
    while stack:
        cls = stack.pop()
        if cls not in seen:
            seen.append(cls)
            stack.extend(cls.__subclasses__())
    return seen


def _patch_class(cls: type) -> None:
    module = getattr(cls, "__module__", "") or ""
    # Only scikit-learn's own classes: third-party estimators (and Tracked, which records
    # by itself) are wrapped explicitly with Tracked.
    if not module.startswith("sklearn.") or module.startswith(_SKIPPED_MODULES):
        return
    for name in _FIT_METHODS:
        original = cls.__dict__.get(name)
        if original is None or not callable(original) or hasattr(original, _ORIGINAL):
            continue
        setattr(cls, name, _wrap(original, name))
        _patched.append((cls, name, original))


def _wrap(original: Callable[..., Any], method: str) -> Callable[..., Any]:
    @functools.wraps(original)
    def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
        # Nested fits are the common case: one context-variable read. Patches stay in place
        # when autolog is switched off, so the switch is read at every top-level fit.
        if is_recording() or not reprolog.autolog_enabled():
            return original(self, *args, **kwargs)
        X = args[0] if args else kwargs.get("X")
        y = args[1] if len(args) > 1 else kwargs.get("y")
        result, _ = record_fit(
            self,
            lambda: original(self, *args, **kwargs),
            X=X,
            y=y,
            sample_weight=kwargs.get("sample_weight"),
            method=method,
            options=_OPTIONS,
        )
        return result

    setattr(patched, _ORIGINAL, original)
    return patched
