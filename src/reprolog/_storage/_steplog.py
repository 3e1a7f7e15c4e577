"""The step-fingerprint log: 64-byte records in memory-mapped chunks, and its Parquet form.

The same crash-safety design as the metric log (`_metriclog`): a preallocated sparse chunk
mapped ``MAP_SHARED``, records packed in field order with ``seq`` (the 1-based index in its
chunk) last, so a record cut short by ``kill -9`` is detected and dropped. Chunks are
``log/steps-NNNNNN.slog`` beside the metric chunks (``log/rank-<r>/`` for a rank writer).
Compaction writes ``steps.parquet`` in the run folder with the run's metrics.

Record (64 bytes, little endian): step i64, batch u64, samples u64, weights u64, grads u64,
rng_torch u32, rng_cuda u32, rng_numpy u32, rng_python u32, epoch i32 (-1 = none), seq u32.
A field of 0 was not recorded. ``batch``/``samples`` and ``grads`` may be rewritten in place
after the record was appended (more micro-batches of the step; gradients at the optimizer
step): aligned 8-byte stores that a reader sees either before or after.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprolog._storage._encode import write_parquet_atomic
from reprolog._storage._layout import RunLayout
from reprolog._storage._metriclog import map_new_file, unmap

if TYPE_CHECKING:
    import pyarrow as pa

MAGIC = b"RPLSLOG1"
HEADER = struct.Struct("<8sIIIIqq24x")  # magic, record size, capacity, chunk no, flags, t0, 0
HEADER_SIZE = 64
RECORD = struct.Struct("<qQQQQIIIIiI")
RECORD_SIZE = RECORD.size
DEFAULT_CAPACITY = 1 << 16  # 4 MiB per chunk; a sparse file until written
CHUNK_GLOB = "steps-*.slog"
FORMAT_VERSION = 1

# Offsets of the fields rewritten in place.
OFFSET_BATCH = 8
OFFSET_GRADS = 32

assert HEADER.size == HEADER_SIZE
assert RECORD_SIZE == 64

COLUMNS = (
    "step",
    "batch",
    "samples",
    "weights",
    "grads",
    "rng_torch",
    "rng_cuda",
    "rng_numpy",
    "rng_python",
    "epoch",
)


class StepChunk:
    """Appends step records to one preallocated, memory-mapped chunk file."""

    __slots__ = ("capacity", "end", "fd", "mm", "number", "path", "pos", "seq")

    def __init__(self, path: Path, number: int, capacity: int = DEFAULT_CAPACITY) -> None:
        self.path = path
        self.number = number
        self.capacity = capacity
        size = HEADER_SIZE + capacity * RECORD_SIZE
        self.fd, self.mm = map_new_file(path, size)
        HEADER.pack_into(self.mm, 0, MAGIC, RECORD_SIZE, capacity, number, 0, time.time_ns(), 0)
        self.pos = HEADER_SIZE
        self.end = size
        self.seq = 0

    def flush(self) -> None:
        self.mm.flush()

    def close(self) -> None:
        unmap(self.fd, self.mm)


def chunk_path(log_dir: Path, number: int) -> Path:
    return log_dir / f"steps-{number:06d}.slog"


# ---------------------------------------------------------------- reading


def _record_dtype() -> Any:
    import numpy as np

    return np.dtype(
        [
            ("step", "<i8"),
            ("batch", "<u8"),
            ("samples", "<u8"),
            ("weights", "<u8"),
            ("grads", "<u8"),
            ("rng_torch", "<u4"),
            ("rng_cuda", "<u4"),
            ("rng_numpy", "<u4"),
            ("rng_python", "<u4"),
            ("epoch", "<i4"),
            ("seq", "<u4"),
        ]
    )


def read_chunk(path: Path) -> tuple[Any, list[str]]:
    """Return (the valid records of one chunk as a numpy structured array, problems)."""
    import numpy as np

    with open(path, "rb") as fh:
        data = fh.read()
    empty = np.zeros(0, _record_dtype())
    if len(data) < HEADER_SIZE:
        return empty, [f"{path}: truncated header ({len(data)} bytes)"]
    magic, rsize, capacity, *_ = HEADER.unpack_from(data, 0)
    if magic == bytes(len(MAGIC)):
        return empty, []
    if magic != MAGIC or rsize != RECORD_SIZE:
        return empty, [f"{path}: not a reprolog step log chunk"]
    count = min(capacity, (len(data) - HEADER_SIZE) // RECORD_SIZE)
    recs = np.frombuffer(data, dtype=_record_dtype(), count=count, offset=HEADER_SIZE)
    ok = recs["seq"] == np.arange(1, count + 1, dtype=np.uint32)
    n_valid = int(np.argmin(ok)) if not ok.all() else count
    problems = []
    if n_valid < count and recs["seq"][n_valid] != 0:
        problems.append(f"{path}: dropped a torn step record at index {n_valid}")
    return recs[:n_valid].copy(), problems


def read_log_dir(log_dir: Path) -> tuple[Any, list[str]]:
    """Every complete step record of one log folder, in writing order."""
    import numpy as np

    parts, problems = [], []
    for chunk in sorted(log_dir.glob(CHUNK_GLOB)):
        recs, p = read_chunk(chunk)
        parts.append(recs)
        problems.extend(p)
    return (np.concatenate(parts) if parts else np.zeros(0, _record_dtype())), problems


def schema() -> pa.Schema:
    import pyarrow as pa

    fields = [pa.field("rank", pa.int32(), nullable=False), pa.field("step", pa.int64(), False)]
    for name in COLUMNS[1:5]:
        fields.append(pa.field(name, pa.uint64()))
    for name in COLUMNS[5:9]:
        fields.append(pa.field(name, pa.uint32()))
    fields.append(pa.field("epoch", pa.int32()))
    return pa.schema(fields, metadata={"reprolog.steps_format_version": str(FORMAT_VERSION)})


def to_table(parts: list[tuple[int, Any]]) -> pa.Table:
    """Build the steps table from (rank, records) pairs: 0 → null, sorted by (rank, step)."""
    import numpy as np
    import pyarrow as pa

    recs = np.concatenate([r for _, r in parts]) if parts else np.zeros(0, _record_dtype())
    ranks = (
        np.concatenate([np.full(len(r), rank, np.int32) for rank, r in parts])
        if parts
        else np.zeros(0, np.int32)
    )
    # Stable: a step recorded twice (two trainings in one run) keeps its order.
    order = np.lexsort((recs["step"], ranks))
    recs, ranks = recs[order], ranks[order]
    sch = schema()
    arrays: list[Any] = [pa.array(ranks, pa.int32()), pa.array(recs["step"], pa.int64())]
    for name in COLUMNS[1:9]:
        values = recs[name]
        arrays.append(pa.array(values, sch.field(name).type, mask=values == 0))
    epoch = recs["epoch"]
    arrays.append(pa.array(epoch, pa.int32(), mask=epoch < 0))
    return pa.Table.from_arrays(arrays, schema=sch)


def live_table(
    log_dir: Path, rank_dirs: list[tuple[int, Path]]
) -> tuple[pa.Table | None, list[str]]:
    """The steps table of a live (or dead) run's log; None when no step was recorded."""
    recs, problems = read_log_dir(log_dir)
    parts = [(0, recs)] if len(recs) else []
    for rank, folder in rank_dirs:
        part, p = read_log_dir(folder)
        problems.extend(p)
        if len(part):
            parts.append((rank, part))
    if not parts:
        return None, problems
    return to_table(parts), problems


def write_parquet(table: pa.Table, path: Path) -> None:
    """Write atomically (temp file + fsync + rename); steps delta-encoded, zstd."""
    write_parquet_atomic(
        table,
        path,
        use_dictionary=["rank", "epoch", "rng_cuda", "rng_numpy", "rng_python"],
        column_encoding={"step": "DELTA_BINARY_PACKED"},
    )


def compact(layout: RunLayout) -> list[str]:
    """Write ``steps.parquet`` from the live log (nothing when no step was recorded)."""
    rank_dirs = layout.rank_dirs()
    if not any(layout.log_dir.glob(CHUNK_GLOB)) and not any(
        any(folder.glob(CHUNK_GLOB)) for _, folder in rank_dirs
    ):
        return []
    table, problems = live_table(layout.log_dir, rank_dirs)
    if table is not None:
        write_parquet(table, layout.steps)
    return problems


def read_steps(run_dir: Path) -> pa.Table | None:
    """The steps table of a run folder: ``steps.parquet``, else its live log; None if none."""
    import pyarrow.parquet as pq

    layout = RunLayout(run_dir)
    path = layout.steps
    if path.is_file():
        return pq.read_table(path)
    if not layout.log_dir.is_dir():
        return None
    try:
        table, _ = live_table(layout.log_dir, layout.rank_dirs())
    except FileNotFoundError:  # compacted meanwhile
        return pq.read_table(path) if path.is_file() else None
    return table
