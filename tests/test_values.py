"""Pure checks on what users hand to a run: values, keys, steps, params (no disk)."""

from __future__ import annotations

import math
from collections import OrderedDict
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest
import torch

from reprolog import ArgumentError, MetricKeyError, MetricValueError, ReprologError, StepError
from reprolog._storage._values import (
    check_epoch,
    check_key,
    check_metrics,
    check_step,
    flatten,
    json_safe,
    to_float,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, 3.0),
        (True, 1.0),
        (2.5, 2.5),
        (np.float32(0.1), float(np.float32(0.1))),
        (np.float64(-1.25), -1.25),
        (np.int64(7), 7.0),
        (np.uint8(255), 255.0),
        (np.bool_(True), 1.0),
        (np.array(4.5), 4.5),
        (np.array([4.5]), 4.5),
        (np.array([[2]], dtype=np.int32), 2.0),
        (torch.tensor(1.5), 1.5),
        (torch.tensor([0.25]), 0.25),
        (torch.tensor([[3]]), 3.0),
        (torch.tensor(2.0, requires_grad=True) * 2, 4.0),
    ],
    ids=lambda v: type(v).__name__,
)
def test_to_float_accepts_real_scalars(value: Any, expected: float) -> None:
    out = to_float("loss", value)
    assert type(out) is float
    assert out == expected


@pytest.mark.parametrize(
    "value",
    [float("nan"), np.float32("nan"), torch.tensor(float("nan"))],
    ids=["float", "np.float32", "tensor"],
)
def test_to_float_keeps_nan(value: Any) -> None:
    assert math.isnan(to_float("loss", value))


@pytest.mark.parametrize("value", [float("inf"), -np.inf, torch.tensor(-float("inf"))])
def test_to_float_keeps_inf(value: Any) -> None:
    assert to_float("loss", value) == float(value)


@pytest.mark.parametrize(
    ("value", "received"),
    [
        ("0.5", r"builtins\.str '0\.5'"),
        (b"1", r"builtins\.bytes b'1'"),
        (None, r"builtins\.NoneType None"),
        ([1.0], r"builtins\.list \[1\.0\]"),
        ((1.0,), r"builtins\.tuple"),
        ({"a": 1}, r"builtins\.dict"),
        (object(), r"builtins\.object"),
        (1 + 2j, r"builtins\.complex"),
        (np.array([1.0, 2.0]), r"numpy\.ndarray .* with 2 elements"),
        (np.zeros((0,)), r"numpy\.ndarray .* with 0 elements"),
        (torch.tensor([1.0, 2.0, 3.0]), r"torch\.Tensor .* with 3 elements"),
        (torch.zeros(2, 2), r"torch\.Tensor .* with 4 elements"),
        (np.array("x"), r"numpy\.ndarray"),
        (np.complex64(1j), r"numpy\.complex64"),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, str) or v == "0.5" else v[:12],
)
def test_to_float_rejects_non_scalars_naming_key_and_value(value: Any, received: str) -> None:
    with pytest.raises(MetricValueError, match=rf"metric 'train/loss': got {received}") as info:
        to_float("train/loss", value)
    assert "accepted: a real number" in str(info.value)
    assert info.value.key == "train/loss"
    assert isinstance(info.value, ReprologError)
    assert isinstance(info.value, TypeError)


def test_to_float_rejects_an_int_too_large_for_a_float() -> None:
    with pytest.raises(MetricValueError, match=r"metric 'n': got builtins\.int 1000.* too large"):
        to_float("n", 10**400)


def test_long_values_are_shortened_in_messages() -> None:
    with pytest.raises(MetricValueError) as info:
        to_float("k", "x" * 500)
    assert len(str(info.value)) < 300
    assert "..." in str(info.value)


@pytest.mark.parametrize("key", ["loss", "train/loss", "a.b", "ñ", " x"])
def test_check_key_accepts_non_empty_strings(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize(
    ("key", "received"),
    [
        ("", "''"),
        ("   ", "'   '"),
        (None, r"builtins\.NoneType None"),
        (3, r"builtins\.int 3"),
        (b"loss", r"builtins\.bytes b'loss'"),
    ],
)
def test_check_key_rejects(key: Any, received: str) -> None:
    with pytest.raises(
        MetricKeyError, match=rf"metric keys must be non-empty strings, got {received}"
    ):
        check_key(key)


@pytest.mark.parametrize(
    "step", [0, 1, 2**40, np.int64(5), np.uint16(3), np.array(6), torch.tensor(4)]
)
def test_check_step_accepts_non_negative_integers(step: Any) -> None:
    out = check_step(step)
    assert type(out) is int
    assert out == int(step)


@pytest.mark.parametrize(
    ("step", "received"),
    [
        (-1, "-1"),
        (np.int32(-3), "-3"),
        (1.5, r"builtins\.float 1\.5"),
        (2.0, r"builtins\.float 2\.0"),
        ("3", r"builtins\.str '3'"),
        (True, "bool True"),
        (np.float64(1.0), r"numpy\.float64"),
        (2**63, r"below 2\*\*62"),
        (np.array([1, 2]), r"numpy\.ndarray"),
        (torch.tensor(1.5), r"torch\.Tensor tensor\(1\.5000\)"),
        (None, r"builtins\.NoneType None"),
    ],
)
def test_check_step_rejects(step: Any, received: str) -> None:
    with pytest.raises(StepError, match=rf"step must be .*{received}"):
        check_step(step)


def test_check_step_names_the_keys_it_applies_to() -> None:
    with pytest.raises(
        StepError, match=r"step of metric 'loss', 'acc' must be a non-negative integer .*got -2"
    ) as info:
        check_step(-2, keys=["loss", "acc"])
    assert info.value.key == "loss"


def test_check_epoch() -> None:
    assert check_epoch(3) == 3
    with pytest.raises(StepError, match=r"epoch must be a non-negative integer .*got -1"):
        check_epoch(-1)
    with pytest.raises(StepError, match=r"epoch must be below 2\*\*31 - 1"):
        check_epoch(2**31)


@pytest.mark.parametrize("metrics", [{"a": 1}, OrderedDict(a=1), MappingProxyType({"a": 1})])
def test_check_metrics_accepts_mappings(metrics: Any) -> None:
    assert check_metrics(metrics) == {"a": 1}


@pytest.mark.parametrize("metrics", [0.5, [("a", 1.0)], "loss", None])
def test_check_metrics_rejects_non_mappings(metrics: Any) -> None:
    with pytest.raises(
        ArgumentError, match=rf"log\(\) takes a mapping .*got {type(metrics).__name__}"
    ):
        check_metrics(metrics)


def test_flatten_nested_mappings_with_dots() -> None:
    nested = {
        "opt": {"lr": 0.1, "betas": [0.9, 0.99], "sched": {"kind": "cos"}},
        "bs": 32,
        "empty": {},
    }
    assert flatten(nested) == {
        "opt.lr": 0.1,
        "opt.betas": [0.9, 0.99],
        "opt.sched.kind": "cos",
        "bs": 32,
        "empty": {},
    }


class _Opaque:
    def __repr__(self) -> str:
        return "<Opaque 7>"


class _BrokenRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


@pytest.mark.parametrize(
    ("value", "stored", "type_name"),
    [
        (1, 1, None),
        ("adam", "adam", None),
        (None, None, None),
        (True, True, None),
        ([1, 2.5, "x"], [1, 2.5, "x"], None),
        ((1, 2), [1, 2], None),
        (np.float32(0.5), 0.5, None),
        (np.int64(3), 3, None),
        (np.array(2.0), 2.0, None),
        (float("nan"), "nan", "float"),
        (float("-inf"), "-inf", "float"),
        (_Opaque(), "<Opaque 7>", "test_values._Opaque"),
        ([1, _Opaque()], "[1, <Opaque 7>]", "builtins.list"),
        ({1, 2}, "{1, 2}", "builtins.set"),
        (np.array([1, 2]), "array([1, 2])", "numpy.ndarray"),
        ({}, {}, None),
    ],
    ids=lambda v: repr(v)[:20],
)
def test_json_safe(value: Any, stored: Any, type_name: str | None) -> None:
    out, kind = json_safe(value)
    assert out == stored
    if type_name is None:
        assert kind is None
    else:
        assert kind is not None and kind.endswith(type_name)


def test_json_safe_survives_a_broken_repr() -> None:
    out, kind = json_safe(_BrokenRepr())
    assert out.startswith("<unrepresentable _BrokenRepr: no repr")
    assert kind is not None and kind.endswith("_BrokenRepr")
