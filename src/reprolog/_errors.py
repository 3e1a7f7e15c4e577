"""The exception tree: every error reprolog raises derives from ReprologError."""

from __future__ import annotations

from typing import Any


class ReprologError(Exception):
    """Base class of every error raised by reprolog."""


class MetricError(ReprologError, ValueError):
    """A metric point that cannot be stored.

    Attributes:
        key: the metric key involved, when there is one.
    """

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class MetricKeyError(MetricError):
    """A metric key that is empty or not a string."""


class MetricValueError(MetricError, TypeError):
    """A metric value that is not a single real number."""

    def __init__(self, message: str, *, key: str | None = None, value: Any = None) -> None:
        super().__init__(message, key=key)
        self.value = value


class StepError(MetricError):
    """A step or epoch that is not a non-negative integer."""


class RunStateError(ReprologError, RuntimeError):
    """An operation that the run's current state does not allow (e.g. logging after finish).

    Attributes:
        run_id: the run involved.
    """

    def __init__(self, message: str, *, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


class ArgumentError(ReprologError, ValueError):
    """A public function received an argument it does not accept."""


class StoreError(ReprologError):
    """A problem with the store itself (missing, unreadable, wrong format).

    Attributes:
        path: the file or folder involved, when there is one.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class CorruptFileError(StoreError):
    """A file in the store that cannot be read; the rest of the store stays readable."""


class RunNotFoundError(StoreError, LookupError):
    """No run matches the given id, prefix or name.

    Attributes:
        query: what was looked up.
    """

    def __init__(self, message: str, *, query: str, path: str | None = None) -> None:
        super().__init__(message, path=path)
        self.query = query


class AmbiguousRunError(StoreError, LookupError):
    """An id prefix or name that matches more than one run.

    Attributes:
        query: what was looked up.
        candidates: the ids of the runs it matches.
    """

    def __init__(self, message: str, *, query: str, candidates: list[str]) -> None:
        super().__init__(message)
        self.query = query
        self.candidates = candidates


class ReproduceError(ReprologError):
    """A run that cannot be re-run: no commit, command or script recorded, or its repo is gone."""


class QueryError(ReprologError, ValueError):
    """A SQL query or predicate that DuckDB rejected."""


class RemoteStoreError(StoreError):
    """A store at a URI (S3, a shared filesystem) that cannot be read or written.

    The message is one line naming the bucket (or folder) and the cause: a missing bucket,
    denied access (wrong credentials), an unreachable endpoint. It never holds a credential.

    Attributes:
        uri: the store's URI as it may be shown (no userinfo, no secret query option).
        bucket: the S3 bucket, or the folder, involved.
    """

    def __init__(self, message: str, *, uri: str | None = None, bucket: str | None = None) -> None:
        super().__init__(message, path=uri)
        self.uri = uri
        self.bucket = bucket
