"""Integration plugins: entry-point discovery, zero-code autolog, and failure isolation.

An integration registers in the entry-point group `reprolog.integrations`. The entry
point's name is the top-level module of the framework it instruments (`transformers`,
`keras`, `sklearn`, ...), its value a zero-argument function that switches autolog on for
that framework. A plugin is loaded only once its framework is imported, so a missing
framework costs nothing, and a plugin that fails is reported by name and never stops
training.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType

from reprolog._capture.importhook import when_imported

logger = logging.getLogger("reprolog")

GROUP = "reprolog.integrations"
ENV_AUTOLOG = "REPROLOG_AUTOLOG"
_TRUE = ("1", "true", "yes", "on")

_enabled = False
_lock = threading.RLock()
#: entry-point name -> "enabled" | "waiting for import" | "failed: ..."
_status: dict[str, str] = {}


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


def install_import_hook() -> None:
    """Enable each plugin once its framework is imported (now, for those already imported)."""
    for name in sorted({ep.name for ep in _plugins()}):
        when_imported(name, functools.partial(_on_framework_import, name))


def _on_framework_import(name: str, module: ModuleType) -> None:
    if autolog_enabled():
        _activate(name)
