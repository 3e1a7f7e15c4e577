"""The metric fast path: validate points and append them to a run's memory-mapped log.

One `MetricWriter` per log folder: the run's own (`log/`) or a secondary rank's
(`log/rank-<r>/`), opened and closed with its flusher and lock by `_livelog.LiveLog`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from reprolog._storage import _metriclog
from reprolog._storage._values import check_epoch, check_key, check_metrics, check_step, to_float

_pack_record = _metriclog.RECORD.pack_into
_mono = time.monotonic_ns


class MetricWriter:
    """Appends metric points to the chunk files and key dictionary of one log folder.

    Args:
        log_dir: an existing folder that holds the `keys` file and `NNNNNN.mlog` chunks.
        closed_error: builds the exception raised by `log()` after `close()`.
    """

    def __init__(self, log_dir: Path, closed_error: Callable[[], Exception]) -> None:
        self._dir = log_dir
        self._closed_error = closed_error
        # Reentrant: a SIGTERM handler may close the run while the main thread is mid-log.
        self.lock = threading.RLock()
        self._key_ids: dict[str, int] = {}
        self._last_step: list[int] = []
        self._chunk_no = 0
        self._keyfile = _metriclog.KeyFile(log_dir / "keys")
        self._chunk: _metriclog.ChunkWriter | None = _metriclog.ChunkWriter(
            log_dir / f"{0:06d}.mlog", 0
        )
        # Other logs of this folder (the step fingerprints, `_steptrace`): flushed, closed
        # and detached with the metric log, so they share its crash-safety and lifecycle.
        self._companions: list[Any] = []

    @property
    def log_dir(self) -> Path:
        return self._dir

    def add_companion(self, log: Any) -> None:
        """Flush, close and detach `log` (it has those three methods) with this writer."""
        with self.lock:
            if self._chunk is None:
                raise self._closed_error()
            self._companions.append(log)

    def companion_count(self) -> int:
        return len(self._companions)

    def companion(self, kind: type) -> Any:
        """The companion log of class `kind`, or None."""
        return next((c for c in self._companions if isinstance(c, kind)), None)

    @property
    def closed(self) -> bool:
        return self._chunk is None

    def log(
        self, metrics: Mapping[str, Any], step: int | None = None, *, epoch: int | None = None
    ) -> None:
        """Validate, then append one point per key (see `Run.log` for the contract)."""
        if type(metrics) is not dict:
            metrics = check_metrics(metrics)
        for value in metrics.values():
            if type(value) is not float:
                metrics = _coerce(metrics)
                break
        if step is not None and (type(step) is not int or step < 0):
            step = check_step(step, keys=metrics)
        ep = -1 if epoch is None else check_epoch(epoch, keys=metrics)
        with self.lock:
            w = self._chunk
            if w is None:
                raise self._closed_error()
            tms = (_mono() - w.mono0) // 1_000_000
            if tms >= _metriclog.MAX_CHUNK_MS:
                w = self._roll()
                tms = 0
            ids = self._key_ids
            for key in metrics:
                if key not in ids:  # check every new key before writing any point of the call
                    self._add_key(key)
            last = self._last_step
            for key, value in metrics.items():
                kid = ids[key]
                s = last[kid] + 1 if step is None else step
                last[kid] = s
                if w.pos == w.end:
                    w = self._roll()
                    tms = 0
                w.seq += 1
                _pack_record(w.mm, w.pos, value, s, tms, kid, ep, w.seq)
                w.pos += 32

    def _add_key(self, key: Any) -> int:
        check_key(key)
        kid = len(self._last_step)
        self._keyfile.add(kid, key)  # on disk before any point that uses it
        self._key_ids[key] = kid
        self._last_step.append(-1)
        return kid

    def _roll(self) -> _metriclog.ChunkWriter:
        old = self._chunk
        assert old is not None
        self._chunk_no += 1
        new = _metriclog.ChunkWriter(self._dir / f"{self._chunk_no:06d}.mlog", self._chunk_no)
        self._chunk = new
        old.close()
        return new

    def flush(self) -> None:
        """msync the current chunk (called by the flusher thread)."""
        w = self._chunk
        if w is not None:
            # ValueError: rolled and closed under us; the new chunk is flushed next time.
            with contextlib.suppress(ValueError):
                w.flush()
        for log in self._companions:
            log.flush()

    def close(self) -> None:
        """Flush and unmap; later `log()` calls raise `closed_error()`. Idempotent."""
        with self.lock:
            chunk, self._chunk = self._chunk, None
            if chunk is not None:
                chunk.close()
            self._keyfile.close()
            for log in self._companions:
                log.close()

    def detach(self) -> None:
        """Forget the mapping without touching it (a forked child must not write or close it)."""
        self._chunk = None
        for log in self._companions:
            log.detach()


def _coerce(metrics: dict[str, Any]) -> dict[str, Any]:
    # Validate every key and value before writing any, so a bad call writes nothing.
    out = {}
    for key, value in metrics.items():
        check_key(key)
        out[key] = value if type(value) is float else to_float(key, value)
    return out
