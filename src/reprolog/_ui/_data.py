"""The UI's data provider over a read-only Store: runs table, run detail, compare, diff."""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path
from typing import Any

from reprolog._errors import ArgumentError, RunNotFoundError
from reprolog._layout import RunLayout
from reprolog._store import Store

BASE_COLUMNS = ("id", "status", "name", "experiment", "start", "end", "duration")
_HIGHLIGHT_PACKAGES = (
    "numpy",
    "torch",
    "lightning",
    "pytorch-lightning",
    "transformers",
    "keras",
    "tensorflow",
    "jax",
    "scikit-learn",
    "pandas",
    "reprolog",
)
MAX_COMPARE = 50
FULL_SCAN_S = 10.0
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

    def _scan(self) -> dict[str, int]:
        out = {}
        try:
            entries = list(os.scandir(self.store.layout.runs))
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
            top = os.stat(self.store.layout.runs).st_mtime_ns
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
                    scan[run_id] = os.stat(self.store.layout.run_dir(run_id)).st_mtime_ns
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
                for row in self.store._summaries():
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
                loaded = self.store._load_summary(run_id)
                changed = True
                if loaded is None:
                    self._rows.pop(run_id, None)
                else:
                    self._rows[run_id] = (mtime, loaded)
            if changed:
                self._table = None
                self.encoded = None
                self._frame = None
            return [r for _, r in self._rows.values()], changed

    def ids(self) -> set[str]:
        with self._lock:
            return set(self._rows)

    def row(self, run_id: str) -> dict[str, Any] | None:
        with self._lock:
            known = self._rows.get(run_id)
        return known[1] if known else None


class Provider:
    """Every JSON body the UI serves, from one read-only Store."""

    def __init__(self, store_dir: str | os.PathLike[str]) -> None:
        self.store = Store(store_dir, read_only=True)
        self.runs_cache = RunsCache(self.store)

    # ------------------------------------------------------------------ lookup

    def resolve(self, ref: str) -> str:
        if ref in self.runs_cache.ids() and (self.store.layout.runs / ref).is_dir():
            return ref
        return self.store.resolve(ref)

    def record(self, ref: str) -> Any:
        run_id = self.resolve(ref)
        from reprolog._record import RunRecord

        return RunRecord(
            self.store._load_record(run_id), self.store.layout.run_dir(run_id), self.store
        )

    # ------------------------------------------------------------------ runs table

    def runs(self, where: str | None) -> tuple[dict[str, Any], int]:
        started = time.perf_counter()
        rows, _ = self.runs_cache.refresh()
        cache = self.runs_cache
        body = cache._table
        if body is None:
            body = _runs_body(rows)
            if not any(r.get("status") == "running" for r in rows):
                cache._table = body
        status = 200
        out = dict(body)
        out["error"] = None
        if where is not None and where.strip():
            try:
                keep = self._where(rows, where)
            except ArgumentError as exc:
                out["error"] = str(exc)
                keep = set()
                status = 400
            mask = [i in keep for i in body["data"]["id"]]
            out["data"] = {
                c: [v for v, m in zip(vs, mask, strict=True) if m] for c, vs in body["data"].items()
            }
        out["count"] = len(out["data"]["id"])
        out["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 1)
        return out, status

    def _where(self, rows: list[dict[str, Any]], where: str) -> set[str]:
        import duckdb

        cache = self.runs_cache
        if cache._frame is None:
            cache._frame = Store._runs_frame(rows)
        # No file access from a user's predicate: it sees only the runs table.
        con = duckdb.connect(config={"enable_external_access": False, "lock_configuration": True})
        try:
            con.register("runs", cache._frame)
            result = con.execute(f"SELECT id FROM runs WHERE ({where})").fetchall()
        except duckdb.Error as exc:
            raise ArgumentError(" ".join(str(exc).split())) from None
        finally:
            con.close()
        return {r[0] for r in result}

    # ------------------------------------------------------------------ one run

    def run(self, ref: str) -> dict[str, Any]:
        rec = self.record(ref)
        raw = rec.raw
        sections = dict(rec.sections)
        code = dict(sections.get("code") or {})
        code.pop("diff", None)
        if isinstance(code.get("untracked"), dict):
            code["untracked"] = {
                p: {k: v for k, v in (e or {}).items() if k != "content"}
                for p, e in code["untracked"].items()
            }
        if "code" in sections:
            sections["code"] = code
        env = sections.get("environment") or {}
        packages = env.get("packages") or {}
        summary = rec.metrics_summary
        if rec.status == "running" or (RunLayout(rec.dir).log_dir.is_dir() and not summary):
            from reprolog._encode import summarize

            summary = summarize(self.store.metrics_table(runs=[rec.id]))
        metrics = [
            {"key": k, **{f: s.get(f) for f in ("count", "last", "min", "max", "last_step")}}
            for k, s in sorted(summary.items())
        ]
        dirty = bool(code.get("git")) and bool(code.get("dirty"))
        body: dict[str, Any] = clean(
            {
                "run": {
                    "id": rec.id,
                    "name": rec.name,
                    "experiment": rec.experiment,
                    "status": rec.status,
                    "start": rec.start,
                    "end": rec.end,
                    "duration": rec.duration,
                    "host": raw.get("host"),
                    "pid": raw.get("pid"),
                    "error": rec.error,
                    "live": rec.status == "running",
                    "format_version": raw.get("format_version"),
                },
                "params": rec.params,
                "tags": rec.tags,
                "sections": sections,
                "highlights": {
                    "python": env.get("python_version"),
                    "platform": env.get("platform"),
                    "torch": packages.get("torch"),
                    "cuda": env.get("cuda_version"),
                    "gpus": env.get("gpus") or [],
                    "packages": {p: packages[p] for p in _HIGHLIGHT_PACKAGES if p in packages},
                },
                "capture_report": rec.capture_report,
                "artifacts": [self._artifact(rec, a) for a in rec.artifacts],
                "metrics": metrics,
                "links": {"reproduces": rec.tags.get("reproduces")},
                "patch_url": f"/runs/{rec.id}/patch"
                if dirty and not code.get("diff_truncated")
                else None,
            }
        )
        return body

    def _artifact(self, rec: Any, art: dict[str, Any]) -> dict[str, Any]:
        from reprolog._ui._security import Refused, artifact_file

        meta = art.get("metadata") or {}
        checkpoint = None
        if art.get("kind") == "checkpoint":
            checkpoint = {
                "best": bool(meta.get("best")),
                "last": bool(meta.get("last")),
                "deleted": bool(meta.get("deleted")),
                "score": meta.get("score"),
                "monitor": meta.get("monitor"),
            }
        try:
            artifact_file(self.store.dir, art)
            url: str | None = f"/runs/{rec.id}/artifacts/{art.get('id')}"
        except Refused:
            url = None
        out = {
            k: art.get(k)
            for k in ("id", "name", "kind", "path", "size", "sha256", "step", "status", "metadata")
        }
        return {**out, "checkpoint": checkpoint, "url": url}

    def artifact(self, ref: str, art_id: str) -> tuple[Path, str]:
        from reprolog._ui._security import Refused, artifact_file

        rec = self.record(ref)
        art = next((a for a in rec.artifacts if a.get("id") == art_id), None)
        if art is None:
            raise Refused(f"run {rec.id} has no artifact {art_id!r}", 404)
        return artifact_file(self.store.dir, art), str(art.get("name") or art_id)

    def patch(self, ref: str) -> str:
        from reprolog._export import patch

        return patch(self.record(ref))

    # ------------------------------------------------------------------ compare

    def compare(self, refs: list[str]) -> dict[str, Any]:
        if not 2 <= len(refs) <= MAX_COMPARE:
            raise ArgumentError(f"compare takes 2 to {MAX_COMPARE} runs, got {len(refs)}")
        self.runs_cache.refresh()
        ids = list(dict.fromkeys(self.resolve(r) for r in refs))
        rows = []
        for run_id in ids:
            row = self.runs_cache.row(run_id)
            if row is None:
                raise RunNotFoundError(f"no readable run {run_id}", query=run_id)
            rows.append(row)
        params = {r["id"]: dict(r.get("params") or {}) for r in rows}
        keys = sorted({k for p in params.values() for k in p})
        differ = [k for k in keys if len({repr(p.get(k, _MISSING)) for p in params.values()}) > 1]
        metric_keys = sorted({k for r in rows for k in (r.get("metrics_summary") or {})})
        if any(r.get("status") == "running" for r in rows):
            from reprolog._encode import summarize

            for r in rows:
                if r.get("status") == "running":
                    metric_keys = sorted(
                        set(metric_keys) | set(summarize(self.store.metrics_table([r["id"]])))
                    )
        body: dict[str, Any] = clean(
            {
                "runs": [
                    {
                        "id": r["id"],
                        "name": r.get("name"),
                        "experiment": r.get("experiment"),
                        "status": r.get("status"),
                        "start": r.get("start_time"),
                        "duration": _duration(r),
                    }
                    for r in rows
                ],
                "params": {"keys": keys, "differ": differ, "values": params},
                "metric_keys": metric_keys,
                "diff": self._diff(ids[0], ids[1]) if len(ids) == 2 else None,
            }
        )
        return body

    def _diff(self, a: str, b: str) -> dict[str, Any]:
        """`reprolog.diff(a, b)` over this read-only store (no run is recovered to diff it)."""
        from reprolog._diff import DEFAULT_ATOL, DEFAULT_RTOL
        from reprolog._diff._metrics import compare_all, curves_from_table
        from reprolog._diff._model import MetricStatus, RunDiff
        from reprolog._diff._records import compare_records
        from reprolog._diff._render import verdict

        ra, rb = self.record(a), self.record(b)
        metrics, only_a, only_b = compare_all(
            curves_from_table(self.store.metrics_table([ra.id])),
            curves_from_table(self.store.metrics_table([rb.id])),
            rtol=DEFAULT_RTOL,
            atol=DEFAULT_ATOL,
        )
        d = RunDiff(
            a=ra.id,
            b=rb.id,
            differences=compare_records(ra.raw, rb.raw),
            metrics=metrics,
            metrics_only_in_a=only_a,
            metrics_only_in_b=only_b,
            rtol=DEFAULT_RTOL,
            atol=DEFAULT_ATOL,
        )
        diverged = [m.step for m in d.metrics if m.status is MetricStatus.DIVERGED]
        return {
            **d.to_dict(),
            "most_likely_cause": d.differences[0].explanation if d.differences else None,
            "verdicts": [
                {"key": m.key, "status": m.status.value, "verdict": verdict(m), "step": m.step}
                for m in d.metrics
            ],
            "first_divergent_step": min((s for s in diverged if s is not None), default=None),
        }


_MISSING = object()


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
