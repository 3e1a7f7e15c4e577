"""The UI's data provider over a read-only Store: runs table, run detail, compare, diff."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprolog._errors import ArgumentError, RunNotFoundError
from reprolog._store._frames import runs_frame
from reprolog._store._store import Store
from reprolog._ui._cache import SeriesCache
from reprolog._ui._runs import RunsCache, _duration, _runs_body, clean

if TYPE_CHECKING:
    from reprolog._store._record import RunRecord

#: the most console lines one /runs/<ref>/console.json answer carries
CONSOLE_TAIL = 5000

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


#: a store at a URI: how long the runs table answers before its index is listed again
REMOTE_LIST_S = 5.0


class RemoteRunsCache(RunsCache):
    """The runs table of a store at a URI: its summary index, listed at most every few seconds.

    There are no run folders to watch (the local cache holds only the runs opened so far), so
    the rows come from `Store.runs`'s source, the remote summary index.
    """

    def refresh(self) -> tuple[list[dict[str, Any]], bool]:
        with self._lock:
            now = time.monotonic()
            if self._loaded and now - self._full_at < REMOTE_LIST_S:
                return [r for _, r in self._rows.values()], False
            rows = {r["id"]: (0, r) for r in self.store._reader.summaries()}
            self._full_at = now
            changed = not self._loaded or rows != self._rows
            self._rows, self._loaded = rows, True
            if changed:
                self._changed()
            return [r for _, r in self._rows.values()], changed


class Provider:
    """Every JSON body the UI serves, from one read-only Store (a folder, or a store at a URI)."""

    def __init__(self, store_dir: str | os.PathLike[str]) -> None:
        self.store = Store(store_dir, read_only=True)
        remote = self.store.uri is not None
        self.runs_cache = RemoteRunsCache(self.store) if remote else RunsCache(self.store)
        self.series_cache = SeriesCache(self.store)

    # ------------------------------------------------------------------ lookup

    def resolve(self, ref: str) -> str:
        if ref in self.runs_cache.ids() and (
            self.store.uri is not None or self.store._layout.run_dir(ref).is_dir()
        ):
            return ref
        return self.store.resolve(ref)

    def record(self, ref: str) -> RunRecord:
        return self.store._reader.record(self.resolve(ref))

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
            cache._frame = runs_frame(rows)
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
        if rec.status == "running" or (rec._layout.log_dir.is_dir() and not summary):
            from reprolog._storage._encode import summarize

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

    def console(self, ref: str, offset: int = 0, tail: int = CONSOLE_TAIL) -> dict[str, Any]:
        """A run's recorded console from byte `offset`: at most the last `tail` lines of it.

        A page polls a live run with the returned `offset`, so it gets only new lines.
        """
        import collections

        from reprolog._capture.console import iter_console

        if offset < 0 or not 1 <= tail <= CONSOLE_TAIL:
            raise ArgumentError(
                f"offset must be >= 0 and tail in 1..{CONSOLE_TAIL}, got {offset}, {tail}"
            )
        rec = self.record(ref)
        lines: collections.deque[list[Any]] = collections.deque(maxlen=tail)
        seen = 0
        end = offset
        for after, (t, stream, text) in iter_console(rec._layout.console, offset=offset):
            lines.append([t, stream, text])
            end = after
            seen += 1
        return {
            "run": rec.id,
            "live": rec.status == "running",
            "lines": list(lines),
            "skipped": seen - len(lines),
            "offset": end,
            "summary": rec.section("console") or None,
        }

    def patch(self, ref: str) -> str:
        from reprolog._store._export import patch

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
            from reprolog._storage._encode import summarize

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
        from reprolog._diff import diff
        from reprolog._diff._model import MetricStatus
        from reprolog._diff._render import verdict

        # Records read through the read-only store: diff reads their points through it too.
        d = diff(self.record(a), self.record(b))
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
