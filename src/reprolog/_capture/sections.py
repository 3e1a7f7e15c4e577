"""Capture at init: environment, code, command, seeds and determinism, plus a capture report."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprolog._capture.code import capture_code
from reprolog._capture.command import capture_command
from reprolog._capture.determinism import capture_determinism, compute_risks
from reprolog._capture.environment import capture_environment, requirements_txt
from reprolog._capture.report import CaptureReport
from reprolog._capture.seeds import capture_seeds, restore_rng

__all__ = [
    "CaptureReport",
    "CaptureResult",
    "capture_all",
    "compute_risks",
    "requirements_txt",
    "restore_rng",
]

SECTIONS = ("environment", "code", "command", "seeds", "determinism")


@dataclass
class CaptureResult:
    """What `capture_all` found.

    Attributes:
        sections: section name → JSON-ready mapping (environment, code, command, seeds,
            determinism).
        report: ``{"captured", "skipped", "redacted", "errors", "seconds"}``.
    """

    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)


def _guarded(name: str, report: CaptureReport, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return fn()
    except Exception as exc:  # capture never breaks training: record and go on
        report.error(name, exc)
        return {}


def _merge(into: CaptureReport, other: CaptureReport) -> None:
    into.captured.extend(other.captured)
    into.skipped.extend(other.skipped)
    into.redact(other.redacted)
    into.errors.extend(other.errors)


def capture_all(run_dir: Path) -> CaptureResult:
    """Capture every section once, at init. Never raises.

    Git runs on a worker thread (its subprocesses release the GIL) while the environment, seeds
    and determinism are read on the calling thread.

    Args:
        run_dir: the run's folder; RNG states are written under ``run_dir/"rng"``.

    Returns:
        The sections and the capture report.
    """
    start = time.perf_counter()
    report = CaptureReport()
    sections: dict[str, dict[str, Any]] = {}
    try:
        command = _guarded("command", report, lambda: capture_command(report))
        where = None
        entry = command.get("entry")
        entry_file = str(command.get("entry_file") or "")
        installed = ("site-packages" in entry_file) or ("dist-packages" in entry_file)
        console = ((command.get("launcher") or {}).get("kind")) == "console_script"
        if entry_file and not installed and os.path.isfile(entry_file):
            where = os.path.dirname(entry_file)  # a -m module's, or a console script's module
        elif console:
            where = None  # an installed tool's wrapper in bin/: the code is where it runs
        elif command.get("entry_kind") == "script" and entry and os.path.isfile(entry):
            where = os.path.dirname(entry)
        code_report = CaptureReport()
        code_box: dict[str, dict[str, Any]] = {}

        def _code() -> None:
            code_box["code"] = _guarded(
                "code", code_report, lambda: capture_code(code_report, where)
            )

        worker = threading.Thread(target=_code, name="reprolog-capture-git", daemon=True)
        worker.start()
        sections["environment"] = _guarded(
            "environment", report, lambda: capture_environment(report)
        )
        sections["seeds"] = _guarded("seeds", report, lambda: capture_seeds(Path(run_dir), report))
        sections["determinism"] = _guarded(
            "determinism", report, lambda: capture_determinism(report)
        )
        worker.join()
        sections["code"] = code_box.get("code", {})
        sections["command"] = command
        _merge(report, code_report)
        sections = {name: sections[name] for name in SECTIONS}
        if sections["determinism"] is not None:
            sections["determinism"]["risks"] = _guarded_risks(sections, report)
    except Exception as exc:  # belt and braces: never raise into the user's training
        report.error("capture", exc)
    return CaptureResult(sections=sections, report=report.to_dict(time.perf_counter() - start))


def _guarded_risks(sections: Mapping[str, Any], report: CaptureReport) -> list[dict[str, str]]:
    try:
        return compute_risks(sections)
    except Exception as exc:
        report.error("determinism.risks", exc)
        return []
