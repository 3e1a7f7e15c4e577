"""reprolog: reproducible, explainable ML training runs with no logging code."""

from __future__ import annotations

from reprolog._capture.importhook import when_imported
from reprolog._diff import diff
from reprolog._diff._model import (
    Barrier,
    Category,
    Difference,
    Explanation,
    MetricComparison,
    MetricStatus,
    RunDiff,
)
from reprolog._errors import (
    AmbiguousRunError,
    ArgumentError,
    CorruptFileError,
    MetricError,
    MetricKeyError,
    MetricValueError,
    QueryError,
    ReproduceError,
    ReprologError,
    RunNotFoundError,
    RunStateError,
    StepError,
    StoreError,
)
from reprolog._fingerprint._content import fingerprint
from reprolog._fingerprint._steptrace import StepFingerprints
from reprolog._reproduce import reproduce
from reprolog._reproduce._model import (
    Cause,
    CheckpointComparison,
    EnvDifference,
    Reproduction,
)
from reprolog._run._lifecycle import active_run
from reprolog._run._owner import RunOwner
from reprolog._run._plugins import autolog, autolog_enabled
from reprolog._run._rank import RankWriter, attach
from reprolog._run._run import Run, init
from reprolog._run._seed import seed_everything
from reprolog._store._record import RunRecord
from reprolog._store._store import Store

__version__ = "0.1.0"

__all__ = [
    "AmbiguousRunError",
    "ArgumentError",
    "Barrier",
    "Category",
    "Cause",
    "CheckpointComparison",
    "CorruptFileError",
    "Difference",
    "EnvDifference",
    "Explanation",
    "MetricComparison",
    "MetricError",
    "MetricKeyError",
    "MetricStatus",
    "MetricValueError",
    "QueryError",
    "RankWriter",
    "ReproduceError",
    "Reproduction",
    "ReprologError",
    "Run",
    "RunDiff",
    "RunNotFoundError",
    "RunOwner",
    "RunRecord",
    "RunStateError",
    "StepError",
    "StepFingerprints",
    "Store",
    "StoreError",
    "__version__",
    "active_run",
    "attach",
    "autolog",
    "autolog_enabled",
    "diff",
    "fingerprint",
    "init",
    "reproduce",
    "seed_everything",
    "when_imported",
]
