"""The outcome of `reproduce`: the `Reproduction` record, its error, and the child's env names."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from reprolog._errors import ReproduceError

if TYPE_CHECKING:
    from reprolog._diff import Difference, RunDiff

__all__ = ["ENV_FROM", "ENV_ID", "ENV_REPORT", "REDACTED", "ReproduceError", "Reproduction"]

Verdict = Literal["identical", "within tolerance", "diverged", "failed"]

# Set in the child by `reproduce`; read by `on_run_start` (called from `Run.__init__`).
ENV_ID = "REPROLOG_REPRODUCES"
ENV_FROM = "REPROLOG_REPRODUCES_FROM"  # the original run's folder (its RNG side files)
ENV_REPORT = "REPROLOG_REPRODUCES_REPORT"  # a file where the child notes the run it made
REDACTED = "[REDACTED]"
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass
class Reproduction:
    """The outcome of re-running a recorded run.

    Attributes:
        original: the recorded run's id.
        new: the re-run's id (None for a dry run, or when the re-run made no run).
        command: the command line that was (or, for a dry run, would be) run.
        cwd: its working directory.
        workdir: the git work tree of the recorded commit.
        kept: the work tree was left in place (``keep=True`` or a dry run that made none).
        returncode: the child's exit status (None for a dry run or a timeout).
        diff: the original against the re-run, with the differences the re-run itself causes
            (work-tree path, detached HEAD, its own tag) moved to ``expected``.
        verdict: "identical", "within tolerance", "diverged" or "failed"; None for a dry run.
        diverged_at: the first divergent step of the first diverging metric.
        diverged_metric: that metric's key.
        likely_cause: the top-ranked recorded difference, as text.
        exact: False when the code or environment could not be rebuilt exactly (see ``notes``).
        notes: what was not exact, and other things worth knowing.
        env: the variables set (or unset, as None) for the child on top of the current ones.
        expected: differences due to re-running in a work tree, left out of ``diff``.
        error: why the re-run failed: the tail of its stderr, or the timeout.
        seconds: how long the child ran.
    """

    original: str
    new: str | None
    command: list[str]
    cwd: str
    workdir: str
    kept: bool
    returncode: int | None = None
    diff: RunDiff | None = None
    verdict: Verdict | None = None
    diverged_at: int | None = None
    diverged_metric: str | None = None
    likely_cause: str | None = None
    exact: bool = True
    notes: list[str] = field(default_factory=list)
    env: dict[str, str | None] = field(default_factory=dict)
    expected: list[Difference] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    @property
    def reproduced(self) -> bool:
        """True when the re-run is identical or within tolerance."""
        return self.verdict in ("identical", "within tolerance")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe mapping of the whole outcome."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["diff"] = self.diff.to_dict() if self.diff is not None else None
        out["expected"] = [d.to_dict() for d in self.expected]
        return out
