"""The run layer's two hook registries: process hooks and run start hooks.

Process hooks: the one owner of `atexit` and `os.register_at_fork` for the run layer. Runs
(`_lifecycle`, `_run`) and rank writers (`_rank`) add callbacks here; the interpreter hooks
behind them are installed once per process, under one lock, the first time a callback is
added. At exit, callbacks run last added first (as `atexit` does); in a forked child, in the
order they were added (`around_fork` pairs: before the fork, last added first, and after it
in both processes). `run_exit_hooks_first` moves them before atexit callbacks registered
since (a library's finalizer that ending a run still needs).

Run start hooks: what other parts of the core do when a run starts (`seed_everything` hands
over a seeding made before it, `reproduce` replays the original's RNG states, `_lifecycle`
installs the hooks that end runs truly). `Run.__init__` calls them, in the order they were
added, after capture and before the run's first record write; a hook that raises is recorded
in the run's capture report, never raised.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

logger = logging.getLogger("reprolog")

_lock = threading.Lock()
_at_exit: list[Callable[[], None]] = []
_in_child: list[Callable[[], None]] = []
_around_fork: list[tuple[Callable[[], None], Callable[[], None]]] = []
_installed = False


def at_exit(callback: Callable[[], None]) -> None:
    """Call `callback()` when the interpreter exits (once, however often it is added)."""
    with _lock:
        if callback not in _at_exit:
            _at_exit.append(callback)
        _install_locked()


def in_forked_child(callback: Callable[[], None]) -> None:
    """Call `callback()` in the child right after this process forks (once per fork)."""
    with _lock:
        if callback not in _in_child:
            _in_child.append(callback)
        _install_locked()


def around_fork(before: Callable[[], None], after: Callable[[], None]) -> None:
    """Call `before()` right before this process forks and `after()` right after, in the
    parent and in the child (once, however often the pair is added)."""
    with _lock:
        if (before, after) not in _around_fork:
            _around_fork.append((before, after))
        _install_locked()


def run_exit_hooks_first() -> None:
    """Run the exit callbacks before every `atexit` callback registered so far.

    `atexit` calls the last registered first; a library imported after the hooks were
    installed may have registered a finalizer (pyarrow's S3 one) that our exit callbacks,
    which end and publish runs, still need.
    """
    with _lock:
        if _installed:
            atexit.unregister(_run_at_exit)
            atexit.register(_run_at_exit)


def _install_locked() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    atexit.register(_run_at_exit)
    os.register_at_fork(
        before=_run_before_fork, after_in_parent=_run_after_fork, after_in_child=_run_in_child
    )


def _run_before_fork() -> None:
    for before, _ in reversed(list(_around_fork)):
        try:
            before()
        except Exception:
            logger.exception("reprolog: a fork hook failed")


def _run_after_fork() -> None:
    for _, after in list(_around_fork):
        try:
            after()
        except Exception:
            logger.exception("reprolog: a fork hook failed")


def _run_at_exit() -> None:
    with _lock:
        callbacks = list(reversed(_at_exit))
    for callback in callbacks:
        try:
            callback()
        except Exception:
            logger.exception("reprolog: an exit hook failed")


def _run_in_child() -> None:
    # No lock: another thread of the parent may have held it at the fork, and the child has
    # only this thread. The lists are only ever appended to, so a copy is consistent.
    global _lock
    _lock = threading.Lock()
    _run_after_fork()
    for callback in list(_in_child):
        try:
            callback()
        except Exception:
            logger.exception("reprolog: a fork hook failed")


# ---------------------------------------------------------------------------- run start hooks


class StartingRun(Protocol):
    """What a start hook may do with the run being started (a `Run`)."""

    @property
    def id(self) -> str: ...

    @property
    def dir(self) -> Path: ...

    @property
    def store_dir(self) -> Path: ...

    def set_tags(self, tags: Mapping[str, Any] | None = None, /, **more: Any) -> None: ...

    def update_section(self, name: str, mapping: Mapping[str, Any]) -> None: ...

    def record_capture_error(self, what: str, error: BaseException | str) -> None: ...


_start_hooks: list[tuple[str, Callable[[StartingRun], None]]] = []


def on_run_start(hook: Callable[[StartingRun], None], *, what: str) -> None:
    """Call `hook(run)` for every run this process starts from now on.

    Args:
        hook: called with the live `Run`, after capture and before the first record write.
        what: the capture-report label of a failure of `hook`.
    """
    with _lock:
        if all(hook is not known for _, known in _start_hooks):
            _start_hooks.append((what, hook))


def run_start_hooks(run: StartingRun) -> None:
    """Call every start hook with `run`, in the order they were added; failures are recorded."""
    with _lock:
        hooks = list(_start_hooks)
    for what, hook in hooks:
        try:
            hook(run)
        except Exception as exc:  # a hook must never stop the run from starting
            run.record_capture_error(what, exc)
