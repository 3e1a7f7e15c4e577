"""The summary index of a store at a URI: listing 10,000 runs reads a few objects, not 10,000.

An object store has no lock and no rename, and many publishers (cluster nodes) write to it at
once with no server between them, so the index is made of immutable objects plus one
conditional create per merge:

- `index/segments/<ms>-<uuid>.parquet`: written once by a publisher after the `run.json` of
  each run it holds was uploaded; rows (`id`, `time`: the publish time, `summary`: the
  `summary.json` text). Unique names, so concurrent publishers never collide.
- `index/bases/base-<gen>-<uuid>.parquet`: a merge of the previous base and some segments.
- `index/commits/base-<gen>.json`: `{"generation", "data", "segments", "time"}`, created only
  if absent (`RemoteStore.create_exclusive`: S3 `If-None-Match: *`, a filesystem's
  `O_CREAT|O_EXCL`). It commits the base named in `data`, which holds every row of the
  segments it lists. Of two publishers merging at once, one wins; the loser deletes its data.

Readers take the newest commit, its base, and every segment not listed in it (the newest row
of a run wins: a snapshot's `running` row is replaced by the final one), then list the
commits again and start over if a newer one appeared meanwhile. Whoever publishes and finds
`MERGE_AT` segments or more outside the newest base merges them. A merger deletes the
segments and bases that the commit before its own already covered once that commit is older
than `GRACE_SECONDS` (a reader that still uses an older commit would need them). A store with
no index at all (a local store copied by hand) is listed from `runs/*/summary.json`.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reprolog._errors import RemoteStoreError
from reprolog._storage._remote import RemoteStore

if TYPE_CHECKING:
    import pyarrow as pa

logger = logging.getLogger("reprolog")

SEGMENTS = "index/segments"
BASES = "index/bases"
COMMITS = "index/commits"
MERGE_AT = 16
GRACE_SECONDS = 120.0
READ_THREADS = 8


@dataclass(frozen=True)
class Commit:
    generation: int
    data: str
    segments: frozenset[str]
    time: float


def _segment_table(rows: list[tuple[str, float, str]]) -> pa.Table:
    import pyarrow as pa

    return pa.table(
        {
            "id": pa.array([r[0] for r in rows], pa.string()),
            "time": pa.array([r[1] for r in rows], pa.float64()),
            "summary": pa.array([r[2] for r in rows], pa.string()),
        }
    )


def _encode(rows: list[tuple[str, float, str]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(_segment_table(rows), sink, compression="zstd")
    data: bytes = sink.getvalue().to_pybytes()
    return data


def _decode(data: bytes) -> list[tuple[str, float, str]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(pa.BufferReader(data))
    return list(
        zip(
            table.column("id").to_pylist(),
            table.column("time").to_pylist(),
            table.column("summary").to_pylist(),
            strict=True,
        )
    )


def _commit_name(generation: int) -> str:
    return f"{COMMITS}/base-{generation:010d}.json"


def _list_commits(remote: RemoteStore) -> list[tuple[int, str]]:
    out = []
    for rel in remote.sizes(COMMITS, recursive=False):
        name = rel.rsplit("/", 1)[-1]
        if name.startswith("base-") and name.endswith(".json"):
            digits = name[len("base-") : -len(".json")]
            if digits.isdigit():
                out.append((int(digits), rel))
    return sorted(out)


def _read_commit(remote: RemoteStore, rel: str) -> Commit | None:
    data = remote.read_bytes(rel)
    if data is None:
        return None
    try:
        doc = json.loads(data)
        return Commit(
            generation=int(doc["generation"]),
            data=str(doc["data"]),
            segments=frozenset(str(s) for s in doc["segments"]),
            time=float(doc["time"]),
        )
    except (ValueError, KeyError, TypeError):
        logger.warning("reprolog: ignoring unreadable index commit %s in %s", rel, remote.display)
        return None


def _latest_commit(
    remote: RemoteStore, commits: list[tuple[int, str]] | None = None
) -> Commit | None:
    for _, rel in reversed(_list_commits(remote) if commits is None else commits):
        commit = _read_commit(remote, rel)
        if commit is not None:
            return commit
    return None


def _list_segments(remote: RemoteStore) -> list[str]:
    return sorted(
        rel.rsplit("/", 1)[-1]
        for rel in remote.sizes(SEGMENTS, recursive=False)
        if rel.endswith(".parquet")
    )


def _read_rows(remote: RemoteStore, rel: str) -> list[tuple[str, float, str]] | None:
    data = remote.read_bytes(rel)
    if data is None:
        return None
    try:
        return _decode(data)
    except Exception as exc:  # a torn or foreign object: skip it, the rest stays readable
        logger.warning("reprolog: ignoring unreadable index object %s (%s)", rel, exc)
        return []


def _merge_rows(
    into: dict[str, tuple[float, str]], rows: list[tuple[str, float, str]]
) -> dict[str, tuple[float, str]]:
    for run_id, stamp, summary in rows:
        known = into.get(run_id)
        if known is None or stamp >= known[0]:
            into[run_id] = (stamp, summary)
    return into


def _snapshot(
    remote: RemoteStore,
) -> tuple[Commit | None, dict[str, tuple[float, str]], list[str]] | None:
    """One consistent read: (commit, rows, segment names read on top); None to retry."""
    before = _list_commits(remote)
    commit = _latest_commit(remote, before)
    segments = _list_segments(remote)
    extra = [s for s in segments if commit is None or s not in commit.segments]
    rows: dict[str, tuple[float, str]] = {}
    paths = ([commit.data] if commit is not None else []) + [f"{SEGMENTS}/{s}" for s in extra]
    if not paths:
        return commit, rows, extra
    with ThreadPoolExecutor(min(READ_THREADS, len(paths))) as pool:
        parts = list(pool.map(lambda rel: _read_rows(remote, rel), paths))
    if commit is not None and parts[0] is None:
        return None  # its base was deleted meanwhile: a newer commit exists
    for part in parts:
        _merge_rows(rows, part or [])
    after = _list_commits(remote)
    if after and (not before or after[-1][0] > before[-1][0]):
        return None  # a merge committed while we read: its deletions may hide segments
    return commit, rows, extra


def read_index(remote: RemoteStore) -> dict[str, dict[str, Any]] | None:
    """Run id -> summary row, from the index; None when the store has no index at all."""
    for _ in range(5):
        state = _snapshot(remote)
        if state is None:
            continue
        commit, rows, extra = state
        if commit is None and not extra:
            return None
        return {run_id: json.loads(text) for run_id, (_, text) in rows.items()}
    raise RemoteStoreError(
        f"the index of {remote.display} kept changing while it was read; try again",
        uri=remote.display,
        bucket=remote.bucket,
    )


def _scan_runs(remote: RemoteStore) -> dict[str, dict[str, Any]]:
    """The fallback without an index: every `runs/<id>/summary.json` whose record is there."""
    files = remote.sizes("runs")
    ids = sorted(
        rel.split("/")[1]
        for rel in files
        if rel.count("/") == 2
        and rel.endswith("/summary.json")
        and f"runs/{rel.split('/')[1]}/run.json" in files
    )
    if not ids:
        return {}
    with ThreadPoolExecutor(min(READ_THREADS * 2, len(ids))) as pool:
        texts = list(pool.map(lambda i: remote.read_bytes(f"runs/{i}/summary.json"), ids))
    out: dict[str, dict[str, Any]] = {}
    for run_id, text in zip(ids, texts, strict=True):
        if text is None:
            continue
        try:
            row = json.loads(text)
        except ValueError:
            logger.warning("reprolog: skipping unreadable runs/%s/summary.json", run_id)
            continue
        if isinstance(row, dict):
            out[run_id] = row
    return out


def list_summaries(remote: RemoteStore) -> list[dict[str, Any]]:
    """One summary row (`summary_row`'s shape) per published run, newest id first.

    Reads the newest committed base and the segments outside it (a handful of objects for any
    number of runs); a store without an index is listed from its `summary.json` files.
    """
    index = read_index(remote)
    if index is None:
        index = _scan_runs(remote)
    return [index[run_id] for run_id in sorted(index, reverse=True)]


def add_to_index(remote: RemoteStore, summaries: list[dict[str, Any]]) -> str | None:
    """Publish summary rows of runs whose `run.json` is already uploaded; then merge if due.

    Returns the segment's name (None when there was nothing to add).
    """
    if not summaries:
        return None
    now = time.time()
    rows = [(str(s["id"]), now, json.dumps(s, default=repr, sort_keys=True)) for s in summaries]
    name = f"{int(now * 1000):013d}-{uuid.uuid4().hex[:16]}.parquet"
    remote.put_bytes(f"{SEGMENTS}/{name}", _encode(rows))
    try:
        maybe_merge(remote)
    except RemoteStoreError as exc:
        # The segment is in: readers see the rows. A merge is an optimisation for the next one.
        logger.warning("reprolog: index merge skipped on %s (%s)", remote.display, exc)
    return name


def maybe_merge(remote: RemoteStore, *, at: int = MERGE_AT) -> bool:
    """Merge the segments outside the newest base when there are `at` or more; True if merged."""
    if remote.kind not in ("s3", "local"):
        return False  # no conditional create: readers read every segment
    commit = _latest_commit(remote)
    segments = _list_segments(remote)
    extra = [s for s in segments if commit is None or s not in commit.segments]
    if len(extra) < at:
        return False
    rows: dict[str, tuple[float, str]] = {}
    if commit is not None:
        base = _read_rows(remote, commit.data)
        if base is None:
            return False  # superseded meanwhile
        _merge_rows(rows, base)
    with ThreadPoolExecutor(min(READ_THREADS, len(extra))) as pool:
        parts = list(pool.map(lambda s: _read_rows(remote, f"{SEGMENTS}/{s}"), extra))
    merged = [s for s, part in zip(extra, parts, strict=True) if part is not None]
    for part in parts:
        _merge_rows(rows, part or [])
    generation = (commit.generation if commit is not None else 0) + 1
    data_rel = f"{BASES}/base-{generation:010d}-{uuid.uuid4().hex[:16]}.parquet"
    remote.put_bytes(data_rel, _encode([(i, t, s) for i, (t, s) in sorted(rows.items())]))
    now = time.time()
    # Segments the previous commit covered may go once it is old enough (see the docstring).
    drop_old = commit is not None and now - commit.time > GRACE_SECONDS
    keep = set(commit.segments) & set(segments) if commit is not None and not drop_old else set()
    doc = {
        "generation": generation,
        "data": data_rel,
        "segments": sorted(keep | set(merged)),
        "time": now,
    }
    if not remote.create_exclusive(_commit_name(generation), json.dumps(doc).encode()):
        remote.delete(data_rel)  # another publisher merged first; its base covers ours later
        return False
    if drop_old and commit is not None:
        _collect(remote, commit, set(segments))
    return True


def _collect(remote: RemoteStore, previous: Commit, listed: set[str]) -> None:
    """Delete what the commit before the new one covered, and older bases and commits."""
    try:
        for name in sorted(previous.segments & listed):
            remote.delete(f"{SEGMENTS}/{name}")
        commits = _list_commits(remote)
        for generation, rel in commits:
            if generation < previous.generation:
                old = _read_commit(remote, rel)
                if old is not None:
                    remote.delete(old.data)
                remote.delete(rel)
    except RemoteStoreError as exc:
        logger.warning("reprolog: index clean-up skipped on %s (%s)", remote.display, exc)
