"""Run code right after a module is first imported (or now, if it already is)."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from reprolog._errors import ArgumentError

logger = logging.getLogger("reprolog")

_callbacks: dict[str, list[Callable[[ModuleType], None]]] = {}
_lock = threading.RLock()
_finder: _Finder | None = None


def when_imported(name: str, callback: Callable[[ModuleType], None]) -> None:
    """Call `callback(module)` once module `name` is imported: now if it already is.

    Callbacks run right after the module's own code, before `import` returns to the user. A
    failing callback is logged and never breaks the import. Integrations use it to patch a
    framework only when the application imports it, never importing it themselves.

    Args:
        name: the module's full dotted name (`"transformers.trainer"`).
        callback: called once with the module object.

    Raises:
        ArgumentError: `name` is not a non-empty str or `callback` is not callable.

    Example:
        >>> reprolog.when_imported("sklearn", lambda mod: print(mod.__version__))  # doctest: +SKIP
    """
    if not isinstance(name, str) or not name or name.startswith("."):
        raise ArgumentError(f"name must be a module's full dotted name, got {name!r}")
    if not callable(callback):
        raise ArgumentError(
            f"callback must be callable with the module, got {type(callback).__name__}: "
            f"{callback!r}"
        )
    module = sys.modules.get(name)
    if module is not None:
        _call(name, callback, module)
        return
    global _finder
    with _lock:
        _callbacks.setdefault(name, []).append(callback)
        if _finder is None:
            _finder = _Finder()
            sys.meta_path.insert(0, _finder)


def _call(name: str, callback: Callable[[ModuleType], None], module: ModuleType) -> None:
    try:
        callback(module)
    except Exception:
        logger.exception("reprolog: a hook run after importing %s failed", name)


class _NotifyingLoader(importlib.abc.Loader):
    """Wraps a module's loader to run the registered callbacks after the module executes."""

    def __init__(self, loader: Any, name: str) -> None:
        self._loader = loader
        self._name = name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        # Give the module its real loader back before anything else can see the wrapper.
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        module.__loader__ = self._loader
        self._loader.exec_module(module)
        with _lock:
            callbacks = _callbacks.pop(self._name, [])
        for callback in callbacks:
            _call(self._name, callback, module)

    def __getattr__(self, item: str) -> Any:
        return getattr(self._loader, item)


class _Finder(importlib.abc.MetaPathFinder):
    """Notices the first import of each module that has callbacks waiting."""

    def __init__(self) -> None:
        self._busy: set[str] = set()

    def find_spec(
        self, fullname: str, path: Any = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _callbacks or fullname in self._busy:
            return None
        self._busy.add(fullname)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._busy.discard(fullname)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _NotifyingLoader(spec.loader, fullname)
        return spec
