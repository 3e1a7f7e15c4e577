"""`init(publish_to=...)`: a live run records locally and is published when it ends, with snapshots.

Against a real S3 API (moto's server as a process on loopback, `tests/_s3.py`), real processes
and real signals: the server is killed with SIGKILL in the middle of a publish, two processes
publish into one bucket at once, and the CLI meets wrong credentials and a missing bucket.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import reprolog
from reprolog._storage import _publish, _remoteindex
from reprolog._storage._remote import open_remote
from tests import _s3
from tests.conftest import script_env
from tests.test_remote import cli

pytest.importorskip("boto3")
pytest.importorskip("moto")

moto_server = _s3.moto_server  # the loopback S3 fixtures (one server per worker)
s3 = _s3.s3

PLANTED_SECRET = "reprolog-planted-secret-Pq7w2Lx9"  # must never reach an output


def listing(uri: str) -> dict[str, dict[str, Any]]:
    return {str(r["id"]): r for r in _remoteindex.list_summaries(open_remote(uri))}


def remote_json(uri: str, rel: str) -> dict[str, Any]:
    raw = open_remote(uri).read_bytes(rel)
    assert raw is not None, f"{rel} is not on {uri}"
    data: dict[str, Any] = json.loads(raw)
    return data


def local_record(store: Path, run_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((store / "runs" / run_id / "run.json").read_text())
    return data


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def point_env_at(monkeypatch: pytest.MonkeyPatch, endpoint: str, tmp_path: Path) -> None:
    """The AWS settings of `tests._s3.s3`, for a server of the test's own."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", _s3.ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", _s3.SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", _s3.REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def own_servers(tmp_path: Path) -> Iterator[Callable[[], _s3.MotoServer]]:
    """Start moto servers of this test's own (it kills them); all stopped at the end."""
    started: list[_s3.MotoServer] = []

    def start() -> _s3.MotoServer:
        server = _s3.MotoServer(tmp_path / f"moto-{len(started)}.log")
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()


# -- the ordinary path ---------------------------------------------------------------------------


def test_a_run_is_published_when_it_ends(s3: _s3.S3, tmp_path: Path) -> None:
    local = tmp_path / "local"
    weights = tmp_path / "weights.bin"
    weights.write_bytes(os.urandom(100_000))
    with reprolog.init("pub", dir=local, capture=False, publish_to=s3.uri) as run:
        for step in range(200):
            run.log({"loss": 1.0 / (step + 1), "acc": step / 200}, step=step)
        run.log_artifact(weights, copy=True)

    rows = listing(s3.uri)
    assert list(rows) == [run.id] and rows[run.id]["status"] == "completed"
    assert rows[run.id]["metrics_summary"]["loss"]["count"] == 200
    record = remote_json(s3.uri, f"runs/{run.id}/run.json")
    assert record == local_record(local, run.id)
    assert record["sections"]["publish"] == {"to": s3.uri, "every_s": 600.0}
    remote = open_remote(s3.uri)
    local_parquet = (local / "runs" / run.id / "metrics.parquet").read_bytes()
    assert remote.read_bytes(f"runs/{run.id}/metrics.parquet") == local_parquet
    sha = record["artifacts"][0]["sha256"]
    assert remote.read_bytes(f"blobs/sha256/{sha[:2]}/{sha}") == weights.read_bytes()
    assert _publish.publish_state(local, run.id, s3.uri) == "done"
    assert record["capture_report"]["errors"] == []


def test_the_environment_variables_publish_a_run_ended_at_exit(
    s3: _s3.S3, tmp_path: Path, run_script: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    # No finish(): the run ends at interpreter exit (atexit), after pyarrow's S3 finalizer
    # and concurrent.futures were registered, and it still publishes.
    code = """
        import reprolog
        # The exit hooks are installed by this first run, before pyarrow.fs is imported
        # (its compaction imports it, and pyarrow registers its S3 finalizer then).
        reprolog.init(dir="local", capture=False, publish_to=False).finish()
        run = reprolog.init(dir="local", capture=False)
        for step in range(50):
            run.log({"loss": 1.0 / (step + 1)}, step=step)
        print(run.id)
    """
    out = run_script(
        code, cwd=tmp_path, check=True, REPROLOG_PUBLISH_TO=s3.uri, REPROLOG_PUBLISH_EVERY="0.5"
    )
    ids = out.stdout.split()
    assert "Traceback" not in out.stderr and "not published" not in out.stderr, out.stderr
    rows = listing(s3.uri)
    assert ids[-1] in rows and rows[ids[-1]]["status"] == "completed"
    assert rows[ids[-1]]["metrics_summary"]["loss"]["count"] == 50
    record = remote_json(s3.uri, f"runs/{ids[-1]}/run.json")
    assert record["sections"]["publish"] == {"to": s3.uri, "every_s": 30.0}


def test_a_shared_folder_target_and_false_to_opt_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local, shared = tmp_path / "local", tmp_path / "shared"
    monkeypatch.setenv("REPROLOG_PUBLISH_TO", str(shared))
    with reprolog.init(dir=local, capture=False) as run:
        run.log({"x": 1.0}, step=0)
    with reprolog.init(dir=local, capture=False, publish_to=False) as kept:
        kept.log({"x": 1.0}, step=0)
    assert sorted(reprolog.Store(shared).runs()["id"]) == [run.id]
    assert "publish" not in local_record(local, kept.id)["sections"]


@pytest.mark.parametrize(
    ("kwargs", "env", "match"),
    [
        ({"dir": "s3://bucket/team"}, {}, r"dir must be a local folder.*publish_to='s3://bucket/team'"),
        ({}, {"REPROLOG_DIR": "s3://bucket/team"}, r"\$REPROLOG_DIR must be a local.*PUBLISH_TO"),
        ({"publish_to": 3}, {}, r"publish_to must be an object-store URI .* got int: 3"),
        ({"publish_to": True}, {}, r"publish_to must be .* got bool: True"),
        ({"publish_to": ""}, {}, r"publish_to must be .*must not be empty"),
        ({"publish_to": "nosuchscheme://x/y"}, {}, r"publish_to must be .*nosuchscheme://x/y"),
        ({"publish_to": "s3://"}, {}, r"publish_to must be "),
        ({}, {"REPROLOG_PUBLISH_TO": "nosuchscheme://x/y"}, r"\$REPROLOG_PUBLISH_TO must be "),
        ({"publish_every": 0}, {}, r"publish_every must be a positive .* got int: 0"),
        ({"publish_every": -1.5}, {}, r"publish_every must be a positive number"),
        ({"publish_every": "10"}, {}, r"publish_every must be .* got str: '10'"),
        ({"publish_every": True}, {}, r"publish_every must be .* got bool"),
        ({"publish_every": float("nan")}, {}, r"publish_every must be a positive number"),
        ({}, {"REPROLOG_PUBLISH_EVERY": "soon"}, r"\$REPROLOG_PUBLISH_EVERY must be .* got 'soon'"),
    ],
)  # fmt: skip
def test_bad_publish_arguments_are_argument_errors(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kwargs: dict[str, Any],
    env: dict[str, str],
    match: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    defaults: dict[str, Any] = {"capture": False}
    if "REPROLOG_DIR" not in env:
        defaults["dir"] = tmp_path / "local"
    kwargs = {**defaults, **kwargs}
    with pytest.raises(reprolog.ArgumentError, match=match):
        reprolog.init(**kwargs)
    with pytest.raises(reprolog.ArgumentError, match=match):
        reprolog.Run(**kwargs)  # the same arguments, the same check
    assert not (tmp_path / "local" / "runs").exists()  # nothing started
    assert reprolog.active_run() is None


def test_publishing_into_the_runs_own_store_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = tmp_path / "local"
    for target in (local, f"file://{local}"):
        with pytest.raises(reprolog.ArgumentError, match="another store than the run's own"):
            reprolog.init(dir=local, capture=False, publish_to=target)
    monkeypatch.chdir(tmp_path)  # dir=None: the store found or made here, ./.reprolog
    with pytest.raises(reprolog.ArgumentError, match="another store than the run's own"):
        reprolog.init(capture=False, publish_to=tmp_path / ".reprolog")
    assert not (local / "runs").exists() and not (tmp_path / ".reprolog" / "runs").exists()


def test_snapshots_show_the_live_run_with_its_points_so_far(s3: _s3.S3, tmp_path: Path) -> None:
    local = tmp_path / "local"
    run = reprolog.init(dir=local, capture=False, publish_to=s3.uri, publish_every=0.01)
    try:
        for step in range(25):
            run.log({"loss": 1.0 / (step + 1)}, step=step)

        def snapshot_has_them() -> bool:
            row = listing(s3.uri).get(run.id)
            return (
                row is not None
                and row["status"] == "running"
                and row["metrics_summary"].get("loss", {}).get("count") == 25
            )

        wait_for("a snapshot with 25 points", snapshot_has_them)
        assert remote_json(s3.uri, f"runs/{run.id}/run.json")["status"] == "running"
        for step in range(25, 60):
            run.log({"loss": 1.0 / (step + 1)}, step=step)
    finally:
        run.finish()
    row = listing(s3.uri)[run.id]
    assert row["status"] == "completed" and row["metrics_summary"]["loss"]["count"] == 60
    remote = open_remote(s3.uri)
    local_parquet = (local / "runs" / run.id / "metrics.parquet").read_bytes()
    assert remote.read_bytes(f"runs/{run.id}/metrics.parquet") == local_parquet
    assert _publish.publish_state(local, run.id, s3.uri) == "done"
    assert local_record(local, run.id)["capture_report"]["errors"] == []


FORKS = """
    import faulthandler, os, sys, time
    import reprolog
    run = reprolog.init(dir="parent", capture=False, publish_to="shared", publish_every=0.002)
    for step in range(20):
        run.log({"x": float(step)}, step=step)
    time.sleep(0.3)  # snapshots every 0.12 s: one may be in flight at a fork
    for k in range(8):
        pid = os.fork()
        if pid == 0:
            faulthandler.dump_traceback_later(30, exit=True)  # a hung child fails, loudly
            try:
                run.finish()  # the parent's run: not the child's to end or publish
                child = reprolog.init(dir=f"child-{k}", capture=False, publish_to="shared")
                child.log({"y": 1.0}, step=0)
                child.finish()  # pyarrow in the child: compaction, the index segment
                print("child", child.id, flush=True)
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert status == 0, status
        time.sleep(0.05)
    run.log({"x": 99.0}, step=99)
    run.finish()
    print("parent", run.id, flush=True)
"""


def test_a_forked_child_neither_ends_nor_publishes_the_parents_run_but_can_publish_its_own(
    tmp_path: Path, run_script: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    out = run_script(FORKS, cwd=tmp_path, check=True, timeout=120)
    lines = [line.split() for line in out.stdout.splitlines()]
    children = [run_id for who, run_id in lines if who == "child"]
    (parent,) = [run_id for who, run_id in lines if who == "parent"]
    assert len(children) == 8, out.stdout + out.stderr
    rows = listing(str(tmp_path / "shared"))
    assert rows[parent]["status"] == "completed"
    assert rows[parent]["metrics_summary"]["x"]["count"] == 21
    assert {rows[c]["status"] for c in children} == {"completed"}
    ids = {"parent": parent}
    assert local_record(tmp_path / "parent", ids["parent"])["capture_report"]["errors"] == []


# -- faults --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_server_killed_during_the_publish_loses_nothing_and_push_completes_it(
    own_servers: Callable[[], _s3.MotoServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = own_servers()
    point_env_at(monkeypatch, first.endpoint, tmp_path)
    bucket = f"reprolog-kill-{uuid.uuid4().hex[:12]}"
    _s3.s3_filesystem(first.endpoint).create_dir(bucket)
    uri = f"s3://{bucket}/store"
    local = tmp_path / "local"

    run = reprolog.init("big", dir=local, capture=False, publish_to=uri)
    for step in range(500):
        run.log({"loss": 1.0 / (step + 1), "acc": step / 500}, step=step)
    files = tmp_path / "ckpt"
    files.mkdir()
    for k in range(200):  # 200 blobs: the publish is many requests long
        (files / f"shard-{k:03d}.bin").write_bytes(os.urandom(32_000))
        run.log_artifact(files / f"shard-{k:03d}.bin", copy=True)
    run.wait()

    killed = threading.Event()
    proc = first.proc
    assert proc is not None

    def kill_at_the_first_blob_upload() -> None:
        deadline = time.monotonic() + 120
        needle = f'"PUT /{bucket}/store/blobs/'
        while time.monotonic() < deadline:
            if needle in first.log.read_text(errors="replace"):
                os.kill(proc.pid, signal.SIGKILL)  # a real signal, mid-publish
                killed.set()
                return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_at_the_first_blob_upload, daemon=True)
    killer.start()
    with caplog.at_level(logging.WARNING, logger="reprolog"):
        run.finish()  # the training code's call: no exception
    killer.join(5)
    assert killed.is_set(), "the server was not killed during the publish"
    assert proc.wait(10) == -signal.SIGKILL

    # Nothing lost locally: the run is whole and finished.
    assert run.status == "completed"
    local_run = reprolog.Store(local).run(run.id)
    assert local_run.status == "completed" and len(local_run.metrics()) == 1000
    record = local_record(local, run.id)
    assert len(record["artifacts"]) == 200
    errors = [e for e in record["capture_report"]["errors"] if e["what"] == "publish"]
    assert len(errors) == 1 and bucket in errors[0]["error"]
    # ... marked as not yet published, and said so in one warning line.
    assert _publish.publish_state(local, run.id, uri) == "pending"
    warnings = [r.getMessage() for r in caplog.records if "is not published" in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0] and f"push --to {uri}" in warnings[0]

    # moto keeps its data in memory: a new server, the bucket again, and `reprolog push`.
    second = own_servers()
    point_env_at(monkeypatch, second.endpoint, tmp_path)
    _s3.s3_filesystem(second.endpoint).create_dir(bucket)
    out = cli("push", "--dir", str(local), "--to", uri)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("pushed 1 run (")
    rows = listing(uri)
    assert list(rows) == [run.id] and rows[run.id]["status"] == "completed"
    assert _publish.publish_state(local, run.id, uri) == "done"
    remote = open_remote(uri)
    assert len(remote.sizes("blobs")) == 200
    assert remote_json(uri, f"runs/{run.id}/run.json") == local_record(local, run.id)


TRAINS = """
    import sys, time
    import reprolog
    run = reprolog.init("victim", dir="local", capture=False, publish_to=sys.argv[1],
                        publish_every=0.01)
    step = 0
    while True:
        run.log({"loss": 1.0 / (step + 1)}, step=step)
        step += 1
        if step == 40:
            print(run.id, flush=True)
        time.sleep(0.01)
"""


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_training_process_killed_by_a_signal_is_published(
    s3: _s3.S3, tmp_path: Path, sig: signal.Signals
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _dedent(TRAINS), s3.uri],
        cwd=tmp_path,
        env=script_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        assert run_id, proc.stderr.read() if proc.stderr else ""
        # A snapshot shows the live run before anything ends it.
        wait_for("a snapshot", lambda: listing(s3.uri).get(run_id, {}).get("status") == "running")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -sig
    assert "Traceback" not in err, err
    local = tmp_path / "local"
    if sig == signal.SIGTERM:  # the run ends `interrupted` in the process, and is published
        row = listing(s3.uri)[run_id]
        assert row["status"] == "interrupted"
        assert _publish.publish_state(local, run_id, s3.uri) == "done"
    else:  # kill -9: the snapshot is what others see, until `reprolog push` recovers it
        assert listing(s3.uri)[run_id]["status"] == "running"
        out = cli("push", "--dir", str(local), "--to", s3.uri)
        assert out.returncode == 0, out.stderr
        row = listing(s3.uri)[run_id]
        assert row["status"] == "crashed"
    count = row["metrics_summary"]["loss"]["count"]
    assert count >= 40 and count == len(reprolog.Store(local).run(run_id).metrics())


WRITER = """
    import sys, time
    from pathlib import Path
    import reprolog
    while not Path("go").exists():
        time.sleep(0.01)
    for k in range(int(sys.argv[2])):
        with reprolog.init(f"{sys.argv[1]}-{k}", dir=sys.argv[1], capture=False,
                           publish_to=sys.argv[3]) as run:
            for step in range(30):
                run.log({"loss": 1.0 / (step + 1 + k)}, step=step)
        print(run.id, flush=True)
"""


@pytest.mark.slow
def test_two_processes_publishing_into_one_bucket_at_once(s3: _s3.S3, tmp_path: Path) -> None:
    per_process = 12  # 24 segments: the index merges (MERGE_AT = 16) while both publish
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _dedent(WRITER), name, str(per_process), s3.uri],
            cwd=tmp_path,
            env=script_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    (tmp_path / "go").touch()
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert "not published" not in err, err
    ids = {i for out, _ in outputs for i in out.split()}
    assert len(ids) == 2 * per_process

    remote = open_remote(s3.uri)
    index = _remoteindex.read_index(remote)
    assert index is not None, "the index is unreadable"
    assert set(index) == ids and {r["status"] for r in index.values()} == {"completed"}
    assert set(listing(s3.uri)) == ids
    assert remote.sizes(_remoteindex.COMMITS), "no merge was committed"
    for name in ("a", "b"):
        for run_id in os.listdir(tmp_path / name / "runs"):
            assert _publish.publish_state(tmp_path / name, run_id, s3.uri) == "done"


def _dedent(code: str) -> str:
    import textwrap

    return textwrap.dedent(code)


def _finished_store(path: Path) -> Path:
    with reprolog.init(dir=path, capture=False) as run:
        run.log({"x": 1.0}, step=0)
    return path


def _one_clean_line(out: subprocess.CompletedProcess[str], bucket: str) -> str:
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert out.stderr.count("\n") == 1 and out.stderr.endswith("\n"), out.stderr
    assert f"'{bucket}'" in out.stderr and "Traceback" not in out.stderr
    for secret in (PLANTED_SECRET, "AKIAREPROLOGWRONG01"):
        assert secret not in out.stdout + out.stderr
    return out.stderr


def test_a_missing_bucket_is_one_clean_cli_line(s3: _s3.S3, tmp_path: Path) -> None:
    local = _finished_store(tmp_path / "local")
    bucket = f"reprolog-no-such-bucket-{uuid.uuid4().hex[:8]}"
    out = cli(
        "push", "--dir", str(local), "--to", f"s3://{bucket}/x",
        env={"AWS_SECRET_ACCESS_KEY": PLANTED_SECRET},
    )  # fmt: skip
    assert "does not exist" in _one_clean_line(out, bucket)


def test_wrong_credentials_are_one_clean_cli_line(
    own_servers: Callable[[], _s3.MotoServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # moto checks credentials after its first N requests: the bucket is made, then none pass.
    monkeypatch.setenv("INITIAL_NO_AUTH_ACTION_COUNT", "1")
    server = own_servers()
    point_env_at(monkeypatch, server.endpoint, tmp_path)
    bucket = f"reprolog-auth-{uuid.uuid4().hex[:12]}"
    _s3.S3(server.endpoint, bucket, "store", None).client().create_bucket(Bucket=bucket)
    local = _finished_store(tmp_path / "local")
    out = cli(
        "push", "--dir", str(local), "--to", f"s3://{bucket}/store",
        env={"AWS_ACCESS_KEY_ID": "AKIAREPROLOGWRONG01", "AWS_SECRET_ACCESS_KEY": PLANTED_SECRET},
    )  # fmt: skip
    assert "denied" in _one_clean_line(out, bucket)
