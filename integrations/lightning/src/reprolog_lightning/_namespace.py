"""Lightning ships under two import names; build the callback class for the one(s) in use."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

# The two 2.x namespaces: the unified `lightning` package and the standalone `pytorch_lightning`.
# Each has its own copy of `Callback`, and a Trainer only accepts instances of its own copy.
NAMESPACES: tuple[str, ...] = ("lightning.pytorch", "pytorch_lightning")

_lock = threading.Lock()
_classes: dict[tuple[str, ...], type] = {}


def imported_namespaces() -> tuple[str, ...]:
    """Return the Lightning namespaces this process has already imported, in NAMESPACES order."""
    return tuple(ns for ns in NAMESPACES if ns in sys.modules)


def installed_namespaces() -> tuple[str, ...]:
    """Return the Lightning namespaces that can be imported here, in NAMESPACES order."""
    found = []
    for ns in NAMESPACES:
        try:
            if importlib.util.find_spec(ns) is not None:
                found.append(ns)
        except (ImportError, ValueError):  # a missing parent package raises instead of None
            continue
    return tuple(found)


def namespace_of(obj: Any) -> str | None:
    """Return the Lightning namespace an object (a Trainer, a module) belongs to, if any."""
    for klass in type(obj).__mro__:
        module = klass.__module__ or ""
        for ns in NAMESPACES:
            if module == ns or module.startswith(ns + "."):
                return ns
    return None


def root(ns: str) -> ModuleType:
    """Import and return a namespace's root module (`lightning.pytorch` or `pytorch_lightning`)."""
    return importlib.import_module(ns)


def class_name(namespaces: tuple[str, ...]) -> str:
    """Return the module-level name under which the class for `namespaces` is published."""
    return "_ReprologCallback__" + "__".join(ns.replace(".", "_") for ns in namespaces)


def build_class(base: type, namespaces: tuple[str, ...]) -> type:
    """Return (and cache) `base` mixed with the `Callback` class of each namespace.

    The class is published as an attribute of `reprolog_lightning._callback` so that pickle
    (used by spawn-based strategies) can find it again by name.

    Args:
        base: the namespace-free callback implementation.
        namespaces: which Lightning namespaces the class must be a Callback of.

    Returns:
        A subclass of `base` and of every requested namespace's `Callback`.
    """
    with _lock:
        cached = _classes.get(namespaces)
        if cached is not None:
            return cached
        bases = (base, *(root(ns).Callback for ns in namespaces))
        name = class_name(namespaces)
        klass = type(
            base.__name__,
            bases,
            {"__module__": base.__module__, "__qualname__": name, "__doc__": base.__doc__},
        )
        _classes[namespaces] = klass
        return klass


def default_namespaces() -> tuple[str, ...]:
    """Return the namespaces a callback built without a Trainer in sight should serve.

    The namespaces already imported, or when none is, every installed one: a callback created
    before `import lightning` must still be accepted by whichever Trainer comes next.
    """
    return imported_namespaces() or installed_namespaces()
