"""Notebook runs: inside a Jupyter kernel, record the notebook, its path and the executed cells.

`init()` in a kernel adds a `notebook` section: the notebook's path where it can be found
(`$REPROLOG_NOTEBOOK`, VS Code's `__vsc_ipynb_file__`, `$JPY_SESSION_NAME`, then the Jupyter
server's sessions API), and the source of every cell executed so far, in order, from
IPython's history, refreshed after each cell. A cell that raises is recorded as an event
(`errors`) and the run goes on; the run ends with the next `init()` in the kernel, with
`finish()`, or when the kernel shuts down: "failed" when the last executed cell raised (with
its error), else "completed".
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import weakref
from collections.abc import Mapping
from typing import Any, Protocol

__all__ = [
    "ENV_NOTEBOOK",
    "NotebookRun",
    "NotebookWatch",
    "finish_previous",
    "kernel_shell",
    "notebook_path",
]

ENV_NOTEBOOK = "REPROLOG_NOTEBOOK"


class NotebookRun(Protocol):
    """What a notebook watch needs of the run it keeps up to date (a `reprolog.Run`)."""

    def update_section(self, name: str, mapping: Mapping[str, Any]) -> None: ...

    def record_capture_error(self, what: str, error: BaseException | str) -> None: ...

    def finish(self, status: str = ..., *, error: BaseException | None = ...) -> None: ...


# Watches of runs started in this kernel and not finished yet: the next init() ends them.
_open_watches: weakref.WeakSet[NotebookWatch] = weakref.WeakSet()


class CellError(Exception):
    """The exception of the last executed cell, when the kernel ends the run after it."""


def kernel_shell() -> Any | None:
    """The IPython shell of the Jupyter kernel this process is, or None outside a kernel."""
    if "ipykernel" not in sys.modules or "IPython" not in sys.modules:
        return None
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except Exception:
        return None
    if shell is None or getattr(shell, "kernel", None) is None:
        return None
    return shell


def notebook_path(shell: Any) -> tuple[str | None, str | None]:
    """Find the notebook's path, best effort: (path, how it was found) or (None, None)."""
    env = os.environ.get(ENV_NOTEBOOK)
    if env:
        return env, "env:" + ENV_NOTEBOOK
    vsc = (getattr(shell, "user_ns", None) or {}).get("__vsc_ipynb_file__")
    if isinstance(vsc, str) and vsc:
        return vsc, "vscode"
    session = os.environ.get("JPY_SESSION_NAME")
    if session:
        return session, "env:JPY_SESSION_NAME"
    found = _from_server_sessions()
    if found:
        return found, "jupyter-server-sessions"
    return None, None


def _from_server_sessions(timeout: float = 1.0) -> str | None:
    """Ask each running Jupyter server which session owns this kernel (no network beyond it)."""
    try:
        import urllib.request

        from ipykernel import get_connection_file
        from jupyter_server import serverapp
    except Exception:
        return None
    try:
        kernel_id = os.path.basename(get_connection_file()).removeprefix("kernel-")
        kernel_id = kernel_id.removesuffix(".json")
        for server in serverapp.list_running_servers():
            url = server["url"].rstrip("/") + "/api/sessions"
            request = urllib.request.Request(url)
            if server.get("token"):
                request.add_header("Authorization", f"token {server['token']}")
            with urllib.request.urlopen(request, timeout=timeout) as response:
                sessions = json.loads(response.read())
            for session in sessions:
                if (session.get("kernel") or {}).get("id") == kernel_id:
                    path = session.get("path") or (session.get("notebook") or {}).get("path")
                    if path:
                        return os.path.join(server.get("root_dir") or "", path)
    except Exception:
        return None
    return None


def executed_cells(shell: Any) -> list[str]:
    """The source of every cell executed in this kernel so far, in order."""
    history = getattr(getattr(shell, "history_manager", None), "input_hist_raw", None)
    if history is None:
        history = (getattr(shell, "user_ns", None) or {}).get("In") or []
    return [str(cell) for cell in list(history)[1:]]


def finish_previous() -> None:
    """In a kernel, end the runs an earlier `init()` started (a second init() starts afresh)."""
    for watch in list(_open_watches):
        status, error = watch.outcome()
        with contextlib.suppress(Exception):
            watch.run.finish(status, error=error)


class NotebookWatch:
    """Keeps one run's `notebook` section up to date after each executed cell."""

    def __init__(self, run: NotebookRun, shell: Any) -> None:
        self.run = run
        self._shell = shell
        # the cell running init() is in the history already: it is the run's first
        self._first = max(0, len(executed_cells(shell)) - 1)
        self._errors: list[dict[str, Any]] = []
        self._last_error: BaseException | None = None
        path, source = notebook_path(shell)
        self._static = {"kernel": type(getattr(shell, "kernel", None)).__name__, "path": path}
        self._static["path_source"] = source
        self._update()
        shell.events.register("post_run_cell", self._after_cell)
        _open_watches.add(self)

    def _after_cell(self, result: Any) -> None:
        try:
            error = getattr(result, "error_in_exec", None) or getattr(
                result, "error_before_exec", None
            )
            self._last_error = error
            if error is not None:
                count = getattr(result, "execution_count", None)
                self._errors.append(
                    {
                        "cell": count,
                        "type": type(error).__name__,
                        "message": str(error)[:2000],
                        "time": time.time(),
                    }
                )
            self._update()
        except Exception as exc:  # a watch that fails must not break the user's cells
            self.run.record_capture_error("notebook", exc)

    def _update(self) -> None:
        from reprolog._capture.redact import redact_text

        cells = executed_cells(self._shell)
        masked = [redact_text(cell)[0] for cell in cells]
        section = {
            **self._static,
            "cells": masked,
            "cells_before_init": self._first,
            "errors": list(self._errors),
            "last_cell_failed": self._last_error is not None,
        }
        self.run.update_section("notebook", section)

    def outcome(self) -> tuple[str, BaseException | None]:
        """How the run ends if nothing else ends it: failed when the last cell raised."""
        if self._last_error is not None:
            error = self._last_error
            return "failed", CellError(f"{type(error).__name__}: {error}")
        return "completed", None

    def stop(self) -> None:
        """Unhook from the shell; the section keeps the cells executed up to now."""
        _open_watches.discard(self)
        self._update()
        with contextlib.suppress(ValueError):
            self._shell.events.unregister("post_run_cell", self._after_cell)
