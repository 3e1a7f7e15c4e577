"""Encoding of metric points: arrays -> Arrow table -> Parquet, and per-key summaries."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reprolog import CorruptFileError
from reprolog._storage._encode import (
    METRICS_FORMAT_VERSION,
    from_json_number,
    metrics_schema,
    read_parquet,
    summarize,
    to_table,
    write_parquet,
)
from reprolog._storage._metriclog import LogContents

RUN = "01jtestrun00000000000000000"


def contents(
    points: list[tuple[str, int, float, int]], t0_ms: int = 1_700_000_000_000
) -> LogContents:
    """A LogContents from (key, step, value, epoch) tuples in logging order (epoch -1: none)."""
    keys: list[str] = []
    for key, *_ in points:
        if key not in keys:
            keys.append(key)
    n = len(points)
    return LogContents(
        keys=keys,
        key_id=np.array([keys.index(p[0]) for p in points], dtype=np.uint32),
        step=np.array([p[1] for p in points], dtype=np.int64),
        epoch=np.array([p[3] for p in points], dtype=np.int32),
        value=np.array([p[2] for p in points], dtype=np.float64),
        time_ms=np.arange(t0_ms, t0_ms + n, dtype=np.int64),
        dropped=0,
        problems=[],
    )


def test_schema_is_the_on_disk_contract() -> None:
    schema = metrics_schema()
    assert schema.names == ["run_id", "key", "step", "epoch", "value", "time", "rank"]
    assert schema.field("key").type == pa.dictionary(pa.int32(), pa.string())
    assert schema.field("run_id").type == pa.dictionary(pa.int32(), pa.string())
    assert schema.field("step").type == pa.int64()
    assert schema.field("epoch").type == pa.int32()
    assert schema.field("value").type == pa.float64()
    assert schema.field("time").type == pa.timestamp("ms", tz="UTC")
    assert schema.metadata == {b"reprolog.format_version": METRICS_FORMAT_VERSION.encode()}


def test_to_table_sorts_by_key_then_step_keeping_logging_order_for_ties() -> None:
    log = contents(
        [
            ("zeta", 1, 10.0, -1),
            ("alpha", 2, 20.0, 0),
            ("zeta", 0, 11.0, -1),
            ("alpha", 0, 21.0, 0),
            ("alpha", 2, 22.0, 1),  # same step logged twice: both kept, in logging order
        ]
    )
    table = to_table(RUN, log)
    assert table.schema.equals(metrics_schema(), check_metadata=True)
    rows = table.to_pylist()
    assert [(r["key"], r["step"], r["value"], r["epoch"]) for r in rows] == [
        ("alpha", 0, 21.0, 0),
        ("alpha", 2, 20.0, 0),
        ("alpha", 2, 22.0, 1),
        ("zeta", 0, 11.0, None),
        ("zeta", 1, 10.0, None),
    ]
    assert {r["run_id"] for r in rows} == {RUN}
    assert rows[0]["time"].timestamp() * 1000 == pytest.approx(1_700_000_000_003)


def test_to_table_of_an_empty_log() -> None:
    table = to_table(RUN, contents([]))
    assert table.num_rows == 0
    assert table.schema.equals(metrics_schema())
    assert summarize(table) == {}


def test_special_floats_survive_encoding_bit_for_bit(tmp_path: Path) -> None:
    specials = [float("nan"), float("inf"), float("-inf"), -0.0, 5e-324, 1.7976931348623157e308]
    log = contents([("x", i, v, -1) for i, v in enumerate(specials)])
    path = tmp_path / "m.parquet"
    write_parquet(to_table(RUN, log), path)
    back = read_parquet(path).column("value").to_numpy()
    assert back.tobytes() == np.array(specials, dtype=np.float64).tobytes()


def test_write_parquet_uses_zstd_and_a_dictionary_encoded_key(tmp_path: Path) -> None:
    log = contents([(k, s, s * 0.5, -1) for k in ("a", "b") for s in range(100)])
    path = tmp_path / "metrics.parquet"
    write_parquet(to_table(RUN, log), path)
    meta = pq.ParquetFile(path).metadata
    columns = {
        meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i)
        for i in range(meta.num_columns)
    }
    assert {c.compression for c in columns.values()} == {"ZSTD"}
    assert any("DICTIONARY" in e for e in columns["key"].encodings)
    assert columns["key"].statistics.min == "a" and columns["key"].statistics.max == "b"
    # No temp file is left next to the result.
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.parquet"]
    # The key comes back as a dictionary column, whatever the reader.
    assert pq.read_table(path).schema.field("key").type == pa.dictionary(pa.int32(), pa.string())


def test_float32_training_curves_cost_at_most_4_bytes_per_point(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    keys, steps = 5, 20_000
    points = []
    for k in range(keys):
        curve = np.cumsum(rng.normal(0, 0.01, steps)).astype(np.float32)  # what frameworks log
        points += [(f"metric_{k}", s, float(v), s // 1000) for s, v in enumerate(curve)]
    path = tmp_path / "metrics.parquet"
    write_parquet(to_table(RUN, contents(points)), path)
    assert path.stat().st_size / len(points) <= 4.0


def test_read_parquet_filters_keys(tmp_path: Path) -> None:
    path = tmp_path / "m.parquet"
    write_parquet(to_table(RUN, contents([("a", 0, 1.0, -1), ("b", 0, 2.0, -1)])), path)
    table = read_parquet(path, keys=["b"])
    assert table.column("key").to_pylist() == ["b"]
    assert table.column("value").to_pylist() == [2.0]


@pytest.mark.parametrize(
    "damage",
    [b"", b"PAR1 not really", b"\x00" * 4096],
    ids=["empty", "garbage", "zeros"],
)
def test_read_parquet_names_a_corrupt_file(tmp_path: Path, damage: bytes) -> None:
    path = tmp_path / "metrics.parquet"
    path.write_bytes(damage)
    with pytest.raises(
        CorruptFileError, match=r"metrics\.parquet: unreadable metrics file"
    ) as info:
        read_parquet(path)
    assert info.value.path == str(path)


def test_read_parquet_names_a_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "metrics.parquet"
    write_parquet(to_table(RUN, contents([("a", s, float(s), -1) for s in range(50)])), path)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(CorruptFileError, match=str(path)):
        read_parquet(path)


def test_summarize_last_min_max_count_per_key() -> None:
    nan, inf = float("nan"), float("inf")
    log = contents(
        [
            ("loss", 3, 0.5, -1),
            ("loss", 1, 2.0, -1),
            ("loss", 2, nan, -1),
            ("loss", 0, -inf, -1),
            ("acc", 0, nan, -1),
            ("acc", 1, nan, -1),
            ("lr", 5, 1e-3, -1),
            ("lr", 5, 2e-3, -1),  # same step twice: the last logged is "last"
        ]
    )
    summary = summarize(to_table(RUN, log))
    assert summary["loss"] == {"last": 0.5, "min": "-inf", "max": 2.0, "count": 4, "last_step": 3}
    # All NaN: last is NaN (kept as text for JSON), min/max are None.
    assert summary["acc"] == {"last": "nan", "min": None, "max": None, "count": 2, "last_step": 1}
    assert summary["lr"]["last"] == 2e-3
    assert summary["lr"]["count"] == 2
    assert from_json_number(summary["loss"]["min"]) == -inf
    assert math.isnan(from_json_number(summary["acc"]["last"]))  # type: ignore[arg-type]
    assert from_json_number(None) is None
    assert from_json_number(inf) == inf


def test_arrow_arrays_built_without_pa_array_equal_pyarrows_own() -> None:
    import numpy as np
    import pyarrow as pa

    from reprolog._storage._arrow import from_numpy, strings, to_numpy

    ints = np.array([3, -1, 7, -1], dtype=np.int32)
    mask = ints < 0
    assert from_numpy(ints, pa.int32(), mask=mask).equals(pa.array(ints, pa.int32(), mask=mask))
    assert from_numpy(ints, pa.int32()).equals(pa.array(ints, pa.int32()))
    floats = np.array([0.5, np.nan, -np.inf], dtype=np.float64)
    got, want = from_numpy(floats, pa.float64()), pa.array(floats, pa.float64())
    # NaN is a value, not a null, in both (and NaN != NaN, so compare the bytes).
    assert (got.null_count, got.type) == (want.null_count, want.type) == (0, pa.float64())
    assert got.buffers()[1].to_pybytes() == want.buffers()[1].to_pybytes()
    ms = np.array([0, 1_700_000_000_000], dtype=np.int64)
    stamp = pa.timestamp("ms", tz="UTC")
    assert from_numpy(ms, stamp).equals(pa.array(ms, pa.int64()).cast(stamp))
    assert len(from_numpy(np.zeros(0, np.int64), pa.int64())) == 0
    for words in (["loss", "vał/ü", ""], []):
        assert strings(words).equals(pa.array(words, pa.string()))
    sliced = pa.array([1, 2, 3, 4], pa.int64()).slice(1, 2)
    assert to_numpy(sliced).tolist() == [2, 3]
    assert to_numpy(pa.chunked_array([[1.0], [2.0]])).tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="32-bit"):
        from_numpy(np.zeros(2, np.int64), pa.int32())
    with pytest.raises(ValueError, match="nulls"):
        to_numpy(pa.array([1, None]))


def test_finishing_a_run_does_not_import_pandas(tmp_path: Path) -> None:
    # pandas costs ~0.3 s to import: a script that never uses it must not pay for it at the end.
    script = (
        "import sys, reprolog\n"
        f"run = reprolog.init(dir={str(tmp_path)!r})\n"
        "for s in range(5): run.log({'loss': 1.0 / (s + 1), 'acc': 0.5}, step=s, epoch=s // 2)\n"
        "run.finish()\n"
        "assert reprolog.Store(%r).run(run.id).status == 'completed'\n"
        % str(tmp_path)
        + "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"
