"""The one status rule of the core and of every integration, and how an ending error is recorded.

`outcome` turns the exception a run ends with (and any termination signal received since it
started) into its true status; `error_info` is the record's `error` field for it. The signal
itself is noted here by the SIGTERM handler of `_lifecycle`.
"""

from __future__ import annotations

import time
import traceback
from typing import Any


class Signal(KeyboardInterrupt):
    """A termination signal ended the run: recorded as error type "Signal", message its name.

    A KeyboardInterrupt, so that every `except KeyboardInterrupt` and every status rule that
    maps it to "interrupted" treat a SIGTERM the same way as Ctrl+C.
    """


_signal_received: str | None = None
_signal_time: float | None = None


def note_signal(name: str) -> None:
    """Remember that this process received the termination signal `name`, now."""
    global _signal_received, _signal_time
    _signal_received = name
    _signal_time = time.time()


def received_signal() -> str | None:
    """The name of the last termination signal this process received, or None."""
    return _signal_received


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


def error_info(exc: BaseException) -> dict[str, Any]:
    """The record's `error` for the exception a run ended with: type, message, traceback."""
    from reprolog._capture.redact import redact_text

    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-12:])
    if isinstance(exc, Signal):
        kind = "Signal"  # one record for a termination signal, whoever ended the run
    else:
        kind = f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins.")
    return {
        "type": kind,
        "message": redact_text(str(exc))[0],
        "traceback": redact_text(tb)[0],
    }
