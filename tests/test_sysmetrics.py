"""System metrics: the sampler's points in a real run, its interval rule, and failure isolation."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

import reprolog
from reprolog._capture.sysmetrics import SystemSampler, interval_from

EXPECTED = {
    "sys/cpu_percent",
    "sys/memory_used_bytes",
    "sys/memory_available_bytes",
    "sys/memory_percent",
    "sys/process_cpu_percent",
    "sys/process_rss_bytes",
    "sys/children_rss_bytes",
    "sys/processes",
}


def test_a_run_with_system_metrics_has_sys_points_with_wall_time(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        start = time.time()
        with reprolog.init(dir=tmp_path, capture=False, system_metrics=0.1) as run:
            deadline = time.monotonic() + 30
            while run._sampler._step < 3 and time.monotonic() < deadline:
                time.sleep(0.02)
    finally:
        child.kill()
        child.wait()
    points = reprolog.Store(tmp_path).run(run.id).metrics()
    assert set(points["key"]) >= EXPECTED
    rss = points[points["key"] == "sys/process_rss_bytes"]
    assert list(rss["step"]) == list(range(len(rss))) and len(rss) >= 4  # + the final sample
    assert (rss["value"] > 1e6).all()
    children = points[points["key"] == "sys/children_rss_bytes"]["value"]
    assert children.max() > 0  # the sleeping child is in the process tree
    first = points["time"].min().timestamp()
    assert start - 1 <= first <= time.time()


def test_system_metrics_are_off_by_default_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REPROLOG_SYSTEM_METRICS", raising=False)
    with reprolog.init(dir=tmp_path, capture=False) as run:
        run.log({"loss": 1.0}, step=0)
    assert set(reprolog.Store(tmp_path).run(run.id).metrics_summary) == {"loss"}


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        (None, None, None),
        (None, "5", 5.0),
        (None, "off", None),
        (True, None, 10.0),
        (False, "5", None),
        (0, None, None),
        (2.5, None, 2.5),
        (0.001, None, 0.1),
    ],
)
def test_interval_rule(
    value: float | bool | None,
    env: str | None,
    expected: float | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if env is None:
        monkeypatch.delenv("REPROLOG_SYSTEM_METRICS", raising=False)
    else:
        monkeypatch.setenv("REPROLOG_SYSTEM_METRICS", env)
    assert interval_from(value) == expected


@pytest.mark.parametrize("bad", [-1, "10", float("nan")])
def test_init_rejects_a_bad_interval(tmp_path: Path, bad: object) -> None:
    with pytest.raises(reprolog.ArgumentError, match="system_metrics takes"):
        reprolog.init(dir=tmp_path, system_metrics=bad)  # type: ignore[arg-type]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_failing_sampler_is_a_capture_error_never_a_crash(tmp_path: Path) -> None:
    with reprolog.init(dir=tmp_path, capture=False) as run:
        calls: list[int] = []

        def broken_log(points: dict[str, float], step: int) -> None:
            calls.append(step)
            raise OSError("disk on fire")

        sampler = SystemSampler(broken_log, 0.05, on_error=run.record_capture_error)
        sampler.start()
        deadline = time.monotonic() + 30
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        sampler.stop()
        run.log({"loss": 0.5}, step=0)  # training goes on
    record = reprolog.Store(tmp_path).run(run.id)
    errors = [e for e in record.capture_report["errors"] if e["what"].startswith("system")]
    assert len(errors) == 1 and "disk on fire" in errors[0]["error"]
    assert record.status == "completed"
