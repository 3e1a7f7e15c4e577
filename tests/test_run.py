"""A live run: logging, params, tags, lifecycle and every bad-input error."""

from __future__ import annotations

import json
import math
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import reprolog
from reprolog import (
    ArgumentError,
    MetricKeyError,
    MetricValueError,
    ReprologError,
    Run,
    RunStateError,
    StepError,
    Store,
)
from reprolog._storage import _metriclog

MakeRun = Callable[..., Run]


def points(run: Run, key: str | None = None) -> list[tuple[str, int, float]]:
    df = Store(run.store_dir).metrics(runs=[run.id], keys=key)
    return list(zip(df["key"].astype(str), df["step"].tolist(), df["value"].tolist(), strict=True))


def record(run: Run) -> dict[str, Any]:
    return json.loads((run.dir / "run.json").read_text())


# ---------------------------------------------------------------- metrics


def test_log_and_finish_compacts_to_parquet(make_run: MakeRun) -> None:
    run = make_run("first")
    run.log({"loss": 0.5, "acc": 0.25}, step=0, epoch=0)
    run.log({"loss": 0.25}, step=1, epoch=1)
    assert run.status == "running"
    assert (run.dir / "log").is_dir()
    run.finish()
    assert run.status == "completed"
    assert (run.dir / "metrics.parquet").is_file()
    assert not (run.dir / "log").exists()
    df = Store(run.store_dir).metrics()
    assert list(df.columns) == ["run_id", "key", "step", "epoch", "value", "time", "rank"]
    assert df[["key", "step", "epoch", "value"]].astype({"key": str}).values.tolist() == [
        ["acc", 0, 0, 0.25],
        ["loss", 0, 0, 0.5],
        ["loss", 1, 1, 0.25],
    ]
    assert (df["run_id"] == run.id).all()
    assert str(df["time"].dt.tz) == "UTC"
    assert abs(df["time"].iloc[0].timestamp() - time.time()) < 60


def test_step_none_continues_each_key_from_its_last_step(make_run: MakeRun) -> None:
    run = make_run()
    run.log({"a": 1.0})
    run.log({"a": 2.0})
    run.log({"b": 1.0}, step=5)
    run.log({"a": 3.0, "b": 2.0})
    run.log({"c": 9.0}, step=0)
    run.log({"c": 9.5}, step=0)  # an explicit step may repeat
    run.finish()
    assert points(run) == [
        ("a", 0, 1.0),
        ("a", 1, 2.0),
        ("a", 2, 3.0),
        ("b", 5, 1.0),
        ("b", 6, 2.0),
        ("c", 0, 9.0),
        ("c", 0, 9.5),
    ]


def test_epoch_none_is_stored_as_missing(make_run: MakeRun) -> None:
    run = make_run()
    run.log({"a": 1.0}, step=0)
    run.log({"a": 2.0}, step=1, epoch=np.int64(3))
    run.finish()
    epochs = Store(run.store_dir).metrics()["epoch"]
    assert str(epochs.dtype) == "Int32"
    assert epochs.isna().tolist() == [True, False]
    assert epochs.iloc[1] == 3


def test_special_and_framework_values_are_stored_exactly(make_run: MakeRun) -> None:
    run = make_run()
    given = {
        "nan": float("nan"),
        "inf": float("inf"),
        "ninf": -math.inf,
        "np_f32": np.float32(0.1),
        "np_i64": np.int64(-7),
        "np_0d": np.array(2.5),
        "np_1elem": np.array([[1e-300]]),
        "np_nan32": np.float32("nan"),
        "torch": torch.tensor(0.3, dtype=torch.float64),
        "torch_1elem": torch.tensor([4], dtype=torch.int32),
        "torch_grad": torch.tensor([2.0], requires_grad=True) * 3,
        "int": 3,
        "bool": True,
    }
    run.log(given, step=0)
    run.finish()
    stored = {k: v for k, _, v in points(run)}
    expected = {
        "nan": float("nan"),
        "inf": math.inf,
        "ninf": -math.inf,
        "np_f32": float(np.float32(0.1)),
        "np_i64": -7.0,
        "np_0d": 2.5,
        "np_1elem": 1e-300,
        "np_nan32": float("nan"),
        "torch": 0.3,
        "torch_1elem": 4.0,
        "torch_grad": 6.0,
        "int": 3.0,
        "bool": 1.0,
    }
    assert stored.keys() == expected.keys()
    for key, value in expected.items():
        assert (math.isnan(value) and math.isnan(stored[key])) or stored[key] == value, key


def test_a_mapping_that_is_not_a_dict_is_accepted(make_run: MakeRun) -> None:
    from types import MappingProxyType

    run = make_run()
    run.log(MappingProxyType({"a": 1.0}), step=0)
    run.finish()
    assert points(run) == [("a", 0, 1.0)]


@pytest.mark.parametrize(
    ("metrics", "error", "message"),
    [
        (
            {"loss": "0.5"},
            MetricValueError,
            r"metric 'loss': got builtins\.str '0\.5'; accepted: a real number",
        ),
        ({"loss": None}, MetricValueError, r"metric 'loss': got builtins\.NoneType None; accepted"),
        (
            {"loss": [0.5]},
            MetricValueError,
            r"metric 'loss': got builtins\.list \[0\.5\]; accepted",
        ),
        (
            {"loss": np.array([1.0, 2.0])},
            MetricValueError,
            r"metric 'loss': got numpy\.ndarray .* with 2 elements",
        ),
        (
            {"loss": torch.ones(3)},
            MetricValueError,
            r"metric 'loss': got torch\.Tensor .* with 3 elements",
        ),
        ({"": 1.0}, MetricKeyError, r"metric keys must be non-empty strings, got ''"),
        ({"  ": 1.0}, MetricKeyError, r"metric keys must be non-empty strings, got '  '"),
        (
            {None: 1.0},
            MetricKeyError,
            r"metric keys must be non-empty strings, got builtins\.NoneType None",
        ),
        ({7: 1.0}, MetricKeyError, r"metric keys must be non-empty strings, got builtins\.int 7"),
    ],
    ids=[
        "str",
        "None",
        "list",
        "ndarray",
        "tensor",
        "empty-key",
        "blank-key",
        "None-key",
        "int-key",
    ],
)
def test_bad_values_and_keys_raise_and_write_nothing(
    make_run: MakeRun, metrics: dict[Any, Any], error: type[Exception], message: str
) -> None:
    run = make_run()
    run.log({"ok": 1.0}, step=0)
    # A good point before the bad one in the same call must not be written either.
    with pytest.raises(error, match=message) as info:
        run.log({"good": 2.0, **metrics}, step=1)
    assert isinstance(info.value, ReprologError)
    run.log({"ok": 2.0})
    run.finish()
    assert points(run) == [("ok", 0, 1.0), ("ok", 1, 2.0)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"step": -1}, r"step of metric 'loss' must be a non-negative integer .*got -1"),
        (
            {"step": 1.5},
            r"step of metric 'loss' must be a non-negative integer .*got builtins\.float 1\.5",
        ),
        (
            {"step": 2.0},
            r"step of metric 'loss' must be a non-negative integer .*got builtins\.float 2\.0",
        ),
        ({"step": "3"}, r"step of metric 'loss' must be .*got builtins\.str '3'"),
        ({"step": True}, r"step of metric 'loss' must be .*got bool True"),
        ({"step": np.int64(-4)}, r"step of metric 'loss' must be .*got -4"),
        (
            {"step": 0, "epoch": -1},
            r"epoch of metric 'loss' must be a non-negative integer .*got -1",
        ),
        ({"step": 0, "epoch": 0.5}, r"epoch of metric 'loss' must be .*got builtins\.float 0\.5"),
    ],
    ids=[
        "negative",
        "fraction",
        "float",
        "str",
        "bool",
        "np-negative",
        "epoch-negative",
        "epoch-float",
    ],
)
def test_bad_steps_raise_naming_the_key(
    make_run: MakeRun, kwargs: dict[str, Any], message: str
) -> None:
    run = make_run()
    with pytest.raises(StepError, match=message):
        run.log({"loss": 1.0}, **kwargs)
    run.finish()
    assert points(run) == []


def test_numpy_and_torch_integer_steps_are_accepted(make_run: MakeRun) -> None:
    run = make_run()
    run.log({"a": 1.0}, step=np.int32(3))
    run.log({"a": 2.0}, step=torch.tensor(4))
    run.finish()
    assert points(run) == [("a", 3, 1.0), ("a", 4, 2.0)]


@pytest.mark.parametrize("metrics", [0.5, [("loss", 0.5)], "loss"])
def test_log_takes_a_mapping(make_run: MakeRun, metrics: Any) -> None:
    run = make_run()
    with pytest.raises(
        ArgumentError, match=rf"log\(\) takes a mapping .*got {type(metrics).__name__}"
    ):
        run.log(metrics)


def test_many_points_roll_over_chunks(make_run: MakeRun, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_metriclog.ChunkWriter.__init__, "__defaults__", (16,))
    run = make_run()
    for step in range(50):
        run.log({"a": step * 1.5, "b": -step * 1.0}, step=step)
    assert len(list((run.dir / "log").glob("*.mlog"))) == 7
    live = points(run)  # read back from the live log, before finish
    run.finish()
    expected = [("a", s, s * 1.5) for s in range(50)] + [("b", s, -s * 1.0) for s in range(50)]
    assert live == expected
    assert points(run) == expected


def test_a_live_run_is_readable_from_the_store(make_run: MakeRun) -> None:
    run = make_run("live")
    run.log({"loss": 1.0, "acc": 0.5}, step=0)
    store = Store(run.store_dir)
    assert store.run("live").status == "running"
    assert store.runs()["status"].tolist() == ["running"]
    assert points(run, key="loss") == [("loss", 0, 1.0)]
    assert (run.dir / "log").is_dir()  # a reader never compacts a live run


# ---------------------------------------------------------------- params and tags


def test_params_are_flattened_and_changes_kept(make_run: MakeRun) -> None:
    run = make_run(params={"optimizer": {"name": "adam", "lr": 1e-3}, "epochs": 3})
    run.log_params({"optimizer": {"lr": 1e-4}, "epochs": 3, "layers": [64, 32]})
    assert run.params == {
        "optimizer.name": "adam",
        "optimizer.lr": 1e-4,
        "epochs": 3,
        "layers": [64, 32],
    }
    run.finish()
    rec = Store(run.store_dir).run(run.id)
    assert rec.params == run.params
    history = rec.raw["param_history"]
    assert [(h["key"], h["old"], h["new"]) for h in history] == [("optimizer.lr", 1e-3, 1e-4)]


class Opaque:
    def __repr__(self) -> str:
        return "Opaque(7)"


def test_params_that_json_cannot_hold_are_stored_as_repr_with_type(make_run: MakeRun) -> None:
    run = make_run()
    run.log_params(
        {"obj": Opaque(), "fn": len, "arr": np.arange(3), "nan": float("nan"), "path": Path("/x")}
    )
    run.finish()
    rec = Store(run.store_dir).run(run.id)
    assert rec.params["obj"] == "Opaque(7)"
    assert rec.params["arr"] == "array([0, 1, 2])"
    assert rec.params["fn"] == "<built-in function len>"
    assert rec.params["nan"] == "nan"
    assert rec.params["path"] == "PosixPath('/x')"
    types = rec.raw["param_types"]
    assert types["obj"].endswith("Opaque")
    assert types["arr"] == "numpy.ndarray"
    assert types["path"] == "pathlib.PosixPath"
    assert types["nan"] == "float"


def test_tags(make_run: MakeRun) -> None:
    run = make_run(tags={"team": "nlp"})
    run.set_tags({"stage": 2}, owner="me")
    run.finish()
    assert Store(run.store_dir).run(run.id).tags == {"team": "nlp", "stage": "2", "owner": "me"}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.log_params([("a", 1)]), r"log_params\(\) takes a mapping, got list"),
        (lambda r: r.set_tags(["a"]), r"set_tags\(\) takes a mapping, got list"),
        (lambda r: r.finish("done"), r"status must be one of .*got 'done'"),
    ],
)
def test_bad_arguments(make_run: MakeRun, call: Callable[[Run], Any], message: str) -> None:
    run = make_run()
    with pytest.raises(ArgumentError, match=message):
        call(run)
    assert run.status == "running"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": 3}, r"name must be a str or None, got int: 3"),
        ({"experiment": ""}, r"experiment must be a non-empty str or None, got ''"),
        ({"params": [1]}, r"params must be a mapping or None, got list"),
        ({"dir": 5}, r"dir must be a str or os\.PathLike path, got int: 5"),
        (
            {"flush_interval": 0},
            r"flush_interval must be a number of seconds in \(0, 3600\], got 0",
        ),
    ],
)
def test_init_rejects_bad_arguments(store_dir: Path, kwargs: dict[str, Any], message: str) -> None:
    kwargs.setdefault("dir", store_dir)
    with pytest.raises(ArgumentError, match=message):
        reprolog.init(capture=False, **kwargs)


# ---------------------------------------------------------------- lifecycle


def test_finish_is_idempotent_and_logging_after_raises(make_run: MakeRun) -> None:
    run = make_run()
    run.log({"a": 1.0}, step=0)
    run.finish()
    end = record(run)["end_time"]
    run.finish("failed")  # no effect: the first status stands
    assert run.status == "completed"
    assert record(run)["end_time"] == end
    with pytest.raises(
        RunStateError, match=rf"run {run.id} has finished with status 'completed'"
    ) as info:
        run.log({"a": 2.0})
    assert info.value.run_id == run.id
    with pytest.raises(RunStateError, match="has finished"):
        run.log_params({"x": 1})
    with pytest.raises(RunStateError, match="has finished"):
        run.set_tags(x="1")


def test_context_manager_completes(store_dir: Path) -> None:
    with reprolog.init(dir=store_dir, capture=False) as run:
        assert reprolog.active_run() is run
        run.log({"a": 1.0})
    assert run.status == "completed"
    assert reprolog.active_run() is None
    assert record(run)["error"] is None


def test_context_manager_exception_marks_failed(store_dir: Path) -> None:
    with (
        pytest.raises(ValueError, match="diverged"),
        reprolog.init(dir=store_dir, capture=False) as run,
    ):
        run.log({"a": 1.0})
        raise ValueError("loss diverged at step 3")
    rec = Store(store_dir).run(run.id)
    assert rec.status == "failed"
    assert rec.error is not None
    assert rec.error["type"] == "ValueError"
    assert rec.error["message"] == "loss diverged at step 3"
    assert "raise ValueError" in rec.error["traceback"]
    assert rec.metrics()["value"].tolist() == [1.0]


def test_context_manager_keyboard_interrupt_marks_interrupted(store_dir: Path) -> None:
    with pytest.raises(KeyboardInterrupt), reprolog.init(dir=store_dir, capture=False) as run:
        raise KeyboardInterrupt
    rec = Store(store_dir).run(run.id)
    assert rec.status == "interrupted"
    assert rec.error is not None and rec.error["type"] == "KeyboardInterrupt"


def test_active_run_is_the_latest_live_run(make_run: MakeRun) -> None:
    first = make_run()
    second = make_run()
    assert reprolog.active_run() is second
    second.finish()
    assert reprolog.active_run() is first
    first.finish()
    assert reprolog.active_run() is None


def test_run_record_on_disk(make_run: MakeRun) -> None:
    run = make_run("named", experiment="exp")
    rec = record(run)
    assert rec["format_version"] == 1
    assert rec["status"] == "running"
    assert rec["id"] == run.id == run.dir.name
    assert (rec["name"], rec["experiment"]) == ("named", "exp")
    run.finish()
    rec = record(run)
    assert rec["status"] == "completed"
    assert rec["end_time"] >= rec["start_time"]
    assert not list(run.dir.glob(".*.tmp"))  # atomic writes leave no temp files


def test_default_store_is_dot_reprolog_in_cwd_and_ignores_itself(tmp_path: Path) -> None:
    run = reprolog.init(capture=False)
    run.finish()
    assert run.store_dir == (tmp_path / ".reprolog").resolve()
    assert (tmp_path / ".reprolog" / ".gitignore").read_text().splitlines()[-1] == "*"
    assert Store().run_ids() == [run.id]


def test_reprolog_dir_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPROLOG_DIR", str(tmp_path / "elsewhere"))
    run = reprolog.init(capture=False)
    run.finish()
    assert run.store_dir == (tmp_path / "elsewhere").resolve()
    assert Store().run_ids() == [run.id]


def test_capture_on_records_sections_and_does_not_raise(store_dir: Path) -> None:
    with reprolog.init(dir=store_dir) as run:
        run.log({"a": 1.0})
    rec = Store(store_dir).run(run.id)
    assert rec.status == "completed"
    assert "environment" in rec.sections


# ---------------------------------------------------------------- process endings (subprocesses)

_SCRIPT_HEAD = """
import os, sys, time, reprolog
run = reprolog.init("child", dir=os.environ["STORE"], capture=False, flush_interval=0.05)
run.log({"loss": 1.0}, step=0)
run.log({"loss": 0.5}, step=1)
"""


def _child_run(store_dir: Path) -> reprolog.RunRecord:
    store = Store(store_dir)
    ids = store.run_ids()
    assert len(ids) == 1, ids
    return store.run(ids[0])


def test_script_without_finish_completes_at_exit(
    tmp_path: Path, store_dir: Path, run_script: Callable[..., Any]
) -> None:
    proc = run_script(_SCRIPT_HEAD, cwd=tmp_path, STORE=str(store_dir))
    assert proc.returncode == 0, proc.stderr
    rec = _child_run(store_dir)
    assert rec.status == "completed"
    assert rec.metrics()["value"].tolist() == [1.0, 0.5]


def test_uncaught_exception_in_a_script_marks_failed(
    tmp_path: Path, store_dir: Path, run_script: Callable[..., Any]
) -> None:
    proc = run_script(
        _SCRIPT_HEAD + "raise RuntimeError('out of memory, really')\n",
        cwd=tmp_path,
        STORE=str(store_dir),
    )
    assert proc.returncode == 1
    assert "RuntimeError: out of memory, really" in proc.stderr  # the user's traceback still prints
    rec = _child_run(store_dir)
    assert rec.status == "failed"
    assert rec.error is not None
    assert (rec.error["type"], rec.error["message"]) == ("RuntimeError", "out of memory, really")
    assert rec.metrics()["value"].tolist() == [1.0, 0.5]


@pytest.mark.parametrize(
    ("ending", "returncode", "status"),
    [
        ("sys.exit(1)", 1, "failed"),  # noted by the core's sys.exit
        ("sys.exit(0)", 0, "completed"),
        ("os._exit(3)", 3, "crashed"),  # no atexit: the next reader finds the process gone
    ],
)
def test_exit_without_with_is_never_a_false_completed(
    tmp_path: Path,
    store_dir: Path,
    run_script: Callable[..., Any],
    ending: str,
    returncode: int,
    status: str,
) -> None:
    proc = run_script(_SCRIPT_HEAD + ending + "\n", cwd=tmp_path, STORE=str(store_dir))
    assert proc.returncode == returncode, proc.stderr
    rec = _child_run(store_dir)
    assert rec.status == status
    if status == "failed":
        assert rec.error is not None
        assert (rec.error["type"], rec.error["message"]) == ("SystemExit", "1")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_marks_interrupted(
    tmp_path: Path, store_dir: Path, start_script: Callable[..., Any], sig: signal.Signals
) -> None:
    code = _SCRIPT_HEAD + "print('ready', flush=True)\nwhile True:\n    time.sleep(0.01)\n"
    proc = start_script(code, cwd=tmp_path, STORE=str(store_dir))
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.communicate()
    # SIGTERM: the process still dies by the signal; SIGINT: KeyboardInterrupt, exit status 1.
    assert proc.returncode == (-signal.SIGTERM if sig == signal.SIGTERM else 1)
    rec = _child_run(store_dir)
    assert rec.status == "interrupted"
    assert rec.error is not None
    if sig == signal.SIGTERM:  # the one record of a termination signal (see _lifecycle.Signal)
        assert (rec.error["type"], rec.error["message"]) == ("Signal", "SIGTERM")
    else:
        assert rec.error["type"] == "KeyboardInterrupt"
    assert rec.metrics()["value"].tolist() == [1.0, 0.5]


def test_forked_child_cannot_write_the_parents_run(make_run: MakeRun, tmp_path: Path) -> None:
    import os

    run = make_run()
    run.log({"a": 1.0}, step=0)
    out = tmp_path / "child.txt"
    pid = os.fork()
    if pid == 0:  # child: must neither write nor finish the parent's run
        try:
            run.log({"a": 99.0})
        except RunStateError as exc:
            out.write_text(str(exc))
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert "cannot write to it" in out.read_text()
    assert run.status == "running"
    run.log({"a": 2.0}, step=1)
    run.finish()
    assert points(run) == [("a", 0, 1.0), ("a", 1, 2.0)]


def test_run_repr_and_identity(make_run: MakeRun) -> None:
    run = make_run("r")
    assert repr(run) == f"Run(id={run.id!r}, name='r', status='running')"
    assert run.experiment == "default"
    assert run.dir == run.store_dir / "runs" / run.id


def test_start_hooks_run_in_order_and_a_failing_one_is_recorded_not_raised(
    make_run: MakeRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reprolog._run import _hooks

    builtin = [what for what, _ in _hooks._start_hooks]
    assert {"process hooks", "reproduce", "seed_everything"} <= set(builtin)
    monkeypatch.setattr(_hooks, "_start_hooks", list(_hooks._start_hooks))
    calls: list[tuple[str, str]] = []

    def first(run: Any) -> None:
        calls.append(("first", run.id))

    def broken(run: Any) -> None:
        raise RuntimeError("hook went wrong")

    def last(run: Any) -> None:
        calls.append(("last", run.id))
        run.update_section("probe", {"seen": True})

    _hooks.on_run_start(first, what="first hook")
    _hooks.on_run_start(broken, what="broken hook")
    _hooks.on_run_start(last, what="last hook")
    _hooks.on_run_start(first, what="first hook")  # added once only
    run = make_run()
    assert calls == [("first", run.id), ("last", run.id)]
    rec = record(run)
    assert rec["sections"]["probe"] == {"seen": True}
    errors = rec["capture_report"]["errors"]
    assert {"what": "broken hook", "error": "RuntimeError: hook went wrong"} in errors
    assert run.status == "running"


def test_init_has_the_one_signature() -> None:
    import inspect

    params = inspect.signature(reprolog.init).parameters
    assert list(params) == [
        "name",
        "experiment",
        "dir",
        "params",
        "tags",
        "capture",
        "flush_interval",
        "console",
        "system_metrics",
        "publish_to",
        "publish_every",
    ]
    assert params["flush_interval"].default == 1.0
    assert params["experiment"].kind is inspect.Parameter.KEYWORD_ONLY
    assert "Start a run and return it." in (reprolog.init.__doc__ or "")


def test_run_constructor_takes_init_arguments(tmp_path: Path) -> None:
    """`Run(...)` starts a run from the same arguments as `reprolog.init` (one definition)."""
    run = Run("direct", dir=tmp_path, capture=False, params={"lr": 0.1})
    run.log({"loss": 1.0}, step=0)
    run.finish()
    record = Store(tmp_path).run("direct")
    assert (record.status, record.params) == ("completed", {"lr": 0.1})
    with pytest.raises(ArgumentError, match="unexpected keyword argument 'colour'"):
        Run(dir=tmp_path, colour="red")
