"""Read back what a recorded search stored: its `cv_results_` table."""

from __future__ import annotations

import os
from typing import Any

import reprolog


def cv_results(run: str, *, dir: str | os.PathLike[str] | None = None) -> Any:
    """Load the `cv_results_` table a recorded search stored, one row per candidate.

    The table is a Parquet blob in the store, so DuckDB, Polars or Spark read it as well:
    `store.sql("SELECT blob FROM artifacts WHERE name = 'cv_results.parquet'")` gives its
    path relative to the store folder.

    Args:
        run: a run id, unique id prefix or name.
        dir: the store folder; None: `$REPROLOG_DIR` or the nearest `.reprolog`.

    Returns:
        A pandas DataFrame (`params` holds each candidate's params as JSON text).

    Raises:
        reprolog.RunNotFoundError: no run matches `run`.
        reprolog.ArgumentError: the run holds no stored cv_results_ table.
    """
    import pandas as pd

    store = reprolog.Store(dir)
    record = store.run(run)
    for artifact in reversed(record.artifacts):
        meta = artifact.get("metadata") or {}
        if meta.get("what") == "cv_results_" and artifact.get("blob"):
            return pd.read_parquet(store.dir / artifact["blob"])
    raise reprolog.ArgumentError(
        f"run {record.id} has no stored cv_results_ table; it is recorded when a search "
        "(GridSearchCV, RandomizedSearchCV, ...) is fitted inside Tracked or with autolog"
    )
