"""Downsampled curves for the charts: min, max and last per x-bucket, per run and key."""

from __future__ import annotations

import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from reprolog._errors import ArgumentError
from reprolog._layout import RunLayout

if TYPE_CHECKING:
    import numpy as np

    from reprolog._ui._data import Provider

DEFAULT_WIDTH = 1000
MAX_WIDTH = 4000
X_AXES = ("step", "epoch", "time")


def _curves(provider: Provider, run_id: str, keys: list[str], x: str) -> dict[str, Any]:
    """Per key: (x float64, value float64) of one run, sorted by x (finished or live)."""
    import numpy as np
    import pyarrow.compute as pc

    store = provider.store
    layout = RunLayout(store.layout.run_dir(run_id))
    table = None
    if not layout.log_dir.is_dir() and layout.metrics.exists():
        # A finished run: read only the columns the chart needs (no schema cast, no filter
        # copy); the key slices are picked below.
        import pyarrow.parquet as pq

        column = {"step": "step", "time": "time", "epoch": "epoch"}[x]
        try:
            table = pq.ParquetFile(layout.metrics).read(columns=["key", column, "value"])
        except (OSError, ValueError) as exc:
            store._problem(f"{layout.metrics}: unreadable metrics file: {exc}")
            return {}
    else:
        table = store._run_metrics(run_id, keys)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if table is None or table.num_rows == 0:
        return out
    key_col = table.column("key").combine_chunks()
    if not hasattr(key_col, "dictionary"):
        key_col = key_col.dictionary_encode()
    names = key_col.dictionary.to_pylist()
    idx = key_col.indices.to_numpy(zero_copy_only=False)
    wanted = {code for code, name in enumerate(names) if name in keys}
    if not wanted:
        return out
    # Only the rows of the asked keys are converted.
    sel_all = np.flatnonzero(np.isin(idx, list(wanted)))
    sub = table.take(sel_all)
    idx = idx[sel_all]
    values = sub.column("value").to_numpy()
    if x == "step":
        xs = sub.column("step").to_numpy().astype("float64")
    elif x == "time":
        xs = pc.cast(sub.column("time"), "int64").to_numpy() / 1000.0
    else:
        xs = pc.fill_null(pc.cast(sub.column("epoch"), "float64"), float("nan")).to_numpy()
    for code in sorted(wanted):
        name = names[code]
        sel = np.flatnonzero(idx == code)
        if not len(sel):
            continue
        kx, kv = xs[sel], values[sel]
        ok = ~np.isnan(kx)
        kx, kv = kx[ok], kv[ok]
        if len(kx) > 1 and np.any(np.diff(kx) < 0):
            order = np.argsort(kx, kind="stable")
            kx, kv = kx[order], kv[order]
        out[name] = (kx, kv)
    return out


def _bucket(
    kx: np.ndarray, kv: np.ndarray, lo: float, hi: float, width: int
) -> dict[str, Any] | None:
    """Cut [lo, hi] into `width` buckets; per bucket the x and value of the last point, the
    min and the max (NaN ignored). Returns bucket indices too, for groups."""
    import numpy as np

    inside = (kx >= lo) & (kx <= hi)
    kx, kv = kx[inside], kv[inside]
    n = len(kx)
    if n == 0:
        return None
    span = hi - lo
    b = np.zeros(n, dtype=np.int64) if span <= 0 else ((kx - lo) * (width / span)).astype(np.int64)
    np.clip(b, 0, width - 1, out=b)
    if n <= width:
        return {
            "x": kx,
            "min": kv,
            "max": kv,
            "last": kv,
            "bucket": b,
            "points": n,
            "downsampled": False,
        }
    starts = np.concatenate(([0], np.flatnonzero(np.diff(b)) + 1))
    ends = np.concatenate((starts[1:], [n])) - 1
    with np.errstate(invalid="ignore"):
        mins = np.fmin.reduceat(kv, starts)
        maxs = np.fmax.reduceat(kv, starts)
    return {
        "x": kx[ends],
        "min": mins,
        "max": maxs,
        "last": kv[ends],
        "bucket": b[starts],
        "points": n,
        "downsampled": True,
    }


def _list(a: np.ndarray) -> list[Any]:
    """Numbers for JSON; NaN and ±inf become null."""
    import numpy as np

    out: list[Any] = a.tolist()
    if a.dtype.kind == "f":
        for i in np.flatnonzero(~np.isfinite(a)).tolist():
            out[i] = None
    return out


def _xlist(a: np.ndarray, x: str) -> list[Any]:
    import numpy as np

    if x != "time" and len(a) and np.all(a == np.floor(a)):
        return a.astype(np.int64).tolist()  # type: ignore[no-any-return]
    return _list(a)


def series(
    provider: Provider,
    refs: list[str],
    keys: list[str],
    *,
    x: str = "step",
    width: int = DEFAULT_WIDTH,
    xmin: float | None = None,
    xmax: float | None = None,
    group: str | None = None,
) -> dict[str, Any]:

    started = time.perf_counter()
    if x not in X_AXES:
        raise ArgumentError(f"x must be one of {', '.join(X_AXES)}, got {x!r}")
    if not 1 <= width <= MAX_WIDTH:
        raise ArgumentError(f"width must be 1 to {MAX_WIDTH} pixels, got {width}")
    if not refs or not keys:
        raise ArgumentError("series.json needs runs=<id>,... and keys=<key>,...")
    from reprolog._ui._data import MAX_COMPARE

    if len(refs) > MAX_COMPARE:
        raise ArgumentError(f"series.json takes at most {MAX_COMPARE} runs, got {len(refs)}")
    provider.runs_cache.refresh()
    ids = list(dict.fromkeys(provider.resolve(r) for r in refs))
    # Runs are read side by side: pyarrow and numpy release the GIL.
    with ThreadPoolExecutor(max_workers=min(4, len(ids))) as pool:
        curves = dict(zip(ids, pool.map(lambda r: _curves(provider, r, keys, x), ids), strict=True))
    lo, hi = xmin, xmax
    if lo is None or hi is None:
        firsts = [c[0][0] for per in curves.values() for c in per.values() if len(c[0])]
        lasts = [c[0][-1] for per in curves.values() for c in per.values() if len(c[0])]
        lo = float(min(firsts)) if lo is None and firsts else (lo if lo is not None else 0.0)
        hi = float(max(lasts)) if hi is None and lasts else (hi if hi is not None else lo)
    if hi < lo:
        raise ArgumentError(f"xmin must not exceed xmax, got {xmin}..{xmax}")
    out: list[dict[str, Any]] = []
    buckets: dict[tuple[str, str], dict[str, Any]] = {}
    for run_id in ids:
        for key in keys:
            c = curves[run_id].get(key)
            res = _bucket(c[0], c[1], lo, hi, width) if c is not None else None
            if res is None:
                continue
            buckets[(run_id, key)] = res
            out.append(
                {
                    "run": run_id,
                    "key": key,
                    "x": _xlist(res["x"], x),
                    "min": _list(res["min"]),
                    "max": _list(res["max"]),
                    "last": _list(res["last"]),
                    "points": res["points"],
                    "downsampled": res["downsampled"],
                }
            )
    body: dict[str, Any] = {"x": x, "range": [lo, hi], "series": out}
    if group:
        body["groups"] = _groups(provider, ids, keys, buckets, group, width, x)
    body["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return body


def _group_value(row: dict[str, Any] | None, column: str) -> str:
    import json

    if row is None:
        return "null"
    for prefix, field in (("params.", "params"), ("tags.", "tags")):
        if column.startswith(prefix):
            v = (row.get(field) or {}).get(column[len(prefix) :])
            return v if isinstance(v, str) else json.dumps(v)
    if column in ("status", "name", "experiment"):
        v = row.get(column)
        return v if isinstance(v, str) else json.dumps(v)
    raise ArgumentError(
        f"group takes params.<name>, tags.<name>, status, name or experiment; got {column!r}"
    )


def _groups(
    provider: Provider,
    ids: list[str],
    keys: list[str],
    buckets: dict[tuple[str, str], dict[str, Any]],
    column: str,
    width: int,
    x: str,
) -> list[dict[str, Any]]:
    """Per group value and key, over every one of its runs: per bucket the mean of the runs'
    last values, and the min and max of those values (a band across runs)."""
    import numpy as np

    members: dict[str, list[str]] = {}
    for run_id in ids:
        members.setdefault(_group_value(provider.runs_cache.row(run_id), column), []).append(run_id)
    out = []
    for value, runs in members.items():
        for key in keys:
            parts = [buckets[(r, key)] for r in runs if (r, key) in buckets]
            if not parts:
                continue
            grid = np.full((len(parts), width), np.nan)
            xgrid = np.full((len(parts), width), np.nan)
            for i, p in enumerate(parts):
                # A whole series may put several points in one bucket: the last one wins.
                grid[i, p["bucket"]], xgrid[i, p["bucket"]] = p["last"], p["x"]
            used = np.flatnonzero(~np.all(np.isnan(grid), axis=0))
            g, gx = grid[:, used], xgrid[:, used]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column is a gap
                xs, mean = np.nanmean(gx, axis=0), np.nanmean(g, axis=0)
                lo, hi = np.nanmin(g, axis=0), np.nanmax(g, axis=0)
            out.append(
                {
                    "group": value,
                    "key": key,
                    "runs": runs,
                    "x": _xlist(xs, x),
                    "mean": _list(mean),
                    "min": _list(lo),
                    "max": _list(hi),
                }
            )
    return out
