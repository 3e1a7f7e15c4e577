"""`RemoteStoreReader`: a store at a URI (S3, any `pyarrow.fs`), read through a local cache.

It is a `StoreReader` whose `layout` is a cache folder that is itself a store layout
(`$REPROLOG_CACHE_DIR/stores/<sha256 of the display URI>[:16]/`), so records, metrics files,
SQL, diff and the UI read the same files as they do in a local store. What comes from where:

- listing (`summaries`, `run_ids`, `resolve`): the remote summary index (`_remoteindex`:
  one listing of the index folders plus a few segment objects, never a run's own files);
- one run (`load_record`, `run_metrics`, ...): its folder is fetched into the cache on first
  use (`_publish._pull_run`: side files, then `run.json` last), and fetched again when the
  index's row for it changed (a snapshot of a running run replaced by the final one). A run
  the index lists as `running` is checked against its `summary.json` on the target on each
  read, which the publisher rewrites with every snapshot.

It never writes to the target. The cached copy is not recovered or compacted: it is what was
published, a running snapshot included.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprolog._errors import CorruptFileError, RunNotFoundError, StoreError
from reprolog._storage._layout import StoreLayout, cache_root
from reprolog._storage._locks import held
from reprolog._storage._recordfile import TERMINAL_STATUSES, read_json, write_json_atomic
from reprolog._storage._remote import RemoteStore, open_remote
from reprolog._store._reader import StoreReader

if TYPE_CHECKING:
    import pyarrow as pa

#: how long a listing answers `resolve` and `run_ids` before the index is read again
LISTING_TTL_S = 10.0
#: runs fetched at once (each fetch is a listing of its folder plus its files)
FETCH_THREADS = 16
# Beside a cached run's files: which index row it was fetched for.
_FETCHED = ".fetched.json"


def cache_dir_for(display: str) -> Path:
    """The cache folder of the store at `display` (a display URI: no secret in the name)."""
    digest = hashlib.sha256(display.encode("utf-8")).hexdigest()[:16]
    return cache_root() / "stores" / digest


def _version(row: dict[str, Any]) -> str:
    """A summary row's fingerprint: a changed row means a re-published run."""
    text = json.dumps(row, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class RemoteStoreReader(StoreReader):
    """Reads a store at a URI through its local cache; read-only (see the module docstring).

    Attributes:
        remote: the target (`RemoteStore`); `remote.display` is the URI as it may be shown.
        layout: the cache folder's paths (a store layout holding the runs fetched so far).
    """

    def __init__(self, remote: RemoteStore, cache: Path | None = None) -> None:
        super().__init__(StoreLayout(cache or cache_dir_for(remote.display)), read_only=True)
        self.remote = remote
        self._lock = threading.Lock()
        self._rows: dict[str, dict[str, Any]] = {}
        self._listed_at: float | None = None
        self._fetched: dict[str, str] = {}  # run id -> the row version fetched (this process)

    @classmethod
    def open_uri(cls, uri: str | os.PathLike[str]) -> RemoteStoreReader:
        """The reader of the store at `uri`.

        Raises:
            ArgumentError: a URI pyarrow does not understand.
            RemoteStoreError: the target cannot be reached or read (missing bucket, denied).
            StoreError: no store there (no `store.json`), or the cache cannot be created.
        """
        remote = open_remote(uri)
        if remote.size("store.json") is None:
            remote.check()  # a missing bucket or bad credentials say so, in one line
            raise StoreError(
                f"no reprolog store at {remote.display} (no store.json there; "
                f"`reprolog push --to {remote.display}` publishes runs to it)",
                path=remote.display,
            )
        reader = cls(remote)
        try:
            reader.layout.ensure()
        except OSError as exc:
            raise StoreError(
                f"cannot create the cache of {remote.display} at {reader.layout.root}: "
                f"{exc.strerror or exc} (set $REPROLOG_CACHE_DIR)",
                path=str(reader.layout.root),
            ) from None
        return reader

    @property
    def where(self) -> str:
        return self.remote.display

    # ------------------------------------------------------------------ the listing

    def _listing(self, *, refresh: bool = False) -> dict[str, dict[str, Any]]:
        """Run id -> summary row from the target's index (re-read after `LISTING_TTL_S`)."""
        from reprolog._storage._remoteindex import list_summaries

        with self._lock:
            stale = self._listed_at is None or time.monotonic() - self._listed_at > LISTING_TTL_S
            if not (refresh or stale):
                return self._rows
        rows = {str(r.get("id")): r for r in list_summaries(self.remote) if r.get("id")}
        with self._lock:
            self._rows, self._listed_at = rows, time.monotonic()
            return rows

    def _listed_just_now(self) -> bool:
        return self._listed_at is not None and time.monotonic() - self._listed_at < 1.0

    def run_ids(self) -> list[str]:
        """Every run id the target's index lists, oldest first."""
        return sorted(self._listing())

    def summaries(self) -> list[dict[str, Any]]:
        """Every run's summary row, newest first, from the target's index (read again now)."""
        rows = self._listing(refresh=True)
        return [rows[run_id] for run_id in sorted(rows, reverse=True)]

    def _named_rows(self) -> list[dict[str, Any]]:
        return list(self._listing().values())

    def load_summary(self, run_id: str) -> dict[str, Any] | None:
        return self._listing().get(run_id)

    def resolve(self, ref: str) -> str:
        """As `StoreReader.resolve`, over the index; a miss reads the index again once."""
        try:
            return super().resolve(ref)
        except RunNotFoundError:
            if self._listed_just_now():
                raise
            self._listing(refresh=True)
            return super().resolve(ref)

    # ------------------------------------------------------------------ the cache

    def _wanted(self, run_id: str) -> str | None:
        """The version of the run to hold, or None when the target does not list it."""
        row = self._listing().get(run_id)
        if row is None:
            return None
        if row.get("status") not in TERMINAL_STATUSES:
            # A running run's snapshots replace its summary.json first: fresher than the index.
            data = self.remote.read_bytes(f"runs/{run_id}/summary.json")
            try:
                newer = json.loads(data) if data is not None else None
            except ValueError:
                newer = None
            if isinstance(newer, dict) and newer.get("id") == run_id:
                with self._lock:
                    self._rows[run_id] = row = newer
        return _version(row)

    def _held(self, run_id: str) -> str | None:
        """The row version the cache holds the run for, or None when it holds no whole copy."""
        layout = self.layout.run_layout(run_id)
        if not layout.record.is_file():
            return None
        try:
            state = read_json(layout.dir / _FETCHED)
        except CorruptFileError:
            return None
        version = state.get("version")
        return str(version) if state.get("uri") == self.remote.display and version else None

    def _fetch_one(self, run_id: str, want: str) -> None:
        from reprolog._storage._publish import _pull_run

        layout = self.layout.run_layout(run_id)
        layout.dir.mkdir(parents=True, exist_ok=True)
        with held(layout.dir / ".fetch.lock"):  # one fetcher per run across processes
            if self._held(run_id) != want:
                # A stale copy: without its record, the pull fetches every file again.
                layout.record.unlink(missing_ok=True)
                _pull_run(self.remote, self.layout, run_id)
                if layout.record.is_file():
                    write_json_atomic(
                        layout.dir / _FETCHED,
                        {"uri": self.remote.display, "version": want, "time": time.time()},
                    )
        with self._lock:
            self._fetched[run_id] = want

    def prefetch(self, run_ids: Iterable[str]) -> None:
        """Fetch the runs the cache lacks or holds stale, several at once."""
        todo: list[tuple[str, str]] = []
        for run_id in dict.fromkeys(run_ids):
            want = self._wanted(run_id)
            if want is None or self._fetched.get(run_id) == want:
                continue
            if self._held(run_id) == want:
                self._fetched[run_id] = want
                continue
            todo.append((run_id, want))
        if len(todo) == 1:
            self._fetch_one(*todo[0])
        elif todo:
            with ThreadPoolExecutor(min(FETCH_THREADS, len(todo))) as pool:
                list(pool.map(lambda job: self._fetch_one(*job), todo))

    # ------------------------------------------------------------------ records and points

    def load_record(self, run_id: str) -> dict[str, Any]:
        """The run's record as published (fetched first; never recovered: it is a copy).

        Raises:
            CorruptFileError: the target has no readable record for it.
        """
        self.prefetch([run_id])
        layout = self.layout.run_layout(run_id)
        try:
            return read_json(layout.record)
        except CorruptFileError as exc:
            raise CorruptFileError(
                f"{self.remote.display}/runs/{run_id}/run.json: cannot be read "
                f"({exc}; the cached copy is {layout.record})",
                path=str(layout.record),
            ) from None

    def run_metrics(self, run_id: str, keys: list[str] | None) -> pa.Table | None:
        self.prefetch([run_id])
        return super().run_metrics(run_id, keys)

    def metrics_table(
        self, runs: Iterable[str] | str | None = None, keys: Iterable[str] | str | None = None
    ) -> pa.Table:
        if isinstance(runs, str):
            runs = [runs]
        run_ids = self.run_ids() if runs is None else [self.resolve(r) for r in runs]
        self.prefetch(run_ids)
        return super().metrics_table(run_ids, keys)

    def metric_sources(self, run_ids: Iterable[str]) -> tuple[list[str], list[pa.Table]]:
        ids = list(run_ids)
        self.prefetch(ids)
        return super().metric_sources(ids)
