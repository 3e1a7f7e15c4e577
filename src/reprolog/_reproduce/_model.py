"""The outcome of `reproduce`: the `Reproduction` record, its error, and the child's env names."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from reprolog._errors import ReproduceError

if TYPE_CHECKING:
    from reprolog._diff import Difference, RunDiff

__all__ = [
    "ENV_FROM",
    "ENV_ID",
    "ENV_REPORT",
    "REDACTED",
    "Cause",
    "CheckpointComparison",
    "EnvDifference",
    "ReproduceError",
    "Reproduction",
]

Verdict = Literal["identical", "within tolerance", "diverged", "failed"]
EnvMode = Literal["current", "recorded"]


@dataclass(frozen=True)
class Cause:
    """One likely cause of a divergence, most likely first in ``Reproduction.causes``.

    Attributes:
        category: what kind of barrier: a ``diff`` category (``"data"``, ``"code"``,
            ``"environment"``...), ``"entropy"`` (OS randomness the record cannot replay),
            ``"rebuild"`` (the re-run could not be made exact) or ``"unknown"``.
        explanation: one sentence for a person.
        key: the recorded fact behind it (a dotted record path), when there is one.
        source: who named it: ``"record"`` (the ranked diff), ``"reproduce"``, or another
            analysis (per-step fingerprints add theirs here).
        step: the step it acted at, when known.
    """

    category: str
    explanation: str
    key: str | None = None
    source: str = "record"
    step: int | None = None

    def __str__(self) -> str:
        return f"{self.category}: {self.explanation}"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe mapping."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class EnvDifference:
    """A package or interpreter fact that differs between the record and the re-run's env.

    Attributes:
        name: ``"python"``, ``"python_implementation"`` or a normalized distribution name.
        recorded: the recorded version (None: not installed then).
        actual: the version in the environment the re-run uses (None: not installed).
        ml: on the numeric path of a training (Python, torch, CUDA/cuDNN, numpy, frameworks):
            what ``--strict`` refuses.
        rank: 1 for the most relevant, as ``diff`` ranks them.
    """

    name: str
    recorded: str | None
    actual: str | None
    ml: bool
    rank: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe mapping."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class CheckpointComparison:
    """A checkpoint both runs saved at the same step (and name), and whether the bytes match.

    Attributes:
        step: the training step.
        name: the checkpoint's file or folder name.
        original: its sha256 in the original run.
        new: its sha256 in the re-run.
        equal: the hashes are equal.
    """

    step: int
    name: str
    original: str | None
    new: str | None
    equal: bool

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe mapping."""
        return dataclasses.asdict(self)


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
        causes: the likely causes, most likely first (``likely_cause`` is the first, as text).
        first_divergent: metric key → first divergent step, for each diverging metric.
        env_mode: ``"current"`` (this interpreter and its packages) or ``"recorded"`` (a venv
            rebuilt from the record).
        python: the interpreter the re-run used.
        env_differences: the record against the environment the re-run used (Python and
            packages), ranked; empty when they match.
        venv: the rebuilt venv's folder (``env_mode="recorded"``).
        venv_cached: the venv came from the cache.
        build_seconds: time spent building (or reusing) the venv.
        steps: the step limit (``--steps N``); metrics were compared on that prefix only.
        new_steps: the highest step the re-run logged.
        checkpoints: the checkpoints both runs saved at a common step, with hash equality.
        restored: with ``env_mode="recorded"``: where this machine's current environment
            differs from the record, i.e. what the rebuilt venv put back (recorded → here).
        unjudged: metric keys compared but left out of the verdict: wall-clock times and
            rates, and system metrics (``sys/...``), which change on every run.
        launch: how the re-run was launched: ``"script"``, ``"module"``, ``"console_script"``,
            ``"torchrun"``, ``"accelerate"``, ``"command"`` or ``"notebook"``.
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
    causes: list[Cause] = field(default_factory=list)
    first_divergent: dict[str, int | None] = field(default_factory=dict)
    env_mode: EnvMode = "current"
    python: str = ""
    env_differences: list[EnvDifference] = field(default_factory=list)
    venv: str | None = None
    venv_cached: bool = False
    build_seconds: float = 0.0
    steps: int | None = None
    new_steps: int | None = None
    checkpoints: list[CheckpointComparison] = field(default_factory=list)
    restored: list[EnvDifference] = field(default_factory=list)
    unjudged: list[str] = field(default_factory=list)
    launch: str = "script"

    @property
    def reproduced(self) -> bool:
        """True when the re-run is identical or within tolerance."""
        return self.verdict in ("identical", "within tolerance")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe mapping of the whole outcome."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["diff"] = self.diff.to_dict() if self.diff is not None else None
        out["expected"] = [d.to_dict() for d in self.expected]
        for name in ("causes", "env_differences", "checkpoints", "restored"):
            out[name] = [x.to_dict() for x in getattr(self, name)]
        return out
