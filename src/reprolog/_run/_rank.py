"""Secondary rank writers: more processes logging points into one live run (e.g. DDP ranks).

The run's own process (rank 0) owns the record; a `RankWriter` adds only metric points, in
`log/rank-<r>/` of the run folder, with the same memory-mapped log as the run itself. When
the run finishes, compaction merges every rank's points with a `rank` column.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from reprolog._errors import (
    AmbiguousRunError,
    ArgumentError,
    CorruptFileError,
    RunNotFoundError,
    RunStateError,
)
from reprolog._run import _hooks
from reprolog._storage._layout import RunLayout, StoreLayout, resolve_store_dir
from reprolog._storage._livelog import LiveLog, claim_rank_folder
from reprolog._storage._recordfile import read_json
from reprolog._storage._recover import lock_is_free

_open: weakref.WeakSet[RankWriter] = weakref.WeakSet()
_open_lock = threading.Lock()


def attach(run: str, *, rank: int, dir: str | os.PathLike[str] | None = None) -> RankWriter:
    """Open a writer that logs this process's points into a live run under a rank number.

    Use it in the other processes of a distributed job (DDP ranks 1..N-1) when their metrics
    should be kept: the run itself (rank 0) must be running, and should finish only after
    every rank writer has closed (points logged after the run's finish are lost).

    Args:
        run: the run's id (or unique id prefix, or name).
        rank: this process's rank, an int >= 1 (0 is the run's own process).
        dir: the store folder, as for `reprolog.Store`.

    Returns:
        A `RankWriter`; call `.log(...)` like `Run.log`, then `.close()` (or use `with`).

    Raises:
        ArgumentError: `rank` is not an int >= 1.
        RunNotFoundError, AmbiguousRunError: `run` names no single run.
        RunStateError: the run is not running, or this rank is attached already.

    Example:
        >>> with reprolog.attach(run_id, rank=dist.get_rank()) as writer:  # doctest: +SKIP
        ...     writer.log({"loss": 0.3}, step=10)
    """
    return RankWriter(run, rank=rank, dir=dir)


class RankWriter:
    """Logs one secondary rank's metric points into a live run (see `reprolog.attach`)."""

    def __init__(self, run: str, *, rank: int, dir: str | os.PathLike[str] | None = None) -> None:
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise ArgumentError(
                f"rank must be an int >= 1 (rank 0 is the run itself), got {rank!r}"
            )
        store = StoreLayout(resolve_store_dir(dir, must_exist=True))
        self.run_id = _find_run(store, run)
        self.rank = rank
        layout = RunLayout(store.run_dir(self.run_id))
        record = read_json(layout.record)
        if record.get("status") != "running" or lock_is_free(layout):
            raise RunStateError(
                f"run {self.run_id} is not running (status {record.get('status')!r}); "
                "rank writers can only attach to a live run",
                run_id=self.run_id,
            )
        self.dir, lock_fd = claim_rank_folder(layout, rank, self.run_id)
        self._live = LiveLog(
            self.dir,
            heartbeat=RunLayout.writer_heartbeat(self.dir),
            interval=float(record.get("flush_interval") or 1.0),
            closed_error=self._closed_error,
            lock_fd=lock_fd,
        )
        self._metrics = self._live.writer
        with _open_lock:
            _open.add(self)
        _hooks.at_exit(_close_all)
        _hooks.in_forked_child(_detach_in_child)

    def __repr__(self) -> str:
        state = "closed" if self._metrics.closed else "open"
        return f"RankWriter(run_id={self.run_id!r}, rank={self.rank}, {state})"

    def log(
        self, metrics: Mapping[str, Any], step: int | None = None, *, epoch: int | None = None
    ) -> None:
        """Record points for this rank; same arguments, checks and errors as `Run.log`."""
        self._metrics.log(metrics, step, epoch=epoch)

    def step_fingerprints(self, model: Any = None, *, every: bool | int | None = None) -> Any:
        """This rank's per-step fingerprint recorder; see `Run.step_fingerprints`.

        Kept with ``rank`` = this writer's rank in the run's ``steps.parquet``; a failure to
        fingerprint is logged once (the run's record belongs to rank 0).
        """
        from reprolog._fingerprint._steptrace import for_writer

        if self._metrics.closed:
            raise self._closed_error()
        return for_writer(self._metrics, model, every, _log_failure)

    def close(self) -> None:
        """Flush and release this rank's log; later `log()` calls raise. Idempotent."""
        self._live.close()
        self._live.release()
        with _open_lock:
            _open.discard(self)

    def _closed_error(self) -> RunStateError:
        return RunStateError(
            f"the rank {self.rank} writer of run {self.run_id} is closed", run_id=self.run_id
        )

    def __enter__(self) -> RankWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _log_failure(what: str, error: BaseException) -> None:
    logging.getLogger("reprolog").warning(
        "reprolog: could not capture %s (%s: %s); training goes on",
        what,
        type(error).__name__,
        error,
    )


def _find_run(store: StoreLayout, ref: str) -> str:
    """The id of the run `ref` names: a full id, a unique id prefix, or a run name.

    The write side's own lookup (from the run folders and their records, never the read
    side's index), with the same rules and errors as `Store.resolve`.
    """
    if not isinstance(ref, str) or not ref:
        raise ArgumentError(f"a run is named by a non-empty id, id prefix or name; got {ref!r}")
    ids = sorted(p.name for p in store.runs.iterdir() if p.is_dir()) if store.runs.is_dir() else []
    if ref in ids:
        return ref
    matches = [i for i in ids if i.startswith(ref.lower())]
    if not matches:
        matches = [i for i in ids if _name_of(RunLayout(store.run_dir(i))) == ref]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise RunNotFoundError(
            f"no run matches {ref!r} (as an id, id prefix or name) in {store.root}",
            query=ref,
            path=str(store.root),
        )
    raise AmbiguousRunError(
        f"{ref!r} matches {len(matches)} runs: {', '.join(matches[:10])}"
        + (" ..." if len(matches) > 10 else "")
        + "; give more characters of the id",
        query=ref,
        candidates=matches,
    )


def _name_of(layout: RunLayout) -> str | None:
    try:
        name = read_json(layout.record).get("name")
    except CorruptFileError:  # a run being started, or a broken one: it has no name to match
        return None
    return name if isinstance(name, str) else None


def _close_all() -> None:
    with _open_lock:
        writers = list(_open)
    for writer in writers:
        writer.close()


def _detach_in_child() -> None:
    for writer in list(_open):
        writer._live.detach()
    _open.clear()
