"""Reading a store at a URI: `Store("s3://...")`, `reprolog --dir s3://... ls`, `reprolog ui`.

Against moto's S3 server as a real process on loopback (`tests._s3.MotoServer`, whose
request log lets a test count GETs); runs are made with the public API and published with
`reprolog push`'s library call. The read-through cache lives in a tmp `$REPROLOG_CACHE_DIR`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import reprolog
from reprolog._storage import _publish
from tests import test_remote
from tests._s3 import MotoServer
from tests.test_remote import (
    SECRET_KEY,
    build_runs,
    cli,
    make_bucket,
    s3_env,
    started,
)

pytest.importorskip("boto3")
pytest.importorskip("moto")

QUERY = "SELECT run_id, key, min(value) AS low FROM metrics GROUP BY ALL ORDER BY ALL"


moto = test_remote.moto  # this module's own loopback server (module scope)


@pytest.fixture
def s3(moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A fresh bucket, the AWS_* environment pointing at it, and a fresh cache folder."""
    for key, value in s3_env(moto.endpoint).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("REPROLOG_CACHE_DIR", str(tmp_path / "cache"))
    return f"s3://{make_bucket(moto.endpoint)}/team"


@pytest.fixture
def published(s3: str, tmp_path: Path) -> tuple[str, Path, list[str]]:
    """Three finished runs (one with an artifact) in a local store, pushed to the bucket."""
    blob = tmp_path / "weights.bin"
    blob.write_bytes(os.urandom(10_000))
    local = tmp_path / "local"
    ids = build_runs(local, 3, artifact=blob)
    assert sorted(_publish.push(local, s3).done) == sorted(ids)
    return s3, local, ids


def gets(moto: MotoServer, pattern: str) -> int:
    """GET requests the server logged whose line matches `pattern`."""
    lines = moto.log.read_text(errors="replace").splitlines()
    return sum('"GET ' in line and re.search(pattern, line) is not None for line in lines)


def test_listing_equals_the_local_store_and_reads_no_run(
    published: tuple[str, Path, list[str]], moto: MotoServer
) -> None:
    import pandas as pd

    uri, local, ids = published
    before = gets(moto, r"/runs/")
    store = reprolog.Store(uri)
    remote = store.runs()
    pd.testing.assert_frame_equal(
        remote.reset_index(drop=True), reprolog.Store(local).runs().reset_index(drop=True)
    )
    assert sorted(store.run_ids()) == sorted(ids)
    assert gets(moto, r"/runs/") == before  # no run.json, summary.json or metrics read
    assert store.read_only and store.uri == uri and repr(store) == f"Store({uri!r})"
    assert store.dir.is_relative_to(Path(os.environ["REPROLOG_CACHE_DIR"]) / "stores")


def test_run_metrics_sql_and_diff_equal_the_local_store(
    published: tuple[str, Path, list[str]],
) -> None:
    import pandas as pd

    uri, local, ids = published
    store, here = reprolog.Store(uri), reprolog.Store(local)
    for run_id in ids:
        got, want = store.run(run_id[:12]), here.run(run_id)
        assert got.raw == want.raw
        pd.testing.assert_frame_equal(got.metrics(), want.metrics())
    assert store.run("r1").id == ids[1]  # a name resolves through the index
    fresh = reprolog.Store(uri)  # a new Store: the SQL views fetch what they need
    pd.testing.assert_frame_equal(fresh.sql(QUERY), here.sql(QUERY))
    pd.testing.assert_frame_equal(
        fresh.sql("SELECT run_id, name, sha256 FROM artifacts"),
        here.sql("SELECT run_id, name, sha256 FROM artifacts"),
    )
    pd.testing.assert_frame_equal(
        fresh.metrics(keys="loss"), here.metrics(keys="loss"), check_categorical=False
    )
    d = reprolog.diff(ids[0], ids[1], store=fresh)
    assert d.differs and d.metric("loss") is not None


def test_a_republished_run_is_fetched_again(s3: str, tmp_path: Path) -> None:
    local = tmp_path / "local"
    run = reprolog.init(dir=local, name="live", capture=False)
    for step in range(10):
        run.log({"loss": 1.0 / (step + 1)}, step=step)
    _publish.publish_snapshot(local, run.id, s3)
    store = reprolog.Store(uri := s3)
    snap = store.run(run.id)
    assert snap.status == "running" and len(snap.metrics()) == 10
    for step in range(10, 30):
        run.log({"loss": 1.0 / (step + 1)}, step=step)
    run.finish()
    _publish.publish_run(local, run.id, uri)
    # The same Store, its listing still the snapshot's: a running row is checked each read.
    again = store.run(run.id)
    assert again.status == "completed" and len(again.metrics()) == 30
    fresh = reprolog.Store(uri)
    assert fresh.runs()["status"].tolist() == ["completed"]
    assert fresh.sql("SELECT count(*) AS n FROM metrics")["n"].tolist() == [30]


def test_read_only_false_and_write_commands_are_refused(
    published: tuple[str, Path, list[str]],
) -> None:
    uri, _, _ = published
    with pytest.raises(reprolog.ArgumentError, match=r"read-only here.*reprolog push"):
        reprolog.Store(uri, read_only=False)
    out = cli("--dir", uri, "gc", "--dry-run")
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "read-only here" in out.stderr
    with pytest.raises(reprolog.ArgumentError, match="read-only"):
        from reprolog._store._gc import collect

        collect(reprolog.Store(uri))
    # reproduce() of a record read from a URI needs a local store for the re-run
    record = reprolog.Store(uri).run(published[2][0])
    with pytest.raises(reprolog.ArgumentError, match="pass store= a local store"):
        reprolog.reproduce(record, dry_run=True)


def test_cli_ls_show_sql_and_diff_on_a_uri(published: tuple[str, Path, list[str]]) -> None:
    uri, _, ids = published
    ls = cli("--dir", uri, "ls", "--json")
    assert ls.returncode == 0, ls.stderr
    assert sorted(row["id"] for row in json.loads(ls.stdout)) == sorted(ids)
    table = cli("--dir", uri, "ls")
    assert table.returncode == 0 and all(f"r{k}" in table.stdout for k in range(3))
    show = cli("--dir", uri, "show", "r2")
    assert show.returncode == 0 and ids[2] in show.stdout
    sql = cli("--dir", uri, "sql", "SELECT count(*) AS n FROM metrics", "--json")
    assert sql.returncode == 0 and json.loads(sql.stdout) == [{"n": 3 * 40}]
    diff = cli("--dir", uri, "diff", "r0", "r1")
    assert diff.returncode == 1, diff.stderr  # they differ
    assert "Traceback" not in diff.stderr
    # $REPROLOG_DIR may name the store at a URI too (writers refuse it: a live run is local)
    by_env = cli("ls", "--json", env={"REPROLOG_DIR": uri})
    assert by_env.returncode == 0, by_env.stderr
    assert sorted(row["id"] for row in json.loads(by_env.stdout)) == sorted(ids)


def test_a_missing_bucket_or_store_is_one_line_and_exit_2(
    published: tuple[str, Path, list[str]], moto: MotoServer
) -> None:
    uri, _, _ = published
    from reprolog._errors import RemoteStoreError

    with pytest.raises(RemoteStoreError, match="bucket 'no-such-bucket-reprolog' does not exist"):
        reprolog.Store("s3://no-such-bucket-reprolog/x")
    out = cli("--dir", "s3://no-such-bucket-reprolog/x", "ls")
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "does not exist" in out.stderr
    empty = cli("--dir", uri + "-nothing-here", "ls")
    assert empty.returncode == 2 and "no reprolog store" in empty.stderr
    ui = cli("ui", "--no-open", "--dir", "s3://no-such-bucket-reprolog/x")
    assert ui.returncode == 2 and ui.stderr.count("\n") == 1, ui.stderr
    assert SECRET_KEY not in out.stderr + ui.stderr + empty.stderr


def _ui(uri: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "reprolog._cli", "ui", "--no-open", "--dir", uri],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "BROWSER": "false"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().rstrip("\n")
    match = re.match(r"^reprolog ui: serving (.+) at (http://\S+)$", line)
    if not match:
        proc.kill()
        raise AssertionError((line, proc.communicate(timeout=30)))
    assert match.group(1) == uri
    return proc, match.group(2)


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=60) as resp:
        return json.loads(resp.read())


def test_ui_serves_a_store_at_a_uri(published: tuple[str, Path, list[str]]) -> None:
    uri, _, ids = published
    proc, url = _ui(uri)
    try:
        body = _get(url + "runs.json")
        assert body["total"] == 3 and sorted(body["data"]["id"]) == sorted(ids)
        run = _get(url + f"runs/{ids[0][:10]}.json")
        assert run["run"]["id"] == ids[0]
        assert {m["key"] for m in run["metrics"]} == {"loss", "acc"}
        series = _get(url + f"series.json?runs={ids[0]}&keys=loss")
        assert series and "Traceback" not in json.dumps(series)
        compare = _get(url + f"compare.json?runs={ids[0]},{ids[1]}")
        assert [r["id"] for r in compare["runs"]] == [ids[0], ids[1]]
    finally:
        proc.kill()
        proc.communicate(timeout=30)


def test_a_shared_folder_uri_is_a_local_store(tmp_path: Path) -> None:
    local = tmp_path / "local"
    ids = build_runs(local, 2)
    for given in (f"file://{local}", str(local)):
        store = reprolog.Store(given)
        assert store.uri is None and store.dir == local.resolve()
        assert sorted(store.runs()["id"]) == sorted(ids)
    shared = tmp_path / "shared"
    _publish.push(local, f"file://{shared}")
    assert sorted(reprolog.Store(f"file://{shared}").runs()["id"]) == sorted(ids)
    out = cli("--dir", f"file://{shared}", "ls", "--json")
    assert out.returncode == 0, out.stderr
    assert sorted(r["id"] for r in json.loads(out.stdout)) == sorted(ids)


def test_credentials_in_the_uri_never_show(published: tuple[str, Path, list[str]]) -> None:
    uri, _, ids = published
    planted = "reprolog-uri-secret-Vb71Qe"
    with_secret = uri.replace("s3://", f"s3://AKIAREPROLOGURI01:{planted}@")
    store = reprolog.Store(with_secret)
    assert sorted(store.runs()["id"]) == sorted(ids)
    assert store.uri == uri and planted not in repr(store) + str(store.dir)
    assert store.run(ids[0]).id == ids[0]
    out = cli("--dir", with_secret + "-elsewhere", "ls")
    missing = cli("--dir", with_secret.replace(uri.split("/")[2], "no-such-bucket-rl"), "ls")
    for result in (out, missing):
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert planted not in result.stdout + result.stderr


def test_bad_credentials_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # moto checks signatures once told to (INITIAL_NO_AUTH_ACTION_COUNT=0): no key is known.
    server = started(tmp_path / "auth.log", env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    try:
        for key, value in s3_env(server.endpoint).items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("REPROLOG_CACHE_DIR", str(tmp_path / "cache"))
        from reprolog._errors import RemoteStoreError

        with pytest.raises(RemoteStoreError, match="denied: check the credentials") as info:
            reprolog.Store("s3://some-bucket/team")
        assert "\n" not in str(info.value) and SECRET_KEY not in str(info.value)
        out = cli("--dir", "s3://some-bucket/team", "ls")
        assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
        assert "denied" in out.stderr and SECRET_KEY not in out.stderr
    finally:
        server.kill()
