"""when_imported: code that runs right after a module's first import, or at once."""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from reprolog._capture.importhook import when_imported


@pytest.fixture
def fresh_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module on sys.path that nothing has imported yet."""
    name = f"reprolog_hook_probe_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text("VALUE = 41\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_runs_after_the_first_import_with_the_module(fresh_module: str) -> None:
    seen: list[ModuleType] = []
    when_imported(fresh_module, seen.append)
    assert seen == []
    module = importlib.import_module(fresh_module)
    assert seen == [module]
    assert module.__loader__.__class__.__name__ != "_NotifyingLoader"  # real loader restored
    importlib.reload(module)
    assert seen == [module]  # once


def test_runs_at_once_for_a_module_already_imported() -> None:
    seen: list[ModuleType] = []
    when_imported("json", seen.append)
    assert [m.__name__ for m in seen] == ["json"]


def test_a_failing_callback_is_logged_and_the_import_still_works(
    fresh_module: str, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(module: ModuleType) -> None:
        raise RuntimeError("boom")

    when_imported(fresh_module, broken)
    with caplog.at_level(logging.ERROR, logger="reprolog"):
        module = importlib.import_module(fresh_module)
    assert module.VALUE == 41
    assert "after importing" in caplog.text and "boom" in caplog.text


@pytest.mark.parametrize(
    ("name", "callback", "match"),
    [
        ("", print, "full dotted name"),
        (".relative", print, "full dotted name"),
        (3, print, "full dotted name"),
        ("json", "not callable", "callback must be callable"),
    ],
)
def test_bad_arguments_say_what_they_got(name: object, callback: object, match: str) -> None:
    import reprolog

    with pytest.raises(reprolog.ArgumentError, match=match):
        reprolog.when_imported(name, callback)  # type: ignore[arg-type]
