"""Keeping metrics of every DDP rank: share rank 0's run, open rank writers, meet at the end.

Every function here that talks to the process group is a collective: the callback calls it on
every rank, on every path, or not at all (a rank left out would wait for ever).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Protocol

import reprolog

_log = logging.getLogger("reprolog.lightning")


class MetricSink(Protocol):
    """Where metric points go: the run itself on rank 0, a rank writer on the other ranks."""

    def log(
        self, metrics: Any, step: int | None = None, *, epoch: int | None = None
    ) -> None: ...  # pragma: no cover - a Protocol


def distributed(trainer: Any) -> bool:
    """Return True when the Trainer runs more than one process (the same answer on each)."""
    return int(getattr(trainer, "world_size", 1) or 1) > 1


def share_run(trainer: Any, run: Any) -> tuple[str, str] | None:
    """Send rank 0's run id and store folder to every rank (a collective: all ranks call it).

    Args:
        trainer: the Trainer; its strategy does the broadcast.
        run: on global rank 0 the run metrics go to (None when it could not be opened);
            ignored on the other ranks.

    Returns:
        (run id, store folder) on every rank, or None on every rank when rank 0 has no run.
        A failing broadcast is logged and gives None on that rank.
    """
    payload: tuple[str, str] | None = None
    if run is not None and getattr(trainer, "is_global_zero", True):
        payload = (str(run.id), os.fspath(run.store_dir))
    try:
        received = trainer.strategy.broadcast(payload, src=0)
    except Exception as exc:
        _log.warning(
            "reprolog: could not share the run with the other ranks (%s: %s); "
            "their metrics are not kept",
            type(exc).__name__,
            exc,
        )
        return None
    if received is None:
        return None
    run_id, store_dir = received
    return str(run_id), str(store_dir)


def open_writer(shared: tuple[str, str], rank: int, reported: set[str]) -> Any:
    """Return a `reprolog.attach` writer for this rank, or None (warned once) when it fails.

    Args:
        shared: (run id, store folder) from `share_run`.
        rank: this process's global rank (>= 1).
        reported: keys already warned about; the warning is given once per callback.
    """
    run_id, store_dir = shared
    try:
        return reprolog.attach(run_id, rank=rank, dir=store_dir)
    except Exception as exc:  # capture must never stop the training
        if "attach" not in reported:
            reported.add("attach")
            _log.warning(
                "reprolog: rank %s could not attach to run %s (%s: %s); "
                "its metrics are not kept, training goes on",
                rank,
                run_id,
                type(exc).__name__,
                exc,
            )
        return None


def meet(trainer: Any) -> None:
    """Wait for every rank (a collective): rank writers are closed before rank 0 finishes."""
    try:
        trainer.strategy.barrier("reprolog_close_ranks")
    except Exception as exc:
        _log.warning(
            "reprolog: the ranks could not meet before the run finished (%s: %s); "
            "late points of other ranks may be lost",
            type(exc).__name__,
            exc,
        )
