"""The typed result of a run diff: differences, metric comparisons and the RunDiff holding them."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class Category(str, enum.Enum):
    """What kind of thing differs between two runs; the value is the name shown to users."""

    DATA = "data"
    CODE = "code"
    HYPERPARAMETERS = "hyperparameters"
    SEEDS = "seeds"
    DETERMINISM = "determinism"
    PACKAGES = "packages"
    HARDWARE = "hardware"
    COMMAND = "command"
    OTHER = "other"


class MetricStatus(str, enum.Enum):
    """How one metric shared by two runs compares, step by step."""

    IDENTICAL = "identical"
    WITHIN_TOLERANCE = "within_tolerance"
    DIVERGED = "diverged"


@dataclass(frozen=True)
class Difference:
    """One thing recorded differently in two runs.

    Attributes:
        category: the kind of difference (data, code, hyperparameters, ...).
        key: where it was found, as a dotted path (``params.lr``, ``packages.torch``).
        a: the value in run A (``None`` when absent there).
        b: the value in run B (``None`` when absent there).
        weight: how likely this difference is to change results; higher ranks first.
        explanation: one sentence a person can read.
        rank: 1 for the difference most likely to change results.
    """

    category: Category
    key: str
    a: Any
    b: Any
    weight: float
    explanation: str
    rank: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe mapping of this difference."""
        out = asdict(self)
        out["category"] = self.category.value
        return out


@dataclass(frozen=True)
class MetricComparison:
    """How one metric compares across two runs.

    Attributes:
        key: the metric key.
        status: identical, within tolerance, or diverged.
        step: the first step where the curves differ beyond tolerance (or where only one run has a
            point); ``None`` unless diverged.
        a: run A's value at ``step`` (``None`` if A has no point there).
        b: run B's value at ``step`` (``None`` if B has no point there).
        shared_steps: how many steps both runs logged.
        max_abs_diff: the largest absolute difference over the shared steps (NaN-safe).
        steps_only_in_a: how many steps only run A logged.
        steps_only_in_b: how many steps only run B logged.
    """

    key: str
    status: MetricStatus
    step: int | None
    a: float | None
    b: float | None
    shared_steps: int
    max_abs_diff: float
    steps_only_in_a: int = 0
    steps_only_in_b: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe mapping of this comparison (NaN/inf become strings)."""
        out = asdict(self)
        out["status"] = self.status.value
        for name in ("a", "b", "max_abs_diff"):
            out[name] = _json_float(out[name])
        return out


def _json_float(value: float | None) -> float | str | None:
    if value is None or (value == value and value not in (float("inf"), float("-inf"))):
        return value
    return repr(value)  # 'nan', 'inf', '-inf': JSON has no literal for these


class Barrier(str, enum.Enum):
    """What made two runs part; the value is the name shown to users."""

    NONE = "none"  # fingerprints and metrics agree at every shared step
    DATA_ORDER = "data order"
    DATA_CONTENT = "data content"
    DATA = "data order or content"  # batches differ; the runs did not both see the epoch whole
    RANDOMNESS = "randomness"
    NUMERICS = "numerics"
    CODE = "code or logging"
    UNKNOWN = "unknown"  # not enough step fingerprints to tell


@dataclass(frozen=True)
class Explanation:
    """The first step where two runs differ and what differed there, with its evidence.

    Attributes:
        barrier: the kind of cause (data order, data content, randomness, numerics, code or
            logging; none; unknown when the runs hold too few step fingerprints).
        step: the first step where something differs (None for none/unknown).
        rank: the rank where it was seen first (0 without ranks).
        summary: the explanation in one line (also ``str(explanation)``).
        evidence: what was compared: the field, both fingerprints (hex), the epoch and
            whether it holds the same samples, the last step where weights agreed, the
            generators that differ, the metric and both values.
        notes: recorded facts next to a numerics verdict (determinism risks, thread, hardware
            and package differences), and rank desynchronisation inside a run.
        shared_steps: how many (rank, step) records both runs hold.
    """

    barrier: Barrier
    step: int | None
    summary: str
    rank: int = 0
    evidence: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    shared_steps: int = 0

    def __str__(self) -> str:
        return self.summary

    @property
    def differs(self) -> bool:
        """True when the fingerprints or metrics show a difference."""
        return self.barrier not in (Barrier.NONE, Barrier.UNKNOWN)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe mapping of this explanation."""
        return {
            "barrier": self.barrier.value,
            "step": self.step,
            "rank": self.rank,
            "summary": self.summary,
            "evidence": dict(self.evidence),
            "notes": list(self.notes),
            "shared_steps": self.shared_steps,
        }


@dataclass(frozen=True)
class RunDiff:
    """Why two runs differ: ranked differences in what was recorded, then metric by metric.

    Attributes:
        a: run A's id.
        b: run B's id.
        differences: every recorded difference, most likely to change results first.
        metrics: one comparison per metric both runs logged, sorted by key.
        metrics_only_in_a: metric keys only run A logged.
        metrics_only_in_b: metric keys only run B logged.
        rtol: the relative tolerance used for metrics.
        atol: the absolute tolerance used for metrics.
        explanation: from the runs' step fingerprints, the first step where they differ and
            which barrier acted there (data order or content, randomness, numerics, code or
            logging); ``str()`` of it is one line, ``.to_dict()`` its JSON form.
        system_metrics: the system metric keys (``sys/...``: CPU, memory, GPU) either run
            logged; they measure the machine, so they are listed, never compared.
    """

    a: str
    b: str
    differences: list[Difference]
    metrics: list[MetricComparison]
    metrics_only_in_a: list[str] = field(default_factory=list)
    metrics_only_in_b: list[str] = field(default_factory=list)
    rtol: float = 0.0
    atol: float = 0.0
    explanation: Explanation | None = None
    system_metrics: list[str] = field(default_factory=list)

    @property
    def differs(self) -> bool:
        """True when anything recorded differs or a shared metric diverged beyond tolerance.

        A metric within tolerance does not count: that is what the tolerance says. Metrics that
        only one run logged do count, and so do step fingerprints that differ.
        """
        return bool(
            self.differences
            or self.metrics_only_in_a
            or self.metrics_only_in_b
            or any(m.status is MetricStatus.DIVERGED for m in self.metrics)
            or (self.explanation is not None and self.explanation.differs)
        )

    def by_category(self, category: Category | str) -> list[Difference]:
        """Return the differences of one category, in rank order.

        Args:
            category: a ``Category`` or its name (``"data"``, ``"code"``, ...).

        Returns:
            The matching differences, possibly empty.
        """
        cat = Category(category)
        return [d for d in self.differences if d.category is cat]

    def metric(self, key: str) -> MetricComparison | None:
        """Return the comparison of metric ``key``, or None when the runs do not share it."""
        return next((m for m in self.metrics if m.key == key), None)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe mapping of the whole diff."""
        return {
            "a": self.a,
            "b": self.b,
            "differs": self.differs,
            "rtol": self.rtol,
            "atol": self.atol,
            "differences": [d.to_dict() for d in self.differences],
            "metrics": [m.to_dict() for m in self.metrics],
            "metrics_only_in_a": list(self.metrics_only_in_a),
            "metrics_only_in_b": list(self.metrics_only_in_b),
            "explanation": None if self.explanation is None else self.explanation.to_dict(),
            "system_metrics": list(self.system_metrics),
        }
