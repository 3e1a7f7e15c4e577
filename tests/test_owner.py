"""`RunOwner`: the ownership policy, the capture guard and the end status, with no framework."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

import reprolog
from reprolog import RunOwner


def _record(run: reprolog.Run) -> reprolog.RunRecord:
    return reprolog.Store(run.store_dir).run(run.id)


def test_a_given_run_is_used_and_never_finished(store_dir: Path) -> None:
    run = reprolog.init(dir=store_dir, capture=False)
    owner = RunOwner("mylib", run)
    assert owner.open() is run and not owner.owns and not owner.adopted
    owner.log_params({"epochs": 3})
    assert owner.close(RuntimeError("boom")) == "failed"
    assert run.status == "running" and run.params["epochs"] == 3
    run.finish()


def test_the_users_active_run_is_adopted_with_params_namespaced(store_dir: Path) -> None:
    with reprolog.init(dir=store_dir, capture=False, params={"epochs": "mine"}) as run:
        owner = RunOwner("mylib")
        assert owner.open() is run and owner.adopted and not owner.owns
        owner.log_params({"epochs": 3, "model": {"width": 8}})
        assert owner.close(None) == "completed"
        assert run.status == "running"
    assert run.params == {"epochs": "mine", "mylib.epochs": 3, "mylib.model.width": 8}


def test_init_kwargs_ask_for_a_run_of_their_own(store_dir: Path) -> None:
    with reprolog.init("outer", dir=store_dir, capture=False) as outer:
        owner = RunOwner("mylib", init_kwargs={"name": "inner", "dir": store_dir})
        inner = owner.open()
        assert inner is not None and inner is not outer and owner.owns
        owner.close(None)
        assert (inner.status, inner.name, outer.status) == ("completed", "inner", "running")


def test_a_run_another_owner_started_is_never_adopted(store_dir: Path) -> None:
    first = RunOwner("one", defaults={"dir": store_dir, "capture": False})
    run = first.open()
    second = RunOwner("two", defaults={"dir": store_dir, "capture": False})
    other = second.open()
    assert other is not run and second.owns
    second.close(None)
    first.close(None)
    assert {r.status for r in (run, other)} == {"completed"}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (None, "completed", None),
        (ValueError("bad"), "failed", "ValueError"),
        (KeyboardInterrupt(), "interrupted", "KeyboardInterrupt"),
        (SystemExit(3), "failed", "SystemExit"),
        (SystemExit(0), "interrupted", "SystemExit"),
    ],
)
def test_close_finishes_its_own_run_with_the_true_status(
    store_dir: Path, error: BaseException | None, status: str, kind: str | None
) -> None:
    owner = RunOwner("mylib", defaults={"dir": store_dir, "capture": False})
    run = owner.open()
    assert run is not None and owner.owns
    assert owner.close(error) == status
    assert not owner.owns and run.status == status
    record = _record(run)
    assert (record.error or {}).get("type") == kind


def test_a_capture_failure_is_recorded_once_labelled_and_logged_once(
    store_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    owner = RunOwner("mylib", defaults={"dir": store_dir, "capture": False})
    run = owner.open()
    assert run is not None

    def broken() -> None:
        raise OSError("disk says no")

    with caplog.at_level(logging.WARNING, logger="reprolog"):
        for _ in range(3):
            assert owner.guard("model facts", broken) is None
    assert owner.guard("sum", sum, [1, 2]) == 3
    owner.close(None)
    errors = _record(run).capture_report["errors"]
    assert errors == [{"what": "mylib: model facts", "error": "OSError: disk says no"}]
    warnings = [r for r in caplog.records if "disk says no" in r.getMessage()]
    assert [r.name for r in warnings] == ["reprolog.mylib"]


def test_a_store_that_cannot_be_written_gives_no_run_and_no_raise(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    owner = RunOwner("mylib", defaults={"dir": blocker / "store", "capture": False})
    with caplog.at_level(logging.WARNING, logger="reprolog"):
        assert owner.open() is None
    assert owner.close(None) is None
    assert any(r.name == "reprolog.mylib" for r in caplog.records)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"integration": "My Lib"}, "integration must be a lowercase identifier"),
        ({"integration": "mylib", "run": "abc"}, "run must be a reprolog Run"),
        ({"integration": "mylib", "init_kwargs": {"nmae": "x"}}, r"holds \['nmae'\]"),
        ({"integration": "mylib", "defaults": {"bogus": 1}}, r"defaults holds \['bogus'\]"),
    ],
)
def test_bad_arguments_say_what_they_got(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(reprolog.ArgumentError, match=match):
        RunOwner(**kwargs)


def test_bad_user_init_arguments_are_raised_at_open(store_dir: Path) -> None:
    owner = RunOwner("mylib", init_kwargs={"name": 5, "dir": store_dir})
    with pytest.raises(reprolog.ArgumentError, match="name must be a str"):
        owner.open()


def test_opening_again_before_closing_ends_the_unended_run_failed(store_dir: Path) -> None:
    owner = RunOwner("mylib", defaults={"dir": store_dir, "capture": False})
    first = owner.open()
    second = owner.open()
    assert first is not None and second is not None and first is not second
    assert first.status == "failed" and second.status == "running"
    assert "before this one ended" in (_record(first).error or {})["message"]
    owner.close(None)


def test_max_steps_reads_the_reproduce_step_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    owner = reprolog.RunOwner("mylib")
    monkeypatch.delenv("REPROLOG_MAX_STEPS", raising=False)
    assert owner.max_steps is None
    monkeypatch.setenv("REPROLOG_MAX_STEPS", "20")
    assert owner.max_steps == 20
    for bad in ("0", "-3", "ten"):
        monkeypatch.setenv("REPROLOG_MAX_STEPS", bad)
        with pytest.raises(reprolog.ArgumentError, match="REPROLOG_MAX_STEPS"):
            _ = owner.max_steps


def test_check_step_fingerprints_is_the_integrations_one_validator() -> None:
    for good in (None, True, False, 1, 50):
        assert RunOwner.check_step_fingerprints(good) is good
    for bad in (0, -2, 1.5, "on"):
        with pytest.raises(reprolog.ArgumentError, match=r"step_fingerprints must be .*; got"):
            RunOwner.check_step_fingerprints(bad)
