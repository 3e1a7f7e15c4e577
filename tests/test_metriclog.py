"""The memory-mapped metric log: record layout, reading back, torn records and key lines."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from reprolog._storage._metriclog import (
    HEADER_SIZE,
    RECORD,
    RECORD_SIZE,
    ChunkWriter,
    KeyFile,
    read_chunk,
    read_keys,
    read_log,
)


def append(w: ChunkWriter, value: float, step: int, key_id: int = 0, epoch: int = -1) -> None:
    """Append one record exactly as Run.log does."""
    w.seq += 1
    RECORD.pack_into(w.mm, w.pos, value, step, 0, key_id, epoch, w.seq)
    w.pos += RECORD_SIZE


def write_log(
    log_dir: Path, keys: list[str], points: list[tuple[int, int, float]], capacity: int = 64
) -> None:
    """A closed log: key file plus chunks of `capacity` records holding (key_id, step, value)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    kf = KeyFile(log_dir / "keys")
    for i, key in enumerate(keys):
        kf.add(i, key)
    kf.close()
    number = 0
    w = ChunkWriter(log_dir / f"{number:06d}.mlog", number, capacity)
    for key_id, step, value in points:
        if w.pos == w.end:
            w.close()
            number += 1
            w = ChunkWriter(log_dir / f"{number:06d}.mlog", number, capacity)
        append(w, value, step, key_id)
    w.close()


def test_record_layout_is_32_bytes_with_seq_last() -> None:
    assert RECORD_SIZE == 32
    packed = RECORD.pack(1.5, 7, 9, 2, 3, 4)
    assert struct.unpack("<I", packed[-4:]) == (4,)  # seq: the field written last


def test_chunk_is_preallocated_and_sparse_until_written(tmp_path: Path) -> None:
    w = ChunkWriter(tmp_path / "000000.mlog", 0, capacity=1000)
    assert (tmp_path / "000000.mlog").stat().st_size == HEADER_SIZE + 1000 * RECORD_SIZE
    w.close()
    w.close()  # closing twice is harmless
    recs, dropped, problems = read_chunk(tmp_path / "000000.mlog")
    assert len(recs) == 0 and dropped == 0 and problems == []


def test_chunk_cannot_be_created_twice(tmp_path: Path) -> None:
    ChunkWriter(tmp_path / "c.mlog", 0, capacity=4).close()
    with pytest.raises(FileExistsError):
        ChunkWriter(tmp_path / "c.mlog", 0, capacity=4)


def test_read_log_returns_every_point_across_chunks(tmp_path: Path) -> None:
    points = [(i % 3, i // 3, i * 0.25) for i in range(200)]  # 4 chunks of 64
    write_log(tmp_path / "log", ["a", "b", "c"], points)
    assert len(list((tmp_path / "log").glob("*.mlog"))) == 4
    log = read_log(tmp_path / "log")
    assert log.keys == ["a", "b", "c"]
    assert log.dropped == 0 and log.problems == []
    assert (
        list(zip(log.key_id.tolist(), log.step.tolist(), log.value.tolist(), strict=True)) == points
    )
    assert (log.epoch == -1).all()


def test_a_live_writer_is_readable_without_closing(tmp_path: Path) -> None:
    (tmp_path / "log").mkdir()
    KeyFile(tmp_path / "log" / "keys").add(0, "loss")
    w = ChunkWriter(tmp_path / "log" / "000000.mlog", 0, capacity=16)
    for step in range(5):
        append(w, step / 10, step)
    log = read_log(tmp_path / "log")  # no flush, no close: the shared mapping is the file
    assert log.step.tolist() == [0, 1, 2, 3, 4]
    assert log.value.tolist() == [0.0, 0.1, 0.2, 0.3, 0.4]
    w.close()


def test_record_time_is_absolute_unix_ms(tmp_path: Path) -> None:
    w = ChunkWriter(tmp_path / "c.mlog", 0, capacity=4)
    w.seq += 1
    RECORD.pack_into(w.mm, w.pos, 1.0, 0, 1234, 0, -1, w.seq)
    w.close()
    recs, _, _ = read_chunk(tmp_path / "c.mlog")
    assert recs["time_ms"][0] == w.t0_ns // 1_000_000 + 1234


def _chunk_with(tmp_path: Path, n: int) -> tuple[Path, ChunkWriter]:
    w = ChunkWriter(tmp_path / "c.mlog", 0, capacity=16)
    for step in range(n):
        append(w, 100.0 + step, step)
    return tmp_path / "c.mlog", w


def test_torn_last_record_with_a_wrong_seq_is_dropped(tmp_path: Path) -> None:
    path, w = _chunk_with(tmp_path, 6)
    # The last record's seq was written over by garbage: that record is dropped, never misread.
    struct.pack_into("<I", w.mm, HEADER_SIZE + 5 * RECORD_SIZE + 28, 0xDEADBEEF)
    w.close()
    recs, dropped, problems = read_chunk(path)
    assert recs["value"].tolist() == [100.0, 101.0, 102.0, 103.0, 104.0]
    assert dropped == 1
    assert problems == [f"{path}: dropped a torn record at index 5"]


def test_a_record_cut_before_its_seq_is_not_read(tmp_path: Path) -> None:
    path, w = _chunk_with(tmp_path, 3)
    # The process died after the value and step of a 4th record but before its seq.
    slot = HEADER_SIZE + 3 * RECORD_SIZE
    struct.pack_into("<dq", w.mm, slot, 999.0, 3)
    w.close()
    recs, dropped, _ = read_chunk(path)
    assert recs["value"].tolist() == [100.0, 101.0, 102.0]
    assert 999.0 not in recs["value"]
    assert dropped == 0  # an unfinished slot is the end of the log, not damage


def test_damage_in_the_middle_ends_the_log_there(tmp_path: Path) -> None:
    path, w = _chunk_with(tmp_path, 8)
    struct.pack_into("<I", w.mm, HEADER_SIZE + 3 * RECORD_SIZE + 28, 77)
    w.close()
    recs, dropped, _ = read_chunk(path)
    assert recs["step"].tolist() == [0, 1, 2]
    assert dropped == 1


def test_a_chunk_that_is_not_a_log_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "000000.mlog"
    bad.write_bytes(b"x" * 200)
    recs, _, problems = read_chunk(bad)
    assert len(recs) == 0
    assert problems == [f"{bad}: not a reprolog metric log chunk"]
    short = tmp_path / "000001.mlog"
    short.write_bytes(b"RPLM")
    recs, _, problems = read_chunk(short)
    assert len(recs) == 0 and problems == [f"{short}: truncated header (4 bytes)"]


def test_a_truncated_chunk_keeps_its_whole_records(tmp_path: Path) -> None:
    path, w = _chunk_with(tmp_path, 5)
    w.close()
    path.write_bytes(path.read_bytes()[: HEADER_SIZE + 3 * RECORD_SIZE + 10])
    recs, _, _ = read_chunk(path)
    assert recs["step"].tolist() == [0, 1, 2]


def test_torn_key_line_is_dropped_with_its_points(tmp_path: Path) -> None:
    log_dir = tmp_path / "log"
    write_log(log_dir, ["loss", "acc"], [(0, 0, 1.0), (1, 0, 0.5), (0, 1, 0.9), (1, 1, 0.6)])
    # The second key's line lost its end: its name is unknown, so its points are dropped.
    keys = log_dir / "keys"
    keys.write_bytes(keys.read_bytes()[:-4])
    log = read_log(log_dir)
    assert log.keys == ["loss"]
    assert log.key_id.tolist() == [0, 0]
    assert log.value.tolist() == [1.0, 0.9]
    assert log.dropped == 2
    assert any("dropped a torn last line" in p and str(keys) in p for p in log.problems)
    assert any("dropped 2 points whose key name was not recorded" in p for p in log.problems)


def test_read_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    assert read_keys(path) == ({}, [])  # no key file yet: nothing logged
    kf = KeyFile(path)
    kf.add(0, "loss")
    kf.add(1, "ünïcode/key")
    kf.close()
    with open(path, "ab") as fh:
        fh.write(b"not json\n")
    keys, problems = read_keys(path)
    assert keys == {0: "loss", 1: "ünïcode/key"}
    assert len(problems) == 1 and "unreadable key line b'not json'" in problems[0]


def test_values_are_stored_bit_for_bit(tmp_path: Path) -> None:
    values = [float("nan"), float("inf"), float("-inf"), -0.0, 1e-310, np.nextafter(1.0, 2.0)]
    write_log(tmp_path / "log", ["v"], [(0, i, v) for i, v in enumerate(values)])
    log = read_log(tmp_path / "log")
    assert log.value.tobytes() == np.array(values, dtype=np.float64).tobytes()
