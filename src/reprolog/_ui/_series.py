"""Downsampled curves for the charts: min, max and last per x-bucket, per run and key."""

from __future__ import annotations

import math
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from reprolog._errors import ArgumentError

if TYPE_CHECKING:
    import numpy as np

    from reprolog._ui._data import Provider

DEFAULT_WIDTH = 1000
MAX_WIDTH = 4000
X_AXES = ("step", "epoch", "time")


def _bucket_of(kx: np.ndarray, lo: float, span: float, width: int) -> np.ndarray:
    """Each x's bucket, as the chart cuts [lo, lo + span] into `width` (unclipped)."""
    import numpy as np

    if span <= 0:
        return np.zeros(len(kx), dtype=np.int64)
    return ((kx.astype(np.float64) - lo) * (width / span)).astype(np.int64)


def _bucket(
    kx: np.ndarray, kv: np.ndarray, lo: float, hi: float, width: int
) -> dict[str, Any] | None:
    """Cut [lo, hi] into `width` buckets; per bucket the x and value of the last point, the
    min and the max (NaN ignored). Returns bucket indices too, for groups.

    `kx` is sorted: the range and the bucket starts are binary searches, so no per-point
    work is done beyond the min/max reductions.
    """
    import numpy as np

    if kx.dtype.kind in "iu":  # search with the array's own type: no float copy of it
        info = np.iinfo(kx.dtype)
        if hi < info.min or lo > info.max:
            return None
        first = np.searchsorted(kx, kx.dtype.type(max(math.ceil(lo), info.min)), "left")
        stop = np.searchsorted(kx, kx.dtype.type(min(math.floor(hi), info.max)), "right")
    else:
        first, stop = np.searchsorted(kx, lo, "left"), np.searchsorted(kx, hi, "right")
    kx, kv = kx[first:stop], kv[first:stop]
    n = len(kx)
    if n == 0:
        return None
    span = hi - lo
    if n <= width:
        b = _bucket_of(kx, lo, span, width)
        np.clip(b, 0, width - 1, out=b)
        kv = kv.astype(np.float64, copy=False)
        return {
            "x": kx,
            "min": kv,
            "max": kv,
            "last": kv,
            "bucket": b,
            "points": n,
            "downsampled": False,
        }
    # Bucket i starts at the first point whose bucket is >= i; bucketing is monotone in x,
    # so a search on approximate edges, corrected where it lands off by a point, finds it.
    edges = lo + np.arange(1, width) * (span / width)
    if kx.dtype.kind in "iu":
        edges = np.ceil(edges)
        edges = np.clip(edges, np.iinfo(kx.dtype).min, np.iinfo(kx.dtype).max).astype(kx.dtype)
    pos = np.searchsorted(kx, edges, "left")
    want = np.arange(1, width)
    for _ in range(64):
        below = pos > 0
        back = below.copy()
        back[below] = _bucket_of(kx[pos[below] - 1], lo, span, width) >= want[below]
        ahead = pos < n
        fwd = ahead.copy()
        fwd[ahead] = _bucket_of(kx[pos[ahead]], lo, span, width) < want[ahead]
        if not back.any() and not fwd.any():
            break
        pos[back] = np.searchsorted(kx, kx[pos[back] - 1], "left")
        pos[fwd] = np.searchsorted(kx, kx[pos[fwd]], "right")
    bounds = np.concatenate(([0], pos, [n]))
    used = np.flatnonzero(bounds[1:] > bounds[:-1])
    starts, ends = bounds[used], bounds[used + 1] - 1
    with np.errstate(invalid="ignore"):
        mins = np.fmin.reduceat(kv, starts).astype(np.float64, copy=False)
        maxs = np.fmax.reduceat(kv, starts).astype(np.float64, copy=False)
    return {
        "x": kx[ends],
        "min": mins,
        "max": maxs,
        "last": kv[ends].astype(np.float64, copy=False),
        "bucket": used,
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

    if a.dtype.kind in "iu":
        return a.tolist()  # type: ignore[no-any-return]
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
    # Runs are read side by side (pyarrow and numpy release the GIL); finished runs come from
    # the cache, decoded once for every request that asks for them.
    cache = provider.series_cache

    def read(run_id: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return cache.curves(run_id, keys, x)

    with ThreadPoolExecutor(max_workers=min(4, len(ids))) as pool:
        curves = dict(zip(ids, pool.map(read, ids), strict=True))
    lo, hi = xmin, xmax
    if lo is None or hi is None:
        firsts = [c[0][0].item() for per in curves.values() for c in per.values() if len(c[0])]
        lasts = [c[0][-1].item() for per in curves.values() for c in per.values() if len(c[0])]
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
