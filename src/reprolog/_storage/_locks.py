"""File locks: the one flock idiom of a store (run.lock, rank and seat locks, index, venv cache).

An flock belongs to an open file description, and the kernel drops it when the process dies
(kill -9 included), so "is the lock free?" doubles as "is its holder alive?".
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


def hold(path: Path) -> int:
    """Take an exclusive lock on `path` (created if missing), waiting for it; return its fd.

    The lock lasts until `release(fd)` or the process's end.
    """
    fd = _open(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


def try_hold(path: Path) -> int | None:
    """Take an exclusive lock on `path` if nobody holds it; its fd, or None when it is held."""
    fd = _open(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def release(fd: int) -> None:
    """Drop a lock taken by `hold` / `try_hold` (closing its fd drops it)."""
    os.close(fd)


def is_free(path: Path) -> bool:
    """True when no process holds an flock on `path` (a missing file is free).

    The probe takes and drops the lock itself, so call it only on locks whose holders keep them
    for a long time (a run's life), never as a way to take one.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


@contextlib.contextmanager
def held(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` for the `with` block, waiting for it."""
    fd = hold(path)
    try:
        yield
    finally:
        release(fd)


@contextlib.contextmanager
def held_if_free(path: Path) -> Iterator[bool]:
    """Hold the lock for the block when nobody else does; yields whether it was taken."""
    fd = try_hold(path)
    try:
        yield fd is not None
    finally:
        if fd is not None:
            release(fd)
