"""The command section: argv, entry script or module with its hash, and the working directory."""

from __future__ import annotations

import os
import sys
from typing import Any

from reprolog._capture.report import CaptureReport
from reprolog._hashing import sha256_fileobj
from reprolog._redact import redact_argv

__all__ = ["ENV_LAUNCH", "capture_command", "entry_point"]

# Set by a launcher that starts the training in another process (`reprolog run -- CMD`): a
# JSON object {"argv": [...], "cwd": "..."} of the command as the user typed it, so the run
# records `torchrun ... train.py` or `my-train --lr 0.1`, not only the worker's own argv.
ENV_LAUNCH = "REPROLOG_LAUNCH"


def entry_point() -> tuple[str, str | None, str | None]:
    """Find how the program was started.

    Returns:
        ``(kind, entry, file)``: kind is ``"script"``, ``"module"``, ``"command"`` or
        ``"interactive"``; entry is the script path or module name; file is the source file to
        hash (the script, or the module's file), when there is one.
    """
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    main_file = getattr(main, "__file__", None)
    if spec is not None and getattr(spec, "name", None) not in (None, "__main__"):
        name = spec.name
        if name.endswith(".__main__"):
            name = name[: -len(".__main__")]
        return "module", name, os.path.abspath(main_file) if main_file else spec.origin
    if main_file:
        return "script", os.path.abspath(main_file), os.path.abspath(main_file)
    if getattr(sys.flags, "interactive", 0) or not sys.argv or sys.argv[0] in ("", "-"):
        return "interactive", None, None
    if sys.argv[0] == "-c":
        return "command", None, None
    return "interactive", None, None


def _sha256_file(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return str(sha256_fileobj(fh).hexdigest())
    except OSError:
        return None


def capture_command(report: CaptureReport) -> dict[str, Any]:
    """Capture the command section (see sections.md for every key).

    Args:
        report: collects masked argv positions and errors.

    Returns:
        The section; argv values that look secret are masked.
    """
    argv, hits = redact_argv(list(sys.argv))
    report.redact([f"argv[{i}]" for i in hits])
    orig = list(getattr(sys, "orig_argv", sys.argv))
    orig_argv, orig_hits = redact_argv(orig)
    report.redact([f"orig_argv[{i}]" for i in orig_hits])
    kind, entry, source = entry_point()
    script_sha = _sha256_file(source) if source else None
    if source and script_sha is None:
        report.skip("command.script_sha256", f"entry file not readable: {source}")
    try:
        cwd = os.getcwd()
    except OSError as exc:  # the working directory was deleted under us
        report.error("command.cwd", exc)
        cwd = ""
    report.done("command")
    return {
        "argv": argv,
        "orig_argv": orig_argv,
        "executable": sys.executable,
        "entry_kind": kind,
        "entry": entry,
        "script_sha256": script_sha,
        "cwd": cwd,
    }
