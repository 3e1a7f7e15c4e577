"""The pages of `reprolog ui` in a real browser (Debian's Chromium, Playwright) on the real server.

Every test watches its page: a console error, a page error, a dialog (an XSS payload firing) or a
request to any host but loopback fails it. Full-page screenshots land in tests/ui/screenshots/.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

import reprolog
from reprolog._storage._compact import summary_row
from reprolog._storage._ids import new_run_id
from reprolog._storage._layout import StoreLayout
from reprolog._storage._recordfile import read_json, write_json_atomic
from tests.ui.conftest import LOOPBACK, WAIT_MS, XSS_NAME, _serve

sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.xdist_group("browser")

SHOTS = Path(__file__).parent / "screenshots"


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.wait_for_timeout(150)  # let uPlot paint after its last resize
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def wait_until(page: Any, script: str, arg: Any = None) -> Any:
    """Poll `script` (a JS function of `arg`) until it returns something truthy.

    Playwright's wait_for_function evaluates its predicate with eval(), which the pages' CSP
    (script-src 'self') rightly refuses; page.evaluate goes through the debugger protocol.
    """
    deadline = time.monotonic() + WAIT_MS / 1000
    while True:
        value = page.evaluate(script, arg)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {WAIT_MS} ms: {script}")
        page.wait_for_timeout(100)


def open_page(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_load_state("networkidle")


def wait_rows(page: Any) -> Any:
    page.locator(".vt-row").first.wait_for()
    return page.locator(".vt-row")


def row_for(page: Any, run_id: str) -> Any:
    return page.locator(".vt-row", has=page.locator(f'a[href="/runs/{run_id}"]'))


def charts_drawn(page: Any, count: int) -> None:
    """Wait until `count` chart canvases exist and each has drawn a coloured line.

    Axes and grid are grey; a series is drawn in a palette colour, so a pixel whose channels
    differ a lot means a curve was painted, not just an empty frame. Charts mount when they
    come near the viewport, so the charts section is scrolled into view first.
    """
    page.locator("#metrics").first.scroll_into_view_if_needed()
    wait_until(
        page,
        """n => {
            const canvases = [...document.querySelectorAll('.chart-card canvas')];
            if (canvases.length < n) return false;
            return canvases.every(c => {
                if (!c.width || !c.height) return false;
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                for (let i = 0; i < d.length; i += 4) {
                    const hi = Math.max(d[i], d[i + 1], d[i + 2]);
                    const lo = Math.min(d[i], d[i + 1], d[i + 2]);
                    if (d[i + 3] > 128 && hi - lo > 60) return true;
                }
                return false;
            });
        }""",
        count,
    )


# ---------------------------------------------------------------------------- stores


@pytest.fixture(scope="session")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """serve(store) -> base URL of the real ui app on that store (one server per store)."""
    from reprolog.ui import make_app

    servers: list[Iterator[str]] = []

    def start(store: Path) -> str:
        gen = _serve(make_app(store))
        servers.append(gen)
        return next(gen)

    yield start
    for gen in servers:
        with pytest.raises(StopIteration):
            next(gen)


@pytest.fixture(scope="session")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10,000 runs: 20 recorded by `reprolog.init`, then cloned under new ids and names.

    Recording 10,000 runs takes about 12 ms each here (two minutes); the clones are the same
    documented files (run.json, summary.json, metrics.parquet) with a new id, name and lr.
    """
    store = tmp_path_factory.mktemp("big") / "store"
    templates = []
    for i in range(20):
        run = reprolog.init(
            f"seed-{i}",
            experiment="sweep",
            dir=store,
            capture=False,
            params={"lr": 10 ** -(1 + i % 4), "batch": 32 * (1 + i % 2)},
        )
        for step in range(5):
            run.log({"loss": 1.0 / (step + 1 + i), "acc": step / 5}, step=step)
        run.finish()
        templates.append(run.dir)
    runs = store / "runs"
    for n in range(10_000 - len(templates)):
        src = templates[n % len(templates)]
        record = read_json(src / "run.json")
        run_id = new_run_id()
        start = record["start_time"] - 60.0 * (n + 1)  # one a minute, going back
        record.update(id=run_id, name=f"sweep-{n:05d}", start_time=start)
        record["end_time"] = start + 30.0 + n % 300
        record["params"] = {**record["params"], "lr": round(1e-4 * (1 + n % 997), 7)}
        dst = runs / run_id
        dst.mkdir()
        os.link(src / "metrics.parquet", dst / "metrics.parquet")
        write_json_atomic(dst / "run.json", record)
        write_json_atomic(dst / "summary.json", summary_row(record))
    return store


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("empty") / "store"
    StoreLayout(store).ensure()
    return store


# ---------------------------------------------------------------------------- runs page


def test_runs_page_lists_runs_and_filters(
    page: Any, ui_server: str, ui_ids: dict[str, str]
) -> None:
    open_page(page, ui_server + "/")
    rows = wait_rows(page)
    listed = page.request.get(ui_server + "/runs.json").json()
    assert rows.count() == listed["total"] == len(listed["data"]["id"])
    for role in ("failed", "artifacts", "sklearn", "numpy_a"):
        assert row_for(page, ui_ids[role]).count() == 1, role
    assert page.get_by_text("failing-run", exact=True).is_visible()
    assert page.locator(".counts").inner_text().startswith(f"{listed['total']} runs")
    shot(page, "runs")

    page.fill("input[name=where]", "name = 'failing-run'")
    page.press("input[name=where]", "Enter")
    wait_until(page, "() => document.querySelectorAll('.vt-row').length === 1")
    assert row_for(page, ui_ids["failed"]).count() == 1
    assert page.locator(".counts").inner_text().startswith(f"1 of {listed['total']}")
    assert "where=name" in page.url  # the view is bookmarkable

    # The bookmarked URL gives the same view.
    open_page(page, page.url)
    wait_until(page, "() => document.querySelectorAll('.vt-row').length === 1")
    assert page.input_value("input[name=where]") == "name = 'failing-run'"


def test_bad_filter_shows_the_duckdb_error_inline(page: Any, ui_server: str) -> None:
    page.watch.allowed_status.add(400)
    where = "no_such_column > 1"
    expected = page.request.get(ui_server + "/runs.json?where=" + quote(where))
    assert expected.status == 400
    message = expected.json()["error"]
    assert message
    open_page(page, ui_server + "/?where=" + quote(where))
    box = page.locator(".error-box")
    box.wait_for()
    assert box.inner_text().strip() == message
    # The page is still usable: the filter box keeps the text, and clearing it lists runs again.
    assert page.input_value("input[name=where]") == where
    page.click("text=Clear")
    wait_rows(page)
    assert page.locator(".error-box").count() == 0


def test_sorting_by_a_column(page: Any, ui_server: str) -> None:
    data = page.request.get(ui_server + "/runs.json").json()["data"]
    named = [n for n in data["name"] if n]
    unnamed = {i for i, n in zip(data["id"], data["name"], strict=True) if not n}  # shown by id
    assert named and unnamed
    open_page(page, ui_server + "/")
    wait_rows(page)
    for click, query, reverse in ((1, "sort=name", False), (2, "sort=-name", True)):
        page.click('.vt-head [data-col="name"]')
        wait_until(page, f"() => location.search.includes('{query}')")
        shown = page.locator(".vt-row a.run-link").all_inner_texts()
        assert shown[: len(named)] == sorted(named, key=str.lower, reverse=reverse), click
        assert set(shown[len(named) :]) == unnamed
    # A third click goes back to the server's order (newest first).
    page.click('.vt-head [data-col="name"]')
    wait_until(page, "() => !location.search.includes('sort=')")


def test_column_chooser_adds_a_column(page: Any, ui_server: str) -> None:
    open_page(page, ui_server + "/")
    wait_rows(page)
    assert page.locator('.vt-head [data-col="tags.team"]').count() == 0
    page.click(".dropdown > summary")
    page.locator(".chooser-item", has_text="tags.team").locator("input").check()
    page.locator('.vt-head [data-col="tags.team"]').wait_for()
    assert "cols=" in page.url
    assert page.get_by_text("vision", exact=True).count() == 1


def test_empty_store_shows_how_to_record_a_run(page: Any, serve: Any, empty_store: Path) -> None:
    open_page(page, serve(empty_store) + "/")
    page.get_by_text("No runs in this store yet").wait_for()
    assert "reprolog.init" in page.locator(".empty").inner_text()
    shot(page, "runs-empty")


def test_ten_thousand_runs_render_a_window_of_rows(page: Any, serve: Any, big_store: Path) -> None:
    open_page(page, serve(big_store) + "/")
    wait_rows(page)
    assert page.locator(".counts").inner_text().startswith("10,000 runs")
    assert page.locator(".vt-row").count() < 200
    shot(page, "runs-10k")
    first_top = page.locator(".vt-row").first.evaluate("r => parseFloat(r.style.top)")
    page.locator(".vt").evaluate("v => { v.scrollTop = v.scrollHeight; }")
    wait_until(
        page,
        "() => { const r = document.querySelectorAll('.vt-row');"
        " return r.length && parseFloat(r[r.length - 1].style.top) > 9000 * 28; }",
    )
    assert page.locator(".vt-row").count() < 200
    assert page.locator(".vt-row").first.evaluate("r => parseFloat(r.style.top)") > first_top
    # The last run of the listing is on screen.
    assert page.locator(".vt-row").last.is_visible()


# ---------------------------------------------------------------------------- compare


def test_select_two_runs_then_compare_shows_charts_and_cause(
    page: Any, ui_server: str, ui_ids: dict[str, str]
) -> None:
    a, b = ui_ids["numpy_a"], ui_ids["numpy_b"]
    open_page(page, ui_server + "/")
    wait_rows(page)
    compare = page.get_by_role("button", name="Compare (0)")
    assert compare.is_disabled()
    row_for(page, a).locator("input[type=checkbox]").check()
    row_for(page, b).locator("input[type=checkbox]").check()
    page.get_by_role("button", name="Compare (2)").click()
    page.wait_for_url("**/compare?runs=*")
    assert set(page.url.split("runs=")[1].split(",")) == {a, b}

    expected = page.request.get(f"{ui_server}/compare.json?runs={a},{b}").json()
    keys = expected["metric_keys"]
    assert keys
    charts_drawn(page, len(keys))
    cause = expected["diff"]["most_likely_cause"]
    assert cause
    assert cause in page.locator("#most-likely-cause").inner_text()
    assert page.locator("#causes tbody tr").count() >= 1
    assert page.locator("#verdicts tbody tr").count() == len(expected["diff"]["verdicts"])
    # Params: only those that differ, until the toggle shows all.
    differ = expected["params"]["differ"]
    params_rows = page.locator("#params tbody tr")
    assert params_rows.count() == len(differ)
    page.locator("#params h2 button").click()
    assert params_rows.count() == len(expected["params"]["keys"])
    shot(page, "compare")


def test_compare_grouped_by_a_param_draws_mean_and_band(
    page: Any, ui_server: str, ui_ids: dict[str, str]
) -> None:
    ids = [ui_ids[r] for r in ("numpy_a", "numpy_b", "failed", "artifacts")]
    open_page(page, f"{ui_server}/compare?runs={','.join(ids)}&group=epochs")
    charts_drawn(page, 1)
    legend = page.locator('.chart-card[data-key="train/loss"] .chart-legend')
    legend.get_by_text("mean of 2 runs").first.wait_for()
    assert page.input_value("select[name='group by']") == "epochs"
    shot(page, "compare-grouped")


def test_compare_controls_redraw_and_zoom_requeries(
    page: Any, ui_server: str, ui_ids: dict[str, str]
) -> None:
    a, b = ui_ids["numpy_a"], ui_ids["numpy_b"]
    open_page(page, f"{ui_server}/compare?runs={a},{b}")
    charts_drawn(page, 1)
    page.check("input[name=log]")
    wait_until(page, "() => location.search.includes('log=1')")
    with page.expect_response(lambda r: "/series.json" in r.url and "x=epoch" in r.url):
        page.select_option("select[name=x]", "epoch")
    assert "x=epoch" in page.url
    page.wait_for_load_state("networkidle")
    charts_drawn(page, 1)
    # A drag on a chart asks the server again for that x range, at the chart's CSS width.
    card = page.locator(".chart-card").first
    over = card.locator(".u-over")
    over.wait_for()
    box = over.bounding_box()
    width = card.locator(".chart-plot").evaluate("e => Math.floor(e.clientWidth)")
    y = box["y"] + box["height"] / 2
    with page.expect_request(lambda r: "/series.json" in r.url and "xmin=" in r.url) as req:
        page.mouse.move(box["x"] + box["width"] * 0.2, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.6, y, steps=5)
        page.mouse.up()
    assert f"width={width}" in req.value.url
    card.locator(".chart-legend", has_text="zoomed").wait_for()
    charts_drawn(page, 1)
    # A double-click goes back to the whole range.
    with page.expect_request(lambda r: "/series.json" in r.url and "xmin=" not in r.url):
        page.mouse.dblclick(box["x"] + box["width"] / 2, y)
    card.locator(".chart-legend", has_text="drag to zoom").wait_for()


# ---------------------------------------------------------------------------- run page


def test_run_page_shows_params_charts_artifacts_and_patch(
    page: Any, ui_server: str, ui_ids: dict[str, str]
) -> None:
    run_id = ui_ids["artifacts"]
    open_page(page, f"{ui_server}/runs/{run_id}")
    detail = page.request.get(f"{ui_server}/runs/{run_id}.json").json()
    page.locator("h1", has_text="with-artifacts").wait_for()
    params = page.locator("#params tbody tr")
    assert params.count() == len(detail["params"])
    page.fill("#params input[type=search]", "layers")
    assert params.count() == 1
    assert "3" in params.first.inner_text()
    charts_drawn(page, len(detail["metrics"]))
    artifacts = page.locator("#artifacts tbody tr")
    assert artifacts.count() == len(detail["artifacts"])
    best = artifacts.filter(has_text="model.bin")
    assert best.locator(".pill", has_text="best").count() == 1
    downloads = page.locator("#artifacts a[download]")
    assert downloads.count() >= 1
    href = downloads.first.get_attribute("href")
    assert page.request.get(ui_server + href).ok
    # The patch is fetched on demand and coloured.
    page.get_by_role("button", name="Show patch").click()
    page.locator(".patch .add").first.wait_for()
    assert page.locator(".patch .file").count() >= 1
    assert "print('v2')" in page.locator(".patch").inner_text()
    shot(page, "run")


def test_failed_run_page_shows_the_error(page: Any, ui_server: str, ui_ids: dict[str, str]) -> None:
    open_page(page, f"{ui_server}/runs/{ui_ids['failed']}")
    page.locator(".run-head .badge", has_text="failed").wait_for()
    error = page.locator(".run-head ~ .error-box")
    assert "ValueError" in error.inner_text()
    assert "loss exploded at step 20" in error.inner_text()
    charts_drawn(page, 1)
    shot(page, "run-failed")


def test_a_run_name_is_found_by_name_in_the_url(page: Any, ui_server: str) -> None:
    open_page(page, f"{ui_server}/runs/with-artifacts")
    page.locator("h1", has_text="with-artifacts").wait_for()


def test_html_in_records_renders_as_text(page: Any, ui_server: str, ui_ids: dict[str, str]) -> None:
    run_id = ui_ids["xss"]
    open_page(page, ui_server + "/")
    row = row_for(page, run_id)
    row.wait_for()
    assert row.locator("a.run-link").inner_text() == XSS_NAME
    open_page(page, f"{ui_server}/runs/{run_id}")
    page.locator("h1").wait_for()
    assert page.locator("h1").inner_text() == XSS_NAME
    assert page.get_by_text("<script>alert(1)</script>", exact=True).count() == 1
    charts_drawn(page, 1)
    open_page(page, f"{ui_server}/compare?runs={run_id},{ui_ids['failed']}")
    page.locator("#params").wait_for()
    page.wait_for_timeout(500)
    for selector in ("img[src=x]", "svg[onload]", "i[onmouseover]", "b", "script:not([src])"):
        assert page.locator(selector).count() == 0, selector
    # Dialogs would be caught by the page watch.


def test_a_run_with_200_keys_mounts_only_the_charts_in_view(
    page: Any, serve: Any, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    with reprolog.init("many-keys", dir=store, capture=False) as run:
        for step in range(3):
            run.log({f"layer{k:03d}/grad_norm": k + step / 10 for k in range(200)}, step=step)
    open_page(page, f"{serve(store)}/runs/{run.id}")
    charts_drawn(page, 1)
    assert page.locator(".chart-card").count() == 200
    mounted = page.locator(".chart-card canvas").count()
    assert 0 < mounted < 40
    last = page.locator('.chart-card[data-key="layer199/grad_norm"]')
    last.scroll_into_view_if_needed()
    last.locator("canvas").wait_for()
    assert page.locator(".chart-card canvas").count() < 200


# ---------------------------------------------------------------------------- live run


def test_live_run_page_updates_by_itself(page: Any, serve: Any, tmp_path: Path) -> None:
    store = tmp_path / "store"
    run = reprolog.init(
        "live-run", dir=store, capture=False, params={"lr": 0.1}, flush_interval=0.2
    )
    try:
        for step in range(5):
            run.log({"loss": 1.0 / (step + 1)}, step=step)
        open_page(page, f"{serve(store)}/runs/{run.id}")
        page.locator(".live-dot").wait_for()
        charts_drawn(page, 1)
        note = page.locator('.chart-card[data-key="loss"] .note')
        sync_api.expect(note).to_have_text(re.compile(r"^5 points"), timeout=WAIT_MS)
        shot(page, "run-live")
        run.log({"loss": 0.01}, step=5)
        run.log({"acc": 0.5}, step=5)  # a new key shows up as a new chart
        sync_api.expect(note).to_have_text(re.compile(r"^6 points"), timeout=WAIT_MS)
        page.locator('.chart-card[data-key="acc"]').wait_for()
    finally:
        run.finish()
    page.locator(".run-head .badge", has_text="completed").wait_for()
    assert page.locator(".live-dot").count() == 0


# ---------------------------------------------------------------------------- assets


def test_pages_load_only_from_loopback_and_vendored_files(
    page: Any, ui_server: str, ui_ids: dict[str, str]
) -> None:
    for path in (
        "/",
        f"/runs/{ui_ids['artifacts']}",
        f"/compare?runs={ui_ids['numpy_a']},{ui_ids['numpy_b']}",
    ):
        open_page(page, ui_server + path)
    assets = {urlsplit(u).path for u in page.watch.requests}
    assert "/static/vendor/uPlot.iife.min.js" in assets
    assert "/static/js/chart.js" in assets
    assert any(p.endswith(".json") for p in assets)
    assert all(
        urlsplit(u).hostname in LOOPBACK for u in page.watch.requests if u.startswith("http")
    )


def test_shells_have_no_inline_script_or_style(ui_server: str, ui_ids: dict[str, str]) -> None:
    import urllib.request

    for path in (
        "/",
        f"/compare?runs={ui_ids['numpy_a']},{ui_ids['numpy_b']}",
        f"/runs/{ui_ids['failed']}",
    ):
        with urllib.request.urlopen(ui_server + path) as resp:
            html = resp.read().decode()
        assert "<style" not in html
        assert " style=" not in html
        for tag in html.split("<script")[1:]:
            head, _, rest = tag.partition(">")
            assert "src=" in head, "inline script"
            assert rest.startswith("</script>")
