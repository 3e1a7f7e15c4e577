"""The run page's console endpoint, /runs/<ref>/console.json, in process."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import reprolog
from reprolog.ui import make_app
from tests.ui.conftest import XSS_NAME

starlette_testclient = pytest.importorskip("starlette.testclient")
TestClient = starlette_testclient.TestClient


@pytest.fixture(scope="module")
def console_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    store = tmp_path_factory.mktemp("console-ui")
    with reprolog.init("with-console", dir=store, console=True, capture=False) as run:
        for i in range(30):
            print(f"epoch {i} loss {1 / (i + 1):.4f}")
        print(f"warning: {XSS_NAME}", file=sys.stderr)
    return store, run.id


def test_console_json_pages_by_offset_and_tail(console_store: tuple[Path, str]) -> None:
    store, run_id = console_store
    with TestClient(make_app(store)) as client:
        body = client.get(f"/runs/{run_id}/console.json").json()
        assert body["live"] is False and body["skipped"] == 0
        assert [line[2] for line in body["lines"]][:2] == [
            "epoch 0 loss 1.0000",
            "epoch 1 loss 0.5000",
        ]
        assert body["lines"][-1][1:] == ["e", f"warning: {XSS_NAME}"]
        assert body["summary"]["lines"] == 31
        tail = client.get("/runs/with-console/console.json?tail=5").json()
        assert tail["skipped"] == 26 and len(tail["lines"]) == 5
        after = client.get(f"/runs/{run_id}/console.json?offset={body['offset']}").json()
        assert after["lines"] == [] and after["offset"] == body["offset"]
        for bad in ("offset=-1", "tail=0", "tail=x"):
            r = client.get(f"/runs/{run_id}/console.json?{bad}")
            assert r.status_code == 400, bad
        assert client.get("/runs/nope/console.json").status_code == 404


def test_a_run_without_console_answers_no_lines(tmp_path: Path) -> None:
    with reprolog.init(dir=tmp_path, capture=False) as run:
        run.log({"x": 1.0}, step=0)
    with TestClient(make_app(tmp_path)) as client:
        body = client.get(f"/runs/{run.id}/console.json").json()
    assert body["lines"] == [] and body["summary"] is None
