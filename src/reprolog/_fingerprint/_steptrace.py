"""`StepFingerprints`: per-step batch, RNG, weight and gradient fingerprints of a live run.

Integrations get one from `Run.step_fingerprints(model)` (or `RankWriter.step_fingerprints`
on another rank) and call `step(step, batch)` at the start of every optimizer step,
`add_batch(batch)` for further micro-batches of that step, and `grads()` just before the
optimizer step. The records go to a memory-mapped log beside the run's metric log
(`_steplog`) and become ``steps.parquet`` when the run is compacted; `reprolog diff` reads
them to tell which barrier made two runs part (`_diff/_explain.py`). Hashes: `_stephash`.
"""

from __future__ import annotations

import contextlib
import os
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reprolog._errors import ArgumentError

ENV = "REPROLOG_STEP_FINGERPRINTS"
DEFAULT_EVERY = 100  # weights (and gradients) every this many steps; see bench/README.md


def resolve_every(every: bool | int | None, environ: Any = None) -> int | None:
    """Return K (weights every K steps; 0: never) or None when step fingerprints are off.

    Args:
        every: None: ``$REPROLOG_STEP_FINGERPRINTS`` (``off``/``0``, ``on``/``1``, or K >= 2),
            else on with K = 100. False: off. True: on, K = 100. An int K >= 1: on, weights
            every K steps.

    Raises:
        ArgumentError: any other value (also in the environment variable).
    """
    if every is None:
        raw = (os.environ if environ is None else environ).get(ENV, "").strip().lower()
        if raw in ("", "on", "true", "1", "yes"):
            return DEFAULT_EVERY
        if raw in ("off", "false", "0", "no"):
            return None
        if raw.isdigit():
            return int(raw)
        raise ArgumentError(
            f"${ENV} must be 'on', 'off' or the number of steps between weight fingerprints "
            f"(an int >= 2), got {raw!r}"
        )
    if every is True:
        return DEFAULT_EVERY
    if every is False:
        return None
    return check_every(every, name="step fingerprints: every")


def check_every(every: Any, *, name: str) -> bool | int | None:
    """Return `every` as given when it is a valid step-fingerprint setting (see `resolve_every`).

    Args:
        every: the setting: None, True, False or an int >= 1.
        name: what the user called it, for the error message (an integration's argument).

    Raises:
        ArgumentError: any other value.
    """
    if every is None or isinstance(every, bool) or (isinstance(every, int) and every >= 1):
        return every
    raise ArgumentError(
        f"{name} must be None (${ENV}, else on), True, False or the number of steps between "
        f"weight fingerprints (an int >= 1); got {every!r}"
    )


# Captured batches waiting to be hashed: hashed together, stacked, once this many steps or
# bytes pile up (or by the run's flusher thread, at a roll or close). Small on purpose: copies
# kept longer grow the heap, and the page faults of fresh memory cost more than the hashing.
PENDING_BYTES = 1 << 20
PENDING_STEPS = 64


class StepFingerprints:
    """Records what each training step consumed; one per run (or rank writer).

    Not built directly: `Run.step_fingerprints(model)` returns it. Every method is cheap
    (microseconds; weights every `every` steps) and never raises into training: a value
    that cannot be fingerprinted is left unrecorded and reported once in the run's capture
    report (``"step fingerprints: <what>"``).

    The step's RNG states and weights are hashed at once; its batch is captured (its arrays
    copied) and hashed a little later, stacked with the next steps' batches (every 64 steps,
    or by the run's flusher thread): one matrix product per leaf for all of them.

    Attributes:
        every: weights and gradients are fingerprinted at steps divisible by this (0: never).
        model: the model whose weights are fingerprinted (None: no weights).
    """

    def __init__(
        self,
        log_dir: Path,
        *,
        every: int,
        model: Any = None,
        on_error: Callable[[str, BaseException], None] | None = None,
    ) -> None:
        from reprolog._fingerprint import _stephash
        from reprolog._storage import _steplog

        self._hash = _stephash
        self._capture = _stephash.capture
        self._steplog = _steplog
        self._dir = log_dir
        self.every = every
        self.model = model
        self._on_error = on_error
        self._reported: set[str] = set()
        self._rng = _stephash.RngProbe()
        self._lock = threading.RLock()
        self._number = 0
        self._chunk: Any = _steplog.StepChunk(_steplog.chunk_path(log_dir, 0), 0)
        self._pack = _steplog.RECORD.pack_into
        self._slot = -1  # offset of the current step's record, -1 before the first
        self._step = -1
        # (record offset, captured micro-batches) of steps whose batch is not hashed yet.
        self._pending: list[tuple[int, list[Any]]] = []
        self._pending_bytes = 0

    @property
    def rng_methods(self) -> dict[str, str]:
        """How each RNG state is read ("in place", or the library's getter)."""
        return dict(self._rng.methods)

    def step(self, step: int, batch: Any = None, *, epoch: int | None = None) -> None:
        """Record the start of optimizer step `step`: RNG states, its batch, weights every K.

        Call it before the step draws random numbers (dropout) or updates weights, with the
        batch as it reaches the model (after any device transfer).

        Args:
            step: the optimizer step about to run (an int >= 0).
            batch: its (first micro-)batch: a tensor/array or a tuple, list or mapping of
                them; None records no batch (`add_batch` may add it).
            epoch: the epoch the step belongs to (needed for the per-epoch sample check).
        """
        if type(step) is not int or step < 0:
            self._report("step", ArgumentError(f"step must be an int >= 0, got {step!r}"))
            return
        try:
            t, c, n, p = self._rng()
        except Exception as exc:
            self._report("rng", exc)
            t = c = n = p = 0
        captured = None
        if batch is not None:
            try:
                captured = self._capture(batch)
            except Exception as exc:
                self._report("batch", exc)
        w = 0
        every = self.every
        if every and step % every == 0 and self.model is not None:
            try:
                w = self._hash.tensors_hash(self._hash.tensors_of(self.model))
            except Exception as exc:
                self._report("weights", exc)
        ep = -1 if epoch is None else int(epoch)
        with self._lock:
            chunk = self._chunk
            if chunk is None:
                return
            if chunk.pos == chunk.end:
                chunk = self._roll()
            chunk.seq += 1
            self._pack(chunk.mm, chunk.pos, step, 0, 0, w, 0, t, c, n, p, ep, chunk.seq)
            self._slot = chunk.pos
            chunk.pos += 64
            if captured is not None:
                self._queue(self._slot, captured, new=True)
        self._step = step

    def add_batch(self, batch: Any) -> None:
        """Fold one more micro-batch (gradient accumulation) into the current step's record."""
        if self._slot < 0:
            return
        try:
            captured = self._capture(batch)
        except Exception as exc:
            self._report("batch", exc)
            return
        with self._lock:
            if self._chunk is not None and self._slot >= 0:
                pending = self._pending
                self._queue(self._slot, captured, new=not pending or pending[-1][0] != self._slot)

    def _queue(self, slot: int, captured: Any, *, new: bool) -> None:
        if new:
            self._pending.append((slot, [captured]))
        else:
            self._pending[-1][1].append(captured)
        self._pending_bytes += sum(a.nbytes for a in captured[0])
        if self._pending_bytes > PENDING_BYTES or len(self._pending) > PENDING_STEPS:
            self._drain()

    def _drain(self) -> None:
        """Hash every pending batch (stacked) and write it into its record. Holds the lock."""
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        chunk = self._chunk
        if not pending or chunk is None:
            return
        try:
            flat = [c for _, parts in pending for c in parts]
            hashes = iter(self._hash.hash_captured(flat))
            for slot, parts in pending:
                b, s = self._hash.combine([next(hashes) for _ in parts])
                _PAIR.pack_into(chunk.mm, slot + self._steplog.OFFSET_BATCH, b, s)
        except Exception as exc:
            self._report("batch", exc)

    def grads(self, model: Any = None) -> None:
        """Fingerprint the gradients of the current step (at steps divisible by `every`).

        Call it after backward and before the optimizer step.
        """
        every = self.every
        model = self.model if model is None else model
        if self._slot < 0 or not every or self._step % every or model is None:
            return
        try:
            g = self._hash.tensors_hash(self._hash.grads_of(model))
        except Exception as exc:
            self._report("gradients", exc)
            return
        with self._lock:
            chunk = self._chunk
            if chunk is not None and self._slot >= 0:
                _ONE.pack_into(chunk.mm, self._slot + self._steplog.OFFSET_GRADS, g)

    def _roll(self) -> Any:
        self._drain()  # the pending records live in the chunk being closed
        old = self._chunk
        self._number += 1
        log = self._steplog
        self._chunk = log.StepChunk(log.chunk_path(self._dir, self._number), self._number)
        self._slot = -1
        old.close()
        return self._chunk

    def _report(self, what: str, exc: BaseException) -> None:
        if what in self._reported:
            return
        self._reported.add(what)
        if self._on_error is not None:
            with contextlib.suppress(Exception):
                self._on_error(f"step fingerprints: {what}", exc)

    # -- lifecycle, driven by the metric writer of the same folder ---------------------------

    def flush(self) -> None:
        """Hash the pending batches, then msync (the run's flusher thread calls this)."""
        with self._lock:
            self._drain()
            chunk = self._chunk
        if chunk is not None:
            with contextlib.suppress(ValueError):
                chunk.flush()

    def close(self) -> None:
        with self._lock:
            self._drain()
            chunk, self._chunk = self._chunk, None
            if chunk is not None:
                chunk.close()

    def detach(self) -> None:
        self._chunk = None
        self._pending = []


_PAIR = struct.Struct("<QQ")
_ONE = struct.Struct("<Q")


def for_writer(
    writer: Any,
    model: Any,
    every: bool | int | None,
    on_error: Callable[[str, BaseException], None] | None,
) -> StepFingerprints | None:
    """The step fingerprints of one metric writer's folder: made once, then updated."""
    k = resolve_every(every)
    existing = writer.companion(StepFingerprints)
    if k is None:
        if existing is not None:
            existing.every = 0
        return None
    if existing is not None:
        existing.every = k
        if model is not None:
            existing.model = model
        return existing  # type: ignore[no-any-return]
    trace = StepFingerprints(writer.log_dir, every=k, model=model, on_error=on_error)
    writer.add_companion(trace)
    return trace
