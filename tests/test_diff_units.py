"""Unit tests of the diff's pure parts: curve comparison, tree comparison, ranking, rendering."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import reprolog
from reprolog._diff import Category, MetricStatus, RunDiff, diff
from reprolog._diff._flatten import compare_trees, is_volatile
from reprolog._diff._metrics import compare_curves, curves_from_frame
from reprolog._diff._records import compare_records, split_patch
from reprolog._diff._render import diff_text
from reprolog._errors import ArgumentError


def _curve(values: list[float], steps: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    s = np.arange(len(values)) if steps is None else np.array(steps)
    return s.astype(np.int64), np.array(values, dtype=np.float64)


@pytest.mark.parametrize(
    ("a", "b", "status", "step"),
    [
        ([1.0, 2.0, math.nan], [1.0, 2.0, math.nan], MetricStatus.IDENTICAL, None),
        ([1.0, math.inf], [1.0, math.inf], MetricStatus.IDENTICAL, None),
        ([1.0, 2.0], [1.0, 2.0 + 1e-9], MetricStatus.WITHIN_TOLERANCE, None),
        ([1.0, 2.0, 3.0], [1.0, 2.5, 3.5], MetricStatus.DIVERGED, 1),
        ([1.0, 2.0], [1.0, math.nan], MetricStatus.DIVERGED, 1),
        ([1.0, math.inf], [1.0, -math.inf], MetricStatus.DIVERGED, 1),
    ],
)
def test_compare_curves(
    a: list[float], b: list[float], status: MetricStatus, step: int | None
) -> None:
    m = compare_curves("loss", _curve(a), _curve(b), rtol=1e-5, atol=1e-8)
    assert (m.status, m.step) == (status, step)
    if step is not None:
        assert m.a == a[step]
        assert m.b == b[step] or (math.isnan(b[step]) and math.isnan(m.b))  # type: ignore[arg-type]


def test_compare_curves_reports_a_step_only_one_run_logged() -> None:
    m = compare_curves("acc", _curve([1.0, 2.0, 3.0]), _curve([1.0, 2.0]), rtol=0, atol=0)
    assert (m.status, m.step, m.a, m.b, m.steps_only_in_a) == (
        MetricStatus.DIVERGED,
        2,
        3.0,
        None,
        1,
    )


def test_curves_from_frame_sorts_and_keeps_the_last_point_of_a_repeated_step() -> None:
    frame = pd.DataFrame(
        {"key": ["b", "a", "a", "a"], "step": [0, 1, 0, 1], "value": [9.0, 1.0, 0.0, 2.0]}
    )
    curves = curves_from_frame(frame)
    assert curves["a"][0].tolist() == [0, 1]
    assert curves["a"][1].tolist() == [0.0, 2.0]
    assert curves["b"][1].tolist() == [9.0]


def test_compare_trees_reports_a_missing_subtree_once_and_ignores_volatile_fields() -> None:
    a = {"x": 1, "capture_seconds": 0.1, "pid": 3, "sub": {"k": 1, "j": 2}, "files": {"a.py": 1}}
    b = {"x": 2, "capture_seconds": 0.2, "pid": 4, "files": {"a.py": 1, "time.py": 2}}
    found = compare_trees(a, b)
    assert found == [
        (("files", "time.py"), None, 2),
        (("sub",), {"k": 1, "j": 2}, None),
        (("x",), 1, 2),
    ]


@pytest.mark.parametrize(
    ("key", "volatile"),
    [("time", True), ("seconds", True), ("start_time", True), ("cuda_available", False),
     ("time.py", False), ("seed", False), ("torch_num_threads", False)],
)  # fmt: skip
def test_is_volatile(key: str, volatile: bool) -> None:
    assert is_volatile(key) is volatile


def test_split_patch_by_file() -> None:
    text = (
        "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n"
        "diff --git a/d/y.txt b/d/y.txt\n--- a/d/y.txt\n+++ b/d/y.txt\n@@ -1 +1 @@\n-c\n+d\n"
    )
    assert sorted(split_patch(text)) == ["d/y.txt", "x.py"]


def _record(**sections: Any) -> dict[str, Any]:
    return {"id": "r", "params": sections.pop("params", {}), "sections": sections}


def test_ranking_across_categories() -> None:
    # One difference of every kind at once: the order is the documented ranking.
    a = _record(
        params={"lr": 0.1},
        data={"train": {"fingerprint": "sha256:aa"}},
        code={"git": True, "commit": "c1", "diff": ""},
        seeds={"seed_everything": {"seed": 0}},
        determinism={"cudnn_benchmark": False},
        environment={"packages": {"torch": "2.1", "rich": "13"}, "threads": {"OMP_NUM_THREADS": "1"},  # noqa: E501
                     "hostname": "a"},
        command={"argv": ["train.py"]},
        lightning={"strategy": "ddp"},
    )  # fmt: skip
    b = _record(
        params={"lr": 0.2},
        data={"train": {"fingerprint": "sha256:bb"}},
        code={"git": True, "commit": "c2", "diff": ""},
        seeds={"seed_everything": {"seed": 1}},
        determinism={"cudnn_benchmark": True},
        environment={"packages": {"torch": "2.2", "rich": "14"}, "threads": {"OMP_NUM_THREADS": "2"},  # noqa: E501
                     "hostname": "b"},
        command={"argv": ["train.py", "--fast"]},
        lightning={"strategy": "fsdp"},
    )  # fmt: skip
    got = [(d.category, d.key) for d in compare_records(a, b)]
    assert got == [
        (Category.DATA, "data.train.fingerprint"),
        (Category.CODE, "code.commit"),
        (Category.HYPERPARAMETERS, "params.lr"),
        (Category.SEEDS, "seeds.seed_everything.seed"),
        (Category.DETERMINISM, "determinism.cudnn_benchmark"),
        (Category.PACKAGES, "packages.torch"),
        (Category.HARDWARE, "environment.threads.OMP_NUM_THREADS"),
        (Category.HARDWARE, "environment.hostname"),
        (Category.PACKAGES, "packages.rich"),
        (Category.OTHER, "lightning.strategy"),
        (Category.COMMAND, "command.argv"),
    ]
    assert [d.rank for d in compare_records(a, b)] == list(range(1, 12))


def test_a_deterministic_flag_recorded_beside_the_seed_is_a_determinism_difference() -> None:
    a = _record(seeds={"seed_everything": {"seed": 0, "deterministic": False}})
    b = _record(seeds={"seed_everything": {"seed": 0, "deterministic": True}})
    (only,) = compare_records(a, b)
    assert only.category is Category.DETERMINISM


def test_values_holding_the_run_id_compare_equal() -> None:
    a = {"id": "01aa", "sections": {"seeds": {"file": "runs/01aa/rng/numpy.json"}}}
    b = {"id": "01bb", "sections": {"seeds": {"file": "runs/01bb/rng/numpy.json"}}}
    assert compare_records(a, b) == []


@pytest.mark.parametrize("tol", [-1.0, "0.1", math.nan, True])
def test_bad_tolerance_raises(tol: Any) -> None:
    with pytest.raises(ArgumentError, match="must be a number >= 0"):
        diff("a", "b", rtol=tol)


def test_diff_rejects_an_unknown_run_type() -> None:
    with pytest.raises(ArgumentError, match="got int"):
        diff(1, 2)


def test_render_and_json_of_an_empty_diff() -> None:
    d = RunDiff(a="x", b="y", differences=[], metrics=[])
    assert not d.differs
    assert "do not differ" in diff_text(d)
    assert d.to_dict()["differs"] is False


def test_a_section_only_one_run_has_is_one_difference_not_a_crash() -> None:
    # e.g. a Lightning run (with a `lightning` section) against a plain run.
    a: dict[str, Any] = {"sections": {}}
    b: dict[str, Any] = {"sections": {"lightning": {"trainer": {"max_epochs": 3}}}}
    (only,) = compare_records(a, b)
    assert only.key.startswith("lightning")
    assert only.a is None


def test_system_metrics_are_listed_never_compared(tmp_path: Path) -> None:
    ids = []
    for cpu in (12.0, 97.0):
        with reprolog.init(dir=tmp_path, capture=False) as run:
            for step in range(3):
                run.log({"loss": 1.0 / (step + 1), "sys/cpu_percent": cpu + step}, step=step)
            ids.append(run.id)
    d = reprolog.diff(*ids, store=tmp_path)
    assert [m.key for m in d.metrics] == ["loss"]
    assert d.system_metrics == ["sys/cpu_percent"]
    assert not d.differs
    assert d.to_dict()["system_metrics"] == ["sys/cpu_percent"]
