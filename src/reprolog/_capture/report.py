"""The capture report: what was captured, skipped, redacted, and what failed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["CaptureReport"]


@dataclass
class CaptureReport:
    """Collects what each capture step did; rendered with `to_dict` into the run record.

    Attributes:
        captured: names of what was captured (sections or sub-items).
        skipped: ``{"what", "why"}`` for each thing deliberately not captured.
        redacted: names of masked values (never the values).
        errors: ``{"what", "error"}`` for each step that failed.
    """

    captured: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    redacted: list[str] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)

    def done(self, what: str) -> None:
        """Record that `what` was captured."""
        self.captured.append(what)

    def skip(self, what: str, why: str) -> None:
        """Record that `what` was skipped, and why."""
        self.skipped.append({"what": what, "why": why})

    def redact(self, names: list[str]) -> None:
        """Record the names of masked values."""
        self.redacted.extend(n for n in names if n not in self.redacted)

    def error(self, what: str, exc: BaseException | str) -> None:
        """Record a failure; the message never includes a traceback's local values."""
        message = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        # An exception message may quote a secret (a URL, an argv); mask it like everything else.
        from reprolog._capture.redact import redact_text

        self.errors.append({"what": what, "error": redact_text(message)[0]})

    def to_dict(self, seconds: float) -> dict[str, Any]:
        """Render the report as stored in the run record."""
        return {
            "captured": list(self.captured),
            "skipped": list(self.skipped),
            "redacted": list(self.redacted),
            "errors": list(self.errors),
            "seconds": round(seconds, 6),
        }
