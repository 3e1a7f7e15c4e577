"""Flatten nested record sections into dotted leaves, dropping values that change on every run."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

# Fields whose value is expected to differ between any two runs, even two identical ones: clocks,
# durations, process ids, free memory. Comparing them would make every diff non-empty and bury the
# differences that matter, so they are dropped before comparing. Matched on the last path component.
_VOLATILE = re.compile(
    r"(^|[_.\-])(time|times|timestamp|timing|timings|duration|durations|elapsed|seconds|secs|ms|"
    r"pid|ppid|heartbeat|uptime|free)($|[_.\-])"
    r"|_at$|^(ram|memory|mem)_available$|^available_(ram|memory)$",
    re.IGNORECASE,
)

# Fields that name a list element, in the order they are tried; a list of mappings that all carry
# one of them is compared element by element (by that name) instead of by position.
_IDENTITY_FIELDS = ("name", "path", "id", "key", "file")


def is_volatile(component: str) -> bool:
    """Return True when a path component names a value that changes on every run (time, pid, ...).

    Keys that look like file or package names (``time.py``, ``src/timing``) are never volatile.
    """
    if "." in component or "/" in component:
        return False
    return bool(_VOLATILE.search(component))


def keyed_list(items: list[Any]) -> dict[str, Any] | None:
    """Return a list of mappings keyed by their identity field, or None when it has none."""
    if not items or not all(isinstance(x, Mapping) for x in items):
        return None
    for name in _IDENTITY_FIELDS:
        ids = [x.get(name) for x in items]
        if all(isinstance(i, str | int) for i in ids) and len(set(ids)) == len(ids):
            return {str(i): x for i, x in zip(ids, items, strict=True)}
    return None


Path = tuple[str, ...]


def flatten(value: Any, prefix: Path, out: dict[Path, Any]) -> None:
    """Flatten ``value`` into ``out`` as paths (tuples of keys) under ``prefix``.

    Mappings are recursed into; lists of named mappings are recursed into by name; any other list,
    and every scalar, is a leaf. Volatile fields are dropped. Paths are tuples, not dotted strings,
    because keys themselves may hold dots (file names, package names).

    Args:
        value: a JSON-like value.
        prefix: the path of ``value``.
        out: where leaves are written.
    """
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not is_volatile(str(k)):
                flatten(v, (*prefix, str(k)), out)
        return
    if isinstance(value, list):
        keyed = keyed_list(value)
        if keyed is not None:
            flatten(keyed, prefix, out)
            return
    out[prefix] = value


def compare_trees(a: Any, b: Any, prefix: Path = ()) -> list[tuple[Path, Any, Any]]:
    """Return (path, a, b) for every leaf that differs between two JSON-like trees.

    A subtree present on one side only is reported once, as a whole, rather than leaf by leaf.

    Args:
        a: run A's value (``None`` when absent).
        b: run B's value (``None`` when absent).
        prefix: the path of both values.

    Returns:
        The differing leaves, with ``None`` standing for "absent".
    """
    fa: dict[Path, Any] = {}
    fb: dict[Path, Any] = {}
    # None is "absent" (a section only one run has): it has no leaves to compare.
    if a is not None:
        flatten(a, prefix, fa)
    if b is not None:
        flatten(b, prefix, fb)
    pre_a = {p[:i] for p in fa for i in range(len(p) + 1)}
    pre_b = {p[:i] for p in fb for i in range(len(p) + 1)}
    found: list[tuple[Path, Any, Any]] = []
    done: set[Path] = set()
    for path in sorted(set(fa) | set(fb)):
        if path in fa and path in fb:
            if not same(fa[path], fb[path]):
                found.append((path, fa[path], fb[path]))
            continue
        side, other = (fa, pre_b) if path in fa else (fb, pre_a)
        # The topmost part of this path that the other side lacks is reported once, whole.
        top = next(
            (path[:i] for i in range(len(prefix) + 1, len(path) + 1) if path[:i] not in other), path
        )
        if top in done:
            continue
        done.add(top)
        whole = side[top] if top in side else _unflatten(side, top)
        found.append((top, whole, None) if side is fa else (top, None, whole))
    return found


def _unflatten(leaves: dict[Path, Any], top: Path) -> dict[str, Any]:
    """Rebuild the subtree under ``top`` from flat leaves, for display."""
    out: dict[str, Any] = {}
    for path, value in leaves.items():
        if path[: len(top)] == top:
            node = out
            for part in path[len(top) : -1]:
                node = node.setdefault(part, {})
            node[path[-1]] = value
    return out


def same(a: Any, b: Any) -> bool:
    """Compare two JSON-like values, treating NaN as equal to NaN and key order as irrelevant."""
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    if type(a) is not type(b) and not (isinstance(a, int | float) and isinstance(b, int | float)):
        return False
    if isinstance(a, Mapping | list):
        return canonical(a) == canonical(b)
    return bool(a == b)


def canonical(value: Any) -> str:
    """Return a stable JSON text for a value (sorted keys), to compare nested values."""
    return json.dumps(value, sort_keys=True, default=repr)


def scrub(value: Any, needles: Mapping[str, str]) -> Any:
    """Replace run-specific strings (the run's own id) so two runs compare equal on them."""
    if isinstance(value, str):
        for old, new in needles.items():
            if old and old in value:
                value = value.replace(old, new)
        return value
    if isinstance(value, Mapping):
        return {k: scrub(v, needles) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, needles) for v in value]
    return value
