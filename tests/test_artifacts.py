"""Artifacts: hashes off the caller's thread, folders, and deduplicated content copies."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from reprolog import ArgumentError, Run, Store
from reprolog._storage._artifacts import _copy_and_hash, describe_artifact, sha256_file

MakeRun = Callable[..., Run]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_file_artifact_records_path_size_hash_and_step(make_run: MakeRun, tmp_path: Path) -> None:
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"weights" * 1000)
    run = make_run()
    art_id = run.log_artifact(ckpt, kind="checkpoint", step=7, metadata={"epoch": 1})
    run.finish()
    [art] = Store(run.store_dir).run(run.id).artifacts
    assert art["id"] == art_id
    assert art["path"] == str(ckpt)
    assert art["name"] == "model.ckpt"
    assert (art["kind"], art["type"], art["step"]) == ("checkpoint", "file", 7)
    assert art["size"] == 7000
    assert art["sha256"] == sha(b"weights" * 1000)
    assert art["status"] == "ok"
    assert art["blob"] is None  # copy=False stores no content
    assert art["metadata"] == {"epoch": 1}
    assert not (run.store_dir / "blobs" / "sha256").exists()


def test_copy_stores_content_once(make_run: MakeRun, tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.bin", tmp_path / "b.bin", tmp_path / "c.bin"
    a.write_bytes(b"same content")
    b.write_bytes(b"same content")
    c.write_bytes(b"other content")
    run = make_run()
    for path in (a, b, c, a):
        run.log_artifact(path, copy=True)
    run.finish()
    arts = Store(run.store_dir).run(run.id).artifacts
    assert [x["sha256"] for x in arts] == [sha(b"same content")] * 2 + [
        sha(b"other content"),
        sha(b"same content"),
    ]
    blobs = sorted(p for p in (run.store_dir / "blobs" / "sha256").rglob("*") if p.is_file())
    assert [p.name for p in blobs] == sorted([sha(b"same content"), sha(b"other content")])
    for art in arts:
        blob = run.store_dir / art["blob"]
        assert blob.read_bytes() in (b"same content", b"other content")
        assert sha(blob.read_bytes()) == art["sha256"]
    assert not any((run.store_dir / "blobs" / "tmp").iterdir())  # no temp files left


def test_folder_artifact(make_run: MakeRun, tmp_path: Path) -> None:
    folder = tmp_path / "export"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "sub" / "weights.bin").write_bytes(b"\x00\x01" * 50)
    run = make_run()
    run.log_artifact(folder, kind="model", copy=True)
    run.finish()
    [art] = Store(run.store_dir).run(run.id).artifacts
    assert art["type"] == "dir"
    assert art["size"] == 2 + 100
    files = {f["path"]: f for f in art["files"]}
    assert set(files) == {"config.json", "sub/weights.bin"}
    assert files["sub/weights.bin"]["sha256"] == sha(b"\x00\x01" * 50)
    assert (run.store_dir / files["config.json"]["blob"]).read_text() == "{}"
    expected = hashlib.sha256()
    for rel in sorted(files):
        expected.update(f"{rel}\0{files[rel]['sha256']}\n".encode())
    assert art["sha256"] == expected.hexdigest()


def test_folder_hash_changes_with_a_file_name(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "a").write_text("x")
    before = describe_artifact(folder, copy=False, blobs_root=tmp_path / "blobs")["sha256"]
    (folder / "a").rename(folder / "b")
    after = describe_artifact(folder, copy=False, blobs_root=tmp_path / "blobs")["sha256"]
    assert before != after


def test_missing_path_raises(make_run: MakeRun, tmp_path: Path) -> None:
    run = make_run()
    with pytest.raises(
        ArgumentError, match=rf"log_artifact\(\): {tmp_path / 'nope.ckpt'} does not exist"
    ):
        run.log_artifact(tmp_path / "nope.ckpt")
    with pytest.raises(ArgumentError, match=r"path must be a str or os\.PathLike, got int"):
        run.log_artifact(3)  # type: ignore[arg-type]
    run.finish()
    assert Store(run.store_dir).run(run.id).artifacts == []


def test_a_file_removed_before_hashing_is_recorded_not_raised(tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    assert describe_artifact(gone, copy=False, blobs_root=tmp_path) == {
        "status": "missing",
        "problem": f"{gone} no longer exists",
    }


def test_hashing_happens_off_the_callers_thread(
    make_run: MakeRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The run's facts component hands artifact work to the hashing thread.
    from reprolog._run import _facts as run_module

    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 1024)
    release = threading.Event()
    threads: list[str] = []
    original = run_module.describe_artifact

    def slow_describe(*args: object, **kwargs: object) -> dict[str, object]:
        threads.append(threading.current_thread().name)
        release.wait(10)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(run_module, "describe_artifact", slow_describe)
    run = make_run()
    run.log_artifact(big)  # returns while the worker is still blocked
    rec = Store(run.store_dir).run(run.id)
    assert rec.artifacts[0]["status"] == "pending"
    release.set()
    run.finish()  # waits for the hash
    assert threads and threads[0] != threading.main_thread().name
    art = Store(run.store_dir).run(run.id).artifacts[0]
    assert (art["status"], art["sha256"]) == ("ok", sha(b"x" * 1024))


def test_sha256_file_matches_hashlib_and_caches(tmp_path: Path) -> None:
    path = tmp_path / "f"
    data = bytes(range(256)) * 5000  # > 1 MiB: several read chunks
    path.write_bytes(data)
    assert sha256_file(path) == sha(data)
    copy = tmp_path / "copy"
    assert _copy_and_hash(path, copy) == sha(data)
    assert copy.read_bytes() == data


def test_artifacts_view_in_sql(make_run: MakeRun, tmp_path: Path) -> None:
    f = tmp_path / "f.txt"
    f.write_text("hello")
    run = make_run()
    run.log_artifact(f, kind="report", step=2)
    run.finish()
    df = Store(run.store_dir).sql(
        "SELECT run_id, name, kind, size, sha256, step, status FROM artifacts"
    )
    assert df.values.tolist() == [[run.id, "f.txt", "report", 5, sha(b"hello"), 2, "ok"]]


def test_update_artifact_metadata(make_run: MakeRun, tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    run = make_run()
    art = run.log_artifact(f, metadata={"epoch": 1})
    run.update_artifact(art, metadata={"deleted": True})
    with pytest.raises(ArgumentError, match=rf"run {run.id} has no artifact 'a9'"):
        run.update_artifact("a9", metadata={})
    run.finish()
    assert Store(run.store_dir).run(run.id).artifacts[0]["metadata"] == {
        "epoch": 1,
        "deleted": True,
    }
