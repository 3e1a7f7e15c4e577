"""Where things live in a store: root resolution and every path inside it.

The one owner of paths: no other module joins a file or folder name of the layout onto a store
or run folder; they ask `StoreLayout` / `RunLayout`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from reprolog._errors import ArgumentError, StoreError
from reprolog._storage._atomic import write_text

STORE_DIRNAME = ".reprolog"
STORE_FORMAT_VERSION = 1
ENV_DIR = "REPROLOG_DIR"


def _as_path(value: str | os.PathLike[str], what: str) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise ArgumentError(
            f"{what} must be a str or os.PathLike path, got {type(value).__name__}: {value!r}"
        )
    return Path(os.fspath(value)).expanduser()


def cache_root() -> Path:
    """reprolog's own cache folder (never a store): `$REPROLOG_CACHE_DIR`, else
    `$XDG_CACHE_HOME/reprolog`, else `~/.cache/reprolog`. It holds the file-hash cache
    (`fingerprints.sqlite`), the venvs `reproduce --env recorded` builds (`venvs/`) and the
    local copies of stores at a URI (`stores/`)."""
    root = os.environ.get("REPROLOG_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "reprolog"
    )
    return Path(root)


def find_store_dir(start: Path | None = None) -> Path | None:
    """Return the nearest existing store: `$REPROLOG_DIR`, else `.reprolog` here or in a parent."""
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env).expanduser()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / STORE_DIRNAME
        if (candidate / "runs").is_dir():
            return candidate
    return None


def resolve_store_dir(dir: str | os.PathLike[str] | None, *, must_exist: bool) -> Path:
    """Normalise the `dir` argument of init/Store into an absolute store path.

    Args:
        dir: an explicit path, or None for `$REPROLOG_DIR`, else the nearest `.reprolog`
            (this folder or a parent), else `./.reprolog`.
        must_exist: raise StoreError when no store is there (readers), instead of
            returning the path to create (writers).
    """
    if dir is not None:
        path = _as_path(dir, "dir").resolve()
    else:
        found = find_store_dir()
        path = (found or Path.cwd() / STORE_DIRNAME).resolve()
    if must_exist and not (path / "runs").is_dir():
        raise StoreError(
            f"no reprolog store found at {path} (looked for {STORE_DIRNAME}/ here and in parents; "
            f"set {ENV_DIR} or pass dir=)",
            path=str(path),
        )
    return path


@dataclass(frozen=True)
class StoreLayout:
    """Every path of a store, derived from its root."""

    root: Path

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def blobs(self) -> Path:
        return self.root / "blobs"

    @property
    def index_dir(self) -> Path:
        return self.root / "index"

    @property
    def index_file(self) -> Path:
        return self.index_dir / "runs.parquet"

    @property
    def index_lock(self) -> Path:
        return self.index_dir / "lock"

    def run_dir(self, run_id: str) -> Path:
        return self.runs / run_id

    @property
    def meta(self) -> Path:
        """store.json: the store's format version."""
        return self.root / "store.json"

    def blob_path(self, sha256: str) -> Path:
        return self.blobs / "sha256" / sha256[:2] / sha256

    def ensure(self) -> None:
        """Create the store skeleton once; safe when several processes race to do it."""
        if (self.runs).is_dir():
            return
        self.runs.mkdir(parents=True, exist_ok=True)
        self.blobs.mkdir(exist_ok=True)
        self.index_dir.mkdir(exist_ok=True)
        gitignore = self.root / ".gitignore"
        if not gitignore.exists():
            gitignore.write_text("# created by reprolog: the store ignores itself\n*\n")
        if not self.meta.exists():
            write_text(self.meta, f'{{"format_version": {STORE_FORMAT_VERSION}}}\n')

    def run_layout(self, run_id: str) -> RunLayout:
        """The paths of one run of this store."""
        return RunLayout(self.run_dir(run_id))

    def blob_paths(self) -> list[Path]:
        """Every file under the blob folders (`blobs/sha256/<2 hex>/<sha256>`), sorted."""
        tree = self.blobs / "sha256"
        return sorted(p for p in tree.glob("*/*") if p.is_file()) if tree.is_dir() else []


@dataclass(frozen=True)
class RunLayout:
    """Every path inside one run folder."""

    dir: Path

    @property
    def store_root(self) -> Path:
        """The root of the store that holds this run (`<store>/runs/<id>/` -> `<store>`)."""
        return self.dir.parent.parent

    @property
    def record(self) -> Path:
        return self.dir / "run.json"

    @property
    def summary(self) -> Path:
        return self.dir / "summary.json"

    @property
    def metrics(self) -> Path:
        return self.dir / "metrics.parquet"

    @property
    def steps(self) -> Path:
        return self.dir / "steps.parquet"

    @property
    def console(self) -> Path:
        return self.dir / "console.jsonl"

    @property
    def log_dir(self) -> Path:
        return self.dir / "log"

    def rank_dirs(self) -> list[tuple[int, Path]]:
        """The log folders of secondary rank writers, by rank.

        `log/rank-<r>/` for a rank's first writer, `log/rank-<r>-<n>/` for its n-th (re-attach).
        """
        out = []
        for path in self.log_dir.glob("rank-*"):
            parts = path.name.removeprefix("rank-").split("-")
            if path.is_dir() and len(parts) <= 2 and all(p.isdigit() for p in parts):
                generation = int(parts[1]) if len(parts) == 2 else 1
                out.append((int(parts[0]), generation, path))
        return [(rank, path) for rank, _, path in sorted(out)]

    @property
    def keys_file(self) -> Path:
        return self.log_dir / "keys"

    def chunk(self, number: int) -> Path:
        return self.log_dir / f"{number:06d}.mlog"

    @property
    def lock(self) -> Path:
        return self.dir / "run.lock"

    @property
    def heartbeat(self) -> Path:
        return self.dir / "heartbeat"

    @property
    def run_id(self) -> str:
        """The id of this run: its folder's name."""
        return self.dir.name

    def rank_dir(self, rank: int, generation: int = 1) -> Path:
        """`log/rank-<r>/` for a rank's first writer, `log/rank-<r>-<n>/` for its n-th."""
        name = f"rank-{rank}" if generation == 1 else f"rank-{rank}-{generation}"
        return self.log_dir / name

    @property
    def record_lock(self) -> Path:
        """`log/record.lock`: held by the process of a launched job that writes the record."""
        return self.log_dir / "record.lock"

    def worker_dir(self, pid: int) -> Path:
        """`log/worker-<pid>/`: a job's worker process that called init() (never compacted)."""
        return self.log_dir / f"worker-{pid}"

    def worker_dirs(self) -> list[Path]:
        return sorted(self.log_dir.glob("worker-*"))

    @staticmethod
    def writer_lock(folder: Path) -> Path:
        """The lock the live writer of a rank (or seat) log folder holds for its life."""
        return folder / "lock"

    @staticmethod
    def writer_heartbeat(folder: Path) -> Path:
        """The heartbeat of a rank (or seat) log folder's writer."""
        return folder / "heartbeat"

    @property
    def published(self) -> Path:
        """published.json: per publish target, the state (pending/snapshot/done) and the files
        known to be there; never published itself (see `_storage._publish`)."""
        return self.dir / "published.json"

    @property
    def rng_dir(self) -> Path:
        """`rng/`: the RNG states captured at init (side files of the seeds section)."""
        return self.dir / "rng"
