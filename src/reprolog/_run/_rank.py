"""Secondary rank writers: more processes logging points into one live run (e.g. DDP ranks).

The run's own process (rank 0) owns the record; a `RankWriter` adds only metric points, in
`log/rank-<r>/` of the run folder, with the same memory-mapped log as the run itself. When
the run finishes, compaction merges every rank's points with a `rank` column.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from reprolog._errors import ArgumentError, RunStateError
from reprolog._storage import _locks
from reprolog._storage._flusher import Flusher
from reprolog._storage._layout import RunLayout
from reprolog._storage._recordfile import read_json
from reprolog._storage._recover import lock_is_free
from reprolog._storage._writer import MetricWriter

_open: weakref.WeakSet[RankWriter] = weakref.WeakSet()
_hooks_lock = threading.Lock()
_hooks_installed = False


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
        from reprolog._store._store import Store

        store = Store(dir)
        self.run_id = store.resolve(run)
        self.rank = rank
        layout = RunLayout(store.layout.run_dir(self.run_id))
        record = read_json(layout.record)
        if record.get("status") != "running" or lock_is_free(layout):
            raise RunStateError(
                f"run {self.run_id} is not running (status {record.get('status')!r}); "
                "rank writers can only attach to a live run",
                run_id=self.run_id,
            )
        self.dir, lock_fd = _claim_folder(layout, rank, self.run_id)
        self._lock_fd: int | None = lock_fd
        self._pid = os.getpid()
        self._metrics = MetricWriter(self.dir, self._closed_error)
        interval = float(record.get("flush_interval") or 1.0)
        self._flusher = Flusher(self._metrics.flush, self.dir / "heartbeat", interval)
        self._flusher.beat()
        self._flusher.start()
        _open.add(self)
        _install_hooks()

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
        if self._pid != os.getpid():
            return
        self._flusher.stop()
        self._metrics.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
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


def _claim_folder(layout: RunLayout, rank: int, run_id: str) -> tuple[Path, int]:
    """Create and lock this rank's log folder: `rank-<r>`, or `rank-<r>-<n>` on re-attach.

    A rank may attach again after closing (e.g. fit, then test, in one run); each writer gets
    a fresh folder so its chunk numbering and key dictionary start clean. A folder whose lock
    is held belongs to a live writer of the same rank: that is refused.
    """
    for generation in range(1, 10_000):
        name = f"rank-{rank}" if generation == 1 else f"rank-{rank}-{generation}"
        folder = layout.log_dir / name
        try:
            folder.mkdir()
        except FileExistsError:
            if not _locks.is_free(folder / "lock"):
                raise RunStateError(
                    f"rank {rank} is already attached to run {run_id} ({folder})", run_id=run_id
                ) from None
            continue
        return folder, _locks.hold(folder / "lock")
    raise RunStateError(f"rank {rank} attached too many times to run {run_id}", run_id=run_id)


def _close_all() -> None:
    for writer in list(_open):
        writer.close()


def _detach_in_child() -> None:
    for writer in list(_open):
        writer._metrics.detach()
        writer._lock_fd = None
    _open.clear()


def _install_hooks() -> None:
    global _hooks_installed
    with _hooks_lock:
        if _hooks_installed:
            return
        _hooks_installed = True
        atexit.register(_close_all)
        os.register_at_fork(after_in_child=_detach_in_child)
