"""The vendored front-end files match their recorded sha256 and keep their licence."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import reprolog

VENDOR = Path(reprolog.__file__).parent / "_ui" / "static" / "vendor"


def _sums() -> list[tuple[str, str]]:
    rows = []
    for line in (VENDOR / "SHA256SUMS").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        digest, name = line.split(maxsplit=1)
        rows.append((digest, name.lstrip("*")))
    return rows


def test_sums_list_every_vendored_file() -> None:
    listed = {name for _, name in _sums()}
    present = {p.name for p in VENDOR.iterdir() if p.is_file()} - {"SHA256SUMS", "README.md"}
    assert listed == present
    assert {"uPlot.iife.min.js", "uPlot.min.css", "uPlot.LICENSE"} <= listed


@pytest.mark.parametrize(("digest", "name"), _sums(), ids=[name for _, name in _sums()])
def test_vendored_file_has_recorded_sha256(digest: str, name: str) -> None:
    assert len(digest) == 64
    assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest


def test_licence_is_present_and_mit() -> None:
    text = (VENDOR / "uPlot.LICENSE").read_text(encoding="utf-8")
    assert "MIT License" in text
    assert "Leon Sorokin" in text


def test_readme_names_the_pinned_version() -> None:
    readme = (VENDOR / "README.md").read_text(encoding="utf-8")
    assert "uplot-1.6.32.tgz" in readme
