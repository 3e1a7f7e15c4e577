"""Every JSON endpoint of the contract, in process, over the fixture store (and its errors)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from reprolog.ui import make_app


@pytest.fixture(scope="module")
def client(ui_store: Path) -> Iterator[TestClient]:
    with TestClient(make_app(ui_store)) as c:
        yield c


def _ok(client: TestClient, url: str) -> Any:
    r = client.get(url)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["cache-control"] == "no-store"
    return r.json()


def test_runs_json_lists_every_run_newest_first(client: TestClient, ui_ids: dict[str, str]) -> None:
    body = _ok(client, "/runs.json")
    assert body["total"] == body["count"] == len(ui_ids)
    ids = body["data"]["id"]
    assert ids == sorted(ui_ids.values(), reverse=True)
    names = {c["name"]: c for c in body["columns"]}
    assert names["start"]["type"] == "time" and names["params.lr"]["type"] == "num"
    assert names["params.lr"]["varies"] is True
    assert "metrics.train/loss.last" in names and "params.lr" in body["default_columns"]
    status = dict(zip(ids, body["data"]["status"], strict=True))
    assert status[ui_ids["failed"]] == "failed"
    assert status[ui_ids["crashed"]] == "crashed"  # shown crashed, not recovered (see security)
    assert body["error"] is None and isinstance(body["elapsed_ms"], float)
    assert all(len(v) == len(ids) for v in body["data"].values())


def test_runs_json_where_filters_and_a_bad_predicate_is_400(
    client: TestClient, ui_ids: dict[str, str]
) -> None:
    body = _ok(client, '/runs.json?where="params.lr" = 0.1')
    assert set(body["data"]["id"]) == {ui_ids["numpy_b"], ui_ids["xss"]}
    assert body["count"] == 2 and body["total"] == len(ui_ids)
    r = client.get("/runs.json?where=nosuchcolumn > 1")
    assert r.status_code == 400
    bad = r.json()
    assert "nosuchcolumn" in bad["error"] and bad["data"]["id"] == [] and bad["count"] == 0
    r = client.get("/runs.json?where=id IN (SELECT * FROM read_text('/etc/passwd'))")
    assert r.status_code == 400 and "root:" not in r.text


@pytest.mark.parametrize("ref", ["full", "prefix", "name"])
def test_run_json_by_id_prefix_or_name(
    client: TestClient, ui_ids: dict[str, str], ref: str
) -> None:
    run_id = ui_ids["artifacts"]
    url = {"full": run_id, "prefix": run_id[:20], "name": "with-artifacts"}[ref]
    body = _ok(client, f"/runs/{url}.json")
    assert body["run"]["id"] == run_id and body["run"]["live"] is False
    assert body["params"]["layers"] == 3 and body["tags"]["team"] == "vision"
    assert "diff" not in body["sections"]["code"]
    assert all("content" not in e for e in body["sections"]["code"]["untracked"].values())
    assert body["highlights"]["python"] and "numpy" in body["highlights"]["packages"]
    keys = [m["key"] for m in body["metrics"]]
    assert keys == sorted(keys) == ["train/loss", "val/acc"]
    loss = body["metrics"][0]
    assert loss["count"] == 40 and loss["last_step"] == 39
    assert body["patch_url"] == f"/runs/{run_id}/patch"
    arts = body["artifacts"]
    assert [a["kind"] for a in arts] == ["file", "file", "checkpoint", "checkpoint"]
    assert arts[2]["checkpoint"] == {
        "best": True, "last": True, "deleted": False, "score": 0.91, "monitor": "val/acc"
    }  # fmt: skip
    assert arts[0]["checkpoint"] is None and arts[0]["url"].endswith("/artifacts/a1")
    assert arts[3]["url"] is None  # a folder


def test_run_json_of_failed_and_crashed_runs(client: TestClient, ui_ids: dict[str, str]) -> None:
    failed = _ok(client, f"/runs/{ui_ids['failed']}.json")
    assert failed["run"]["status"] == "failed"
    assert failed["run"]["error"]["type"] == "ValueError"
    crashed = _ok(client, f"/runs/{ui_ids['crashed']}.json")
    assert crashed["run"]["status"] == "crashed" and crashed["run"]["end"] is not None
    assert crashed["metrics"][0]["count"] == 50  # read from its log


def test_patch_and_artifact_download(client: TestClient, ui_ids: dict[str, str]) -> None:
    run_id = ui_ids["artifacts"]
    r = client.get(f"/runs/{run_id}/patch")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert "print('v2')" in r.text and "notes.txt" in r.text
    for art in ("a1", "a2"):  # the blob copy, then the recorded path
        r = client.get(f"/runs/{run_id}/artifacts/{art}")
        assert r.status_code == 200, r.text
        assert r.content == b"id,label\n1,0\n2,1\n"
        assert r.headers["content-disposition"].startswith("attachment")
    assert client.get(f"/runs/{run_id}/artifacts/a3").content == bytes(range(256)) * 8
    assert client.get(f"/runs/{run_id}/artifacts/a4").status_code == 404  # folder
    assert client.get(f"/runs/{run_id}/artifacts/a99").status_code == 404
    r = client.get(f"/runs/{ui_ids['failed']}/patch")  # not run in a git repository
    assert r.status_code == 404 and "git" in r.json()["error"]


def test_series_whole_and_downsampled(client: TestClient, ui_ids: dict[str, str]) -> None:
    a, b = ui_ids["numpy_a"], ui_ids["numpy_b"]
    body = _ok(client, f"/series.json?runs={a},{b}&keys=train/loss,train/acc")
    assert body["x"] == "step" and body["range"] == [0, 160]
    by = {(s["run"], s["key"]): s for s in body["series"]}
    loss = by[(a, "train/loss")]
    assert loss["points"] == 160 and not loss["downsampled"] and loss["x"] == list(range(160))
    assert loss["min"] == loss["max"] == loss["last"]
    small = _ok(client, f"/series.json?runs={a}&keys=train/loss&width=10")["series"][0]
    assert small["downsampled"] and len(small["x"]) == 10
    whole = loss["last"]
    assert small["max"][0] == max(whole[:16]) and small["min"][0] == min(whole[:16])
    assert small["last"][-1] == whole[-1] and small["x"][-1] == 159
    zoom = _ok(client, f"/series.json?runs={a}&keys=train/loss&xmin=10&xmax=19")
    assert zoom["series"][0]["x"] == list(range(10, 20))
    t = _ok(client, f"/series.json?runs={a}&keys=train/loss&x=time")["series"][0]
    assert t["x"][0] > 1e9
    e = _ok(client, f"/series.json?runs={a}&keys=train/loss&x=epoch&width=20")["series"][0]
    assert e["x"] == list(range(20))


def test_series_groups_cover_every_run(client: TestClient, ui_ids: dict[str, str]) -> None:
    a, b, f = ui_ids["numpy_a"], ui_ids["numpy_b"], ui_ids["failed"]
    body = _ok(client, f"/series.json?runs={a},{b},{f}&keys=train/loss&group=experiment")
    groups = {g["group"]: g for g in body["groups"]}
    numpy = groups["numpy-logreg"]
    assert sorted(numpy["runs"]) == sorted([a, b])
    sa = next(s for s in body["series"] if s["run"] == a)["last"]
    sb = next(s for s in body["series"] if s["run"] == b)["last"]
    assert numpy["mean"][5] == pytest.approx((sa[5] + sb[5]) / 2)
    assert numpy["min"][5] == min(sa[5], sb[5]) and numpy["max"][5] == max(sa[5], sb[5])
    assert groups["ui"]["runs"] == [f]


def test_compare_two_runs_has_a_diff(client: TestClient, ui_ids: dict[str, str]) -> None:
    a, b = ui_ids["numpy_a"], ui_ids["numpy_b"]
    body = _ok(client, f"/compare.json?runs={a},{b[:12]}")
    assert [r["id"] for r in body["runs"]] == [a, b]
    assert "lr" in body["params"]["differ"] and "epochs" not in body["params"]["differ"]
    assert body["params"]["values"][a]["lr"] == 0.5
    assert body["metric_keys"] == ["train/acc", "train/loss"]
    d = body["diff"]
    assert d["differs"] and "lr" in d["most_likely_cause"]
    verdicts = {v["key"]: v for v in d["verdicts"]}
    assert verdicts["train/loss"]["verdict"].startswith("diverged at step")
    assert d["first_divergent_step"] is not None
    many = _ok(client, "/compare.json?runs=" + ",".join(ui_ids.values()))
    assert many["diff"] is None and len(many["runs"]) == len(ui_ids)


@pytest.mark.parametrize(
    ("url", "status", "says"),
    [
        ("/runs/nosuchrun.json", 404, "no run matches"),
        ("/runs/01.json", 400, "matches"),  # ambiguous prefix
        ("/compare.json?runs=onlyone", 400, "2 to 50"),
        ("/series.json?runs=&keys=x", 400, "needs runs"),
        ("/series.json?runs=with-artifacts&keys=val/acc&x=wall", 400, "x must be"),
        ("/series.json?runs=with-artifacts&keys=val/acc&width=0", 400, "width"),
        ("/series.json?runs=with-artifacts&keys=val/acc&width=abc", 400, "width"),
        ("/series.json?runs=with-artifacts&keys=val/acc&xmin=zz", 400, "xmin"),
        ("/series.json?runs=with-artifacts&keys=val/acc&group=bogus", 400, "group"),
        ("/no/such/page", 404, "no such page"),
    ],
)
def test_errors_are_one_line_json(client: TestClient, url: str, status: int, says: str) -> None:
    r = client.get(url)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert says in r.json()["error"] and "\n" not in r.json()["error"]


@pytest.mark.parametrize(
    ("url", "shell"),
    [
        ("/", "runs.html"),
        ("/runs/with-artifacts", "run.html"),
        ("/compare?runs=a,b", "compare.html"),
    ],
)
def test_pages_are_the_static_shells(client: TestClient, url: str, shell: str) -> None:
    r = client.get(url)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    static = Path(__file__).parents[2] / "src" / "reprolog" / "_ui" / "static" / shell
    assert r.content == static.read_bytes()
    assert client.get("/static/vendor/uPlot.min.css").status_code == 200


def test_runs_json_where_is_kept_only_while_nothing_changes(tmp_path: Path) -> None:
    import reprolog

    root = tmp_path / ".reprolog"
    for lr in (0.1, 0.2):
        reprolog.init(f"lr{lr}", dir=root, capture=False, params={"lr": lr}).finish()
    where = '/runs.json?where="params.lr" < 0.5'
    with TestClient(make_app(root)) as c:
        assert _ok(c, where)["count"] == 2
        assert _ok(c, where)["count"] == 2  # the kept body
        added = reprolog.init("lr0.3", dir=root, capture=False, params={"lr": 0.3})
        try:  # a new run shows, and a live one's row follows its status
            body = _ok(c, where)
            assert body["count"] == 3
            assert (
                dict(zip(body["data"]["id"], body["data"]["status"], strict=True))[added.id]
                == "running"
            )
            assert _ok(c, where)["count"] == 3
        finally:
            added.finish("failed")
        body = _ok(c, where)
        assert (
            dict(zip(body["data"]["id"], body["data"]["status"], strict=True))[added.id] == "failed"
        )
        assert _ok(c, '/runs.json?where="params.lr" > 0.25')["count"] == 1
        again = _ok(c, where)
        assert {**again, "elapsed_ms": 0} == {**body, "elapsed_ms": 0}
        r = c.get("/runs.json?where=nosuch > 1")
        assert r.status_code == 400 and c.get("/runs.json?where=nosuch > 1").status_code == 400
