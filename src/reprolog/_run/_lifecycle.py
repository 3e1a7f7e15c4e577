"""How live runs end truly: the hooks that finish them when their process ends.

An atexit hook, sys.excepthook, a SIGTERM handler and a `sys.exit` note are installed once,
when the first run starts (a start hook, see `_hooks.on_run_start`), so that no run stays
"running" after its process is gone. Each run's status comes from the one status rule,
`_status.outcome`.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType, TracebackType
from typing import Any, NoReturn

from reprolog._run import _hooks, _status
from reprolog._run._run import active_run, live_runs
from reprolog._run._status import Signal, outcome

__all__ = ["active_run"]  # the facade's `reprolog.active_run`; the registry is `_run`'s

logger = logging.getLogger("reprolog")

_install_lock = threading.Lock()
_installed = False
_previous_excepthook = sys.excepthook
_previous_sigterm: Any = None
# The last `sys.exit(code)` called on the main thread, as its SystemExit (see _exit_noting).
_exit_error: SystemExit | None = None
_original_exit = sys.exit


def _finish_all(status: str, error: BaseException | None = None) -> None:
    for run in live_runs():
        try:
            run.finish(status, error=error)
        except Exception:
            logger.exception("reprolog: could not finish run %s", run.id)


def _end_all(error: BaseException) -> None:
    """Finish every live run with the true outcome of `error` for that run."""
    for run in live_runs():
        try:
            status, cause = outcome(error, run.start_time)
            run.finish(status, error=cause)
        except Exception:
            logger.exception("reprolog: could not finish run %s", run.id)


def _finish_all_default() -> None:
    """Finish every live run as its own default says (a notebook run: its last cell)."""
    for run in live_runs():
        try:
            status, error = run._exit_outcome()
            run.finish(status, error=error)
        except Exception:
            logger.exception("reprolog: could not finish run %s", run.id)


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    _end_all(exc)
    _previous_excepthook(exc_type, exc, tb)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    _status.note_signal(name)
    if signal.getsignal(signum) is not _on_sigterm:
        # Another handler (e.g. Lightning's) installed itself later and chained to us: it
        # owns the shutdown and will let its framework end gracefully. Ending our runs now
        # would cut that short; whoever ends them (an integration, `with`, excepthook or
        # atexit) asks `outcome`, which gives the same "interrupted" + Signal record.
        return
    _finish_all("interrupted", Signal(name))
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
        return
    # Default action: die by the same signal, so the exit status still says SIGTERM.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _at_exit() -> None:
    received = _status.received_signal()
    if received is not None:
        _finish_all("interrupted", Signal(received))
    elif _exit_error is not None and _exit_error.code not in (0, None):
        # Best evidence left: the last sys.exit(code) of the main thread. `raise SystemExit`,
        # the `exit()` builtin and os._exit are not seen (see ARCHITECTURE, true status).
        _end_all(_exit_error)
    else:
        _finish_all_default()


def _exit_noting(status: str | int | None = None, /) -> NoReturn:
    """`sys.exit` that notes its code first: atexit cannot learn the exit status otherwise."""
    global _exit_error
    if threading.current_thread() is threading.main_thread():
        error = SystemExit(status)
        error.__context__ = sys.exc_info()[1]  # sys.exit(1) in `except KeyboardInterrupt`
        _exit_error = error
    _original_exit(status)


def _install_process_hooks(run: object = None) -> None:
    """Once per process: atexit, excepthook and SIGTERM end every live run with a true status."""
    global _installed, _previous_excepthook, _previous_sigterm, _original_exit
    _hooks.at_exit(_at_exit)
    with _install_lock:
        if _installed:
            return
        _installed = True
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


_hooks.on_run_start(_install_process_hooks, what="process hooks")
