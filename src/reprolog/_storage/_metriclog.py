"""The live metric log: fixed-size records appended to memory-mapped chunk files.

Why a memory map: a store into a shared file mapping costs no system call, and the page
cache that holds it outlives the process, so a point whose `log()` returned survives
`kill -9`. The flusher thread msyncs the mapping every flush interval, which bounds what an
OS crash or power loss can take.

Record (32 bytes, little endian): value f64, step i64, time_ms u32 (since the chunk's t0),
key_id u32, epoch i32 (-1 = none), seq u32. CPython's struct packs fields in order after
zeroing the slot, and `seq` (the record's 1-based index in its chunk) is the last field, so a
record whose write was cut short has a seq that does not match its index and is dropped.
Key names live in an append-only side file written (with write(2)) before their first point.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAGIC = b"RPLMLOG1"
HEADER = struct.Struct(
    "<8sIIIIqq24x"
)  # magic, record size, capacity, chunk no, flags, t0_ns, mono0_ns
HEADER_SIZE = 64
RECORD = struct.Struct("<dqIIiI")
RECORD_SIZE = RECORD.size
DEFAULT_CAPACITY = 1 << 17  # 4 MiB per chunk; a sparse file until written
# A chunk's time field is u32 milliseconds; roll to a fresh chunk well before it overflows.
MAX_CHUNK_MS = 2**31

assert HEADER.size == HEADER_SIZE
assert RECORD_SIZE == 32


class ChunkWriter:
    """Appends records to one preallocated, memory-mapped chunk file."""

    __slots__ = ("capacity", "end", "fd", "mm", "mono0", "number", "path", "pos", "seq", "t0_ns")

    def __init__(self, path: Path, number: int, capacity: int = DEFAULT_CAPACITY) -> None:
        self.path = path
        self.number = number
        self.capacity = capacity
        size = HEADER_SIZE + capacity * RECORD_SIZE
        self.fd, self.mm = map_new_file(path, size)
        self.t0_ns = time.time_ns()
        self.mono0 = time.monotonic_ns()
        HEADER.pack_into(
            self.mm, 0, MAGIC, RECORD_SIZE, capacity, number, 0, self.t0_ns, self.mono0
        )
        self.pos = HEADER_SIZE
        self.end = size
        self.seq = 0

    def flush(self) -> None:
        """msync the mapping: after this, an OS crash cannot lose what was written."""
        self.mm.flush()

    def close(self) -> None:
        unmap(self.fd, self.mm)


def map_new_file(path: Path, size: int) -> tuple[int, mmap.mmap]:
    """Create `path` (it must not exist) as a sparse file of `size` bytes, mapped shared.

    Returns:
        (the open file descriptor, the read-write mapping); `unmap` releases both.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        os.ftruncate(fd, size)
        return fd, mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    except BaseException:
        os.close(fd)
        raise


def unmap(fd: int, mm: mmap.mmap) -> None:
    """msync, unmap and close a `map_new_file` pair; a second call does nothing."""
    if mm.closed:
        return
    mm.flush()
    mm.close()
    os.close(fd)


class KeyFile:
    """Append-only dictionary of metric keys: one JSON line `[id, key]` per key."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)

    def add(self, key_id: int, key: str) -> None:
        os.write(self.fd, (json.dumps([key_id, key], ensure_ascii=False) + "\n").encode())

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


# ---------------------------------------------------------------- reading


@dataclass
class LogContents:
    """Every complete point of a run's live log, as parallel arrays (numpy)."""

    keys: list[str]
    key_id: Any
    step: Any
    epoch: Any
    value: Any
    time_ms: Any  # absolute unix milliseconds
    dropped: int  # records seen but rejected (torn or of an unknown key)
    problems: list[str]


def read_keys(path: Path) -> tuple[dict[int, str], list[str]]:
    """Read the key dictionary; a torn last line is dropped, never misread."""
    keys: dict[int, str] = {}
    problems: list[str] = []
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return keys, problems
    lines = data.split(b"\n")
    if lines and lines[-1]:
        problems.append(f"{path}: dropped a torn last line ({len(lines[-1])} bytes)")
    for line in lines[:-1]:
        try:
            key_id, key = json.loads(line)
            keys[int(key_id)] = str(key)
        except (ValueError, TypeError) as exc:
            problems.append(f"{path}: unreadable key line {line[:40]!r}: {exc}")
    return keys, problems


def _points_dtype() -> Any:
    """The decoded form of a record: absolute time, no seq."""
    import numpy as np

    return np.dtype(
        [("value", "<f8"), ("step", "<i8"), ("time_ms", "<i8"), ("key_id", "<u4"), ("epoch", "<i4")]
    )


def _record_dtype() -> Any:
    import numpy as np

    return np.dtype(
        [
            ("value", "<f8"),
            ("step", "<i8"),
            ("time_ms", "<u4"),
            ("key_id", "<u4"),
            ("epoch", "<i4"),
            ("seq", "<u4"),
        ]
    )


def read_chunk(path: Path) -> tuple[Any, int, list[str]]:
    """Return (valid records as a numpy structured array with absolute time, dropped, problems)."""
    import numpy as np

    problems: list[str] = []
    with open(path, "rb") as fh:
        data = fh.read()
    if len(data) < HEADER_SIZE:
        # A chunk being created when the writer died: nothing in it was ever accepted.
        return np.zeros(0, _points_dtype()), 0, [f"{path}: truncated header ({len(data)} bytes)"]
    magic, rsize, capacity, _number, _flags, t0_ns, _mono0 = HEADER.unpack_from(data, 0)
    if magic == bytes(len(MAGIC)):
        return np.zeros(0, _points_dtype()), 0, []  # created, header not yet written: empty
    if magic != MAGIC or rsize != RECORD_SIZE:
        return np.zeros(0, _points_dtype()), 0, [f"{path}: not a reprolog metric log chunk"]
    count = min(capacity, (len(data) - HEADER_SIZE) // RECORD_SIZE)
    recs = np.frombuffer(data, dtype=_record_dtype(), count=count, offset=HEADER_SIZE)
    expected = np.arange(1, count + 1, dtype=np.uint32)
    ok = recs["seq"] == expected
    # Records are written strictly in order: the first slot whose seq does not match ends the log.
    n_valid = int(np.argmin(ok)) if not ok.all() else count
    dropped = 0
    if n_valid < count and recs["seq"][n_valid] != 0:
        dropped = 1
        problems.append(f"{path}: dropped a torn record at index {n_valid}")
    valid = recs[:n_valid].copy()
    out = np.zeros(n_valid, dtype=_points_dtype())
    out["value"] = valid["value"]
    out["step"] = valid["step"]
    out["time_ms"] = valid["time_ms"].astype(np.int64) + t0_ns // 1_000_000
    out["key_id"] = valid["key_id"]
    out["epoch"] = valid["epoch"]
    return out, dropped, problems


def read_log(log_dir: Path) -> LogContents:
    """Read every complete point of a live or crashed run's log, in logging order."""
    import numpy as np

    keys_map, problems = read_keys(log_dir / "keys")
    chunks = sorted(log_dir.glob("*.mlog"))
    parts = []
    dropped = 0
    for chunk in chunks:
        recs, d, p = read_chunk(chunk)
        parts.append(recs)
        dropped += d
        problems.extend(p)
    recs = np.concatenate(parts) if parts else np.zeros(0, dtype=_points_dtype())
    # A point whose key line was torn cannot be named: drop it and say so.
    known = np.fromiter(keys_map.keys(), dtype=np.int64, count=len(keys_map))
    mask = np.isin(recs["key_id"].astype(np.int64), known)
    if not mask.all():
        lost = int((~mask).sum())
        dropped += lost
        problems.append(f"{log_dir}: dropped {lost} points whose key name was not recorded")
        recs = recs[mask]
    max_id = int(known.max()) + 1 if len(known) else 0
    names = [keys_map.get(i, "") for i in range(max_id)]
    return LogContents(
        keys=names,
        key_id=recs["key_id"],
        step=recs["step"],
        epoch=recs["epoch"],
        value=recs["value"],
        time_ms=recs["time_ms"],
        dropped=dropped,
        problems=problems,
    )
