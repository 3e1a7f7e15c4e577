"""Process-wide run lifecycle: the registry of live runs and the hooks that end them truly.

atexit, sys.excepthook, a SIGTERM handler and a fork hook are installed once, at the first
run, so that no run stays "running" after its process is gone.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reprolog._run import Run

logger = logging.getLogger("reprolog")

_active: list[Run] = []
_active_lock = threading.RLock()


def active_run() -> Run | None:
    """Return the most recently started run of this process that has not finished, or None."""
    with _active_lock:
        return _active[-1] if _active else None


def register(run: Run) -> None:
    """Track a new live run and make sure the process hooks are in place."""
    with _active_lock:
        _active.append(run)
    _install_process_hooks()


def unregister(run: Run) -> None:
    with _active_lock:
        if run in _active:
            _active.remove(run)


_hooks_installed = False
_previous_excepthook = sys.excepthook
_previous_sigterm: Any = None
_signal_received: str | None = None


def _finish_all(status: str, error: BaseException | None = None) -> None:
    with _active_lock:
        runs = list(reversed(_active))
    for run in runs:
        try:
            run.finish(status, error=error)
        except Exception:
            logger.exception("reprolog: could not finish run %s", run.id)


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    _finish_all("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed", exc)
    _previous_excepthook(exc_type, exc, tb)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _signal_received
    _signal_received = signal.Signals(signum).name
    if signal.getsignal(signum) is not _on_sigterm:
        # Another handler (e.g. Lightning's) installed itself later and chained to us: it
        # owns the shutdown and will let its framework end gracefully. Ending our runs now
        # would cut that short; atexit ends them as interrupted instead.
        return
    _finish_all("interrupted", KeyboardInterrupt(f"signal {_signal_received}"))
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
        return
    # Default action: die by the same signal, so the exit status still says SIGTERM.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _at_exit() -> None:
    if _signal_received is not None:
        _finish_all("interrupted", KeyboardInterrupt(f"signal {_signal_received}"))
    else:
        _finish_all("completed")


def _after_fork_in_child() -> None:
    with _active_lock:
        runs = list(_active)
        _active.clear()
    for run in runs:
        run._detach_after_fork()


def _install_process_hooks() -> None:
    """Once per process: atexit, excepthook and SIGTERM end every live run with a true status."""
    global _hooks_installed, _previous_excepthook, _previous_sigterm
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_at_exit)
    _previous_excepthook = sys.excepthook
    sys.excepthook = _excepthook
    os.register_at_fork(after_in_child=_after_fork_in_child)
    if threading.current_thread() is threading.main_thread():
        try:
            current = signal.getsignal(signal.SIGTERM)
            if current in (signal.SIG_DFL, None) or callable(current):
                _previous_sigterm = current
                signal.signal(signal.SIGTERM, _on_sigterm)
        except (ValueError, OSError):  # not allowed here (embedded interpreters)
            pass
