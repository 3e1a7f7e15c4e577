"""A live log: the lifecycle of one log folder that a process appends metric points to.

A run's own process (`Run`, a seat of a launched job) and each secondary rank writer
(`RankWriter`) own one: the `MetricWriter` of the folder, the `Flusher` that msyncs it and
beats its heartbeat every flush interval, and the lock whose holder is the folder's live
writer (released by `release`, or by the kernel when the process dies). `close` flushes and
closes the log; in a forked child, `detach` forgets all of it without touching it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from reprolog._errors import RunStateError
from reprolog._storage import _locks
from reprolog._storage._flusher import Flusher
from reprolog._storage._layout import RunLayout
from reprolog._storage._writer import MetricWriter

_MAX_GENERATIONS = 10_000


class LiveLog:
    """The writer, flusher and lock of one live log folder, opened together.

    Args:
        folder: an existing log folder.
        heartbeat: the file the flusher touches after each flush.
        interval: seconds between flushes.
        closed_error: builds the exception `writer.log()` raises once the log is closed.
        lock_fd: a lock this log holds for its life (see `_locks.hold`), or None.
    """

    def __init__(
        self,
        folder: Path,
        *,
        heartbeat: Path,
        interval: float,
        closed_error: Callable[[], Exception],
        lock_fd: int | None = None,
    ) -> None:
        self._lock_fd = lock_fd
        self._pid = os.getpid()
        try:
            self.writer = MetricWriter(folder, closed_error)
        except BaseException:
            self.release()
            raise
        self._flusher = Flusher(self.writer.flush, heartbeat, interval)
        self._flusher.beat()
        self._flusher.start()

    @property
    def folder(self) -> Path:
        return self.writer.log_dir

    @property
    def closed(self) -> bool:
        return self.writer.closed

    def flush(self) -> None:
        """msync the log now (the flusher does it every interval)."""
        self.writer.flush()

    def close(self) -> None:
        """Stop the flusher, then flush and close the writer; the lock stays held. Idempotent."""
        if self._pid != os.getpid():
            return
        self._flusher.stop()
        self.writer.close()

    def release(self) -> None:
        """Drop the lock: the folder has no live writer any more. Idempotent."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None and self._pid == os.getpid():
            _locks.release(fd)

    def detach(self) -> None:
        """In a forked child: forget the mapping and the lock; never write, flush or close them."""
        self.writer.detach()
        self._lock_fd = None


def claim_rank_folder(layout: RunLayout, rank: int, run_id: str) -> tuple[Path, int]:
    """Create and lock a rank's log folder: `rank-<r>`, or `rank-<r>-<n>` on re-attach.

    A rank may attach again after closing (e.g. fit, then test, in one run); each writer gets
    a fresh folder so its chunk numbering and key dictionary start clean. A folder whose lock
    is held belongs to a live writer of the same rank: that is refused.

    Returns:
        The folder and the fd of its held lock (hand it to `LiveLog(lock_fd=...)`).

    Raises:
        RunStateError: this rank has a live writer already, or attached too many times.
    """
    for generation in range(1, _MAX_GENERATIONS):
        folder = layout.rank_dir(rank, generation)
        try:
            folder.mkdir()
        except FileExistsError:
            if not _locks.is_free(RunLayout.writer_lock(folder)):
                raise RunStateError(
                    f"rank {rank} is already attached to run {run_id} ({folder})", run_id=run_id
                ) from None
            continue
        return folder, _locks.hold(RunLayout.writer_lock(folder))
    raise RunStateError(f"rank {rank} attached too many times to run {run_id}", run_id=run_id)
