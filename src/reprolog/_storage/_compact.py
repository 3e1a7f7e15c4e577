"""Compaction: a run's live log becomes metrics.parquet (+ steps.parquet), then the final record.

Every normal `Run.finish()` and every recovery of a dead run (`_recover`) ends here. The order
is the crash-safety argument: Parquet files first (atomically), then the record saying the
metrics are compacted (fsync), then the summary, and only then the log is dropped.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from reprolog._storage import _locks, _steplog
from reprolog._storage._artifacts import remove_tree
from reprolog._storage._encode import combine_ranks, summarize, to_table, write_parquet
from reprolog._storage._layout import RunLayout
from reprolog._storage._metriclog import read_log
from reprolog._storage._recordfile import write_json_atomic

if TYPE_CHECKING:
    import pyarrow as pa


def summary_row(record: dict[str, Any]) -> dict[str, Any]:
    """The small slice of a record that the summary index keeps for listing."""
    return {
        "id": record.get("id"),
        "name": record.get("name"),
        "experiment": record.get("experiment"),
        "status": record.get("status"),
        "start_time": record.get("start_time"),
        "end_time": record.get("end_time"),
        "params": record.get("params") or {},
        "tags": record.get("tags") or {},
        "metrics_summary": record.get("metrics_summary") or {},
    }


def read_live_table(layout: RunLayout, run_id: str) -> tuple[pa.Table, list[str]]:
    """Every complete point of a run's live log, its rank writers' included, as a table."""
    contents = read_log(layout.log_dir)
    ranks = layout.rank_dirs()
    if not ranks:
        return to_table(run_id, contents), contents.problems
    # Every table has the `rank` column: 0 for the run's own points, the launched job's
    # `log/rank-0/` included (see _job), r for a rank writer's.
    tables = [to_table(run_id, contents)]
    problems = list(contents.problems)
    for rank, folder in ranks:
        part = read_log(folder)
        problems.extend(part.problems)
        tables.append(to_table(run_id, part, rank=rank))
    return combine_ranks(tables), problems


def wait_for_rank_writers(layout: RunLayout, timeout: float = 5.0) -> list[int]:
    """Give open rank writers up to `timeout` seconds to close; return the ranks still open.

    Their points logged after the run's compaction are lost, so integrations close rank
    writers (behind a barrier) before the run finishes; this is the backstop.
    """
    deadline = time.monotonic() + timeout
    pending = [
        (rank, folder) for rank, folder in layout.rank_dirs() if not _locks.is_free(folder / "lock")
    ]
    while pending and time.monotonic() < deadline:
        time.sleep(0.05)
        pending = [
            (rank, folder) for rank, folder in pending if not _locks.is_free(folder / "lock")
        ]
    return sorted({rank for rank, _ in pending})


def compact(layout: RunLayout, record: dict[str, Any]) -> list[str]:
    """Turn the live log into metrics.parquet and fill record["metrics_summary"].

    Returns the problems met (torn records dropped, ...). The log is removed only by
    `finalize`, after the record saying so is on disk, so a crash here loses nothing.
    """
    if not layout.log_dir.is_dir():
        return []
    table, problems = read_live_table(layout, str(record["id"]))
    # Step fingerprints first: metrics_summary (set last) is what lets finalize drop the log.
    problems += _steplog.compact(layout)
    write_parquet(table, layout.metrics)
    record["metrics_summary"] = summarize(table)
    return problems


def finalize(layout: RunLayout, record: dict[str, Any]) -> None:
    """Write the final record (durably) and the index summary, then drop the live log.

    The log is dropped only when `compact` succeeded (it fills `metrics_summary`): when
    compaction failed, the log is the only copy of the points and the next reader
    compacts it (see `Store._load_record`).
    """
    write_json_atomic(layout.record, record, fsync=True)
    write_json_atomic(layout.summary, summary_row(record))
    if layout.log_dir.is_dir() and record.get("metrics_summary") is not None:
        remove_tree(layout.log_dir)
