"""Decoded curves of finished runs, kept compact under a memory budget (LRU, thread-safe)."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from reprolog._store._store import Store

# 50 runs x 3 keys x 100,000 steps is ~180 MB as int32 steps + float64 values: it fits, and
# the server stays under 500 MB RSS with a 10,000-run table beside it.
DEFAULT_BUDGET = 256 * 1024 * 1024

Curves = dict[str, tuple["np.ndarray", "np.ndarray"]]
# Evenly spaced integer steps (the usual case) are kept as (first, stride, count): 4 bytes a
# point less, ~60 MB over a 50-run compare; the asked keys' steps are rebuilt per request.
Compact = dict[str, tuple["np.ndarray | tuple[int, int, int]", "np.ndarray"]]


def decode(store: Store, run_id: str, x: str, keys: list[str] | None) -> Curves:
    """Per key: (x, value) of one run sorted by x, NaN x dropped; None keys: every key.

    Step x stays an integer array (int32 when it fits); a value column is float32 only when
    every value is exactly a float32, so min/max/last are never rounded.
    """
    import numpy as np
    import pyarrow.compute as pc

    reader = store._reader
    layout = reader.layout.run_layout(run_id)
    table = None
    if not layout.log_dir.is_dir() and layout.metrics.exists():
        # A finished run: one plain read of the three columns (one row group per file, and
        # pyarrow's key filter is slower than reading it all).
        import pyarrow.parquet as pq

        column = {"step": "step", "time": "time", "epoch": "epoch"}[x]
        try:
            table = pq.ParquetFile(layout.metrics).read(columns=["key", column, "value"])
        except (OSError, ValueError) as exc:
            reader.problem(f"{layout.metrics}: unreadable metrics file: {exc}")
            return {}
    else:
        table = reader.run_metrics(run_id, keys)
    out: Curves = {}
    if table is None or table.num_rows == 0:
        return out
    key_col = table.column("key").combine_chunks()
    if not hasattr(key_col, "dictionary"):
        key_col = key_col.dictionary_encode()
    names = key_col.dictionary.to_pylist()
    idx = key_col.indices.to_numpy(zero_copy_only=False)
    wanted = [c for c, name in enumerate(names) if keys is None or name in keys]
    if not wanted:
        return out
    values = table.column("value").to_numpy()
    if x == "step":
        xs = table.column("step").to_numpy()
    elif x == "time":
        xs = pc.cast(table.column("time"), "int64").to_numpy() / 1000.0
    else:
        xs = pc.fill_null(pc.cast(table.column("epoch"), "float64"), float("nan")).to_numpy()
    # One stable sort by key code groups every key's rows in file order.
    order = np.argsort(idx, kind="stable")
    bounds = np.searchsorted(idx[order], np.arange(len(names) + 1))
    for code in wanted:
        sel = order[bounds[code] : bounds[code + 1]]
        if not len(sel):
            continue
        kx, kv = xs[sel], values[sel]
        if kx.dtype.kind == "f":
            ok = ~np.isnan(kx)
            if not ok.all():
                kx, kv = kx[ok], kv[ok]
        if len(kx) > 1 and np.any(kx[1:] < kx[:-1]):
            perm = np.argsort(kx, kind="stable")
            kx, kv = kx[perm], kv[perm]
        out[names[code]] = (_compact_x(kx), _compact_values(kv))
    return out


def _compact_x(kx: np.ndarray) -> np.ndarray:
    import numpy as np

    if kx.dtype.kind in "iu" and len(kx):
        if int(kx[0]) >= -(2**31) and int(kx[-1]) < 2**31:  # sorted: the ends bound it
            return kx.astype(np.int32)
        return kx.astype(np.int64, copy=False)
    return np.ascontiguousarray(kx)


def _compact_values(kv: np.ndarray) -> np.ndarray:
    import numpy as np

    kv = np.ascontiguousarray(kv, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        small = kv.astype(np.float32)
    if np.array_equal(small.astype(np.float64), kv, equal_nan=True):
        return small
    return kv


def _pack_x(kx: np.ndarray) -> np.ndarray | tuple[int, int, int]:
    import numpy as np

    if kx.dtype.kind not in "iu" or len(kx) < 2:
        return kx
    stride = int(kx[1]) - int(kx[0])
    even = stride > 0 and int(kx[-1]) - int(kx[0]) == stride * (len(kx) - 1)
    if even and np.all(np.diff(kx) == stride):
        return (int(kx[0]), stride, len(kx))
    return kx


def _unpack_x(spec: np.ndarray | tuple[int, int, int]) -> np.ndarray:
    import numpy as np

    if isinstance(spec, tuple):
        first, stride, n = spec
        dtype = np.int32 if first + stride * n < 2**31 else np.int64
        return np.arange(first, first + stride * n, stride, dtype=dtype)[:n]
    return spec


def _nbytes(curves: Compact) -> int:
    size = 256 * (len(curves) + 1)
    for x, v in curves.values():
        size += v.nbytes + (x.nbytes if not isinstance(x, tuple) else 0)
    return size


class SeriesCache:
    """Decoded curves per (run, x axis), checked against the metrics file's size and mtime.

    Live runs (a log folder present) are never cached: their points are read each time.
    Requests for the same run wait on one decode (a lock per entry) instead of each decoding.
    """

    def __init__(self, store: Store, budget: int = DEFAULT_BUDGET) -> None:
        self.store = store
        self.budget = budget
        self.used = 0
        self.decodes = 0  # files decoded into the cache (for tests and the bench)
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str], tuple[Any, Compact, int]] = OrderedDict()
        self._locks: dict[tuple[str, str], threading.Lock] = {}

    def curves(self, run_id: str, keys: list[str], x: str) -> Curves:
        layout = self.store._layout.run_layout(run_id)
        if layout.log_dir.is_dir():
            return decode(self.store, run_id, x, keys)
        try:
            st = os.stat(layout.metrics)
        except OSError:
            return decode(self.store, run_id, x, keys)
        stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
        slot = (run_id, x)
        with self._lock:
            lock = self._locks.setdefault(slot, threading.Lock())
        with lock:
            with self._lock:
                entry = self._entries.get(slot)
                if entry is not None and entry[0] == stamp:
                    self._entries.move_to_end(slot)
                    return _pick(entry[1], keys)
            curves: Compact = {
                k: (_pack_x(kx), kv) for k, (kx, kv) in decode(self.store, run_id, x, None).items()
            }
            size = _nbytes(curves)
            with self._lock:
                self.decodes += 1
                old = self._entries.pop(slot, None)
                if old is not None:
                    self.used -= old[2]
                if size <= self.budget:
                    self._entries[slot] = (stamp, curves, size)
                    self.used += size
                    while self.used > self.budget:
                        _, (_, _, freed) = self._entries.popitem(last=False)
                        self.used -= freed
            return _pick(curves, keys)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, slot: object) -> bool:
        return slot in self._entries


def _pick(curves: Compact, keys: list[str]) -> Curves:
    return {k: (_unpack_x(curves[k][0]), curves[k][1]) for k in keys if k in curves}


_LIBC: Any = None


def release_memory() -> None:
    """Hand freed heap pages back to the OS (glibc's malloc_trim; a no-op elsewhere).

    Decoding and encoding a compare churn through ~100 MB of short-lived buffers in several
    threads; glibc keeps them in per-thread arenas, so RSS sat ~200 MB above what is live.
    """
    global _LIBC
    if _LIBC is None:
        try:
            import ctypes

            _LIBC = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC:
        _LIBC(0)
