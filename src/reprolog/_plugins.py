"""Integration plugins: entry-point discovery, zero-code autolog, and failure isolation.

An integration registers in the entry-point group `reprolog.integrations`. The entry
point's name is the top-level module of the framework it instruments (`transformers`,
`keras`, `sklearn`, ...), its value a zero-argument function that switches autolog on for
that framework. A plugin is loaded only once its framework is imported, so a missing
framework costs nothing, and a plugin that fails is reported by name and never stops
training.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import sys
import threading
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

logger = logging.getLogger("reprolog")

GROUP = "reprolog.integrations"
ENV_AUTOLOG = "REPROLOG_AUTOLOG"
_TRUE = ("1", "true", "yes", "on")

_enabled = False
_lock = threading.RLock()
#: entry-point name -> "enabled" | "waiting for import" | "failed: ..."
_status: dict[str, str] = {}
_finder: _PostImportFinder | None = None


def _env_on() -> bool:
    return os.environ.get(ENV_AUTOLOG, "").strip().lower() in _TRUE


def autolog_enabled() -> bool:
    """True when zero-code capture is on: `REPROLOG_AUTOLOG=1` or `reprolog.autolog()`."""
    return _enabled or _env_on()


def _plugins() -> list[EntryPoint]:
    return list(entry_points(group=GROUP))


def _activate(framework: str) -> None:
    """Run every plugin registered for `framework` (once each); isolate their failures."""
    for ep in _plugins():
        if ep.name != framework:
            continue
        label = f"{ep.name} ({ep.value})"
        with _lock:
            if _status.get(label) == "enabled":
                continue
            _status[label] = "enabled"
        try:
            ep.load()()
        except Exception as exc:
            _status[label] = f"failed: {type(exc).__name__}: {exc}"
            logger.warning(
                "reprolog: integration plugin %s failed to enable (%s: %s); training goes on "
                "without it",
                label,
                type(exc).__name__,
                exc,
            )


def autolog(enable: bool = True) -> dict[str, str]:
    """Switch zero-code capture on (or off) for every installed integration.

    Frameworks already imported are instrumented now; the others when they are imported.
    Switching off stops new runs from being started automatically; instrumented classes
    stay patched but check `autolog_enabled()` each time.

    Args:
        enable: True to switch on, False to switch off.

    Returns:
        Each plugin's state, e.g. {"keras (reprolog_keras._autolog:enable)": "enabled"}.

    Example:
        >>> import reprolog; reprolog.autolog()   # doctest: +SKIP
    """
    global _enabled
    if not isinstance(enable, bool):
        from reprolog._errors import ArgumentError

        raise ArgumentError(f"autolog() takes True or False, got {enable!r}")
    _enabled = enable
    if enable:
        install_import_hook()
    return plugin_status()


def plugin_status() -> dict[str, str]:
    """Every registered plugin and its state."""
    out = {}
    for ep in _plugins():
        label = f"{ep.name} ({ep.value})"
        out[label] = _status.get(label, "waiting for import")
    return out


class _NotifyingLoader(importlib.abc.Loader):
    """Wraps a framework's loader to enable its plugins right after the module executes."""

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
        if autolog_enabled():
            _activate(self._name)

    def __getattr__(self, item: str) -> Any:
        return getattr(self._loader, item)


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """Notices the first import of each instrumented framework's top-level module."""

    def __init__(self, names: set[str]) -> None:
        self._names = names
        self._busy: set[str] = set()

    def find_spec(
        self, fullname: str, path: Any = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self._names or fullname in self._busy:
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


def install_import_hook() -> None:
    """Watch imports of every framework that has a plugin; enable those already imported."""
    global _finder
    with _lock:
        names = {ep.name for ep in _plugins()}
        if _finder is None and names:
            _finder = _PostImportFinder(names)
            sys.meta_path.insert(0, _finder)
    for name in sorted(names):
        if name in sys.modules:
            _activate(name)
