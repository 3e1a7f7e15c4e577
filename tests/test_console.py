"""Console capture: lines, progress-bar collapse, ANSI, redaction, limits, in-process tee."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import reprolog
from reprolog._capture.console import ConsoleRecorder, LineSplitter, parse_size, strip_ansi


def lines_of(path: Path) -> list[tuple[str, str]]:
    return [(s, t) for _, s, t in (json.loads(x) for x in path.read_text().splitlines())]


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b"a\nb\n"], [b"a", b"b"]),
        ([b"par", b"tial\n"], [b"partial"]),
        ([b"crlf\r\n"], [b"crlf"]),
        ([b"crlf split\r", b"\n"], [b"crlf split"]),
        ([b" 10%\r 50%\r100%\n"], [b"100%"]),
        ([b" 10%", b"\r 50%", b"\r100%", b"\n"], [b"100%"]),
        ([b"cleared\r       \rfinal\n"], [b"final"]),
    ],
)
def test_line_splitter_keeps_what_a_terminal_would_show(
    chunks: list[bytes], expected: list[bytes]
) -> None:
    splitter = LineSplitter()
    out: list[bytes] = []
    for chunk in chunks:
        out += splitter.feed(chunk)
    assert out + splitter.close() == expected


def test_an_unfinished_bar_stays_bounded_while_it_updates() -> None:
    splitter = LineSplitter()
    for i in range(100_000):
        assert splitter.feed(f"\r{i:6d}/100000".encode()) == []
    assert len(splitter._pending) < 64
    assert splitter.close() == [b" 99999/100000"]


def test_strip_ansi_removes_colours_cursor_moves_and_titles() -> None:
    text = "\x1b[1;31mred\x1b[0m \x1b[2K\x1b[Aup \x1b]0;title\x07done\ttab\x07"
    assert strip_ansi(text) == "red up done\ttab"


@pytest.mark.parametrize(
    ("given", "size"), [("16M", 16 * 2**20), ("512k", 512 * 1024), ("1GiB", 2**30), (100, 100)]
)
def test_parse_size(given: str | int, size: int) -> None:
    assert parse_size(given) == size


@pytest.mark.parametrize("bad", ["lots", "-1", -5, "1T"])
def test_parse_size_rejects_what_is_not_a_size(bad: str | int) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(bad)


def test_recorder_redacts_formats_and_secret_env_values(tmp_path: Path) -> None:
    path = tmp_path / "console.jsonl"
    rec = ConsoleRecorder(path, env={"MY_SERVICE_PASSWORD": "correct-horse-battery"})
    rec.feed("o", b"login ghp_abcdefghijklmnopqrstuvwxyz0123456789 ok\n")
    rec.feed("e", b"pw correct-horse-battery\n")
    summary = rec.close()
    assert lines_of(path) == [("o", "login [REDACTED] ok"), ("e", "pw [REDACTED]")]
    assert summary["redacted"] == 2 and summary["lines"] == 2


def test_recorder_with_limit_zero_stores_only_the_note(tmp_path: Path) -> None:
    path = tmp_path / "console.jsonl"
    rec = ConsoleRecorder(path, limit=0)
    rec.feed("o", b"one\ntwo\n")
    summary = rec.close()
    assert summary["lines"] == 0 and summary["dropped_lines"] == 2
    assert [s for s, _ in lines_of(path)] == ["r"]


def test_init_console_true_tees_sys_streams_and_restores_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sys.stdout, sys.stderr
    with reprolog.init(dir=tmp_path, console=True, capture=False) as run:
        print("to stdout")
        print("\x1b[32mgreen\x1b[0m to stderr", file=sys.stderr)
    assert (sys.stdout, sys.stderr) == before
    out, err = capsys.readouterr()
    assert out == "to stdout\n" and err == "\x1b[32mgreen\x1b[0m to stderr\n"  # unchanged
    record = reprolog.Store(tmp_path).run(run.id)
    assert lines_of(record.dir / "console.jsonl") == [("o", "to stdout"), ("e", "green to stderr")]
    assert record.section("console")["source"] == "sys.stdout/sys.stderr"
    print("after the run")  # not recorded, and nothing breaks
    assert len(record.console()) == 2


def test_console_is_off_by_default_outside_a_notebook(tmp_path: Path) -> None:
    with reprolog.init(dir=tmp_path, capture=False) as run:
        print("not recorded")
    assert not (run.dir / "console.jsonl").exists()
    assert reprolog.Store(tmp_path).run(run.id).console().empty


def test_init_rejects_a_console_that_is_not_a_bool(tmp_path: Path) -> None:
    with pytest.raises(reprolog.ArgumentError, match="console must be True, False or None"):
        reprolog.init(dir=tmp_path, console="yes")  # type: ignore[arg-type]
