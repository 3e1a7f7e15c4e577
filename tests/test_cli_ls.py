"""`reprolog ls` on a store of mixed runs: which columns, ranked how, fitted to the width."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner, Result
from rich.console import Console

import reprolog
from reprolog._cli import _list, main
from reprolog._cli._columns import (
    Candidate,
    candidates,
    fmt_start,
    interleave,
    resolve,
    short_headers,
)
from reprolog._errors import ArgumentError

# A framework-style run: many nested params, most of them found in no other run.
FRAMEWORK_PARAMS = {
    "optimizer": {
        "learning_rate": 0.01,
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1e-7,
        "name": "adam",
        "clipnorm": None,
        "scale": None,
    },
    "model": {"name": "sequential", "total_params": 161, "class": "keras.Sequential" * 3},
    "fit": {"epochs": 3, "steps_per_epoch": 13},
    "compile": {"loss": "binary_crossentropy", "scale": None},
}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A framework run with ~15 params and 5 metrics, and three small runs with 3-4 params."""
    run = reprolog.init(
        name="framework", experiment="fw", dir=tmp_path, params=FRAMEWORK_PARAMS, capture=False
    )
    for step in range(3):
        run.log({"loss": 0.5 - step / 10, "accuracy": 0.8, "val_loss": 0.6, "val_accuracy": 0.7,
                 "learning_rate": 0.01}, step=step)  # fmt: skip
    run.finish()
    for name, lr, extra in (
        ("a", 0.5, {}),
        ("b", 0.1, {"momentum": 0.8}),
        ("c", 0.2, {"momentum": 0.9}),
    ):
        params = {"lr": lr, "epochs": 20, "seed": 0, **extra}
        run = reprolog.init(name=name, experiment="np", dir=tmp_path, params=params, capture=False)
        run.log({"train/loss": lr, "train/acc": 1 - lr}, step=0)
        run.finish()
    return tmp_path


def ls(store: Path, *args: str, width: int = 200, monkeypatch: pytest.MonkeyPatch) -> Result:
    """Run `reprolog ls` with a console of the given width."""
    monkeypatch.setattr(_list, "console", lambda: Console(width=width, soft_wrap=False))
    return CliRunner().invoke(main, ["--dir", str(store), "ls", *args])


def header_of(output: str) -> list[str]:
    """The header words (the line after the params/metrics group line)."""
    lines = output.splitlines()
    assert lines[0].split()[0] in ("params", "metrics"), output
    return lines[1].split()


@pytest.mark.parametrize("width", [80, 100, 120, 160])
def test_ls_fits_the_width_and_never_cuts_a_header(
    store: Path, width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = ls(store, width=width, monkeypatch=monkeypatch)
    assert res.exit_code == 0, res.output
    table = res.output.splitlines()[:6]  # group line, header, 4 runs
    assert all(len(line) <= width for line in table), res.output
    header = header_of(res.output)
    assert header[:6] == ["id", "name", "experiment", "status", "duration", "start"]
    assert not any("…" in word for word in header)
    assert "lr" in header  # varies and is in 3 of 4 runs: the first column to keep
    footnote = res.output.splitlines()[6]
    shown = len(header) - 6
    hidden = int(re.match(r"\+(\d+) more columns", footnote)[1])  # type: ignore[index]
    # lr, momentum and 7 metrics are worth showing; 13 params are constant where present.
    assert shown + hidden == 9 + 13
    assert "use --columns/--wide or --json" in footnote


def test_ls_shows_params_that_vary_where_present_and_final_metrics(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = ls(store, "--sort", "name", width=400, monkeypatch=monkeypatch)
    header = header_of(res.output)
    assert header[6:8] == ["lr", "momentum"]  # params first, the more common first
    # epochs/seed: same value in every run that has them; the framework's params are in one run.
    for constant in ("epochs", "seed", "beta_1", "fit.epochs", "clipnorm"):
        assert constant not in header
    # Metrics the most runs share first, full short names.
    assert header[8:10] == ["train/acc", "train/loss"]
    assert set(header[10:]) == {"accuracy", "learning_rate", "loss", "val_accuracy", "val_loss"}
    group_line = res.output.splitlines()[0]
    assert group_line.index("params") < group_line.index("metrics")
    assert "13 constant params" in res.output


def test_ls_narrow_terminal_keeps_the_most_useful_columns(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = ls(store, width=100, monkeypatch=monkeypatch)
    header = header_of(res.output)
    # Columns every run has first, a param and a metric in turn; momentum (2 runs) is cut.
    assert header[6:9] == ["lr", "train/acc", "train/loss"]
    assert "momentum" not in header
    assert "for width" in res.output


def test_ls_drops_columns_empty_in_every_shown_row(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = ls(store, "-e", "np", width=400, monkeypatch=monkeypatch)
    header = header_of(res.output)
    assert header[6:] == ["lr", "momentum", "train/acc", "train/loss"]  # no framework metrics
    assert "2 constant params" in res.output  # epochs, seed


def test_columns_picks_columns_by_short_or_full_name(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cols = "loss,params.lr,val_loss.min,learning_rate,beta_1,end"
    res = ls(store, "--columns", cols, "--sort", "name", monkeypatch=monkeypatch)
    assert res.exit_code == 0, res.output
    header = header_of(res.output)
    assert header[6:] == ["loss", "lr", "val_loss.min", "learning_rate", "beta_1", "end"]
    assert "more columns" not in res.output
    res = ls(store, "-c", "optimizer.learning_rate", monkeypatch=monkeypatch)
    assert header_of(res.output)[6:] == ["optimizer.learning_rate"]
    res = ls(store, "-c", "name,status", monkeypatch=monkeypatch)  # already shown: once
    assert res.output.splitlines()[0].split() == ["id", "name", "experiment", "status",
                                                  "duration", "start"]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("nope", "no column 'nope'"),
        ("scale", "'scale' is ambiguous: it matches params.compile.scale, params.optimizer.scale"),
    ],
)
def test_columns_errors_are_clean(
    store: Path, name: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = ls(store, "--columns", name, monkeypatch=monkeypatch)
    assert res.exit_code == 2
    assert message in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_wide_shows_every_column_in_full(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    res = ls(store, "--wide", "--sort", "name", width=80, monkeypatch=monkeypatch)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    header = lines[0].split()  # no group line: full names instead
    assert header[:6] == ["id", "name", "experiment", "status", "duration", "start"]
    assert {"params.lr", "params.seed", "params.optimizer.beta_1", "metrics.loss.last"} <= set(
        header
    )
    assert "params.optimizer.clipnorm" not in header  # None in every run
    assert "keras.Sequential" * 3 in res.output  # not cut
    ids = {r["id"] for r in json.loads(ls(store, "--json", monkeypatch=monkeypatch).output)}
    assert {ln.split()[0] for ln in lines[1:]} == ids  # full ids
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", lines[1])  # exact start
    assert "more columns" not in res.output


def test_sort_accepts_the_short_names_of_the_listing(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = ls(store, "--sort", "-train/loss", "--json", monkeypatch=monkeypatch)
    assert [r["name"] for r in json.loads(res.output)][:3] == ["a", "c", "b"]
    res = ls(store, "--sort", "beta_1", "--limit", "1", "--json", monkeypatch=monkeypatch)
    assert json.loads(res.output)[0]["name"] == "framework"


def test_terminal_output_is_styled_and_fits(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    console = Console(width=90, force_terminal=True, record=True, color_system="truecolor")
    monkeypatch.setattr(_list, "console", lambda: console)
    res = CliRunner().invoke(main, ["--dir", str(store), "ls"])
    assert res.exit_code == 0, res.output
    text = console.export_text(styles=False, clear=False)
    assert all(len(line) <= 90 for line in text.splitlines()[:6]), text
    assert "completed" in text and "+" in text.splitlines()[-1]
    assert "\x1b[32mcompleted" in console.export_text(styles=True)


def test_no_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = reprolog.init(name="only", dir=tmp_path, capture=False)
    run.finish()
    res = ls(tmp_path, "--where", "name = 'other'", monkeypatch=monkeypatch)
    assert res.exit_code == 0 and res.output.strip() == "no runs"


def frame_of(**columns: list[object]) -> pd.DataFrame:
    return pd.DataFrame(columns)


def test_candidates_rank_and_mark_what_varies() -> None:
    frame = frame_of(
        **{
            "params.optimizer.lr": [0.1, 0.2, None],
            "params.lr": [0.1, 0.2, None],
            "params.seed": [0, 0, None],
            "params.tags": [["a"], ["b"], ["a"]],  # unhashable values are compared as text
            "params.empty": [None, None, None],
            "metrics.loss.last": [1.0, None, None],
            "metrics.loss.min": [1.0, 2.0, 3.0],
            "metrics.acc.last": [1.0, 2.0, 2.0],
            "metrics.sys/cpu_percent.last": [5.0, 9.0, 7.0],  # the machine: after the training's
        }
    )
    got = [(c.key, c.present, c.varies) for c in candidates(frame)]
    assert got == [
        ("params.tags", 3, True),
        ("params.lr", 2, True),  # top-level before nested
        ("params.seed", 2, False),
        ("params.optimizer.lr", 2, True),
        ("metrics.acc.last", 3, True),
        ("metrics.loss.last", 1, False),
        ("metrics.sys/cpu_percent.last", 3, True),
    ]


def test_interleave_takes_turns_within_a_presence_tier() -> None:
    p = [Candidate(f"params.p{i}", "params", 3, True) for i in range(3)]
    m = [
        Candidate("metrics.m0.last", "metrics", 3, True),
        Candidate("metrics.m1.last", "metrics", 1, True),
    ]
    order = [c.key.split(".")[1] for c in interleave([*p, *m])]
    assert order == ["p0", "m0", "p1", "p2", "m1"]


def test_short_headers_are_unique_and_resolve_back() -> None:
    keys = [
        "params.epochs",
        "params.fit.epochs",
        "params.optimizer.learning_rate",
        "params.optimizer.beta_1",
        "params.compile.loss",
        "metrics.loss.last",
        "metrics.learning_rate.last",
        "metrics.val_loss.min",
        "duration",
    ]
    frame = pd.DataFrame({k: [1] for k in keys})
    headers = short_headers(keys, keys)
    assert headers == {
        "params.epochs": "epochs",
        "params.fit.epochs": "fit.epochs",
        "params.optimizer.learning_rate": "optimizer.learning_rate",  # a metric is learning_rate
        "params.optimizer.beta_1": "beta_1",
        "params.compile.loss": "compile.loss",
        "metrics.loss.last": "loss",
        "metrics.learning_rate.last": "learning_rate",
        "metrics.val_loss.min": "val_loss.min",
        "duration": "duration",
    }
    for key, header in headers.items():
        assert resolve(frame, header) == key


def test_resolve_errors() -> None:
    frame = pd.DataFrame({"params.lr": [1], "metrics.lr.last": [1]})
    with pytest.raises(ArgumentError, match=r"'lr' is ambiguous: it matches params.lr, metrics"):
        resolve(frame, "lr")
    with pytest.raises(ArgumentError, match=r"no column 'x' \(columns include: params.lr"):
        resolve(frame, "x")


NOW = dt.datetime(2026, 6, 15, 12, 0, 0, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (dt.timedelta(seconds=-30), "just now"),  # clock skew
        (dt.timedelta(seconds=42), "42s ago"),
        (dt.timedelta(minutes=59, seconds=59), "59m ago"),
        (dt.timedelta(hours=3), "3h ago"),
        (dt.timedelta(days=6), "6d ago"),
        (dt.timedelta(days=30), "May 16"),
        (dt.timedelta(days=400), "2025-05-11"),
    ],
)
def test_fmt_start(delta: dt.timedelta, expected: str) -> None:
    assert fmt_start(pd.Timestamp(NOW - delta), NOW) == expected


def test_fmt_start_exact_and_missing() -> None:
    stamp = pd.Timestamp("2026-06-15 11:00:01.123456789", tz="UTC")
    assert fmt_start(stamp, NOW, exact=True) == "2026-06-15 11:00:01"
    assert fmt_start(None, NOW) == "" and fmt_start(pd.NaT, NOW) == ""
