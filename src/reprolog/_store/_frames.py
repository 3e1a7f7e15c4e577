"""The read side's DataFrames: the runs table from summary rows, metric points from Arrow.

Pure functions (no file access): `Store.runs`, the SQL view `runs`, the UI's `where` filter and
`RunRecord.metrics` build their frames here, so they are the same frames. `runs_frame` builds
the runs table from summary rows; `listing_frame` builds the very same table from the summary
index's typed listing columns (`_storage._listing`) without a Python loop over cells.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reprolog._storage._encode import from_json_number
from reprolog._storage._listing import BASE, BASE_NAMES, PREFIX, decode_column, json_columns

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


def runs_frame(summaries: list[dict[str, Any]]) -> pd.DataFrame:
    """The `runs()` table built from summary rows (newest first)."""
    import pandas as pd

    rows = sorted(summaries, key=lambda r: r["id"], reverse=True)
    base = pd.DataFrame(
        {
            "id": [r["id"] for r in rows],
            "name": [r.get("name") for r in rows],
            "experiment": [r.get("experiment") for r in rows],
            "status": [r.get("status") for r in rows],
            "start": pd.to_datetime([r.get("start_time") for r in rows], unit="s", utc=True),
            "end": pd.to_datetime([r.get("end_time") for r in rows], unit="s", utc=True),
        }
    )
    base["duration"] = (base["end"] - base["start"]).dt.total_seconds()
    wide: dict[str, list[Any]] = {}
    n = len(rows)

    def put(column: str, i: int, value: Any) -> None:
        values = wide.get(column)
        if values is None:
            values = wide[column] = [None] * n
        values[i] = value

    for i, r in enumerate(rows):
        for k, v in (r.get("tags") or {}).items():
            put(f"tags.{k}", i, v)
        for k, v in (r.get("params") or {}).items():
            put(f"params.{k}", i, v)
        for k, s in (r.get("metrics_summary") or {}).items():
            for stat in ("last", "min", "max"):
                put(f"metrics.{k}.{stat}", i, from_json_number(s.get(stat)))
    if wide:
        extra = pd.DataFrame({k: _column(v) for k, v in sorted(wide.items())})
        base = pd.concat([base, extra], axis=1)
    return base


def listing_frame(table: pa.Table, experiment: str | None = None) -> pd.DataFrame:
    """`runs_frame` of the rows of a listing table (of one experiment, or all)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    texts = json_columns(table)
    if experiment is not None:
        column = PREFIX + "experiment"
        cells = decode_column(table.column(column), column in texts, None)
        table = table.filter(pa.array([v == experiment for v in cells], pa.bool_()))
    if table.num_rows == 0:
        return runs_frame([])
    table = table.take(pc.array_sort_indices(table.column(PREFIX + "id"), order="descending"))
    base = {
        name: decode_column(table.column(PREFIX + name), PREFIX + name in texts, None)
        for name, _ in BASE
    }
    frame = pd.DataFrame(
        {
            "id": base["id"],
            "name": base["name"],
            "experiment": base["experiment"],
            "status": base["status"],
            "start": pd.to_datetime(base["start_time"], unit="s", utc=True),
            "end": pd.to_datetime(base["end_time"], unit="s", utc=True),
        }
    )
    frame["duration"] = (frame["end"] - frame["start"]).dt.total_seconds()
    extra = {}
    for column in sorted(table.column_names):
        if not column.startswith(PREFIX) or column in BASE_NAMES:
            continue
        cells = table.column(column)
        if cells.null_count == len(cells):
            continue  # no run of these has the key
        extra[column[len(PREFIX) :]] = _typed_column(cells, column in texts)
    if extra:
        frame = pd.concat([frame, pd.DataFrame(extra)], axis=1)
    return frame


def _typed_column(cells: pa.ChunkedArray, is_json: bool) -> Any:
    """`_column` of a stored listing column: its kind says its type without a scan."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    kind = cells.type
    if is_json:
        return _column(decode_column(cells, True, None))
    if kind == pa.int64():
        array = cells.combine_chunks()
        mask = array.is_null().to_numpy(zero_copy_only=False)
        data = array.fill_null(0).to_numpy()
        return pd.arrays.IntegerArray(data, mask)
    if kind == pa.float64():
        return pd.Series(cells.to_numpy(), dtype="float64")
    if kind == pa.string():
        return pd.Series(cells.to_numpy(), dtype=object)
    return pd.Series(np.array(cells.to_pylist(), dtype=object), dtype=object)


def metrics_frame(table: pa.Table) -> pd.DataFrame:
    """Metric points as pandas: run_id, key, step, epoch, value, time (epoch stays an integer)."""
    import pandas as pd
    import pyarrow as pa

    mapping = {pa.int32(): pd.Int32Dtype()}  # epoch stays an integer, with <NA> for none
    return table.to_pandas(types_mapper=mapping.get)


def _column(values: list[Any]) -> Any:
    """Keep a column numeric when every value is a number (bools stay objects)."""
    import pandas as pd

    if all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values):
        if any(isinstance(v, float) for v in values):
            return pd.Series(
                [float("nan") if v is None else float(v) for v in values], dtype="float64"
            )
        return pd.array(values, dtype="Int64")
    return pd.Series(values, dtype=object)
