"""Publishing a live run to a store at a URI: when it ends, and as snapshots while it lives.

`init(publish_to=URI)` (or `$REPROLOG_PUBLISH_TO`) changes nothing about how the run records:
object stores have no append, mmap, flock or atomic rename, so the run stays in its local
store with the crash-safe log. When it ends (compacted, its status final), `finish()` copies it
to the target (`_storage._publish.publish_run`: blobs, files, the record last). While it lives,
a daemon thread publishes a snapshot every `publish_every` minutes (`publish_snapshot`), so a
lost node loses at most that interval of what others can see.

Nothing here raises into training: a failure is recorded in the run's capture report
(`{"what": "publish", ...}`) and logged as one warning line; the run's marker then says it is
not published yet, and `reprolog push` completes it (a crashed run too: push recovers it).
"""

from __future__ import annotations

import logging
import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprolog._errors import ArgumentError, RemoteStoreError
from reprolog._run import _hooks
from reprolog._run._facts import RunFacts

if TYPE_CHECKING:
    from reprolog._storage._publish import PublishResult
    from reprolog._storage._remote import RemoteStore

logger = logging.getLogger("reprolog")

ENV_TO = "REPROLOG_PUBLISH_TO"
ENV_EVERY = "REPROLOG_PUBLISH_EVERY"
DEFAULT_EVERY_MINUTES = 10.0
# How long finish() waits for a snapshot in flight before it compacts and publishes anyway
# (the final publish then waits for the snapshot's per-run lock).
STOP_TIMEOUT = 30.0

_ACCEPTS_TO = "an object-store URI (s3://bucket/prefix), a folder path, False or None"

# Held by a snapshot while it runs, and by a fork while it forks: a fork waits (a while) for a
# snapshot in flight, because a pyarrow lock its thread holds at the fork would stay locked
# in the child, whose first pyarrow call would then hang (a DataLoader worker's, a child run's).
_snapshot_guard = threading.Lock()
_held_for_fork = False


def _before_fork() -> None:
    global _held_for_fork
    _held_for_fork = _snapshot_guard.acquire(timeout=STOP_TIMEOUT)


def _after_fork() -> None:  # in the parent and in the child
    global _held_for_fork
    if _held_for_fork:
        _held_for_fork = False
        _snapshot_guard.release()


@dataclass(frozen=True)
class PublishSettings:
    """Where and how often a run is published, checked (see `publish_settings`).

    Attributes:
        display: the target as it may be shown and recorded (no credentials).
        every_s: seconds between snapshots.
    """

    uri: str = field(repr=False)  # as given: its options may hold credentials; never recorded
    display: str
    every_s: float
    remote: RemoteStore | None = field(repr=False, compare=False, default=None)
    open_error: RemoteStoreError | None = field(repr=False, compare=False, default=None)

    def section(self) -> dict[str, Any]:
        """The record's `publish` section."""
        return {"to": self.display, "every_s": self.every_s}


def _minutes(value: object) -> float:
    """`publish_every` in minutes: the argument, else `$REPROLOG_PUBLISH_EVERY`, else 10."""
    source = "publish_every"
    if value is None:
        raw = os.environ.get(ENV_EVERY, "").strip()
        if not raw:
            return DEFAULT_EVERY_MINUTES
        source = f"${ENV_EVERY}"
        try:
            value = float(raw)
        except ValueError:
            raise ArgumentError(
                f"{source} must be a positive number of minutes, got {raw!r}"
            ) from None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ArgumentError(
            f"{source} must be a positive number of minutes between snapshots "
            f"(e.g. 10 or 0.5), got {type(value).__name__}: {value!r}"
        )
    return float(value)


def publish_settings(publish_to: object, publish_every: object) -> PublishSettings | None:
    """Check `init`'s publish_to / publish_every (environment defaults included).

    publish_to None: `$REPROLOG_PUBLISH_TO` when set (and not empty), else no publishing;
    False: no publishing, whatever the environment says. The target is resolved now
    (`open_remote`), so a URI pyarrow does not understand fails at `init`; a target that
    cannot be set up (no network, say) is recorded and tried again at each publish.

    Raises:
        ArgumentError: a value of the wrong type, a bad URI, a non-positive interval.
    """
    every = _minutes(publish_every)  # checked even when nothing is published
    source = "publish_to"
    if publish_to is None:
        raw = os.environ.get(ENV_TO, "").strip()
        if not raw:
            return None
        publish_to, source = raw, f"${ENV_TO}"
    elif publish_to is False:
        return None
    if isinstance(publish_to, bool) or not isinstance(publish_to, (str, os.PathLike)):
        raise ArgumentError(
            f"{source} must be {_ACCEPTS_TO}, got {type(publish_to).__name__}: {publish_to!r}"
        )
    from reprolog._storage._remote import display_uri, open_remote

    uri = os.fspath(publish_to)
    if not isinstance(uri, str):
        raise ArgumentError(f"{source} must be {_ACCEPTS_TO}, got bytes: {display_uri(uri)!r}")
    remote: RemoteStore | None = None
    error: RemoteStoreError | None = None
    try:
        remote = open_remote(uri)
    except ArgumentError as exc:
        raise ArgumentError(f"{source} must be {_ACCEPTS_TO}: {exc}") from None
    except RemoteStoreError as exc:
        error = exc
    display = remote.display if remote is not None else display_uri(uri)
    return PublishSettings(uri, display, every * 60.0, remote, error)


def check_local_dir(given: object) -> None:
    """A live run records on local disk: `dir` (or `$REPROLOG_DIR`) must not be a URI."""
    source = "dir"
    if given is None:
        from reprolog._storage._layout import ENV_DIR

        given, source = os.environ.get(ENV_DIR), f"${ENV_DIR}"
    if not isinstance(given, str) or "://" not in given:
        return
    from reprolog._storage._remote import display_uri, is_uri

    if is_uri(given):
        shown = display_uri(given)
        hint = f"publish_to={shown!r}" if source == "dir" else f"${ENV_TO}={shown} (or publish_to=)"
        raise ArgumentError(
            f"{source} must be a local folder, got the URI {shown}: a live run records on "
            "local disk (object stores have no append, mmap or flock) and is published when "
            f"it ends; keep {source} local and pass {hint}"
        )


def check_not_own_store(settings: PublishSettings | None, dir: object) -> None:
    """A run published into the store it records in would copy itself onto itself."""
    if settings is None or settings.remote is None or settings.remote.kind != "local":
        return
    from reprolog._storage._layout import resolve_store_dir

    local = resolve_store_dir(
        dir if isinstance(dir, (str, os.PathLike)) else None, must_exist=False
    )
    if Path(settings.remote.base).resolve() == local:
        raise ArgumentError(
            f"publish_to must be another store than the run's own, got {settings.display}, "
            "the store the run records in (dir=); pass a shared folder or a URI"
        )


class Publisher:
    """One run's publishing: the snapshot timer while it lives, the final publish at its end.

    Args:
        settings: where to and how often.
        store_root: the run's local store.
        facts: the run's record keeping (failures go into its capture report).
    """

    def __init__(self, settings: PublishSettings, store_root: Path, facts: RunFacts) -> None:
        self.settings = settings
        self._root = store_root
        self._facts = facts
        self._remote = settings.remote
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._snapshot_failed = False
        self._last_snapshot_error: str | None = None
        self.snapshots = 0
        if settings.open_error is not None:
            self._record(
                "publish",
                settings.open_error,
                "reprolog: publishing run %s to %s cannot be set up (%s); the run records "
                "locally as always, and its end tries again",
            )
        # A run ended at interpreter exit publishes through pyarrow's S3 filesystem, whose
        # finalizer pyarrow registers with atexit when first imported (maybe just now).
        _hooks.run_exit_hooks_first()

    # ------------------------------------------------------------------ the timer

    def start(self) -> None:
        """Start the snapshot timer (a daemon thread: it never keeps the process alive)."""
        _hooks.around_fork(_before_fork, _after_fork)
        thread = threading.Thread(
            target=self._loop, name=f"reprolog-publish-{self._facts.run_id}", daemon=True
        )
        self._thread = thread
        thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.every_s):
            if os.getpid() != self._pid:
                return
            self.snapshot()

    def snapshot(self) -> bool:
        """Publish what the run holds so far; False (recorded, not raised) when it failed."""
        from reprolog._storage._publish import publish_snapshot

        try:
            with _snapshot_guard:
                publish_snapshot(self._root, self._facts.run_id, self._target())
        except Exception as exc:
            message = _one_line(exc)
            if message != self._last_snapshot_error:  # not once per interval for days
                self._last_snapshot_error = message
                warning = None if self._snapshot_failed else _SNAPSHOT_FAILED
                self._record("publish snapshot", exc, warning)
            self._snapshot_failed = True
            return False
        self._last_snapshot_error = None
        self.snapshots += 1
        return True

    def stop(self) -> None:
        """Stop the timer, waiting (a while) for a snapshot in flight."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(STOP_TIMEOUT)

    def detach(self) -> None:
        """In a forked child: the parent's timer is not there, and this run is not the child's."""
        self._stop.set()
        self._thread = None

    # ------------------------------------------------------------------ the end

    def publish(self) -> PublishResult | None:
        """Publish the finished run; None (recorded, logged, not raised) when it failed."""
        from reprolog._storage._publish import publish_run

        try:
            return publish_run(self._root, self._facts.run_id, self._target())
        except Exception as exc:  # never into the training code: `reprolog push` completes it
            self._record("publish", exc, _NOT_PUBLISHED)
            return None

    def _target(self) -> RemoteStore:
        if self._remote is None:  # it could not be set up at init: try again
            from reprolog._storage._remote import open_remote

            self._remote = open_remote(self.settings.uri)
        return self._remote

    def _record(self, what: str, error: BaseException, warning: str | None) -> None:
        """Append the failure to the capture report (and run.json); log `warning` (%s: the
        run id, the target, the message, then the target again where it asks for it)."""
        message = _one_line(error)
        try:
            from reprolog._capture.redact import redact_text

            message = redact_text(message)[0]
        except Exception:
            message = "<message withheld: redaction failed>"
        facts = self._facts
        with facts.lock:
            facts.record["capture_report"].setdefault("errors", []).append(
                {"what": what, "error": message}
            )
            facts.save_quietly()  # after finish() too: the final record says it
        if warning is not None:
            shown = self.settings.display
            args = (facts.run_id, shown, message, shown)[: warning.count("%s")]
            logger.warning(warning, *args)


_NOT_PUBLISHED = (
    "reprolog: run %s is not published to %s (%s); it is complete on local disk, "
    "and `reprolog push --to %s` publishes it"
)
_SNAPSHOT_FAILED = "reprolog: a snapshot of run %s to %s failed (%s); training goes on"


def _one_line(error: BaseException) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())
