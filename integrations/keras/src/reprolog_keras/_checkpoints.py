"""Notice the files that ``keras.callbacks.ModelCheckpoint`` writes and record them as artifacts."""

from __future__ import annotations

import os
import re
import string
from dataclasses import dataclass, field
from typing import Any


def filepath_regex(filepath: str) -> re.Pattern[str]:
    """Turn a ModelCheckpoint file name pattern into a regex over file names.

    Args:
        filepath: the pattern, e.g. ``"ckpt/model-{epoch:02d}-{val_loss:.2f}.keras"``; only its
            last component is used.

    Returns:
        A regex that matches every file name the pattern can produce.
    """
    parts: list[str] = []
    for literal, field_name, _spec, _conv in string.Formatter().parse(os.path.basename(filepath)):
        parts.append(re.escape(literal))
        if field_name is not None:
            parts.append(".+?")
    return re.compile("".join(parts) + r"\Z")


@dataclass
class _Watched:
    callback: Any
    directory: str
    pattern: re.Pattern[str]
    seen: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (mtime_ns, size)
    artifact_ids: dict[str, str] = field(default_factory=dict)  # path -> latest artifact id
    best_id: str | None = None


class CheckpointWatcher:
    """Record new, rewritten and deleted ModelCheckpoint files between two looks at the disk.

    Keras does not announce saves to other callbacks, so the watcher compares each
    ModelCheckpoint's folder with what it saw before. Looks happen at epoch ends and at the
    end of training, never per batch.

    Args:
        callbacks: the callbacks of the fit call; the ModelCheckpoint ones are watched.
    """

    def __init__(self, callbacks: list[Any]) -> None:
        import keras

        self._watched = [
            _Watched(
                callback=cb,
                directory=os.path.dirname(os.path.abspath(str(cb.filepath))),
                pattern=filepath_regex(str(cb.filepath)),
            )
            for cb in callbacks
            if isinstance(cb, keras.callbacks.ModelCheckpoint)
        ]
        # Files already there before training belong to someone else (an earlier run).
        for watched in self._watched:
            watched.seen = _listing(watched)

    def __bool__(self) -> bool:
        return bool(self._watched)

    def scan(self, run: Any, *, step: int, epoch: int | None, logs: dict[str, Any]) -> None:
        """Record what changed in the watched folders since the last scan.

        Args:
            run: the reprolog run.
            step: the global step the new files belong to.
            epoch: the epoch they belong to.
            logs: that epoch's logs, for the monitored value.
        """
        for watched in self._watched:
            now = _listing(watched)
            for path, stat in sorted(now.items()):
                if watched.seen.get(path) == stat:
                    continue
                self._record(run, watched, path, step=step, epoch=epoch, logs=logs)
            for path in watched.seen.keys() - now.keys():
                art_id = watched.artifact_ids.pop(path, None)
                if art_id is not None:
                    run.update_artifact(art_id, metadata={"deleted": True})
            watched.seen = now

    def _record(
        self,
        run: Any,
        watched: _Watched,
        path: str,
        *,
        step: int,
        epoch: int | None,
        logs: dict[str, Any],
    ) -> None:
        cb = watched.callback
        monitor = getattr(cb, "monitor", None)
        value = logs.get(monitor) if monitor else None
        metadata: dict[str, Any] = {
            "source": "keras.callbacks.ModelCheckpoint",
            "epoch": epoch,
            "monitor": monitor,
            "monitor_value": value if isinstance(value, (int, float)) else None,
            "save_best_only": bool(getattr(cb, "save_best_only", False)),
            "save_weights_only": bool(getattr(cb, "save_weights_only", False)),
        }
        if metadata["save_best_only"]:
            metadata["best"] = True
        previous = watched.artifact_ids.get(path)
        art_id = run.log_artifact(path, kind="checkpoint", step=step, metadata=metadata)
        if previous is not None:
            run.update_artifact(previous, metadata={"overwritten": True})
        if metadata["save_best_only"]:
            # With save_best_only every new file is the new best; the older one no longer is.
            if watched.best_id is not None and watched.best_id != previous:
                run.update_artifact(watched.best_id, metadata={"best": False})
            watched.best_id = art_id
        watched.artifact_ids[path] = art_id


def _listing(watched: _Watched) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    try:
        entries = list(os.scandir(watched.directory))
    except FileNotFoundError:
        return out
    for entry in entries:
        if watched.pattern.match(entry.name):
            try:
                stat = entry.stat()
            except FileNotFoundError:  # removed between listing and stat
                continue
            out[entry.path] = (stat.st_mtime_ns, stat.st_size)
    return out
