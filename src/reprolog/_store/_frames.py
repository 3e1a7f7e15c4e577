"""The read side's DataFrames: the runs table from summary rows, metric points from Arrow.

Pure functions (no file access): `Store.runs`, the SQL view `runs`, the UI's `where` filter and
`RunRecord.metrics` build their frames here, so they are the same frames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reprolog._storage._encode import from_json_number

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
