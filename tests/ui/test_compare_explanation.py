"""The compare page shows the step-fingerprint explanation of two runs (JSON and browser)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import reprolog
from tests.ui.conftest import _serve


def _run(store: Path, order_seed: int) -> str:
    """A tiny real training whose DataLoader shuffle is seeded with `order_seed`."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(3)
    data = torch.utils.data.TensorDataset(torch.randn(12, 3, generator=gen), torch.randn(12, 1))
    loader = torch.utils.data.DataLoader(
        data, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(order_seed)
    )
    with reprolog.init(dir=store, capture=False) as run:
        fp = run.step_fingerprints(model, every=1)
        assert fp is not None
        for step, (x, y) in enumerate(loader):
            fp.step(step, (x, y), epoch=0)
            loss = torch.nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            run.log({"loss": float(loss.detach())}, step=step)
        return run.id


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    store = tmp_path_factory.mktemp("explain") / "store"
    return store, _run(store, 0), _run(store, 1)


def test_compare_json_carries_the_explanation(pair: tuple[Path, str, str]) -> None:
    from starlette.testclient import TestClient

    from reprolog.ui import make_app

    store, a, b = pair
    with TestClient(make_app(store)) as client:
        body = client.get(f"/compare.json?runs={a},{b}").json()
    ex = body["diff"]["explanation"]
    assert ex["barrier"] == "data order" and ex["step"] == 0
    assert ex["summary"].startswith("data order from step 0:")
    assert ex["evidence"]["same_samples"] is True


@pytest.fixture(scope="module")
def base_url(pair: tuple[Path, str, str]) -> Iterator[str]:
    from reprolog.ui import make_app

    yield from _serve(make_app(pair[0]))


@pytest.mark.xdist_group("browser")
def test_the_compare_page_shows_why_they_part(
    pair: tuple[Path, str, str], base_url: str, page: Any
) -> None:
    _, a, b = pair
    page.goto(f"{base_url}/compare?runs={a},{b}")
    box = page.locator("#step-explanation")
    box.wait_for()
    text = box.inner_text()
    assert "Why they part:" in text and "data order from step 0" in text
    assert page.locator("#step-evidence tr").count() >= 3
