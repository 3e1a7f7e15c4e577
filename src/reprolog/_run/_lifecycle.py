"""Process-wide run lifecycle: the registry of live runs and the hooks that end them truly.

atexit, sys.excepthook, a SIGTERM handler, a `sys.exit` note and a fork hook are installed
once, at the first run, so that no run stays "running" after its process is gone.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

from reprolog._run import _hooks

if TYPE_CHECKING:
    from reprolog._run._run import Run

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


class Signal(KeyboardInterrupt):
    """A termination signal ended the run: recorded as error type "Signal", message its name.

    A KeyboardInterrupt, so that every `except KeyboardInterrupt` and every status rule that
    maps it to "interrupted" treat a SIGTERM the same way as Ctrl+C.
    """


_hooks_installed = False
_install_lock = threading.Lock()
_previous_excepthook = sys.excepthook
_previous_sigterm: Any = None
_signal_received: str | None = None
_signal_time: float | None = None
# The last `sys.exit(code)` called on the main thread, as its SystemExit (see _exit_noting).
_exit_error: SystemExit | None = None
_original_exit = sys.exit


def signal_since(start: float) -> str | None:
    """Return the name of a termination signal this process received at or after `start`."""
    if _signal_received is None or _signal_time is None or _signal_time < start:
        return None
    return _signal_received


def outcome(error: BaseException | None, start: float) -> tuple[str, BaseException | None]:
    """Return the true (status, error) of a run started at `start` that ends with `error`.

    The one status rule of the core and of every integration: a termination signal received
    since the run started → "interrupted" with `Signal(<name>)`, whatever exception it turned
    into (Lightning raises its own `SIGTERMException`); KeyboardInterrupt, or `SystemExit`
    with code 0 or None or raised while handling a KeyboardInterrupt (Lightning's graceful
    `sys.exit(1)` after Ctrl+C) → "interrupted"; any other exception → "failed"; none →
    "completed".
    """
    name = signal_since(start)
    if name is not None:
        return "interrupted", Signal(name)
    if error is None:
        return "completed", None
    if isinstance(error, KeyboardInterrupt):
        return "interrupted", error
    if isinstance(error, SystemExit):
        ctrl_c = _ctrl_c_behind(error)
        if ctrl_c is not None:
            return "interrupted", ctrl_c  # the interrupt is the cause worth recording
        if error.code in (0, None):
            return "interrupted", error
    return "failed", error


def _ctrl_c_behind(error: BaseException) -> KeyboardInterrupt | None:
    seen: set[int] = set()
    cause = error.__context__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return cause
        seen.add(id(cause))
        cause = cause.__context__
    return None


def _finish_all(status: str, error: BaseException | None = None) -> None:
    with _active_lock:
        runs = list(reversed(_active))
    for run in runs:
        try:
            run.finish(status, error=error)
        except Exception:
            logger.exception("reprolog: could not finish run %s", run.id)


def _end_all(error: BaseException) -> None:
    """Finish every live run with the true outcome of `error` for that run."""
    with _active_lock:
        runs = list(reversed(_active))
    for run in runs:
        try:
            status, cause = outcome(error, run.start_time)
            run.finish(status, error=cause)
        except Exception:
            logger.exception("reprolog: could not finish run %s", run.id)


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    _end_all(exc)
    _previous_excepthook(exc_type, exc, tb)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _signal_received, _signal_time
    _signal_received = signal.Signals(signum).name
    _signal_time = time.time()
    if signal.getsignal(signum) is not _on_sigterm:
        # Another handler (e.g. Lightning's) installed itself later and chained to us: it
        # owns the shutdown and will let its framework end gracefully. Ending our runs now
        # would cut that short; whoever ends them (an integration, `with`, excepthook or
        # atexit) asks `outcome`, which gives the same "interrupted" + Signal record.
        return
    _finish_all("interrupted", Signal(_signal_received))
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
        return
    # Default action: die by the same signal, so the exit status still says SIGTERM.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _at_exit() -> None:
    if _signal_received is not None:
        _finish_all("interrupted", Signal(_signal_received))
    elif _exit_error is not None and _exit_error.code not in (0, None):
        # Best evidence left: the last sys.exit(code) of the main thread. `raise SystemExit`,
        # the `exit()` builtin and os._exit are not seen (see ARCHITECTURE, true status).
        _end_all(_exit_error)
    else:
        _finish_all_default()


def _finish_all_default() -> None:
    """Finish every live run as its own default says (a notebook run: its last cell)."""
    with _active_lock:
        runs = list(reversed(_active))
    for run in runs:
        try:
            default = getattr(run, "_at_exit_outcome", None)
            status, error = default() if default is not None else ("completed", None)
            run.finish(status, error=error)
        except Exception:
            logger.exception("reprolog: could not finish run %s", run.id)


def _exit_noting(status: str | int | None = None, /) -> NoReturn:
    """`sys.exit` that notes its code first: atexit cannot learn the exit status otherwise."""
    global _exit_error
    if threading.current_thread() is threading.main_thread():
        error = SystemExit(status)
        error.__context__ = sys.exc_info()[1]  # sys.exit(1) in `except KeyboardInterrupt`
        _exit_error = error
    _original_exit(status)


def _after_fork_in_child() -> None:
    with _active_lock:
        runs = list(_active)
        _active.clear()
    for run in runs:
        run._detach_after_fork()


def _install_process_hooks() -> None:
    """Once per process: atexit, excepthook and SIGTERM end every live run with a true status."""
    global _hooks_installed
    _hooks.at_exit(_at_exit)
    _hooks.in_forked_child(_after_fork_in_child)
    with _install_lock:
        if _hooks_installed:
            return
        _hooks_installed = True
        _install_status_hooks()


def _install_status_hooks() -> None:
    global _previous_excepthook, _previous_sigterm, _original_exit
    _previous_excepthook = sys.excepthook
    sys.excepthook = _excepthook
    _original_exit = sys.exit
    sys.exit = _exit_noting
    if threading.current_thread() is threading.main_thread():
        try:
            current = signal.getsignal(signal.SIGTERM)
            if current in (signal.SIG_DFL, None) or callable(current):
                _previous_sigterm = current
                signal.signal(signal.SIGTERM, _on_sigterm)
        except (ValueError, OSError):  # not allowed here (embedded interpreters)
            pass
