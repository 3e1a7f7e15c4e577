"""The real `reprolog ui` command, as a subprocess: URL line, serving, clean errors, signals."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

URL_LINE = re.compile(r"^reprolog ui: serving (.+) at (http://\S+)$")


def _start(*args: str, store: Path | None, on_sub: bool = False) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "reprolog._cli"]
    where = [] if store is None else ["--dir", str(store)]
    cmd = [*cmd, "ui", *where] if on_sub else [*cmd, *where, "ui"]
    return subprocess.Popen(
        [*cmd, "--no-open", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "BROWSER": "false"},
    )


@pytest.fixture
def served(ui_store: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = _start(store=ui_store)
    assert proc.stdout is not None
    line = proc.stdout.readline().rstrip("\n")
    match = URL_LINE.match(line)
    assert match, (line, proc.stderr.read() if proc.poll() is not None else "")
    assert match.group(1) == str(ui_store.resolve())
    try:
        yield proc, match.group(2)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)  # closes the pipes


def _get(url: str) -> tuple[int, dict[str, object]]:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return resp.status, json.loads(resp.read())


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_prints_its_url_serves_and_stops_cleanly(
    served: tuple[subprocess.Popen[str], str], ui_ids: dict[str, str], sig: int
) -> None:
    proc, url = served
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url)
    status, body = _get(url + "runs.json")
    assert status == 200 and body["total"] == len(ui_ids)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err


def _error(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    return lines[0]


def test_missing_store_is_one_line_and_exit_2(tmp_path: Path) -> None:
    assert "no reprolog store" in _error(_start(store=tmp_path / "nothing"))


def test_port_in_use_is_one_line_and_exit_2(ui_store: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _error(_start("--port", str(port), store=ui_store))
    assert f"cannot listen on 127.0.0.1:{port}" in line


@pytest.mark.parametrize("host", ["no such host!", "300.1.2.3"])
def test_bad_host_is_one_line_and_exit_2(ui_store: Path, host: str) -> None:
    assert "bad host" in _error(_start("--host", host, store=ui_store))


def test_non_loopback_host_warns_and_needs_the_token(ui_store: Path) -> None:
    proc = _start("--host", "0.0.0.0", store=ui_store)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        warning = proc.stderr.readline()
        assert "warning" in warning and "0.0.0.0" in warning
        match = URL_LINE.match(proc.stdout.readline().rstrip("\n"))
        assert match
        token = re.fullmatch(r"http://0\.0\.0\.0:(\d+)/\?token=([\w-]{20,})", match.group(2))
        assert token
        local = f"http://127.0.0.1:{token.group(1)}/runs.json"
        with pytest.raises(urllib.error.HTTPError) as info:
            _get(local)
        assert info.value.code == 403
        info.value.close()  # the error holds the open response
        status, body = _get(f"{local}?token={token.group(2)}")
        assert status == 200 and body["total"] >= 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_dir_on_the_subcommand_serves_that_store(ui_store: Path, ui_ids: dict[str, str]) -> None:
    # The form, `reprolog ui --dir STORE`, as well as `reprolog --dir STORE ui`.
    proc = _start(store=ui_store, on_sub=True)
    try:
        assert proc.stdout is not None
        match = URL_LINE.match(proc.stdout.readline().rstrip("\n"))
        assert match and match.group(1) == str(ui_store.resolve())
        status, body = _get(match.group(2) + "runs.json")
        assert status == 200 and body["total"] == len(ui_ids)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_dir_on_the_subcommand_missing_store_is_one_line(tmp_path: Path) -> None:
    assert "no reprolog store" in _error(_start(store=tmp_path / "nothing", on_sub=True))
