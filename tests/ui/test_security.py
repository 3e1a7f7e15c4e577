"""The UI serves nothing outside the store, needs its token off loopback, escapes nothing
itself (JSON only), sends its CSP everywhere, and never writes to the store."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from reprolog._ui._security import CSP, Refused, safe_join
from reprolog.ui import make_app
from tests.ui.conftest import XSS_NAME, copy_store, make_crashed_run


def _raw_get(base: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET `path` byte for byte (no client-side normalisation of `..` or escapes)."""
    host, port = urllib.parse.urlsplit(base).netloc.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize(
    "path",
    [
        "/static/../../../../etc/passwd",
        "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/static/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/static/%252e%252e%252f%252e%252e%252fetc%252fpasswd",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/..%5c..%5cetc%5cpasswd",
        "/static/js/%00.js",
        "/runs/..%2f..%2f..%2fetc/patch",
        "/runs/%2e%2e.json",
        "/runs/with-artifacts/artifacts/..%2f..%2f..%2fetc%2fpasswd",
        "/runs/with-artifacts/artifacts/%2fetc%2fpasswd",
        "/runs/with-artifacts/artifacts/%252e%252e%252frun.json",
    ],
)
def test_traversal_is_refused(ui_server: str, path: str) -> None:
    status, headers, body = _raw_get(ui_server, path)
    assert status in (403, 404), (path, status)
    assert b"root:" not in body and b"format_version" not in body
    assert headers["content-security-policy"] == CSP


def test_safe_join_refuses_symlinks_out(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "ok.txt").write_text("ok")
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (root / "link.txt").symlink_to(outside)
    (root / "linkdir").symlink_to(tmp_path)
    assert safe_join(root, "sub/ok.txt").read_text() == "ok"
    for rel, status in [("link.txt", 403), ("linkdir/secret.txt", 403), ("../secret.txt", 403),
                        ("/etc/passwd", 403), ("sub/../../secret.txt", 403), ("nope", 404),
                        ("sub", 404)]:  # fmt: skip
        with pytest.raises(Refused) as info:
            safe_join(root, rel)
        assert info.value.status == status, rel


def test_artifact_symlinked_out_of_the_store_is_refused(
    ui_store: Path, ui_ids: dict[str, str], tmp_path: Path
) -> None:
    store = copy_store(ui_store, tmp_path / "store")
    record = json.loads((store / "runs" / ui_ids["artifacts"] / "run.json").read_text())
    blob = store / record["artifacts"][0]["blob"]
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    blob.unlink()
    blob.symlink_to(secret)
    with TestClient(make_app(store)) as client:
        r = client.get(f"/runs/{ui_ids['artifacts']}/artifacts/a1")
        assert r.status_code == 403 and "top secret" not in r.text
        body = client.get(f"/runs/{ui_ids['artifacts']}.json").json()
        assert body["artifacts"][0]["url"] is None


def test_recorded_artifact_path_replaced_by_a_symlink_is_refused(tmp_path: Path) -> None:
    import reprolog

    target = tmp_path / "model.bin"
    target.write_bytes(b"weights")
    with reprolog.init("art", dir=tmp_path / "store", capture=False) as run:
        run.log_artifact(target)
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"secret!")  # same size: only the symlink check stops it
    target.unlink()
    target.symlink_to(secret)
    with TestClient(make_app(tmp_path / "store")) as client:
        r = client.get("/runs/art/artifacts/a1")
        assert r.status_code == 403 and b"secret" not in r.content


def test_token_required_off_loopback(ui_store: Path) -> None:
    with TestClient(make_app(ui_store, token="s3cret-token")) as client:
        for url in ("/", "/runs.json", "/static/css/ui.css", "/runs.json?token=wrong"):
            r = client.get(url)
            assert r.status_code == 403, url
            assert r.headers["content-security-policy"] == CSP
            assert "error" in r.json()
        r = client.get("/runs.json?token=s3cret-token")
        assert r.status_code == 200
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("reprolog_token=s3cret-token;")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert client.get("/runs.json").status_code == 200  # the cookie is enough now
    with TestClient(make_app(ui_store, token="s3cret-token")) as other:
        other.cookies.set("reprolog_token", "forged")
        assert other.get("/runs.json").status_code == 403


@pytest.mark.parametrize(
    "url",
    ["/", "/runs.json", "/runs/with-artifacts", "/static/css/ui.css", "/nope", "/runs/x.json"],
)
def test_csp_and_headers_on_every_response(ui_store: Path, url: str) -> None:
    with TestClient(make_app(ui_store)) as client:
        r = client.get(url)
    assert r.headers["content-security-policy"] == CSP
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"


def test_xss_named_run_comes_back_as_a_plain_json_string(
    ui_store: Path, ui_ids: dict[str, str]
) -> None:
    with TestClient(make_app(ui_store)) as client:
        runs = client.get("/runs.json")
        assert runs.headers["content-type"] == "application/json"
        data = runs.json()["data"]
        assert XSS_NAME in data["name"] and "<b>exp</b>" in data["experiment"]
        r = client.get("/runs/" + urllib.parse.quote(XSS_NAME, safe="") + ".json")
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        body = r.json()
        assert body["run"]["name"] == XSS_NAME and body["run"]["id"] == ui_ids["xss"]
        assert body["params"]["note"] == "<script>alert(1)</script>"
        assert body["metrics"][0]["key"] == "<svg onload=alert(1)>"


def _fingerprint(store: Path) -> dict[str, tuple[int, int, str]]:
    out = {}
    for folder, dirs, files in os.walk(store):
        for name in dirs + files:
            path = Path(folder) / name
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
            out[str(path.relative_to(store))] = (st.st_size, st.st_mtime_ns, digest)
    return out


@pytest.fixture
def probe_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    import secrets

    value = "probe-" + secrets.token_hex(12)  # made here: no recorded source holds it
    monkeypatch.setenv("UI_SERVER_PROBE", value)
    yield value


def test_viewing_every_endpoint_changes_nothing_in_the_store(
    ui_store: Path, ui_ids: dict[str, str], tmp_path: Path, probe_env: str
) -> None:
    store = copy_store(ui_store, tmp_path / "store")
    crashed = make_crashed_run(store, tmp_path)
    (store / "index" / "runs.parquet").unlink(missing_ok=True)  # listing must not rebuild it
    before = _fingerprint(store)
    ids = [*ui_ids.values(), crashed]
    a, b = ui_ids["numpy_a"], crashed
    urls = [
        "/",
        "/compare?runs=" + ",".join(ids),
        "/runs.json",
        "/runs.json?where=status = 'crashed'",
    ]
    for run_id in ids:
        urls += [f"/runs/{run_id}", f"/runs/{run_id}.json", f"/runs/{run_id}/patch"]
        urls += [f"/runs/{run_id}/artifacts/a{i}" for i in range(1, 5)]
        urls.append(f"/series.json?runs={run_id}&keys=train/loss,val/acc&x=time&group=params.lr")
    urls += [f"/compare.json?runs={a},{b}", "/compare.json?runs=" + ",".join(ids)]
    urls += [f"/series.json?runs={','.join(ids)}&keys=train/loss&width=7&group=experiment"]
    with TestClient(make_app(store)) as client:
        for url in urls:
            r = client.get(url)
            assert r.status_code < 500, (url, r.text)
            assert probe_env not in r.text, url  # nothing of the server's environment
            if url.endswith(f"{crashed}.json"):
                assert r.json()["run"]["status"] == "crashed"
    assert _fingerprint(store) == before
    on_disk = json.loads((store / "runs" / crashed / "run.json").read_text())
    assert on_disk["status"] == "running" and (store / "runs" / crashed / "log").is_dir()
