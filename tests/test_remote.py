"""Stores at a URI: push, pull, the remote summary index and snapshots, against a real S3 API.

The S3 API is moto's server, started here as a real process on loopback
(`tests._s3.MotoServer`); the tests talk to it through pyarrow's S3 filesystem and boto3, as
users do. A shared filesystem target is a tmp folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import reprolog
from reprolog._storage import _publish, _remoteindex
from reprolog._storage._remote import display_uri, is_uri, open_remote
from tests._s3 import MotoServer
from tests.conftest import script_env

pytest.importorskip("boto3")
pytest.importorskip("moto")

ACCESS_KEY = "AKIAREPROLOGTEST0001"
SECRET_KEY = "reprolog-planted-secret-Zq8v1Xc3"  # must never reach a record, object or output
SESSION_TOKEN = "reprolog-planted-session-token-Hh47Kd"


def s3_env(endpoint: str) -> dict[str, str]:
    """The standard AWS variables pointing at the loopback server; nothing else is consulted."""
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_SESSION_TOKEN": SESSION_TOKEN,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def make_bucket(endpoint: str) -> str:
    import boto3

    name = f"rl-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    ).create_bucket(Bucket=name)
    return name


def all_objects(endpoint: str, bucket: str) -> dict[str, bytes]:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return out


def started(log: Path, *, env: dict[str, str] | None = None) -> MotoServer:
    """A moto server of the caller's own, already answering (`stop()` it when done)."""
    server = MotoServer(log, env=env)
    server.start()
    return server


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = started(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


@pytest.fixture
def s3(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the loopback server, with the AWS_* environment pointing at it."""
    for key, value in s3_env(moto.endpoint).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return f"s3://{make_bucket(moto.endpoint)}/team"


def build_runs(store: Path, n: int, *, artifact: Path | None = None) -> list[str]:
    """n finished runs made with the public API (capture off: fast)."""
    ids = []
    for k in range(n):
        run = reprolog.init(dir=store, name=f"r{k}", params={"lr": 0.1 * (k + 1)}, capture=False)
        for step in range(20):
            run.log({"loss": 1.0 / (step + 1 + k), "acc": step / 20}, step=step)
        if artifact is not None and k == 0:
            run.log_artifact(artifact, copy=True)
            run.wait()
        run.finish()
        ids.append(run.id)
    return ids


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`reprolog ARGS` in a child interpreter importing this checkout (no stray $REPROLOG_DIR)."""
    return subprocess.run(
        [sys.executable, "-m", "reprolog._cli", *args],
        capture_output=True,
        text=True,
        env=script_env(**(env or {})),
        timeout=300,
    )


def frame(store: Path) -> Any:
    table = reprolog.Store(store).runs()
    return table.drop(columns=[c for c in ("dir",) if c in table]).sort_values("id")


def assert_same_store(a: Path, b: Path, ids: list[str]) -> None:
    import pandas as pd

    pd.testing.assert_frame_equal(
        frame(a).reset_index(drop=True), frame(b).reset_index(drop=True), check_like=True
    )
    sa, sb = reprolog.Store(a), reprolog.Store(b)
    for run_id in ids:
        ra, rb = sa.run(run_id), sb.run(run_id)
        assert ra.raw == rb.raw
        pd.testing.assert_frame_equal(ra.metrics(), rb.metrics())


# -- URIs ----------------------------------------------------------------------------------------


def test_display_uri_drops_credentials() -> None:
    uri = "s3://AKIAX:topsecret@bkt/p/q?region=eu-west-1&secret_key=abc123&session_token=tok9"
    shown = display_uri(uri)
    assert shown == "s3://bkt/p/q?region=eu-west-1"
    assert display_uri("/data/store") == "/data/store"
    assert is_uri("s3://bkt/x") and not is_uri("/tmp/x") and not is_uri("file:///tmp/x")


def test_the_configured_region_is_used_without_asking_s3(monkeypatch: pytest.MonkeyPatch) -> None:
    # pyarrow's from_uri alone would send a HeadBucket to resolve the region (and fail here,
    # with no route out); the AWS tools use the configured region, and so does reprolog.
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    remote = open_remote("s3://reprolog-no-such-bucket-anywhere/team")
    assert remote.fs.region == "eu-west-3" and remote.display.endswith("/team")
    monkeypatch.setenv("AWS_REGION", "ap-south-1")  # the SDKs' first choice
    assert open_remote("s3://reprolog-no-such-bucket-anywhere/team").fs.region == "ap-south-1"
    explicit = open_remote("s3://reprolog-no-such-bucket-anywhere/team?region=us-west-2")
    assert explicit.fs.region == "us-west-2"


def test_uri_errors_are_one_line_without_secrets() -> None:
    with pytest.raises(reprolog.ReprologError) as info:
        open_remote("s3://bkt/x?access_key=AKIAQQQ&secret_key=not-to-be-seen-9")
    assert "not-to-be-seen-9" not in str(info.value) and "\n" not in str(info.value)


# -- push, list, pull ------------------------------------------------------------------------------


def test_push_lists_and_reads_back_then_uploads_nothing(
    s3: str, moto: MotoServer, tmp_path: Path
) -> None:
    blob = tmp_path / "weights.bin"
    blob.write_bytes(os.urandom(200_000))
    local = tmp_path / "local"
    ids = build_runs(local, 3, artifact=blob)

    report = _publish.push(local, s3)
    assert sorted(report.done) == sorted(ids) and report.bytes > 200_000
    remote = open_remote(s3)
    listed = _remoteindex.list_summaries(remote)
    assert [row["id"] for row in listed] == sorted(ids, reverse=True)
    assert {row["status"] for row in listed} == {"completed"}
    assert all(_publish.publish_state(local, i, s3) == "done" for i in ids)
    record = json.loads(remote.read_bytes(f"runs/{ids[0]}/run.json") or b"{}")
    sha = record["artifacts"][0]["sha256"]
    assert remote.size(f"blobs/sha256/{sha[:2]}/{sha}") == 200_000
    for name in ("published.json", "run.lock", "heartbeat"):
        assert remote.size(f"runs/{ids[0]}/{name}") is None

    puts = moto.requests("PUT")
    again = _publish.push(local, s3)
    assert again.done == [] and sorted(again.already) == sorted(ids)
    assert again.bytes == 0 and again.files == 0
    assert moto.requests("PUT") == puts  # not one object written

    pulled = tmp_path / "pulled"
    got = _publish.pull(s3, pulled)
    assert sorted(got.done) == sorted(ids)
    assert_same_store(local, pulled, ids)
    assert (pulled / "blobs" / "sha256" / sha[:2] / sha).read_bytes() == blob.read_bytes()
    assert (pulled / "index" / "runs.parquet").is_file()  # the local index, as a store keeps it
    assert _publish.pull(s3, pulled).done == []  # already there
    # Pulled runs are known to be on the source: pushing them back sends nothing.
    assert _publish.push(pulled, s3).files == 0


def test_a_push_killed_half_way_is_completed_by_the_next(
    s3: str, moto: MotoServer, tmp_path: Path
) -> None:
    import signal

    local = tmp_path / "local"
    ids = build_runs(local, 150)  # two batches of records (BATCH_RUNS = 100)
    before = moto.requests("PUT")
    push = subprocess.Popen(
        [sys.executable, "-m", "reprolog._cli", "push", "--dir", str(local), "--to", s3],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while moto.requests("PUT") - before < 200 and time.monotonic() < deadline:
        assert push.poll() is None, "the push ended before it could be killed"
        time.sleep(0.02)
    push.send_signal(signal.SIGKILL)  # a real kill, mid-upload: no handler runs
    push.wait()
    assert push.returncode == -signal.SIGKILL

    # Nothing is lost locally, and the target lists only runs whose record (written last) is
    # there, with every file the record refers to.
    assert sorted(reprolog.Store(local).runs()["id"]) == sorted(ids)
    remote = open_remote(s3)
    listed = [row["id"] for row in _remoteindex.list_summaries(remote)]
    assert len(listed) < len(ids)
    for run_id in listed:
        assert remote.size(f"runs/{run_id}/run.json") is not None
        assert remote.size(f"runs/{run_id}/metrics.parquet") is not None
    unfinished = [i for i in ids if _publish.publish_state(local, i, s3) != "done"]
    assert unfinished, "the kill came after every run was published"

    again = cli("push", "--dir", str(local), "--to", s3)
    assert again.returncode == 0, again.stderr
    assert sorted(r["id"] for r in _remoteindex.list_summaries(open_remote(s3))) == sorted(ids)
    assert all(_publish.publish_state(local, i, s3) == "done" for i in ids)
    puts = moto.requests("PUT")
    assert cli("push", "--dir", str(local), "--to", s3).stdout.startswith(
        "pushed 0 runs (0 B), 150 already there"
    )
    assert moto.requests("PUT") == puts
    pulled = tmp_path / "pulled"
    _publish.pull(s3, pulled)
    assert_same_store(local, pulled, ids)


def test_cli_push_pull_summary_lines(s3: str, tmp_path: Path) -> None:
    local = tmp_path / "local"
    ids = build_runs(local, 2)
    first = cli("push", "--dir", str(local), "--to", s3)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("pushed 2 runs (") and ", 0 already there" in first.stdout
    second = cli("--dir", str(local), "push", "--to", s3)
    assert second.returncode == 0 and second.stdout.startswith("pushed 0 runs (0 B), 2 already")
    one = cli("pull", "--from", s3, "--dir", str(tmp_path / "one"), ids[1][:20])
    assert one.returncode == 0 and one.stdout.startswith("pulled 1 run (")
    assert [r.id for r in [reprolog.Store(tmp_path / "one").run(ids[1])]] == [ids[1]]
    bad = cli("pull", "--from", s3, "--dir", str(tmp_path / "one"), "nosuchrun")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "nosuchrun" in bad.stderr


def test_shared_filesystem_target_works_the_same(tmp_path: Path) -> None:
    local, shared = tmp_path / "local", tmp_path / "shared" / "reprolog"
    ids = build_runs(local, 3)
    out = cli("push", "--dir", str(local), "--to", str(shared))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("pushed 3 runs")
    assert cli("push", "--dir", str(local), "--to", f"file://{shared}").stdout.startswith(
        "pushed 0 runs (0 B), 3 already there"
    )
    assert [r["id"] for r in _remoteindex.list_summaries(open_remote(shared))] == sorted(
        ids, reverse=True
    )
    # The target is itself a store folder a local reader understands.
    assert sorted(reprolog.Store(shared).runs()["id"]) == sorted(ids)
    pulled = tmp_path / "pulled"
    assert cli("pull", "--from", str(shared), "--dir", str(pulled)).returncode == 0
    assert_same_store(local, pulled, ids)


def test_running_runs_are_skipped_and_snapshots_publish_progress(s3: str, tmp_path: Path) -> None:
    local = tmp_path / "local"
    run = reprolog.init(dir=local, name="live", capture=False)
    for step in range(10):
        run.log({"loss": 1.0 / (step + 1)}, step=step)
    report = _publish.push(local, s3)
    assert report.done == [] and report.skipped == [(run.id, "still running")]

    snap = _publish.publish_snapshot(local, run.id, s3)
    assert snap.state == "snapshot"
    remote = open_remote(s3)
    (row,) = _remoteindex.list_summaries(remote)
    assert row["status"] == "running" and row["metrics_summary"]["loss"]["count"] == 10
    assert _publish.pull(s3, tmp_path / "pulled").skipped  # a snapshot is not pulled

    for step in range(10, 30):
        run.log({"loss": 1.0 / (step + 1)}, step=step)
    run.finish()
    final = _publish.publish_run(local, run.id, s3)
    assert final.state == "done" and final.uploaded_files >= 3
    (row,) = _remoteindex.list_summaries(remote)
    assert row["status"] == "completed" and row["metrics_summary"]["loss"]["count"] == 30
    import pyarrow.parquet as pq

    table = pq.ParquetFile(remote.open_input_file(f"runs/{run.id}/metrics.parquet")).read()
    assert table.num_rows == 30


def test_index_merges_segments_and_keeps_the_newest_row(s3: str) -> None:
    remote = open_remote(s3)
    rows = [{"id": f"01m8y{k:021d}", "status": "running", "name": f"n{k}"} for k in range(40)]
    for row in rows:
        _remoteindex.add_to_index(remote, [row])
    commits = remote.sizes(_remoteindex.COMMITS)
    assert commits, "a merge committed a base"
    segments = remote.sizes(_remoteindex.SEGMENTS)
    commit = _remoteindex._latest_commit(remote)
    assert commit is not None
    assert len([s for s in segments if s.rsplit("/", 1)[-1] not in commit.segments]) < (
        _remoteindex.MERGE_AT
    )
    _remoteindex.add_to_index(remote, [{**rows[3], "status": "completed"}])
    listed = {r["id"]: r for r in _remoteindex.list_summaries(remote)}
    assert len(listed) == 40 and listed[rows[3]["id"]]["status"] == "completed"


def test_no_credential_reaches_a_record_an_object_or_the_output(
    s3: str, moto: MotoServer, tmp_path: Path
) -> None:
    local, pulled = tmp_path / "local", tmp_path / "pulled"
    build_runs(local, 2)
    bucket = s3.removeprefix("s3://").split("/")[0]
    outputs = [
        cli("push", "--dir", str(local), "--to", s3),
        cli("push", "--dir", str(local), "--to", s3),
        cli("pull", "--from", s3, "--dir", str(pulled)),
        cli("push", "--dir", str(local), "--to", "s3://rl-no-such-bucket-here/x"),
        cli(
            "push", "--dir", str(local), "--to", s3, env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
        ),
    ]
    assert [o.returncode for o in outputs] == [0, 0, 0, 2, 2]
    texts = [o.stdout + o.stderr for o in outputs]
    texts += [
        p.read_text(errors="replace") for d in (local, pulled) for p in d.rglob("*") if p.is_file()
    ]
    texts += [b.decode(errors="replace") for b in all_objects(moto.endpoint, bucket).values()]
    for secret in (SECRET_KEY, SESSION_TOKEN):
        assert not [t for t in texts if secret in t]
