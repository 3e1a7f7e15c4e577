"""`reprolog gc`: failed and crashed runs go, completed ones and referenced blobs stay."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import reprolog
from reprolog._cli import main
from reprolog._errors import ArgumentError
from reprolog._store._gc import collect


def _age(path: Path, days: float) -> None:
    old = time.time() - days * 86400
    os.utime(path, (old, old))


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, str, str, Path]:
    """A completed run with a stored artifact, a failed run with another, and an orphan blob."""
    kept_file = tmp_path / "kept.bin"
    kept_file.write_bytes(b"keep me")
    lost_file = tmp_path / "lost.bin"
    lost_file.write_bytes(b"lose me")
    ok = reprolog.init(name="ok", dir=tmp_path / "s")
    ok.log_artifact(kept_file, copy=True)
    ok.finish()
    with (
        pytest.raises(RuntimeError, match="boom"),
        reprolog.init(name="bad", dir=tmp_path / "s") as bad,
    ):
        bad.log_artifact(lost_file, copy=True)
        bad.wait()
        raise RuntimeError("boom")
    root = tmp_path / "s"
    blobs = sorted((root / "blobs" / "sha256").glob("*/*"))
    assert len(blobs) == 2
    orphan = root / "blobs" / "sha256" / "ff" / ("f" * 64)
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"orphan")
    for blob in [*blobs, orphan]:
        _age(blob, 2)  # older than the one-hour grace for fresh blobs
    return root, ok.id, bad.id, orphan


def _blob_of(root: Path, run_id: str) -> Path:
    record = json.loads((root / "runs" / run_id / "run.json").read_text())
    return root / record["artifacts"][0]["blob"]


def test_dry_run_removes_nothing(store: tuple[Path, str, str, Path]) -> None:
    root, _, bad, orphan = store
    res = CliRunner().invoke(main, ["--dir", str(root), "gc", "--dry-run"])
    assert res.exit_code == 0, res.output
    assert f"would remove run {bad}" in res.output
    assert "would remove 1 runs and 2 blobs" in res.output
    assert (root / "runs" / bad).is_dir() and orphan.exists()


def test_gc_removes_failed_runs_and_unreferenced_blobs(store: tuple[Path, str, str, Path]) -> None:
    root, ok, bad, orphan = store
    kept_blob, lost_blob = _blob_of(root, ok), _blob_of(root, bad)
    res = CliRunner().invoke(main, ["--dir", str(root), "gc"])
    assert res.exit_code == 0, res.output
    assert not (root / "runs" / bad).exists()
    assert not lost_blob.exists() and not orphan.exists()
    assert kept_blob.exists() and (root / "runs" / ok).is_dir()
    assert reprolog.Store(root).runs()["id"].tolist() == [ok]


def test_older_than_keeps_recent_failures(store: tuple[Path, str, str, Path]) -> None:
    root, _, bad, orphan = store
    report = collect(reprolog.Store(root), older_than_days=1)
    assert report.runs == []  # the failed run ended seconds ago
    assert orphan.exists() is False  # the orphan blob is two days old
    report = collect(reprolog.Store(root), older_than_days=0)
    assert report.runs == [bad]


def test_fresh_blobs_are_kept(store: tuple[Path, str, str, Path]) -> None:
    root, _, _, orphan = store
    os.utime(orphan, None)  # written just now: may belong to a live run
    collect(reprolog.Store(root))
    assert orphan.exists()


def test_bad_age_raises(tmp_path: Path) -> None:
    reprolog.init(dir=tmp_path).finish()
    with pytest.raises(ArgumentError, match="older_than_days must be a number >= 0, got -1"):
        collect(reprolog.Store(tmp_path), older_than_days=-1)
