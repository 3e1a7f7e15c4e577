"""Pure encoding of metric points: arrays -> Arrow table -> Parquet, plus per-key summaries."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprolog._errors import CorruptFileError
from reprolog._storage._arrow import from_numpy, strings, to_numpy
from reprolog._storage._atomic import replacing

if TYPE_CHECKING:
    import pyarrow as pa

    from reprolog._storage._metriclog import LogContents

#: "2": every file has the `rank` column (0 for the run's own points). "1" files have it only
#: in runs that had rank writers; readers add it (all 0) to the ones without it.
METRICS_FORMAT_VERSION = "2"
COLUMNS = ("run_id", "key", "step", "epoch", "value", "time", "rank")


def metrics_schema() -> pa.Schema:
    """The schema of every metrics.parquet file (the on-disk contract).

    The int32 `rank` column is always there (nullable in the file, never null when written
    by reprolog): 0 for the run's own points, r for a rank writer's (`reprolog.attach`). One
    schema in every file lets any engine read `runs/*/metrics.parquet` with no options.
    """
    import pyarrow as pa

    fields = [
        pa.field("run_id", pa.dictionary(pa.int32(), pa.string())),
        pa.field("key", pa.dictionary(pa.int32(), pa.string())),
        pa.field("step", pa.int64()),
        pa.field("epoch", pa.int32()),  # null when not given
        pa.field("value", pa.float64()),
        pa.field("time", pa.timestamp("ms", tz="UTC")),
        pa.field("rank", pa.int32()),
    ]
    return pa.schema(fields, metadata={"reprolog.format_version": METRICS_FORMAT_VERSION})


def _name_positions(names: list[str]) -> Any:
    """For each name (by index), its position in alphabetical order: sorts keys by name."""
    import numpy as np

    position = np.empty(len(names), dtype=np.int32)
    position[sorted(range(len(names)), key=names.__getitem__)] = np.arange(
        len(names), dtype=np.int32
    )
    return position


def combine_ranks(tables: list[pa.Table]) -> pa.Table:
    """Merge per-rank tables (each with a `rank` column) sorted by (key, step, rank)."""
    import numpy as np
    import pyarrow as pa

    table = pa.concat_tables(tables).unify_dictionaries().combine_chunks()
    key = table.column("key").chunk(0) if table.num_rows else None
    if key is None:
        return table
    key_rank = _name_positions(key.dictionary.to_pylist())[
        key.indices.to_numpy(zero_copy_only=False)
    ]
    order = np.lexsort((table.column("rank").to_numpy(), table.column("step").to_numpy(), key_rank))
    return table.take(from_numpy(order.astype(np.int64, copy=False), pa.int64()))


def to_table(run_id: str, log: LogContents, *, rank: int = 0) -> pa.Table:
    """Build the metrics table of one log, sorted by (key, step), logging order kept for ties.

    Its `rank` column is the constant `rank` (0: the run's own points; see `metrics_schema`).
    """
    import numpy as np
    import pyarrow as pa

    n = len(log.value)
    names = log.keys
    # Sort keys by name, then points by (key rank, step); lexsort is stable for equal steps.
    position = _name_positions(names)
    order_of_names = np.argsort(position)  # key ids in name order
    key_rank = position[log.key_id.astype(np.int64)] if n else np.zeros(0, np.int32)
    order = np.lexsort((log.step, key_rank))
    sorted_names = strings([names[i] for i in order_of_names])
    epoch = log.epoch[order]
    table = pa.Table.from_arrays(
        [
            pa.DictionaryArray.from_arrays(
                from_numpy(np.zeros(n, dtype=np.int32), pa.int32()), strings([run_id])
            ),
            pa.DictionaryArray.from_arrays(
                from_numpy(key_rank[order].astype(np.int32, copy=False), pa.int32()),
                sorted_names,
            ),
            from_numpy(log.step[order].astype(np.int64, copy=False), pa.int64()),
            from_numpy(epoch.astype(np.int32, copy=False), pa.int32(), mask=epoch < 0),
            from_numpy(log.value[order].astype(np.float64, copy=False), pa.float64()),
            from_numpy(
                log.time_ms[order].astype(np.int64, copy=False), pa.timestamp("ms", tz="UTC")
            ),
            from_numpy(np.full(n, rank, dtype=np.int32), pa.int32()),
        ],
        schema=metrics_schema(),
    )
    return table


def write_parquet(table: pa.Table, path: Path) -> None:
    """Write atomically (temp file + rename) with the store's encodings.

    zstd everywhere; keys and run id dictionary-encoded; steps and times delta-encoded
    (sorted, so nearly free); values byte-stream-split, which lets zstd squeeze the
    all-zero low mantissa bytes of float32-precision curves.
    """
    write_parquet_atomic(
        table,
        path,
        use_dictionary=["run_id", "key", "epoch", "rank"],
        column_encoding={
            "step": "DELTA_BINARY_PACKED",
            "time": "DELTA_BINARY_PACKED",
            "value": "BYTE_STREAM_SPLIT",
        },
        write_statistics=["key", "step"],
    )


def write_parquet_atomic(table: pa.Table, path: Path, **options: Any) -> None:
    """Write `table` to `path` zstd-compressed, atomically: temp file, fsync, rename.

    A reader sees the old file or the whole new one, never half of it.

    Args:
        table: what to write.
        path: the destination.
        **options: more ``pyarrow.parquet.write_table`` options (encodings, statistics).
    """
    import pyarrow.parquet as pq

    with replacing(path, fsync=True) as tmp:
        pq.write_table(table, tmp, compression="zstd", compression_level=3, **options)


def read_parquet(path: Path, keys: list[str] | None = None) -> pa.Table:
    """Read one run's metrics; a corrupt file raises CorruptFileError naming it.

    Always in `metrics_schema()`: a format "1" file without the `rank` column (a run that had
    no rank writers, every point its own) gets it, all 0.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        # ParquetFile rather than read_table: the latter loads pyarrow.dataset (and pandas),
        # which costs a CLI call more than the read itself.
        table = pq.ParquetFile(path).read()
        if keys:
            import pyarrow.compute as pc

            wanted = pa.array(list(keys), pa.string())
            table = table.filter(pc.is_in(table.column("key").cast(pa.string()), wanted))
        if "rank" not in table.schema.names:
            import numpy as np

            zeros = from_numpy(np.zeros(table.num_rows, dtype=np.int32), pa.int32())
            table = table.append_column(pa.field("rank", pa.int32()), zeros)
        return table.cast(metrics_schema())
    except (pa.ArrowException, OSError) as exc:
        raise CorruptFileError(f"{path}: unreadable metrics file: {exc}", path=str(path)) from exc


def summarize(table: pa.Table) -> dict[str, dict[str, Any]]:
    """Per key: last value (at the highest step, last logged), min, max, count, last step.

    NaN is ignored by min/max, like pandas; a key whose values are all NaN has min/max None.
    """
    import numpy as np

    if table.num_rows == 0:
        return {}
    key_col = table.column("key").combine_chunks()
    indices = to_numpy(key_col.indices)
    names = key_col.dictionary.to_pylist()
    values = to_numpy(table.column("value"))
    steps = to_numpy(table.column("step"))
    # Rows are sorted by (key, step): each key is one contiguous run of rows.
    boundaries = np.flatnonzero(np.diff(indices)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(indices)]))
    out: dict[str, dict[str, Any]] = {}
    for start, end in zip(starts.tolist(), ends.tolist(), strict=False):
        chunk = values[start:end]
        finite = chunk[~np.isnan(chunk)]
        last = float(chunk[-1])
        out[names[indices[start]]] = {
            "last": _json_number(last),
            "min": _json_number(float(finite.min())) if len(finite) else None,
            "max": _json_number(float(finite.max())) if len(finite) else None,
            "count": end - start,
            "last_step": int(steps[end - 1]),
        }
    return out


def _json_number(x: float) -> float | str:
    """JSON has no NaN/inf: keep them as the strings 'nan', 'inf', '-inf'."""
    if math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def from_json_number(x: Any) -> float | None:
    """Inverse of `_json_number`."""
    if x is None:
        return None
    if isinstance(x, str):
        return float(x)
    return float(x)
