"""Per-step fingerprints: the hashes, the switch, the on-disk table and its crash safety."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

import reprolog
from reprolog._fingerprint import _stephash
from reprolog._fingerprint._steptrace import DEFAULT_EVERY, resolve_every
from reprolog._storage import _steplog

# ---------------------------------------------------------------- batch hashes


def test_the_batch_hash_sees_order_and_the_samples_hash_does_not() -> None:
    x = torch.arange(40, dtype=torch.float32).reshape(10, 4)
    y = torch.arange(10)
    perm = torch.tensor([3, 1, 4, 0, 5, 9, 2, 6, 8, 7])
    b1, s1 = _stephash.batch_hash((x, y))
    b2, s2 = _stephash.batch_hash((x[perm], y[perm]))
    assert b1 != b2 and s1 == s2
    # The same (x, y) pairs split differently over two batches add up to the same samples.
    _, sa = _stephash.batch_hash((x[:4], y[:4]))
    _, sb = _stephash.batch_hash((x[4:], y[4:]))
    assert (sa + sb) % 2**64 == s1


def test_swapping_values_between_samples_changes_the_samples_hash() -> None:
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    swapped = torch.tensor([[1.0, 4.0], [3.0, 2.0]])  # the same column sums
    assert _stephash.batch_hash(x)[1] != _stephash.batch_hash(swapped)[1]


def test_a_one_ulp_change_and_a_label_change_are_seen() -> None:
    x = torch.randn(8, 5)
    y = torch.zeros(8, dtype=torch.long)
    base = _stephash.batch_hash((x, y))
    x2 = x.clone()
    x2[3, 2] = torch.nextafter(x2[3, 2], torch.tensor(10.0))
    y2 = y.clone()
    y2[6] = 1
    assert _stephash.batch_hash((x2, y)) != base
    assert _stephash.batch_hash((x, y2)) != base
    assert _stephash.batch_hash((x, y)) == base  # stable


@pytest.mark.parametrize(
    "leaf",
    [
        np.arange(24, dtype=np.uint8).reshape(8, 3),  # 3-byte rows
        np.arange(16, dtype=np.float16).reshape(8, 2),
        (np.arange(8) % 2 == 0).reshape(8, 1),
        torch.arange(16, dtype=torch.bfloat16).reshape(8, 2),
        torch.ones(8, 2, requires_grad=True),
        torch.arange(32, dtype=torch.float64).reshape(8, 4)[:, ::2],  # not contiguous
    ],
)
def test_every_dtype_and_layout_hashes(leaf: object) -> None:
    batch, samples = _stephash.batch_hash({"x": leaf, "ids": ["a", "b"]})
    assert batch and samples


def test_mappings_hash_by_key_not_insertion_order() -> None:
    a, b = torch.randn(4, 2), torch.randn(4)
    assert _stephash.batch_hash({"a": a, "b": b}) == _stephash.batch_hash({"b": b, "a": a})
    assert _stephash.batch_hash({"a": a, "b": b}) != _stephash.batch_hash({"a": b, "b": a})


# ---------------------------------------------------------------- RNG and weights


def test_each_generator_changes_its_own_fingerprint() -> None:
    probe = _stephash.RngProbe()
    assert probe.methods["python"] == "in place"
    np.random.seed(3)
    first = probe()
    assert probe.methods["numpy"] == "in place"
    assert probe() == first  # reading never draws
    random.random()
    second = probe()
    assert second[3] != first[3] and second[:3] == first[:3]
    np.random.rand()
    third = probe()
    assert third[2] != second[2] and third[0] == second[0]
    torch.rand(1)
    fourth = probe()
    assert fourth[0] != third[0] and fourth[2:] == third[2:]
    assert fourth[1] == 0  # CUDA is not initialised on this machine


def test_the_in_place_reads_agree_with_the_getters() -> None:
    random.seed(11)
    np.random.seed(11)
    probe = _stephash.RngProbe()
    state = random.getstate()
    random.random()
    after = probe()
    random.setstate(state)
    assert probe() != after
    random.random()
    assert probe() == after  # the same state gives the same fingerprint


def test_weights_hash_exactly_and_by_model_or_tensors() -> None:
    model = torch.nn.Linear(3, 2)
    h = _stephash.tensors_hash(_stephash.tensors_of(model))
    assert h == _stephash.tensors_hash(list(model.parameters()))
    assert h == _stephash.tensors_hash([p.detach().numpy().copy() for p in model.parameters()])
    with torch.no_grad():
        model.bias[0] = torch.nextafter(model.bias[0], torch.tensor(9.0))
    assert _stephash.tensors_hash(_stephash.tensors_of(model)) != h
    with pytest.raises(TypeError, match="cannot read weights from int"):
        _stephash.tensors_of(3)


# ---------------------------------------------------------------- the switch


@pytest.mark.parametrize(
    ("every", "env", "expected"),
    [
        (None, None, DEFAULT_EVERY),
        (None, "off", None),
        (None, "0", None),
        (None, "on", DEFAULT_EVERY),
        (None, "25", 25),
        (True, "off", DEFAULT_EVERY),
        (False, None, None),
        (7, "off", 7),
    ],
)
def test_the_switch(every: bool | int | None, env: str | None, expected: int | None) -> None:
    environ = {} if env is None else {"REPROLOG_STEP_FINGERPRINTS": env}
    assert resolve_every(every, environ) == expected


@pytest.mark.parametrize("bad", [0, -1, 2.5, "10"])
def test_a_bad_every_says_what_it_accepts(tmp_path: Path, bad: object) -> None:
    with (
        reprolog.init(dir=tmp_path, capture=False) as run,
        pytest.raises(reprolog.ArgumentError, match=r"every must be .* got"),
    ):
        run.step_fingerprints(every=bad)  # type: ignore[arg-type]


def test_off_records_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPROLOG_STEP_FINGERPRINTS", "off")
    with reprolog.init(dir=tmp_path, capture=False) as run:
        assert run.step_fingerprints(torch.nn.Linear(2, 2)) is None
    assert not (run.dir / "steps.parquet").exists()
    assert "step_fingerprints" not in reprolog.Store(tmp_path).run(run.id).sections


def test_a_bad_batch_is_reported_once_and_the_rest_recorded(tmp_path: Path) -> None:
    class Weird:
        def __array__(self) -> np.ndarray:
            raise ValueError("no array here")

    with reprolog.init(dir=tmp_path, capture=False) as run:
        fp = run.step_fingerprints(torch.nn.Linear(2, 2), every=1)
        assert fp is not None
        for step in range(3):
            fp.step(step, (torch.ones(2, 2), Weird()))
        fp.step(-1)
    record = reprolog.Store(tmp_path).run(run.id)
    table = pq.read_table(run.dir / "steps.parquet")
    assert table.num_rows == 3
    assert None not in table.column("weights").to_pylist()
    assert None not in table.column("batch").to_pylist()  # the type name stands in for Weird
    whats = [e["what"] for e in record.capture_report["errors"]]
    assert whats == ["step fingerprints: step"]


def test_a_finished_run_refuses(tmp_path: Path) -> None:
    run = reprolog.init(dir=tmp_path, capture=False)
    run.finish()
    with pytest.raises(reprolog.RunStateError):
        run.step_fingerprints()


# ---------------------------------------------------------------- on disk


def test_micro_batches_fold_into_their_step(tmp_path: Path) -> None:
    x = torch.randn(8, 3)
    with reprolog.init(dir=tmp_path, capture=False) as run:
        fp = run.step_fingerprints()
        assert fp is not None
        fp.step(0, x[:4])
        fp.add_batch(x[4:])
        fp.step(1, x[:4])
    table = pq.read_table(run.dir / "steps.parquet").to_pylist()
    assert table[0]["batch"] != table[1]["batch"]
    assert table[0]["samples"] == _stephash.batch_hash(x)[1]


def test_rank_writers_keep_their_own_rows(tmp_path: Path) -> None:
    model = torch.nn.Linear(2, 1)
    with reprolog.init(dir=tmp_path, capture=False) as run:
        fp0 = run.step_fingerprints(model, every=1)
        with reprolog.attach(run.id, rank=1, dir=tmp_path) as writer:
            fp1 = writer.step_fingerprints(model, every=1)
            for step in range(3):
                fp0.step(step, torch.ones(2, 2))  # type: ignore[union-attr]
                fp1.step(step, torch.zeros(2, 2))
    table = pq.read_table(run.dir / "steps.parquet")
    assert table.column("rank").to_pylist() == [0, 0, 0, 1, 1, 1]
    assert table.column("step").to_pylist() == [0, 1, 2, 0, 1, 2]


def test_at_most_64_bytes_per_step_on_disk(tmp_path: Path) -> None:
    model = torch.nn.Linear(4, 1)
    x = torch.randn(16, 4)
    with reprolog.init(dir=tmp_path, capture=False) as run:
        fp = run.step_fingerprints(model)
        assert fp is not None
        for step in range(5000):
            torch.rand(1)  # as dropout would: the torch state changes every step
            fp.step(step, x + step, epoch=step // 500)
    size = (run.dir / "steps.parquet").stat().st_size
    assert size / 5000 <= 64
    assert _steplog.RECORD_SIZE == 64  # the live log, too


def test_a_killed_run_keeps_every_step_it_recorded(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal, sys, torch, reprolog
        run = reprolog.init(dir={str(tmp_path)!r}, capture=False)
        fp = run.step_fingerprints(torch.nn.Linear(2, 1), every=10)
        for step in range(70_000):  # past one 65,536-record chunk
            fp.step(step, torch.ones(2, 2) * step, epoch=0)
        print(run.id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    run_id = proc.stdout.strip()
    store = reprolog.Store(tmp_path)
    assert store.run(run_id).status == "crashed"  # the reader recovers it
    table = pq.read_table(tmp_path / "runs" / run_id / "steps.parquet")
    assert table.column("step").to_pylist() == list(range(70_000))
    weights = table.column("weights").to_numpy(zero_copy_only=False)
    assert int((~np.isnan(weights.astype(float))).sum()) == 7000


def test_a_torn_record_is_dropped_not_misread(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.mkdir()
    chunk = _steplog.StepChunk(_steplog.chunk_path(log, 0), 0, capacity=8)
    for step in range(3):
        chunk.seq += 1
        _steplog.RECORD.pack_into(chunk.mm, chunk.pos, step, 5, 6, 0, 0, 1, 0, 2, 3, 0, chunk.seq)
        chunk.pos += 64
    # A record cut short: fields written, seq not yet the right one.
    _steplog.RECORD.pack_into(chunk.mm, chunk.pos, 3, 5, 6, 0, 0, 1, 0, 2, 3, 0, 99)
    chunk.close()
    recs, problems = _steplog.read_log_dir(log)
    assert recs["step"].tolist() == [0, 1, 2]
    assert problems and "torn step record at index 3" in problems[0]
    assert os.path.getsize(_steplog.chunk_path(log, 0)) == 64 + 8 * 64


def test_a_batch_is_hashed_as_it_was_at_the_step(tmp_path: Path) -> None:
    # Batches are hashed later, stacked with others; a batch changed in place after the
    # step (a reused buffer) must still be recorded as it was when the step began.
    buffer = torch.zeros(8, 3)
    expected = []
    with reprolog.init(dir=tmp_path, capture=False) as run:
        fp = run.step_fingerprints()
        assert fp is not None
        for step in range(5):
            buffer.fill_(float(step))
            expected.append(_stephash.batch_hash((buffer, torch.arange(8))))
            fp.step(step, (buffer, torch.arange(8)))
        buffer.fill_(-1.0)
    rows = pq.read_table(run.dir / "steps.parquet").to_pylist()
    assert [(r["batch"], r["samples"]) for r in rows] == expected


def test_stacked_hashing_equals_one_by_one() -> None:
    x, y = torch.randn(10, 4), torch.arange(10)
    parts = [(x[:4], y[:4]), (x[4:7], y[4:7]), {"text": ["a"], "x": x}, [torch.tensor(3.0)]]
    stacked = _stephash.hash_captured([_stephash.capture(p) for p in parts])
    assert stacked == [_stephash.batch_hash(p) for p in parts]


def test_a_reused_numpy_buffer_is_hashed_as_it_was(tmp_path: Path) -> None:
    buffer = np.zeros((4, 2), dtype=np.float32)
    expected = []
    with reprolog.init(dir=tmp_path, capture=False) as run:
        fp = run.step_fingerprints()
        assert fp is not None
        for step in range(3):
            buffer[:] = step
            expected.append(_stephash.batch_hash(buffer))
            fp.step(step, buffer)
        buffer[:] = -1
    rows = pq.read_table(run.dir / "steps.parquet").to_pylist()
    assert [(r["batch"], r["samples"]) for r in rows] == expected
