"""Summary rows as typed Arrow columns: the listing half of the summary index (pure).

Each column the runs table is built from (id, name, experiment, status, start_time, end_time,
tags.*, params.*, metrics.<key>.last/min/max) is stored under `PREFIX` with the narrowest
kind that keeps every cell's Python value and type: int64, float64, string or bool (a null
is an absent key; in the six base columns, a None), else each cell's JSON text (a null is an
absent key, the text "null" a None). So any subset of rows (one experiment, the runs still
on disk) gives back the very values, and the types `_store._frames.runs_frame` infers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from reprolog._storage._encode import from_json_number

if TYPE_CHECKING:
    import pyarrow as pa

#: the listing's columns are named PREFIX + column, beside the index's own columns
PREFIX = "c:"
#: (column, summary key) of the columns every row has
BASE = (
    ("id", "id"),
    ("name", "name"),
    ("experiment", "experiment"),
    ("status", "status"),
    ("start_time", "start_time"),
    ("end_time", "end_time"),
)
BASE_NAMES = frozenset(PREFIX + name for name, _ in BASE)
#: schema metadata: the columns stored as JSON text
JSON_COLUMNS = b"reprolog.json_columns"


class _Absent:
    """The cell of a row that lacks the column's key (None is a value)."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()
_EXACT = {int: "int64", float: "float64", str: "string", bool: "bool_"}


def gather(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Column name (unprefixed) -> one value per row, as the runs table reads them."""
    n = len(rows)
    columns: dict[str, list[Any]] = {name: [r.get(key) for r in rows] for name, key in BASE}
    wide: dict[str, list[Any]] = {}

    def place(name: str, where: list[int], values: list[Any]) -> None:
        if len(where) == n:  # every row (the common case: one set of keys for all)
            wide[name] = values
            return
        column = wide.get(name)
        if column is None:
            column = wide[name] = [ABSENT] * n
        for i, v in zip(where, values, strict=True):
            column[i] = v

    # Rows with the same keys (in the same order) are transposed at once, not cell by cell.
    for prefix, key in (("tags.", "tags"), ("params.", "params")):
        mappings = [r.get(key) or {} for r in rows]
        for keys, where in _groups(mappings).items():
            cells = zip(*[tuple(mappings[i].values()) for i in where], strict=True)
            for k, column in zip(keys, cells, strict=True):
                place(f"{prefix}{k}", where, list(column))
    summaries = [r.get("metrics_summary") or {} for r in rows]
    for keys, where in _groups(summaries).items():
        cells = zip(*[tuple(summaries[i].values()) for i in where], strict=True)
        for k, stats in zip(keys, cells, strict=True):
            for stat in ("last", "min", "max"):
                raw = [s.get(stat) for s in stats]
                if _FLOATS.issuperset(map(type, raw)):
                    place(f"metrics.{k}.{stat}", where, raw)
                else:
                    place(f"metrics.{k}.{stat}", where, [from_json_number(v) for v in raw])
    columns.update(sorted(wide.items()))
    return columns


_FLOATS = frozenset((float, type(None)))  # what from_json_number leaves as it is


def _groups(mappings: list[Any]) -> dict[tuple[Any, ...], list[int]]:
    """Key tuple -> the positions of the mappings with exactly those keys (empty ones: none)."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, m in enumerate(mappings):
        if m:
            keys = tuple(m)
            where = groups.get(keys)
            if where is None:
                groups[keys] = [i]
            else:
                where.append(i)
    return groups


def encode_column(values: list[Any], *, base: bool) -> tuple[pa.Array, bool]:
    """(the Arrow array, True when it holds JSON texts) of one column's cells."""
    import pyarrow as pa

    kinds = set(map(type, values))
    absent = _Absent in kinds
    kinds.discard(_Absent)
    if base:
        kinds.discard(type(None))
    if len(kinds) <= 1:
        kind = _EXACT.get(next(iter(kinds)), "") if kinds else "string"
        if kind:
            cells = [None if v is ABSENT else v for v in values] if absent else values
            try:
                return pa.array(cells, getattr(pa, kind)()), False
            except (OverflowError, pa.ArrowException):
                pass  # an int beyond int64: kept as its JSON text
    texts = [
        None if v is ABSENT else json.dumps(v, ensure_ascii=False, default=repr) for v in values
    ]
    return pa.array(texts, pa.string()), True


def decode_column(column: pa.ChunkedArray | pa.Array, is_json: bool, absent: Any) -> list[Any]:
    """The Python cells of a stored column; an absent key's cell is `absent`."""
    values: list[Any] = column.to_pylist()
    if is_json:
        return [absent if t is None else json.loads(t) for t in values]
    if absent is None:
        return values
    return [absent if v is None else v for v in values]


def json_columns(table: pa.Table) -> set[str]:
    """The names of the table's columns stored as JSON text."""
    meta = table.schema.metadata or {}
    return set(json.loads(meta.get(JSON_COLUMNS, b"[]")))


def listing_table(rows: list[dict[str, Any]], extra: dict[str, pa.Array] | None = None) -> pa.Table:
    """The rows as a listing table (the `extra` columns first: the index's own)."""
    import pyarrow as pa

    arrays: dict[str, Any] = dict(extra or {})
    texts = []
    for name, values in gather(rows).items():
        column = PREFIX + name
        arrays[column], is_json = encode_column(values, base=column in BASE_NAMES)
        if is_json:
            texts.append(column)
    return _with_json(pa.table(arrays), texts)


def merge(tables: Iterable[pa.Table]) -> pa.Table:
    """Listing tables one after the other; a column whose kinds differ is encoded anew.

    Every table has the same non-listing columns (of the same types).
    """
    import pyarrow as pa

    given = list(tables)
    parts = [t for t in given if t.num_rows] or given[:1]
    if len(parts) == 1:
        return parts[0]
    names: dict[str, None] = {}
    for t in parts:
        names.update(dict.fromkeys(t.column_names))
    kinds = [json_columns(t) for t in parts]
    arrays: dict[str, pa.ChunkedArray] = {}
    texts = []
    for name in names:
        if not name.startswith(PREFIX):
            arrays[name] = pa.chunked_array([c for t in parts for c in t.column(name).chunks])
            continue
        base = name in BASE_NAMES
        present = {
            (t.schema.field(name).type, name in k)
            for t, k in zip(parts, kinds, strict=True)
            if name in t.column_names
        }
        if len(present) == 1:
            ((kind, is_json),) = present
            arrays[name] = pa.chunked_array(
                [
                    chunk
                    for t in parts
                    for chunk in (
                        t.column(name).chunks
                        if name in t.column_names
                        else [pa.nulls(t.num_rows, kind)]
                    )
                ],
                kind,
            )
        else:
            filler = None if base else ABSENT
            values: list[Any] = []
            for t, k in zip(parts, kinds, strict=True):
                if name in t.column_names:
                    values += decode_column(t.column(name), name in k, filler)
                else:
                    values += [filler] * t.num_rows
            array, is_json = encode_column(values, base=base)
            arrays[name] = pa.chunked_array([array])
        if is_json:
            texts.append(name)
    return _with_json(pa.table(arrays), texts)


def _with_json(table: pa.Table, texts: list[str]) -> pa.Table:
    meta = dict(table.schema.metadata or {})
    meta[JSON_COLUMNS] = json.dumps(texts).encode()
    return table.replace_schema_metadata(meta)


# A summary matching this is left to the per-row path: a null (None and an absent key look
# alike to the JSON reader), an escape (a lone surrogate), a non-finite number, a record's
# format version, a control character (a line break). RE2 syntax (pyarrow.compute).
_ROUTED = r'null|\\u|"nan"|"inf"|"-inf"|NaN|Infinity|"format_version"|[\x00-\x1f]'


class _Unsure(Exception):
    """The batch cannot be read exactly by the JSON reader: every row goes the per-row way."""


def parse_summaries(texts: list[bytes]) -> tuple[pa.Table | None, list[int], list[int]]:
    """Summary files' bytes read at once by pyarrow's JSON reader, where that is exact.

    Returns (a listing table with a `summary` column (the text), the positions of its rows
    in `texts`, the positions left to the per-row path (`json.loads`, then `listing_table`)):
    rows whose cells the reader cannot give back with their Python types (an integral
    float could have been an int; a nested value; a stat of None) are left over.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    try:
        every = pa.array(texts, pa.binary()).cast(pa.string())  # UTF-8, as json.loads wants
    except pa.ArrowException:
        return None, [], list(range(len(texts)))
    simple = pc.and_(
        pc.invert(pc.match_substring_regex(every, _ROUTED)), pc.starts_with(every, "{")
    ).to_numpy(zero_copy_only=False)
    clean = np.flatnonzero(simple).tolist()
    rest = np.flatnonzero(~simple).tolist()
    if not clean:
        return None, [], rest
    body = b"\n".join(texts[i] for i in clean)
    try:
        parsed = pj.read_json(
            pa.py_buffer(body), read_options=pj.ReadOptions(block_size=len(body) + 1)
        )
        summary = every.filter(pa.array(simple))
        if parsed.num_rows != len(clean):
            raise _Unsure
        route = np.zeros(len(clean), dtype=bool)
        columns = _parsed_columns(parsed, route)
    except (_Unsure, pa.ArrowException):
        return None, [], list(range(len(texts)))
    columns["summary"] = summary
    keep = ~route
    table = _with_json(pa.table(columns).filter(pa.array(keep)), [])
    kept = [clean[i] for i in np.flatnonzero(keep).tolist()]
    routed = [clean[i] for i in np.flatnonzero(route).tolist()]
    return table, kept, sorted(rest + routed)


def _parsed_columns(parsed: pa.Table, route: Any) -> dict[str, pa.Array]:
    """The listing columns of a parsed batch; marks in `route` the rows left over."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = parsed.num_rows
    scalars = (pa.int64(), pa.float64(), pa.string(), pa.bool_())

    def mark(mask: pa.Array) -> None:
        route[mask.fill_null(False).to_numpy(zero_copy_only=False)] = True

    def integral(values: pa.Array) -> pa.Array:
        return pc.equal(values, pc.floor(values))

    def column(name: str) -> pa.Array | None:
        if name not in parsed.column_names:
            return None
        return parsed.column(name).combine_chunks()

    out: dict[str, pa.Array] = {}
    for name, key in BASE:
        values = column(key)
        if values is None or values.type == pa.null():
            if name == "id":
                raise _Unsure
            values = pa.nulls(n, pa.string())
        elif name in ("start_time", "end_time"):  # read as seconds only: an int is its float
            if values.type not in (pa.int64(), pa.float64()):
                raise _Unsure
        elif values.type != pa.string() or (name == "id" and values.null_count):
            raise _Unsure
        elif name == "status":
            mark(pc.equal(values, "running"))  # a live run's row is never cached: per row
        out[PREFIX + name] = values
    for prefix, key in (("tags.", "tags"), ("params.", "params")):
        struct = column(key)
        if struct is None:
            continue
        if not pa.types.is_struct(struct.type):
            raise _Unsure
        for field, values in zip(struct.type, struct.flatten(), strict=True):
            if values.type not in scalars:
                mark(values.is_valid())  # a list or a mapping: per row
                continue
            if values.type == pa.float64():
                mark(integral(values))
            out[f"{PREFIX}{prefix}{field.name}"] = values
    metrics = column("metrics_summary")
    if metrics is not None:
        if not pa.types.is_struct(metrics.type):
            raise _Unsure
        for field, stats in zip(metrics.type, metrics.flatten(), strict=True):
            present = stats.is_valid()
            if not pa.types.is_struct(stats.type):
                mark(present)
                continue
            by_name = dict(zip((f.name for f in stats.type), stats.flatten(), strict=True))
            for stat in ("last", "min", "max"):
                values = by_name.get(stat)
                if values is None or values.type not in (pa.int64(), pa.float64()):
                    mark(present)  # a stat of None, or absent: per row
                    continue
                mark(pc.and_(present, values.is_null()))
                out[f"{PREFIX}metrics.{field.name}.{stat}"] = pc.cast(values, pa.float64())
    return out
