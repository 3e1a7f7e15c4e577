"""Wrapped ``keras.Model.fit``: a raising fit ends its run at once; zero-code mode records all.

Keras gives callbacks no exception event and no ``finally``, so without the wrapper a fit
whose exception the script catches and keeps would leave its run ``running``. The wrapper is
installed when ``reprolog_keras`` is imported (as the transformers integration wraps
``Trainer.train``); it is a pass-through for a fit with no ``ReprologCallback`` while autolog
is off.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any

_MARK = "__reprolog_wrapped__"
_lock = threading.Lock()
_local = threading.local()  # .depth: fit calls of this thread currently inside the wrapper
_last_seed: list[int] = []  # what the wrapped keras.utils.set_random_seed last received


def install() -> None:
    """Wrap ``keras.Model.fit`` once per process (done when ``reprolog_keras`` is imported).

    The wrapper sees the exception of a raising fit, which callbacks never receive, and ends
    the run of the fit's ``ReprologCallback`` with it before ``fit`` returns to the caller.
    """
    import keras

    with _lock:
        if not getattr(keras.Model.fit, _MARK, False):
            keras.Model.fit = _wrap_fit(keras.Model.fit)


def enable() -> None:
    """Record every ``Model.fit`` of this process; safe to call any number of times.

    Installs the ``Model.fit`` wrapper (which then adds a ``ReprologCallback`` to every fit
    and passes it the fit's arguments) and wraps ``keras.utils.set_random_seed`` (to see the
    seed). While ``reprolog.autolog_enabled()`` is false the wrappers add nothing.
    """
    import keras

    install()
    with _lock:
        if not getattr(keras.utils.set_random_seed, _MARK, False):
            keras.utils.set_random_seed = _wrap_set_random_seed(keras.utils.set_random_seed)


def disable() -> None:
    """Undo `enable`: restore ``keras.utils.set_random_seed``.

    The ``Model.fit`` wrapper stays: it ends raising fits of user-added callbacks truly, and
    adds no callback while autolog is off.
    """
    import keras

    with _lock:
        seed_fn = keras.utils.set_random_seed
        if getattr(seed_fn, _MARK, False):
            keras.utils.set_random_seed = seed_fn.__wrapped__


def keras_random_seed() -> int | None:
    """Return the seed last given to ``keras.utils.set_random_seed`` in this process, if any.

    Keras keeps it in its global state, so calls made before reprolog was imported are seen
    too; the wrapper's own note is the fallback should that private state move.

    Returns:
        The seed, or None when ``set_random_seed`` was not called.
    """
    try:
        from keras.src.utils.rng_utils import get_random_seed

        seed = get_random_seed()
    except ImportError:
        seed = None
    if seed is None and _last_seed:
        seed = _last_seed[-1]
    return seed if isinstance(seed, int) else None


def _autolog_on() -> bool:
    import reprolog

    return bool(reprolog.autolog_enabled())


def _wrap_fit(original: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(_local, "depth", 0):
            # A fit inside a recorded fit (a subclass calling super().fit) is the same fit.
            return original(self, *args, **kwargs)
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError:
            return original(self, *args, **kwargs)  # let Keras word the error
        if _autolog_on():
            callback, bound.arguments["callbacks"] = _with_callback(
                bound.arguments.get("callbacks")
            )
            callback._fit_arguments = {
                name: bound.arguments.get(name, param.default)
                for name, param in signature.parameters.items()
                if name != "self"
            }
        else:
            callback = _user_callback(bound.arguments.get("callbacks"))
            if callback is None:
                return original(self, *args, **kwargs)
        _local.depth = 1
        try:
            return original(*bound.args, **bound.kwargs)
        except BaseException as exc:
            callback._fit_raised(exc)
            raise
        finally:
            _local.depth = 0
            callback._fit_arguments = None

    setattr(fit, _MARK, True)
    return fit


def _members(callbacks: Any) -> list[Any]:
    import keras

    if isinstance(callbacks, keras.callbacks.CallbackList):
        return list(callbacks.callbacks)
    if callbacks is None:
        return []
    return list(keras.tree.flatten(callbacks))


def _user_callback(callbacks: Any) -> Any:
    """Return the ReprologCallback among a fit's callbacks, or None."""
    from reprolog_keras._callback import ReprologCallback

    for cb in _members(callbacks):
        if isinstance(cb, ReprologCallback):
            return cb
    return None


def _with_callback(callbacks: Any) -> tuple[Any, Any]:
    """Return (the ReprologCallback to use, the callbacks to pass to fit)."""
    import keras

    from reprolog_keras._callback import ReprologCallback

    members = _members(callbacks)
    mine = _user_callback(callbacks)
    if mine is not None:
        return mine, callbacks  # the user added one: use it, never a second
    callback = ReprologCallback()
    if isinstance(callbacks, keras.callbacks.CallbackList):
        # A CallbackList is used as given; join it the way its constructor would have.
        callbacks.callbacks.append(callback)
        callback.set_model(callbacks.model)
        callback.set_params(callbacks.params)
        return callback, callbacks
    return callback, [*members, callback]


def _wrap_set_random_seed(original: Callable[[int], None]) -> Callable[[int], None]:
    @functools.wraps(original)
    def set_random_seed(seed: int) -> None:
        original(seed)
        if isinstance(seed, int):
            _last_seed[:] = [seed]

    setattr(set_random_seed, _MARK, True)
    return set_random_seed
