"""Publishing finished runs to a store at a URI, and fetching them back (push / pull / snapshots).

A live run never writes to a URI: object stores have no append, mmap, flock or atomic rename,
so a run records into a local store with the crash-safe log and is copied out when it ends
(`publish_run`), or as a snapshot while it lives (`publish_snapshot`).

Order, per run: the blobs it references, its side files (`metrics.parquet`, `steps.parquet`,
`console.jsonl`, `rng/...`), `summary.json`, then `run.json` LAST, then a segment of the
remote summary index (`_remoteindex`). A reader lists a run once its record is there, and a
run's record is there only once everything it refers to is.

The local marker `runs/<id>/published.json` holds, per target (its display URI), the state
(`pending` before the first upload, `snapshot` after a snapshot, `done` once the index knows
the run) and the files known to be on the target (size, mtime, sha256). It is what makes
a push idempotent (a `done` run whose files did not change uploads nothing and asks the
target nothing) and resumable (a `pending` run lists its remote folder once and uploads only
what is missing or different). Blobs are content-addressed: one of the right size is the
right one. Uploads run on a small thread pool; runs go in batches, each batch's records after
all its files, and one index segment per batch.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprolog._errors import (
    AmbiguousRunError,
    CorruptFileError,
    RemoteStoreError,
    RunNotFoundError,
    StoreError,
)
from reprolog._storage._hashing import sha256_fileobj
from reprolog._storage._layout import STORE_FORMAT_VERSION, RunLayout, StoreLayout
from reprolog._storage._recordfile import TERMINAL_STATUSES, read_json, write_json_atomic
from reprolog._storage._remote import RemoteStore, open_remote
from reprolog._storage._values import dumps

UPLOAD_THREADS = 16
BATCH_RUNS = 100
MARKER_VERSION = 1

# Files of a run folder that stay on the machine that wrote it.
_LOCAL_ONLY = frozenset({"run.lock", "heartbeat", "published.json", "log"})
_BLOB = re.compile(r"^blobs/sha256/([0-9a-f]{2})/([0-9a-f]{64})$")
_RUN_ID = re.compile(r"^[0-9a-z]{26}$")

# One publisher at a time per run in this process (the snapshot timer and finish()).
_run_locks: dict[str, threading.Lock] = {}
_run_locks_guard = threading.Lock()


def _run_lock(run_id: str) -> threading.Lock:
    with _run_locks_guard:
        return _run_locks.setdefault(run_id, threading.Lock())


def _fresh_locks_in_child() -> None:
    # A thread of the parent (a snapshot timer) may have held one at the fork; the child,
    # which has only the forking thread, would wait on it forever.
    global _run_locks_guard
    _run_locks_guard = threading.Lock()
    _run_locks.clear()


os.register_at_fork(after_in_child=_fresh_locks_in_child)


class _InlineExecutor(Executor):
    """Runs each job at once in the caller's thread: the pool once the interpreter is exiting."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


@contextlib.contextmanager
def _pool() -> Iterator[Executor]:
    """The upload pool. A run that ends at interpreter exit (atexit) publishes too, but by
    then `concurrent.futures` takes no new jobs: its uploads then run one after another."""
    with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        try:
            pool.submit(int).result()
        except RuntimeError:  # "cannot schedule new futures after interpreter shutdown"
            yield _InlineExecutor()
            return
        yield pool


@dataclass
class PublishResult:
    """What publishing one run did.

    Attributes:
        run_id: the run.
        state: the marker's state afterwards: ``"done"``, ``"snapshot"`` or ``"pending"``.
        uploaded_files / uploaded_bytes: what went over the wire.
        skipped_files: files already on the target.
        already: the run was published before and nothing changed (nothing was asked).
    """

    run_id: str
    state: str
    uploaded_files: int = 0
    uploaded_bytes: int = 0
    skipped_files: int = 0
    already: bool = False


@dataclass
class SyncReport:
    """What a push or pull did, run by run.

    Attributes:
        target: the other side's display URI.
        done: runs copied by this call.
        already: runs that were already there.
        skipped: (run id, why) for runs left alone (still running, live locally, ...).
        bytes: bytes copied.
    """

    target: str
    done: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    bytes: int = 0
    files: int = 0


# -- the marker -------------------------------------------------------------------------------


def _read_marker(layout: RunLayout) -> dict[str, Any]:
    try:
        data = read_json(layout.published)
    except CorruptFileError:
        return {"format_version": MARKER_VERSION, "targets": {}}
    if not isinstance(data.get("targets"), dict):
        data["targets"] = {}
    return data


def _write_marker(layout: RunLayout, marker: dict[str, Any]) -> None:
    marker["format_version"] = MARKER_VERSION
    write_json_atomic(layout.published, marker)


def publish_state(local_root: str | os.PathLike[str], run_id: str, remote: Any) -> str | None:
    """The marker's state of `run_id` for `remote` (a RemoteStore or URI): done, snapshot,
    pending, or None when it was never published there."""
    target = remote if isinstance(remote, RemoteStore) else open_remote(remote)
    layout = RunLayout(StoreLayout(Path(local_root)).run_dir(run_id))
    entry = _read_marker(layout)["targets"].get(target.display)
    return None if entry is None else str(entry.get("state"))


# -- what a run holds -------------------------------------------------------------------------


@dataclass
class _File:
    rel: str  # path on the target, relative to the store root
    local: Path
    size: int
    mtime_ns: int
    sha256: str | None = None

    def hash(self) -> str:
        if self.sha256 is None:
            with open(self.local, "rb") as fh:
                self.sha256 = str(sha256_fileobj(fh).hexdigest())
        return self.sha256


def _stat_file(rel: str, path: Path) -> _File | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return _File(rel, path, st.st_size, st.st_mtime_ns)


def _run_files(layout: RunLayout, run_id: str) -> list[_File]:
    """The run folder's files to publish (record and summary last), without the local-only ones."""
    out: list[_File] = []
    stack = [(layout.dir, f"runs/{run_id}")]
    while stack:
        folder, rel = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith(".") or (
                    folder == layout.dir and entry.name in _LOCAL_ONLY
                ):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append((Path(entry.path), f"{rel}/{entry.name}"))
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat()
                    out.append(
                        _File(f"{rel}/{entry.name}", Path(entry.path), st.st_size, st.st_mtime_ns)
                    )
    last = {f"runs/{run_id}/summary.json": 1, f"runs/{run_id}/run.json": 2}
    return sorted(out, key=lambda f: (last.get(f.rel, 0), f.rel))


def _blob_refs(record: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for art in record.get("artifacts") or []:
        if not isinstance(art, dict):
            continue
        for entry in [art, *(art.get("files") or [])]:
            blob = entry.get("blob") if isinstance(entry, dict) else None
            if isinstance(blob, str) and _BLOB.match(blob):
                out.add(blob)
    return out


def _unchanged(files: list[_File], known: dict[str, Any]) -> bool:
    """Every file is the one the marker saw uploaded (size and mtime), and no file is new."""
    for f in files:
        entry = known.get(f.rel)
        if not isinstance(entry, list) or entry[:2] != [f.size, f.mtime_ns]:
            return False
    return True


# -- planning ---------------------------------------------------------------------------------


@dataclass
class _Plan:
    run_id: str
    layout: RunLayout
    marker: dict[str, Any]
    entry: dict[str, Any]  # the marker's entry for this target
    files: list[_File]  # everything but run.json, in upload order
    record: _File
    summary: dict[str, Any]
    upload: list[_File] = field(default_factory=list)
    skipped: int = 0


def _plan(
    store: StoreLayout, run_id: str, remote: RemoteStore, seen_blobs: dict[str, int | None]
) -> _Plan | PublishResult:
    from reprolog._storage._compact import summary_row

    layout = RunLayout(store.run_dir(run_id))
    marker = _read_marker(layout)
    entry = marker["targets"].get(remote.display) or {}
    known: dict[str, Any] = entry.get("files") or {}
    files = _run_files(layout, run_id)
    if entry.get("state") == "done" and _unchanged(files, known):
        blobs_known = [rel for rel in known if rel.startswith("blobs/")]
        return PublishResult(
            run_id, "done", skipped_files=len(files) + len(blobs_known), already=True
        )
    record = read_json(layout.record)
    by_rel = {f.rel: f for f in files}
    record_file = by_rel.pop(f"runs/{run_id}/run.json")
    blobs: list[_File] = []
    for rel in sorted(_blob_refs(record)):
        f = _stat_file(rel, store.root / rel)
        if f is not None:
            blobs.append(f)
    try:
        summary = read_json(layout.summary)
    except CorruptFileError:
        summary = summary_row(record)
    plan = _Plan(run_id, layout, marker, entry, blobs + list(by_rel.values()), record_file, summary)
    # What the target already holds: what the marker confirmed, and after an interrupted
    # publish what a listing of the run's folder shows (an S3 PUT or our rename is whole).
    listed: dict[str, int] | None = None
    if entry.get("state") in ("pending", "snapshot"):
        listed = remote.sizes(f"runs/{run_id}")
    for f in [*plan.files, plan.record]:
        confirmed = known.get(f.rel)
        if f.rel.startswith("blobs/"):
            if f.rel not in seen_blobs:
                seen_blobs[f.rel] = remote.size(f.rel)
            if seen_blobs[f.rel] == f.size:
                plan.skipped += 1
                continue
            seen_blobs[f.rel] = f.size  # this plan uploads it; the batch's others need not
        elif isinstance(confirmed, list) and len(confirmed) == 3:
            if confirmed[0] == f.size and confirmed[2] == f.hash():
                plan.skipped += 1
                continue
        elif listed is not None and listed.get(f.rel) == f.size:
            f.hash()
            plan.skipped += 1
            continue
        plan.upload.append(f)
    return plan


def _remember(plan: _Plan, uploaded: Iterable[_File]) -> None:
    known = plan.entry.setdefault("files", {})
    for f in uploaded:
        known[f.rel] = [f.size, f.mtime_ns, f.hash()]


# -- the pool ---------------------------------------------------------------------------------


def _run_all(pool: Executor, remote: RemoteStore, jobs: list[_File]) -> int:
    """Upload every job; the first failure cancels the rest and is raised. Returns bytes sent."""
    futures: list[Future[None]] = [pool.submit(remote.put_file, f.rel, f.local) for f in jobs]
    _, pending = wait(futures, return_when=FIRST_EXCEPTION)
    for fut in pending:
        fut.cancel()
    wait(pending)
    for fut in futures:
        if fut.done() and not fut.cancelled() and fut.exception() is not None:
            exc = fut.exception()
            assert exc is not None
            if isinstance(exc, StoreError):
                raise exc
            raise remote.error(exc, "upload failed") from None
    return sum(f.size for f in jobs)


def _add_to_index(remote: RemoteStore, summaries: list[dict[str, Any]], pool: Executor) -> None:
    from reprolog._storage._remoteindex import add_to_index

    try:
        add_to_index(remote, summaries)
    except RuntimeError:
        # At interpreter exit the segment is in, but a due merge (a thread pool) cannot run:
        # the next publisher merges.
        if not isinstance(pool, _InlineExecutor):
            raise


def _ensure_store_json(remote: RemoteStore) -> None:
    if remote.size("store.json") is None:
        remote.put_bytes("store.json", f'{{"format_version": {STORE_FORMAT_VERSION}}}\n'.encode())


def _publish_batch(
    store: StoreLayout,
    run_ids: list[str],
    remote: RemoteStore,
    pool: Executor,
    report: SyncReport | None = None,
) -> list[PublishResult]:
    seen_blobs: dict[str, int | None] = {}
    results: list[PublishResult] = []
    plans: list[_Plan] = []
    planned = list(pool.map(lambda rid: _plan(store, rid, remote, seen_blobs), run_ids))
    for item in planned:
        if isinstance(item, PublishResult):
            results.append(item)
        else:
            plans.append(item)
    if not plans:
        return results
    for plan in plans:
        plan.entry.update({"to": remote.display, "state": "pending", "time": time.time()})
        plan.marker["targets"][remote.display] = plan.entry
        _write_marker(plan.layout, plan.marker)
    jobs = [f for plan in plans for f in plan.upload if f is not plan.record]
    sent = _run_all(pool, remote, jobs)
    sent += _run_all(pool, remote, [plan.record for plan in plans if plan.record in plan.upload])
    _add_to_index(remote, [plan.summary for plan in plans], pool)
    now = time.time()
    for plan in plans:
        _remember(plan, [*plan.files, plan.record])
        plan.entry.update({"state": "done", "time": now})
        _write_marker(plan.layout, plan.marker)
        results.append(
            PublishResult(
                plan.run_id,
                "done",
                uploaded_files=len(plan.upload),
                uploaded_bytes=sum(f.size for f in plan.upload),
                skipped_files=plan.skipped,
            )
        )
    if report is not None:
        report.bytes += sent
        report.files += sum(len(p.upload) for p in plans)
    return results


# -- public entry points ----------------------------------------------------------------------


def _as_remote(remote: RemoteStore | str | os.PathLike[str]) -> RemoteStore:
    return remote if isinstance(remote, RemoteStore) else open_remote(remote)


def _finished(layout: RunLayout) -> tuple[bool, str]:
    """(publishable, why not): a finished, compacted run; a dead one is recovered first."""
    from reprolog._storage import _recover

    try:
        record = read_json(layout.record)
    except CorruptFileError as exc:
        return False, f"unreadable record ({exc})"
    if record.get("status") not in TERMINAL_STATUSES:
        if not _recover.writer_is_dead(layout, record):
            return False, "still running"
        record = _recover.recover(layout, record)
        if record.get("status") not in TERMINAL_STATUSES:
            return False, "still running"
    if layout.log_dir.is_dir():
        return False, "its live log is not compacted yet"
    return True, ""


def publish_run(
    local_root: str | os.PathLike[str],
    run_id: str,
    remote: RemoteStore | str | os.PathLike[str],
) -> PublishResult:
    """Publish one finished run (blobs, side files, summary, record last, index segment).

    Idempotent: a run already published unchanged uploads nothing and asks the target
    nothing. Raises RemoteStoreError (one line, no secrets) when the target fails; the local
    run is untouched and its marker says `pending`, so the next call (or push) completes it.
    """
    target = _as_remote(remote)
    store = StoreLayout(Path(local_root))
    layout = RunLayout(store.run_dir(run_id))
    if not layout.record.is_file():
        raise RunNotFoundError(f"no run {run_id} in {store.root}", query=run_id)
    ok, why = _finished(layout)
    if not ok:
        raise StoreError(f"run {run_id} cannot be published: {why}", path=str(layout.dir))
    with _run_lock(run_id), _pool() as pool:
        marker = _read_marker(layout)
        if target.display not in marker["targets"]:
            # Before the first request: a target that fails at once leaves the run `pending`.
            entry = {"to": target.display, "state": "pending", "time": time.time()}
            marker["targets"][target.display] = entry
            _write_marker(layout, marker)
        _ensure_store_json(target)
        return _publish_batch(store, [run_id], target, pool)[0]


def push(
    local_root: str | os.PathLike[str],
    remote: RemoteStore | str | os.PathLike[str],
    run_ids: Iterable[str] | None = None,
    *,
    progress: Callable[[SyncReport], None] | None = None,
) -> SyncReport:
    """Publish every finished run of the local store (or the given ids) not yet published.

    Resumable: a push killed half way leaves its runs `pending`, and the next one completes
    them. Runs still running are reported in `skipped`.
    """
    target = _as_remote(remote)
    store = StoreLayout(Path(local_root))
    report = SyncReport(target=target.display)
    ids = resolve_local_ids(store, run_ids)
    target.check(create=True)
    publishable: list[str] = []
    for run_id in ids:
        ok, why = _finished(RunLayout(store.run_dir(run_id)))
        if ok:
            publishable.append(run_id)
        else:
            report.skipped.append((run_id, why))
    if publishable:
        with _pool() as pool:
            _ensure_store_json(target)
            for start in range(0, len(publishable), BATCH_RUNS):
                batch = publishable[start : start + BATCH_RUNS]
                for result in _publish_batch(store, batch, target, pool, report):
                    (report.already if result.already else report.done).append(result.run_id)
                if progress is not None:
                    progress(report)
    return report


def resolve_local_ids(store: StoreLayout, run_ids: Iterable[str] | None) -> list[str]:
    """Run folders of the local store, all of them or those named (id, unique prefix or name)."""
    try:
        all_ids = sorted(
            e.name for e in os.scandir(store.runs) if e.is_dir() and not e.name.startswith(".")
        )
    except FileNotFoundError:
        all_ids = []
    if run_ids is None:
        return all_ids
    return _resolve(list(run_ids), all_ids, lambda rid: _local_name(store, rid), str(store.root))


def _local_name(store: StoreLayout, run_id: str) -> str | None:
    layout = RunLayout(store.run_dir(run_id))
    for path in (layout.summary, layout.record):
        with contextlib.suppress(CorruptFileError):
            name = read_json(path).get("name")
            return name if isinstance(name, str) else None
    return None


def _resolve(
    queries: list[str], ids: list[str], name_of: Callable[[str], str | None], where: str
) -> list[str]:
    out: list[str] = []
    names: dict[str, list[str]] | None = None
    for query in queries:
        if query in ids:
            found = [query]
        else:
            found = [i for i in ids if i.startswith(query.lower())]
            if not found:
                if names is None:
                    names = {}
                    for i in ids:
                        name = name_of(i)
                        if name is not None:
                            names.setdefault(name, []).append(i)
                found = names.get(query, [])
        if not found:
            raise RunNotFoundError(f"no run matches '{query}' in {where}", query=query, path=where)
        if len(found) > 1:
            raise AmbiguousRunError(
                f"'{query}' matches {len(found)} runs in {where}: {', '.join(found[:5])}",
                query=query,
                candidates=found,
            )
        if found[0] not in out:
            out.append(found[0])
    return out


def publish_snapshot(
    local_root: str | os.PathLike[str],
    run_id: str,
    remote: RemoteStore | str | os.PathLike[str],
) -> PublishResult:
    """Publish what a live run holds so far: its points as `metrics.parquet`, then its record.

    For a timer thread of the run's process: the target shows the run as `running`, with the
    metrics summary of the points logged so far, and a node lost later loses only what came
    after this snapshot. The local run is not touched (except its marker); files already on
    the target unchanged are not sent again.
    """
    from reprolog._storage._compact import read_live_table, summary_row
    from reprolog._storage._encode import summarize, write_parquet

    target = _as_remote(remote)
    store = StoreLayout(Path(local_root))
    layout = RunLayout(store.run_dir(run_id))
    with _run_lock(run_id), tempfile.TemporaryDirectory(prefix="reprolog-snapshot-") as tmp:
        record = read_json(layout.record)
        if record.get("status") in TERMINAL_STATUSES and not layout.log_dir.is_dir():
            return publish_run(local_root, run_id, target)  # it ended meanwhile
        snap = dict(record)
        folder = Path(tmp)
        files: list[_File] = []
        if layout.log_dir.is_dir():
            table, _ = read_live_table(layout, run_id)
            write_parquet(table, folder / "metrics.parquet")
            snap["metrics_summary"] = summarize(table)
            f = _stat_file(f"runs/{run_id}/metrics.parquet", folder / "metrics.parquet")
            if f is not None:
                files.append(f)
        if layout.console.is_file():
            data = layout.console.read_bytes()
            (folder / "console.jsonl").write_bytes(data[: data.rfind(b"\n") + 1])
            f = _stat_file(f"runs/{run_id}/console.jsonl", folder / "console.jsonl")
            if f is not None:
                files.append(f)
        for f in _run_files(layout, run_id):
            name = f.rel.rsplit("/", 1)[-1]
            if f.rel.startswith(f"runs/{run_id}/rng/") or name == "steps.parquet":
                files.append(f)
        for rel in sorted(_blob_refs(record)):
            f = _stat_file(rel, store.root / rel)
            if f is not None:
                files.append(f)
        summary = summary_row(snap)
        (folder / "summary.json").write_text(dumps(summary), encoding="utf-8")
        (folder / "run.json").write_text(dumps(snap), encoding="utf-8")
        tail = [
            _stat_file(f"runs/{run_id}/summary.json", folder / "summary.json"),
            _stat_file(f"runs/{run_id}/run.json", folder / "run.json"),
        ]
        marker = _read_marker(layout)
        entry = marker["targets"].get(target.display) or {"to": target.display}
        known: dict[str, Any] = entry.setdefault("files", {})
        if entry.get("state") is None:
            entry["state"] = "pending"
        marker["targets"][target.display] = entry
        _write_marker(layout, marker)
        upload = []
        for f in files:
            confirmed = known.get(f.rel)
            if isinstance(confirmed, list) and confirmed[0] == f.size and confirmed[2] == f.hash():
                continue
            upload.append(f)
        with _pool() as pool:
            _ensure_store_json(target)
            sent = _run_all(pool, target, upload)
            sent += _run_all(pool, target, [f for f in tail if f is not None])
        _add_to_index(target, [summary], pool)
        for f in [*upload, *(t for t in tail if t is not None)]:
            # The snapshot's files are temp copies: the mtime never matches a local file, so
            # the final publish compares by content hash.
            known[f.rel] = [f.size, -1, f.hash()]
        entry.update({"state": "snapshot", "time": time.time()})
        _write_marker(layout, marker)
        return PublishResult(
            run_id,
            "snapshot",
            uploaded_files=len(upload) + 2,
            uploaded_bytes=sent,
            skipped_files=len(files) - len(upload),
        )


# -- pull ---------------------------------------------------------------------------------------


def pull(
    remote: RemoteStore | str | os.PathLike[str],
    local_root: str | os.PathLike[str],
    run_ids: Iterable[str] | None = None,
    *,
    progress: Callable[[SyncReport], None] | None = None,
) -> SyncReport:
    """Fetch published runs (all, or the given ids / prefixes / names) into a local store.

    Per run: the blobs its record references, its files, then `run.json` last (each through
    a temp file and rename), so a local reader never sees half a run. Runs still `running`
    on the target (snapshots) and runs live in the local store are skipped. The local summary
    index is refreshed as a reader of the store would.
    """
    from reprolog._storage._index import load_summaries
    from reprolog._storage._remoteindex import list_summaries

    source = _as_remote(remote)
    store = StoreLayout(Path(local_root))
    report = SyncReport(target=source.display)
    source.check()
    summaries = {str(s.get("id")): s for s in list_summaries(source)}
    ids = sorted(i for i in summaries if _RUN_ID.match(i))
    if run_ids is not None:
        ids = _resolve(list(run_ids), ids, lambda rid: summaries[rid].get("name"), source.display)
    store.ensure()
    wanted = []
    for run_id in ids:
        if summaries[run_id].get("status") not in TERMINAL_STATUSES:
            report.skipped.append((run_id, "still running on the target (a snapshot)"))
            continue
        layout = RunLayout(store.run_dir(run_id))
        if layout.log_dir.is_dir() or (layout.lock.exists() and _is_live_local(layout)):
            report.skipped.append((run_id, "live in the local store"))
            continue
        wanted.append(run_id)
    with _pool() as pool:
        futures = [pool.submit(_pull_run, source, store, run_id) for run_id in wanted]
        try:
            for run_id, fut in zip(wanted, futures, strict=True):
                nbytes, nfiles = fut.result()
                if nfiles:
                    report.done.append(run_id)
                    report.bytes += nbytes
                    report.files += nfiles
                else:
                    report.already.append(run_id)
                if progress is not None:
                    progress(report)
        finally:
            for fut in futures:
                fut.cancel()
    if report.done:

        def load_one(run_id: str) -> dict[str, Any] | None:
            layout = RunLayout(store.run_dir(run_id))
            if layout.log_dir.is_dir():
                return None  # a live or crashed run: left to the store's reader
            try:
                return read_json(layout.summary)
            except CorruptFileError:
                return None

        load_summaries(store, load_one)
    return report


def _is_live_local(layout: RunLayout) -> bool:
    try:
        return read_json(layout.record).get("status") not in TERMINAL_STATUSES
    except CorruptFileError:
        return False


def _pull_run(source: RemoteStore, store: StoreLayout, run_id: str) -> tuple[int, int]:
    """Fetch one run; (bytes, files) fetched, (0, 0) when the local copy was already whole."""
    layout = RunLayout(store.run_dir(run_id))
    prefix = f"runs/{run_id}/"
    listed = source.sizes(f"runs/{run_id}")
    record_rel = prefix + "run.json"
    if record_rel not in listed:
        return 0, 0  # listed by the index but gone: nothing to fetch
    rels = [
        r for r in listed if r != record_rel and r[len(prefix) :].split("/")[0] not in _LOCAL_ONLY
    ]
    local_of = {r: layout.dir / r[len(prefix) :] for r in [*rels, record_rel]}
    if all(_size(local_of[r]) == listed[r] for r in [*rels, record_rel]):
        return 0, 0
    raw = source.read_bytes(record_rel)
    if raw is None:
        return 0, 0
    import json

    try:
        record = json.loads(raw)
    except ValueError as exc:
        raise CorruptFileError(f"{source.display}/{record_rel}: unreadable JSON: {exc}") from None
    nbytes = nfiles = 0
    for rel in sorted(_blob_refs(record) if isinstance(record, dict) else ()):
        dest = store.root / rel
        if dest.is_file():
            continue
        size = source.size(rel)
        if size is not None:
            nbytes += source.download(rel, dest)
            nfiles += 1
    layout.dir.mkdir(parents=True, exist_ok=True)
    for rel in sorted(rels):
        nbytes += source.download(rel, local_of[rel])
        nfiles += 1
    from reprolog._storage._atomic import replacing

    with replacing(layout.record, fsync=True) as tmp:
        tmp.write_bytes(raw)
    nbytes += len(raw)
    nfiles += 1
    # Pulled runs are known to be on the source: pushing them back there uploads nothing.
    marker = _read_marker(layout)
    entry: dict[str, Any] = {
        "to": source.display,
        "state": "done",
        "time": time.time(),
        "files": {},
    }
    for rel in [*rels, record_rel]:
        f = _stat_file(rel, local_of[rel])
        if f is not None:
            entry["files"][rel] = [f.size, f.mtime_ns, f.hash()]
    marker["targets"][source.display] = entry
    _write_marker(layout, marker)
    return nbytes, nfiles


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


__all__ = [
    "PublishResult",
    "RemoteStoreError",
    "SyncReport",
    "publish_run",
    "publish_snapshot",
    "publish_state",
    "pull",
    "push",
    "resolve_local_ids",
]
