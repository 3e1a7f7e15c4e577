"""The runs table: summary rows of every run, kept fresh cheaply, and the runs.json body."""

from __future__ import annotations

import math
import os
import threading
import time
from collections import OrderedDict
from typing import Any

from reprolog._store._store import Store

FULL_SCAN_S = 10.0
FILTERED_KEPT = 8  # recent `where` bodies kept encoded (10,000 runs: up to ~4 MB each)
_DEFAULT_PARAMS = 10
_DEFAULT_METRICS = 10


def json_number(x: Any) -> Any:
    """NaN/±inf as the strings "nan"/"inf"/"-inf" (JSON has no literal for them)."""
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


def clean(obj: Any) -> Any:
    """A record value made strict-JSON safe (non-finite floats as strings)."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    return json_number(obj)


def _kind_type(values: list[Any]) -> str:
    present = [v for v in values if v is not None]
    if present and all(
        (isinstance(v, (int, float)) and not isinstance(v, bool))
        or (isinstance(v, str) and v in ("nan", "inf", "-inf"))
        for v in present
    ):
        return "num"
    return "str"


class RunsCache:
    """Summary rows of every run, re-read only for folders that changed (live runs: always)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._rows: dict[str, tuple[int, dict[str, Any]]] = {}
        self._loaded = False
        self._table: dict[str, Any] | None = None  # the built runs.json body, when clean
        self.encoded: bytes | None = None  # that body as JSON, without its closing brace
        self._top = 0
        self._full_at = 0.0
        self._frame: Any = None
        self.generation = 0  # bumped whenever a row changes: what a cached body was built from
        self._filtered: OrderedDict[str, tuple[int, bytes, int]] = OrderedDict()

    def _scan(self) -> dict[str, int]:
        out = {}
        try:
            entries = list(os.scandir(self.store._layout.runs))
        except FileNotFoundError:
            return {}
        for e in entries:
            if e.is_dir() and not e.name.startswith("."):
                try:
                    out[e.name] = e.stat().st_mtime_ns
                except FileNotFoundError:
                    continue
        return out

    def _quick_scan(self) -> dict[str, int] | None:
        """Folder mtimes without statting every run, when that is safe; else None.

        Adding or removing a run folder changes the mtime of `runs/`; a finished run's folder
        does not change again. So while `runs/` is unchanged only live runs (and dead ones
        shown crashed, which a writer may recover) need a look; a full scan still runs every
        `FULL_SCAN_S` seconds as a backstop.
        """
        try:
            top = os.stat(self.store._layout.runs).st_mtime_ns
        except FileNotFoundError:
            return None
        now = time.monotonic()
        if not self._loaded or top != self._top or now - self._full_at > FULL_SCAN_S:
            self._top, self._full_at = top, now
            return None
        scan = {run_id: mtime for run_id, (mtime, _) in self._rows.items()}
        for run_id, (_, row) in self._rows.items():
            if row.get("status") in ("running", "crashed"):
                try:
                    scan[run_id] = os.stat(self.store._layout.run_dir(run_id)).st_mtime_ns
                except FileNotFoundError:
                    del scan[run_id]
        return scan

    def refresh(self) -> tuple[list[dict[str, Any]], bool]:
        """Every summary row, and whether anything changed since the last call."""
        with self._lock:
            quick = self._quick_scan()
            scan = quick if quick is not None else self._scan()
            changed = False
            if not self._loaded:  # first time: the on-disk index makes a cold start cheap
                for row in self.store._reader.summaries():
                    if row.get("id") in scan:
                        self._rows[row["id"]] = (scan[row["id"]], row)
                self._loaded = changed = True
            for run_id in [r for r in self._rows if r not in scan]:
                del self._rows[run_id]
                changed = True
            for run_id, mtime in scan.items():
                known = self._rows.get(run_id)
                if known and known[0] == mtime and known[1].get("status") != "running":
                    continue
                loaded = self.store._reader.load_summary(run_id)
                changed = True
                if loaded is None:
                    self._rows.pop(run_id, None)
                else:
                    self._rows[run_id] = (mtime, loaded)
            if changed:
                self._changed()
            return [r for _, r in self._rows.values()], changed

    def _changed(self) -> None:
        """Drop everything derived from the rows (call with the lock held)."""
        self._table = None
        self.encoded = None
        self._frame = None
        self._filtered.clear()
        self.generation += 1

    def recall(self, where: str) -> tuple[bytes, int] | None:
        """The encoded body of a recent `where` (without its closing brace), while unchanged."""
        with self._lock:
            hit = self._filtered.get(where)
            if hit is None or hit[0] != self.generation:
                return None
            self._filtered.move_to_end(where)
            return hit[1], hit[2]

    def remember(self, where: str, generation: int, encoded: bytes, status: int) -> None:
        """Keep a `where` body built at `generation`, unless a row changed meanwhile or a run
        is live (its row must update on every request)."""
        with self._lock:
            if generation != self.generation or self._table is None:
                return
            self._filtered[where] = (generation, encoded, status)
            self._filtered.move_to_end(where)
            while len(self._filtered) > FILTERED_KEPT:
                self._filtered.popitem(last=False)

    def ids(self) -> set[str]:
        with self._lock:
            return set(self._rows)

    def row(self, run_id: str) -> dict[str, Any] | None:
        with self._lock:
            known = self._rows.get(run_id)
        return known[1] if known else None


def _duration(row: dict[str, Any]) -> float | None:
    start, end = row.get("start_time"), row.get("end_time")
    return None if start is None or end is None else float(end) - float(start)


def _runs_body(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The runs.json body (before `where`): columns, default columns, columnar data."""
    rows = sorted(rows, key=lambda r: r["id"], reverse=True)
    n = len(rows)
    data: dict[str, list[Any]] = {
        "id": [r["id"] for r in rows],
        "status": [r.get("status") for r in rows],
        "name": [r.get("name") for r in rows],
        "experiment": [r.get("experiment") for r in rows],
        "start": [r.get("start_time") for r in rows],
        "end": [r.get("end_time") for r in rows],
        "duration": [_duration(r) for r in rows],
    }
    extra: dict[str, list[Any]] = {}
    seen: dict[str, int] = {}
    for i, r in enumerate(rows):
        for prefix, values in (("tags.", r.get("tags")), ("params.", r.get("params"))):
            for k, v in (values or {}).items():
                col = extra.setdefault(prefix + k, [None] * n)
                col[i] = clean(v)
        for k, s in (r.get("metrics_summary") or {}).items():
            seen[k] = seen.get(k, 0) + 1
            for stat in ("last", "min", "max"):
                col = extra.setdefault(f"metrics.{k}.{stat}", [None] * n)
                col[i] = json_number(s.get(stat))
    columns: list[dict[str, Any]] = [
        {"name": c, "kind": "base", "type": t}
        for c, t in (
            ("id", "str"),
            ("status", "str"),
            ("name", "str"),
            ("experiment", "str"),
            ("start", "time"),
            ("end", "time"),
            ("duration", "num"),
        )
    ]
    varying = []
    order = {"tags.": 0, "params.": 1, "metrics.": 2}
    for name in sorted(extra, key=lambda c: (order[c.split(".", 1)[0] + "."], c)):
        values = extra[name]
        kind = {"tags": "tag", "params": "param", "metrics": "metric"}[name.split(".", 1)[0]]
        meta: dict[str, Any] = {"name": name, "kind": kind, "type": _kind_type(values)}
        if kind != "metric":
            meta["varies"] = len({repr(v) for v in values}) > 1
            if kind == "param" and meta["varies"]:
                varying.append(name)
        columns.append(meta)
        data[name] = values
    top = sorted(seen, key=lambda k: (-seen[k], k))[:_DEFAULT_METRICS]
    defaults = ["status", "name", "experiment", "start", "duration"]
    varying.sort(key=lambda c: (-sum(v is not None for v in data[c]), c))  # common first
    defaults += varying[:_DEFAULT_PARAMS] + [f"metrics.{k}.last" for k in sorted(top)]
    return {"total": n, "count": n, "columns": columns, "default_columns": defaults, "data": data}
