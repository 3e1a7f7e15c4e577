"""The command section: argv, entry script or module with its hash, and the working directory."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reprolog._capture.redact import redact_argv
from reprolog._capture.report import CaptureReport
from reprolog._storage._hashing import sha256_fileobj

__all__ = ["ENV_LAUNCH", "capture_command", "detect_launcher", "entry_point", "launcher_kind"]

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
    launcher = _guarded_launcher(report, kind, entry)
    # The file whose folder the code lives in: a -m module's, or a console script's module.
    entry_file = source if kind == "module" else None
    script = (launcher or {}).get("console_script") or {}
    if script.get("entry_point"):
        entry_file = _module_file(str(script["entry_point"]).partition(":")[0]) or entry_file
    report.done("command")
    return {
        "argv": argv,
        "orig_argv": orig_argv,
        "executable": sys.executable,
        "entry_kind": kind,
        "entry": entry,
        "script_sha256": script_sha,
        "cwd": cwd,
        "entry_file": entry_file,
        "launcher": launcher,
    }


def _module_file(name: str) -> str | None:
    """A module's source file without importing it (its parent packages may be imported)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    origin = getattr(spec, "origin", None)
    return os.path.abspath(origin) if origin and os.path.isfile(origin) else None


def _guarded_launcher(report: CaptureReport, kind: str, entry: str | None) -> dict[str, Any] | None:
    try:
        found = detect_launcher(kind, entry)
    except Exception as exc:  # capture never breaks training
        report.error("command.launcher", exc)
        return None
    if found is not None and found.get("argv"):
        argv, hits = redact_argv(found["argv"])
        found["argv"] = argv
        report.redact([f"launcher.argv[{i}]" for i in hits])
    return found


# Launchers whose workers get these variables (torchrun / torch.distributed.run, and
# `accelerate launch`, which runs torch's elastic agent or a plain child).
_TORCHRUN_ENV = ("TORCHELASTIC_RUN_ID", "TORCHELASTIC_RESTART_COUNT")
_ACCELERATE_ENV = ("ACCELERATE_MIXED_PRECISION", "ACCELERATE_DYNAMO_BACKEND", "ACCELERATE_USE_CPU")


def launcher_kind(argv: Sequence[str]) -> str:
    """Name the kind of a launcher command line.

    Args:
        argv: the command as typed, e.g. ``["torchrun", "--nproc-per-node", "2", "train.py"]``.

    Returns:
        ``"torchrun"``, ``"accelerate"``, ``"python"`` (an interpreter running a script or
        ``-m`` module), ``"console_script"`` (an installed command) or ``"command"``.
    """
    if not argv:
        return "command"
    prog = os.path.basename(str(argv[0]))
    rest = [str(a) for a in argv[1:]]
    if prog.startswith(("python", "pypy")):
        if rest[:2] in (["-m", "torch.distributed.run"], ["-m", "torch.distributed.launch"]):
            return "torchrun"
        if rest[:1] == ["-m"] and rest[1:2] and rest[1].startswith("accelerate.commands"):
            return "accelerate"
        script = next((a for a in rest if not a.startswith("-")), "")
        base = os.path.basename(script)
        if base == "torchrun":
            return "torchrun"
        if base == "accelerate":
            return "accelerate"
        return "python"
    if prog == "torchrun":
        return "torchrun"
    if prog == "accelerate" and rest[:1] == ["launch"]:
        return "accelerate"
    return "console_script" if _console_script(str(argv[0])) is not None else "command"


def _parent_argv() -> list[str] | None:
    try:
        raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    except OSError:
        return None
    parts = [p.decode("utf-8", "replace") for p in raw.split(b"\0") if p]
    return parts or None


def _console_script(path: str) -> dict[str, Any] | None:
    """The console-script entry point an installed command runs, when ``path`` is one."""
    name = os.path.basename(path)
    if not name or name.endswith(".py"):
        return None
    import importlib.metadata as md

    try:
        eps = md.entry_points(group="console_scripts", name=name)
    except Exception:
        return None
    for ep in eps:
        dist = getattr(ep, "dist", None)
        return {
            "name": name,
            "entry_point": ep.value,
            "distribution": dist.metadata["Name"] if dist is not None else None,
        }
    return None


def detect_launcher(kind: str, entry: str | None) -> dict[str, Any] | None:
    """Find the command that launched this process, when it is not plain ``python script``.

    In order: ``$REPROLOG_LAUNCH`` (set by ``reprolog run -- CMD``), a torchrun or ``accelerate
    launch`` worker (its parent's command line, from /proc), a console script installed by a
    distribution (``my-train --lr 0.1``).

    Args:
        kind: this process's entry kind (``entry_point()``).
        entry: its entry (script path or module name).

    Returns:
        ``{"kind", "argv", "cwd"?, "from", "console_script"?}`` or None for a direct start.
    """
    raw = os.environ.get(ENV_LAUNCH)
    if raw:
        doc = json.loads(raw)
        if not isinstance(doc, Mapping) or not isinstance(doc.get("argv"), list):
            raise ValueError(f"${ENV_LAUNCH} is not a JSON object with an argv list")
        argv = [str(a) for a in doc["argv"]]
        out: dict[str, Any] = {"kind": launcher_kind(argv), "argv": argv, "from": ENV_LAUNCH}
        if doc.get("cwd"):
            out["cwd"] = str(doc["cwd"])
        script = _console_script(argv[0]) if argv and out["kind"] == "console_script" else None
        if script is not None:
            out["console_script"] = script
        return out
    env = os.environ
    distributed = any(name in env for name in _TORCHRUN_ENV) or (
        "LOCAL_RANK" in env and "WORLD_SIZE" in env
    )
    if distributed or any(name in env for name in _ACCELERATE_ENV):
        parent = _parent_argv()
        if parent is not None:
            found = launcher_kind(parent)
            if found in ("torchrun", "accelerate"):
                return {"kind": found, "argv": parent, "from": "parent process"}
    if kind == "script" and entry:
        script = _console_script(entry)
        if script is not None:
            return {
                "kind": "console_script",
                "argv": [script["name"], *sys.argv[1:]],
                "from": "console_scripts entry point",
                "console_script": script,
            }
    return None
