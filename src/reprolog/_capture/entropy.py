"""Fresh OS entropy numpy draws (``np.random.default_rng()`` unseeded): record it, replay it.

Every numpy ``SeedSequence`` built without a seed (``default_rng()``, ``PCG64()``,
``SeedSequence()``) takes its entropy from one function, ``numpy.random.bit_generator.randbits``.
Once numpy's ``bit_generator`` module is imported (or at once, when it already is), reprolog
wraps that function: in a recorded run it passes the real draw through and remembers it; in a
re-run made by ``reprolog reproduce`` it hands back the original's draws in order, so an
unseeded generator produces the same numbers. Draws made before ``import reprolog`` cannot be
seen, and other entropy (``os.urandom``, ``secrets``, ``uuid4``, ``torch.seed()``) is not
replayed: a verdict names them when a re-run diverges with nothing else to blame.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from reprolog._storage._layout import RunLayout

__all__ = ["drawn", "install", "replay_state", "section_facts"]

MODULE = "numpy.random.bit_generator"
MAX_KEPT = 256  # draws kept in the record; more are counted only
_lock = threading.Lock()
_drawn: list[str] = []  # hex of each draw, in order
_count = 0
_replay: list[int] | None = None
_replayed = 0
_replay_short = 0  # draws asked for after the recorded ones ran out
_installed = False
_listeners: list[Callable[[], None]] = []


def drawn() -> list[str]:
    """The entropy values (hex) numpy drew in this process since reprolog was imported."""
    with _lock:
        return list(_drawn)


def section_facts() -> dict[str, Any]:
    """The ``seeds`` section keys this module owns (see ARCHITECTURE.md, seeds)."""
    with _lock:
        facts: dict[str, Any] = {
            "numpy_entropy": list(_drawn),
            "numpy_entropy_count": _count,
            "numpy_entropy_hooked": _installed,
        }
        if _replay is not None:
            facts["numpy_entropy_replayed"] = _replayed
            facts["numpy_entropy_unreplayed"] = _replay_short
    return facts


def replay_state() -> tuple[int, int] | None:
    """(draws replayed, draws that found no recorded value), or None outside a replay."""
    with _lock:
        return None if _replay is None else (_replayed, _replay_short)


def on_draw(listener: Callable[[], None]) -> None:
    """Call ``listener()`` after each draw (the live run refreshes its seeds section)."""
    _listeners.append(listener)


def _recorded_draws() -> list[int] | None:
    """In a re-run: the original's recorded draws, from its folder ($REPROLOG_REPRODUCES_FROM).

    Only the process that made the original run replays: rank 0 of a distributed launch (the
    other ranks' draws were never recorded), never a forked child (a DataLoader worker).
    """
    if not os.environ.get("REPROLOG_REPRODUCES"):
        return None
    if os.environ.get("RANK", "0") != "0" or os.environ.get("LOCAL_RANK", "0") != "0":
        return None
    source = os.environ.get("REPROLOG_REPRODUCES_FROM")
    if not source:
        return None
    try:
        doc = json.loads(RunLayout(Path(source)).record.read_text())
        seeds = (doc.get("sections") or {}).get("seeds") or {}
        return [int(h, 16) for h in seeds.get("numpy_entropy") or []]
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def _numpy_random_importing() -> bool:
    module = sys.modules.get("numpy.random")
    spec = getattr(module, "__spec__", None)
    return module is None or bool(getattr(spec, "_initializing", False))


def _patch(module: ModuleType) -> None:
    global _installed, _replay
    real = getattr(module, "randbits", None)
    if real is None or getattr(real, "_reprolog", False):
        return
    _replay = _recorded_draws()

    def randbits(k: int) -> int:
        global _count, _replayed, _replay_short
        if _numpy_random_importing():
            # numpy seeds its global RandomState while `numpy.random` imports: that state is
            # captured and restored at init; recording this draw would make every two runs,
            # seeded or not, differ.
            return int(real(k))
        value: int | None = None
        with _lock:
            if _replay is not None:
                if _replayed < len(_replay):
                    value = _replay[_replayed]
                    _replayed += 1
                else:
                    _replay_short += 1
        if value is None:
            value = int(real(k))
        with _lock:
            _count += 1
            if len(_drawn) < MAX_KEPT:
                _drawn.append(format(value, "x"))
        for listener in list(_listeners):
            with contextlib.suppress(Exception):  # never break the user's generator
                listener()
        return value

    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_stop_replay)
    randbits._reprolog = True  # type: ignore[attr-defined]
    module.randbits = randbits  # type: ignore[attr-defined]
    _installed = True


def _stop_replay() -> None:
    """In a forked child: draw fresh entropy, as the original's children did."""
    global _replay
    _replay = None


def install() -> None:
    """Hook numpy's entropy source now or when numpy's ``bit_generator`` is imported. Idempotent."""
    from reprolog._capture.importhook import when_imported

    with contextlib.suppress(Exception):  # never break `import reprolog`
        when_imported(MODULE, _patch)
