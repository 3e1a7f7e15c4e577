"""The run page's console panel in a real browser: lines shown as text, in order."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest

import reprolog
from reprolog.ui import make_app
from tests.ui.conftest import XSS_NAME, _serve

pytest.importorskip("playwright.sync_api")
from tests.ui.test_browser import shot

pytestmark = pytest.mark.xdist_group("browser")


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    store = tmp_path_factory.mktemp("console-browser")
    with reprolog.init("with-console", dir=store, console=True, capture=False) as run:
        for i in range(30):
            print(f"epoch {i} loss {1 / (i + 1):.4f}")
        print(f"warning: {XSS_NAME}", file=sys.stderr)
    for base in _serve(make_app(store)):
        yield base, run.id


def test_the_run_page_shows_the_console_as_text(
    console_server: tuple[str, str],
    page: Any,
) -> None:
    base, run_id = console_server
    page.goto(f"{base}/runs/{run_id}")
    page.locator("#console .ln").nth(30).wait_for()
    lines = page.locator("#console .ln").all_inner_texts()
    assert lines[0] == "epoch 0 loss 1.0000"
    assert lines[-1] == f"warning: {XSS_NAME}"  # inserted as text: no dialog fires
    assert "31 lines" in page.locator("#console h2").inner_text()
    shot(page, "run-console")
