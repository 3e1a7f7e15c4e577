"""Zero-code mode: wrap ``keras.Model.fit`` so every fit is recorded once, with its arguments."""

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


def enable() -> None:
    """Record every ``Model.fit`` of this process; safe to call any number of times.

    Wraps ``keras.Model.fit`` (to see its arguments and exceptions, which callbacks never
    receive) and ``keras.utils.set_random_seed`` (to see the seed). While
    ``reprolog.autolog_enabled()`` is false the wrappers pass calls straight through.
    """
    import keras

    with _lock:
        if not getattr(keras.Model.fit, _MARK, False):
            keras.Model.fit = _wrap_fit(keras.Model.fit)
        if not getattr(keras.utils.set_random_seed, _MARK, False):
            keras.utils.set_random_seed = _wrap_set_random_seed(keras.utils.set_random_seed)


def disable() -> None:
    """Undo `enable`: restore ``keras.Model.fit`` and ``keras.utils.set_random_seed``."""
    import keras

    with _lock:
        fit = keras.Model.__dict__.get("fit")
        if getattr(fit, _MARK, False):
            # enable() set fit on Model itself; removing it restores the inherited one.
            del keras.Model.fit
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
        if getattr(_local, "depth", 0) or not _autolog_on():
            # A fit inside a recorded fit (a subclass calling super().fit) is the same fit.
            return original(self, *args, **kwargs)
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError:
            return original(self, *args, **kwargs)  # let Keras word the error
        callback, bound.arguments["callbacks"] = _with_callback(bound.arguments.get("callbacks"))
        arguments = {
            name: bound.arguments.get(name, param.default)
            for name, param in signature.parameters.items()
            if name != "self"
        }
        callback._fit_arguments = arguments
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


def _with_callback(callbacks: Any) -> tuple[Any, Any]:
    """Return (the ReprologCallback to use, the callbacks to pass to fit)."""
    import keras

    from reprolog_keras._callback import ReprologCallback

    if isinstance(callbacks, keras.callbacks.CallbackList):
        members = callbacks.callbacks
    elif callbacks is None:
        members = []
    else:
        members = list(keras.tree.flatten(callbacks))
    for cb in members:
        if isinstance(cb, ReprologCallback):
            return cb, callbacks  # the user added one: use it, never a second
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
