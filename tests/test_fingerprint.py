"""Tests for fingerprint/describe_data on real numpy, pandas, pyarrow, torch objects and files."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

from reprolog._errors import ArgumentError
from reprolog._fingerprint import _content as _fingerprint
from reprolog._fingerprint import _sink
from reprolog._fingerprint._content import describe_data, fingerprint
from reprolog._storage import _filecache as filecache

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPROLOG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(filecache, "_memory", {})


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "i": np.arange(6, dtype=np.int64),
            "f": np.linspace(0, 1, 6),
            "s": ["a", "bb", None, "d", "e", "f"],
            "c": pd.Categorical(["x", "y", "x", "y", "x", "y"]),
            "n": pd.array([1, None, 3, 4, 5, 6], dtype="Int64"),
            "t": pd.date_range("2024-01-01", periods=6, freq="D"),
            "b": [True, False, True, True, False, False],
        }
    )


def table() -> pa.Table:
    return pa.table(
        {
            "i": pa.array([1, 2, None, 4], pa.int64()),
            "s": ["a", None, "ccc", "d"],
            "l": [[1], [2, 3], None, []],
            "b": [True, None, False, True],
            "ts": pa.array([1, 2, 3, 4], pa.timestamp("ms")),
            "d": pa.array(["u", "v", "u", "u"]).dictionary_encode(),
        }
    )


# Each case: (object, a copy with the same content, a copy with one element changed).
CASES: dict[str, Any] = {
    "numpy-float": lambda: np.arange(12.0).reshape(3, 4),
    "numpy-int32": lambda: np.arange(10, dtype=np.int32),
    "numpy-bool": lambda: np.array([True, False, True]),
    "numpy-datetime": lambda: np.array(["2024-01-01", "2024-01-02"], dtype="datetime64[D]"),
    "numpy-str": lambda: np.array(["a", "bc", "def"]),
    "numpy-object": lambda: np.array(["a", 1, None], dtype=object),
    "numpy-structured": lambda: np.array([(1, 2.0), (3, 4.0)], dtype=[("a", "<i4"), ("b", "<f8")]),
    "pandas-frame": frame,
    "pandas-series": lambda: pd.Series([1.5, 2.5, 3.5], name="x"),
    "pandas-mixed-series": lambda: pd.Series([1, "a", 2.0]),
    "arrow-table": table,
    "torch-float": lambda: torch.arange(12, dtype=torch.float32).reshape(3, 4),
    "torch-bfloat16": lambda: torch.arange(8, dtype=torch.bfloat16),
    "torch-bool": lambda: torch.tensor([True, False, True]),
    "python": lambda: {"a": [1, 2.5, "x"], "b": (None, True)},
}


def change_one(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        out = obj.copy()
        flat = out.reshape(-1)
        if out.dtype.fields:
            flat[0] = (9, 9.0)
        elif out.dtype.kind == "b":
            flat[0] = not flat[0]
        elif out.dtype.kind in "US":
            flat[0] = "z"
        elif out.dtype.kind == "M":
            flat[0] = np.datetime64("2000-01-01")
        elif out.dtype.kind == "O":
            flat[1] = 2
        else:
            flat[-1] += 1
        return out
    if isinstance(obj, pd.DataFrame):
        out = obj.copy()
        out.loc[4, "s"] = "E"
        return out
    if isinstance(obj, pd.Series):
        out = obj.copy()
        out.iloc[1] = 99 if out.dtype.kind == "f" else "b"
        return out
    if isinstance(obj, pa.Table):
        return obj.set_column(0, "i", pa.array([1, 2, None, 5], pa.int64()))
    if isinstance(obj, torch.Tensor):
        out = obj.clone()
        flat = out.reshape(-1)
        flat[-1] = not bool(flat[-1]) if out.dtype == torch.bool else flat[-1] + 1
        return out
    return {"a": [1, 2.5, "y"], "b": (None, True)}


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_content_same_fingerprint_one_change_differs(case: str) -> None:
    a, b = CASES[case](), CASES[case]()
    assert a is not b
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(change_one(a)) != fingerprint(a)
    assert fingerprint(a).startswith("sha256:") and len(fingerprint(a)) == 7 + 64


def test_shape_and_dtype_are_part_of_the_content() -> None:
    a = np.arange(6, dtype=np.int64)
    assert fingerprint(a.reshape(2, 3)) != fingerprint(a.reshape(3, 2))
    assert fingerprint(a) != fingerprint(a.astype(np.int32))
    assert fingerprint(torch.zeros(2, 3)) != fingerprint(torch.zeros(3, 2))


def test_memory_layout_and_byte_order_do_not_matter() -> None:
    a = np.arange(12.0).reshape(3, 4)
    assert fingerprint(np.asfortranarray(a)) == fingerprint(a)
    assert fingerprint(a.astype(">f8")) == fingerprint(a)
    big = np.arange(24.0).reshape(4, 6)
    assert fingerprint(big[:, ::2]) == fingerprint(big[:, ::2].copy())
    t = torch.arange(12.0).reshape(3, 4)
    assert fingerprint(t.T) == fingerprint(t.T.contiguous())
    assert fingerprint(t.requires_grad_()) == fingerprint(torch.arange(12.0).reshape(3, 4))


def test_arrow_chunking_does_not_matter() -> None:
    t = table()
    rechunked = pa.concat_tables([t.slice(0, 1), t.slice(1, 2), t.slice(3)])
    assert rechunked.column("i").num_chunks == 3
    assert fingerprint(rechunked) == fingerprint(t)
    assert fingerprint(t.slice(1)) != fingerprint(t)


def test_dict_order_does_not_matter_but_list_order_does() -> None:
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    assert fingerprint([1, 2]) != fingerprint([2, 1])
    assert fingerprint([1]) != fingerprint((1,))


def test_large_arrays_use_a_thread_independent_tree() -> None:
    a = np.random.default_rng(0).random((_sink.LEAF // 8) * 3 + 5)
    fp = fingerprint(a)
    assert fingerprint(a.copy()) == fp
    b = a.copy()
    b[-1] += 1
    assert fingerprint(b) != fp


def test_golden_values_stay_stable_across_versions() -> None:
    # Changing any of these breaks comparison with every run already recorded.
    assert fingerprint(b"abc") == (
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert fingerprint(np.arange(6, dtype="<i8").reshape(2, 3)) == (
        "sha256:aabaa1fdd4a3b8cc1250143f7097d5217ed245249eaf7ee49876982f406ee8b3"
    )
    assert fingerprint(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})) == (
        "sha256:5bcc3b15943cf864a83101b641f8e96f8957afa07fd2dbddec5ebd05800cd361"
    )
    assert fingerprint(pa.table({"a": [1, 2], "b": ["x", "y"]})) == (
        "sha256:663b18a032281692e8164ad7e677941a645785f38d088654c5c1fc884ac4030a"
    )
    assert fingerprint(torch.arange(4, dtype=torch.float32)) == (
        "sha256:29af21676420aa3845603470ca04724abc470f00bad84f3c1532cf0fe295e0fd"
    )
    assert fingerprint({"b": [1, 2.5, None], "a": "s"}) == (
        "sha256:20030cc31971344d3d6235245ba9404c9eda1c83f2b20e82e8fc6a1f330c9eea"
    )


def test_stable_across_processes() -> None:
    code = (
        "import numpy as np, pandas as pd\n"
        "from reprolog._fingerprint._content import fingerprint\n"
        "print(fingerprint(pd.DataFrame({'a': np.arange(5), 's': list('abcde')})))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC), "PYTHONHASHSEED": "random"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
    assert out == fingerprint(pd.DataFrame({"a": np.arange(5), "s": list("abcde")}))


def test_bytes_and_files_hash_like_sha256sum(tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    expected = "sha256:" + hashlib.sha256(data).hexdigest()
    assert fingerprint(data) == expected
    assert fingerprint(path) == expected
    assert fingerprint(str(path)) == expected


def test_file_hash_is_cached_by_path_size_and_mtime(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * (2 << 20))
    first = describe_data(path)
    assert first["cached"] is False and first["kind"] == "file" and first["bytes"] == 2 << 20
    assert describe_data(path)["cached"] is True
    filecache._memory.clear()  # a new process: the on-disk cache answers
    assert describe_data(path)["cached"] is True
    path.write_bytes(b"y" * (2 << 20))
    os.utime(path, ns=(1, 1))
    changed = describe_data(path)
    assert changed["cached"] is False and changed["fingerprint"] != first["fingerprint"]


def test_folders_hash_names_and_contents(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    (root / "sub" / "b.txt").write_text("b")
    desc = describe_data(root)
    assert (desc["kind"], desc["files"], desc["bytes"]) == ("folder", 2, 2)
    (root / "sub" / "b.txt").write_text("B")
    assert fingerprint(root) != desc["fingerprint"]
    (root / "sub" / "b.txt").write_text("b")
    assert fingerprint(root) == desc["fingerprint"]
    (root / "sub" / "b.txt").rename(root / "sub" / "c.txt")
    assert fingerprint(root) != desc["fingerprint"]


class Squares(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    def __init__(self, n: int, bump: int = -1) -> None:
        self.n, self.bump = n, bump

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.tensor([i * i + (1 if i == self.bump else 0)]), i % 2


def test_map_style_dataset_in_full() -> None:
    desc = describe_data(Squares(300))
    assert desc["method"] == "full" and desc["kind"] == "torch.Dataset" and desc["length"] == 300
    assert fingerprint(Squares(300)) == desc["fingerprint"]
    assert fingerprint(Squares(300, bump=150)) != desc["fingerprint"]
    assert fingerprint(Squares(301)) != desc["fingerprint"]


def test_map_style_dataset_over_budget_is_sampled_deterministically() -> None:
    desc = describe_data(Squares(5000), budget_bytes=1000)
    assert desc["method"] == "sample" and desc["sample_size"] == _fingerprint.SAMPLE_SIZE
    assert desc["fingerprint"].startswith("sha256-sample:")
    assert "evenly spaced" in desc["sample_rule"]
    assert describe_data(Squares(5000), budget_bytes=1000)["fingerprint"] == desc["fingerprint"]
    assert (
        describe_data(Squares(5000, bump=0), budget_bytes=1000)["fingerprint"]
        != (desc["fingerprint"])
    )
    indices = _fingerprint._sample_indices(5000)
    assert indices[0] == 0 and indices[-1] == 4999 and len(indices) == 1024


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (np.zeros((2, 3), np.float32), {"kind": "numpy", "shape": [2, 3], "dtype": "float32"}),
        (
            torch.zeros(4, dtype=torch.int64),
            {"kind": "torch.Tensor", "shape": [4], "dtype": "torch.int64"},
        ),
        (
            pd.DataFrame({"a": [1]}),
            {"kind": "pandas.DataFrame", "shape": [1, 1], "length": 1, "schema": {"a": "int64"}},
        ),
        (
            pa.table({"a": [1.0]}),
            {"kind": "pyarrow.Table", "shape": [1, 1], "schema": {"a": "double"}},
        ),
        (b"xy", {"kind": "bytes", "bytes": 2}),
        ([1, 2, 3], {"kind": "python", "length": 3}),
    ],
)
def test_describe_data_shape_and_schema(obj: Any, expected: dict[str, Any]) -> None:
    desc = describe_data(obj)
    assert {k: desc[k] for k in expected} == expected
    assert desc["method"] == "full" and desc["fingerprint"] == fingerprint(obj)
    json.dumps(desc)


def test_unsupported_type_is_refused() -> None:
    with pytest.raises(ArgumentError, match=r"cannot hash a builtins\.object; it accepts bytes"):
        fingerprint(object())
    with pytest.raises(ArgumentError, match=r"cannot hash a .*generator"):
        fingerprint(x for x in range(3))


def test_missing_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArgumentError, match=r"reads a str as a file or folder path, and .*"):
        fingerprint(str(tmp_path / "nope.csv"))


def test_bad_budget_is_refused() -> None:
    with pytest.raises(ArgumentError, match="positive, finite budget; got budget_s=0"):
        describe_data(b"", budget_s=0)


def test_hugging_face_dataset_uses_its_own_fingerprint() -> None:
    import datasets

    a = datasets.Dataset.from_dict({"x": [1, 2, 3], "y": [0, 1, 0]})
    same = datasets.Dataset.from_dict({"x": [1, 2, 3], "y": [0, 1, 0]})
    changed = datasets.Dataset.from_dict({"x": [1, 2, 4], "y": [0, 1, 0]})
    assert fingerprint(a) == fingerprint(same) == f"datasets:{a._fingerprint}"
    assert fingerprint(changed) != fingerprint(a)
    desc = describe_data(a)
    assert desc["method"] == "datasets-fingerprint"
    assert desc["length"] == 3
    assert set(desc["schema"]) == {"x", "y"}


def test_tensor_dataset_and_subset_are_hashed_whole_at_array_speed() -> None:
    import torch
    from torch.utils.data import Subset, TensorDataset

    x, y = torch.randn(50_000, 8), torch.randn(50_000, 1)
    ds = TensorDataset(x, y)
    desc = describe_data(ds)
    # Item by item, 50,000 items would exhaust the budget and fall back to a sample.
    assert desc["method"] == "full" and desc["kind"] == "torch.TensorDataset"
    assert desc["length"] == 50_000 and desc["shapes"] == [[50_000, 8], [50_000, 1]]
    assert fingerprint(TensorDataset(x.clone(), y.clone())) == fingerprint(ds)
    changed = x.clone()
    changed[49_999, 7] += 1
    assert fingerprint(TensorDataset(changed, y)) != fingerprint(ds)

    first, other = Subset(ds, [0, 1, 2]), Subset(ds, [0, 1, 3])
    assert describe_data(first)["base"]["fingerprint"] == fingerprint(ds)
    assert fingerprint(first) != fingerprint(other)
    assert fingerprint(first) == fingerprint(Subset(TensorDataset(x.clone(), y), [0, 1, 2]))
