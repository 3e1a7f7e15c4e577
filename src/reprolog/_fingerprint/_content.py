"""Full-content, stable data fingerprints: bytes, files, folders, arrays, tables, datasets."""

from __future__ import annotations

import hashlib
import math
import os
import struct
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reprolog._errors import ArgumentError

__all__ = ["SAMPLE_SIZE", "describe_data", "fingerprint"]

SAMPLE_SIZE = 1024  # items hashed from a map-style dataset over its budget
DATASET_TIME_BUDGET = 10.0  # seconds to hash a map-style dataset in full before sampling
DATASET_BYTE_BUDGET = 1 << 30  # bytes, likewise

# The encoders (`_canonical`, `_sink`) and the file hash cache are imported inside each function:
# `import reprolog` imports this module and pays only for what a fingerprint actually needs.


def _folder(path: Path) -> tuple[str, dict[str, Any]]:
    from reprolog._fingerprint._sink import Sink
    from reprolog._storage._filecache import file_sha256

    sink = Sink()
    sink.text(b"type", "folder")
    files = total = 0
    all_cached = True
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath, name)
            if not full.is_file():  # sockets, fifos, dangling links carry no content
                continue
            digest, cached = file_sha256(full)
            rel = full.relative_to(path).as_posix()
            size = full.stat().st_size
            sink.text(b"path", rel)
            sink.field(b"file", struct.pack("<Q", size) + bytes.fromhex(digest))
            files += 1
            total += size
            all_cached = all_cached and cached
    return "sha256:" + sink.hexdigest(), {"files": files, "bytes": total, "cached": all_cached}


def _as_path(obj: Any) -> Path:
    path = Path(os.fspath(obj))
    if not path.exists():
        kind = "str" if isinstance(obj, str) else "path"
        raise ArgumentError(
            f"fingerprint() reads a {kind} as a file or folder path, and {str(path)!r} does not "
            "exist; pass bytes to hash text, or an existing file or folder"
        )
    return path


# ---------------------------------------------------------------- datasets


def _sample_indices(n: int, k: int = SAMPLE_SIZE) -> list[int]:
    """The documented sample: k evenly spaced indices ``i*(n-1)//(k-1)``, first and last in."""
    if n <= k:
        return list(range(n))
    return sorted({i * (n - 1) // (k - 1) for i in range(k)})


def _map_dataset(obj: Any, budget_s: float, budget_bytes: int) -> tuple[str, dict[str, Any]]:
    from reprolog._fingerprint._canonical import encode
    from reprolog._fingerprint._sink import Sink

    n = len(obj)
    sink = Sink()
    sink.text(b"type", "map-dataset")
    sink.field(b"len", struct.pack("<Q", n))
    deadline = time.perf_counter() + budget_s
    for i in range(n):
        encode(sink, obj[i])
        if sink.nbytes > budget_bytes or time.perf_counter() > deadline:
            break
    else:
        return "sha256:" + sink.hexdigest(), {"length": n, "method": "full"}
    indices = _sample_indices(n)
    sample = Sink()
    sample.text(b"type", "map-dataset-sample")
    sample.field(b"len", struct.pack("<Q", n))
    for i in indices:
        sample.field(b"idx", struct.pack("<Q", i))
        encode(sample, obj[i])
    rule = f"{len(indices)} evenly spaced indices i*(n-1)//({SAMPLE_SIZE}-1), plus the length"
    return "sha256-sample:" + sample.hexdigest(), {
        "length": n,
        "method": "sample",
        "sample_size": len(indices),
        "sample_rule": rule,
    }


def _module_of(obj: object) -> str:
    return type(obj).__module__.split(".")[0]


def _is_hf_dataset(obj: Any) -> bool:
    return _module_of(obj) == "datasets" and hasattr(obj, "_fingerprint")


def _is_map_dataset(obj: Any) -> bool:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.utils.data.Dataset):
        return hasattr(obj, "__len__") and hasattr(obj, "__getitem__")
    return False


def _known_torch_dataset(
    obj: Any, budget_s: float, budget_bytes: int
) -> tuple[str, dict[str, Any]] | None:
    """Whole-content fingerprints of torch datasets whose items are plain slices of tensors.

    A `TensorDataset` is its tensors, and a `Subset` is its base dataset plus its indices:
    hashing those directly covers every item at array speed, where item by item would run
    out of budget. Only the exact classes qualify: a subclass may transform items.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    from reprolog._fingerprint._canonical import encode
    from reprolog._fingerprint._sink import Sink

    data = torch.utils.data
    if type(obj) is data.TensorDataset:
        sink = Sink()
        sink.text(b"type", "torch-tensor-dataset")
        for tensor in obj.tensors:
            encode(sink, tensor)
        return "sha256:" + sink.hexdigest(), {
            "method": "full",
            "kind": "torch.TensorDataset",
            "length": len(obj),
            "shapes": [list(t.shape) for t in obj.tensors],
            "dtypes": [str(t.dtype) for t in obj.tensors],
        }
    if type(obj) is data.Subset:
        base, base_info = _fingerprint(obj.dataset, budget_s, budget_bytes)
        sink = Sink()
        sink.text(b"type", "torch-subset")
        sink.text(b"base", base)
        sink.field(b"indices", struct.pack(f"<{len(obj.indices)}q", *map(int, obj.indices)))
        return "sha256:" + sink.hexdigest(), {
            "method": base_info.get("method", "full"),
            "kind": "torch.Subset",
            "length": len(obj),
            "base": {"fingerprint": base, **base_info},
        }
    return None


# ---------------------------------------------------------------- public


def _fingerprint(obj: Any, budget_s: float, budget_bytes: int) -> tuple[str, dict[str, Any]]:
    from reprolog._fingerprint._canonical import digest_of, encode
    from reprolog._fingerprint._sink import Sink
    from reprolog._storage._filecache import file_sha256

    info: dict[str, Any] = {"method": "full"}
    if isinstance(obj, (bytes, bytearray, memoryview)):
        info.update(kind="bytes", bytes=memoryview(obj).nbytes)
        return "sha256:" + hashlib.sha256(obj).hexdigest(), info
    if isinstance(obj, (str, os.PathLike)):
        path = _as_path(obj)
        if path.is_dir():
            fp, extra = _folder(path)
            info.update(kind="folder", path=str(path.resolve()), **extra)
            return fp, info
        digest, cached = file_sha256(path)
        info.update(kind="file", path=str(path.resolve()), bytes=path.stat().st_size, cached=cached)
        return "sha256:" + digest, info
    if _is_hf_dataset(obj):
        info.update(kind="datasets.Dataset", method="datasets-fingerprint", length=len(obj))
        features = getattr(obj, "features", None)
        if features is not None:
            info["schema"] = {k: str(v) for k, v in features.items()}
        return "datasets:" + str(obj._fingerprint), info
    if _module_of(obj) == "datasets" and isinstance(obj, Mapping):  # DatasetDict
        splits = {k: str(v._fingerprint) for k, v in obj.items()}
        info.update(kind="datasets.DatasetDict", method="datasets-fingerprint", splits=splits)
        return "datasets:" + digest_of(splits).hex(), info
    fast = _known_torch_dataset(obj, budget_s, budget_bytes)
    if fast is not None:
        return fast
    if _is_map_dataset(obj):
        fp, extra = _map_dataset(obj, budget_s, budget_bytes)
        info.update(kind="torch.Dataset", **extra)
        return fp, info
    sink = Sink()
    encode(sink, obj)
    info.update(_shape_info(obj))
    return "sha256:" + sink.hexdigest(), info


def _shape_info(obj: Any) -> dict[str, Any]:
    module = _module_of(obj)
    name = type(obj).__name__
    if module == "numpy" and hasattr(obj, "shape"):
        return {
            "kind": "numpy",
            "shape": list(obj.shape),
            "dtype": str(obj.dtype),
            "bytes": int(obj.nbytes),
        }
    if module == "torch":
        return {
            "kind": "torch.Tensor",
            "shape": list(obj.shape),
            "dtype": str(obj.dtype),
            "device": str(obj.device),
        }
    if module == "pandas" and name == "DataFrame":
        return {
            "kind": "pandas.DataFrame",
            "shape": list(obj.shape),
            "length": len(obj),
            "schema": {str(c): str(t) for c, t in obj.dtypes.items()},
        }
    if module == "pandas" and name == "Series":
        return {"kind": "pandas.Series", "length": len(obj), "dtype": str(obj.dtype)}
    if module == "pyarrow" and hasattr(obj, "schema"):
        return {
            "kind": "pyarrow.Table",
            "shape": [obj.num_rows, obj.num_columns],
            "length": obj.num_rows,
            "schema": {f.name: str(f.type) for f in obj.schema},
        }
    if module == "pyarrow" and hasattr(obj, "type") and hasattr(obj, "__len__"):
        return {"kind": "pyarrow.Array", "length": len(obj), "dtype": str(obj.type)}
    info: dict[str, Any] = {"kind": "python"}
    if hasattr(obj, "__len__"):
        info["length"] = len(obj)
    return info


def fingerprint(obj: object) -> str:
    """Hash the full content of data, stably across processes, machines and versions.

    Bytes and files hash to their plain sha256 (``sha256:`` + what ``sha256sum`` prints);
    folders, arrays, frames, tables and tensors to a sha256 over their shape, type and bytes;
    Hugging Face datasets reuse their own fingerprint (``datasets:…``); map-style torch
    Datasets hash every item within a 10 s / 1 GiB budget, else a deterministic sample of
    1,024 evenly spaced items plus the length (``sha256-sample:…``). File hashes are cached by
    path, size, mtime and inode, so an unchanged file is read once.

    Args:
        obj: bytes, a file or folder path (str or PathLike), a numpy array, a pandas
            DataFrame/Series/Index, a pyarrow Table/RecordBatch/Array, a torch tensor or
            Dataset, a ``datasets.Dataset``, or lists/tuples/dicts of these and scalars.

    Returns:
        A string such as ``"sha256:9f86d0…"``.

    Raises:
        ArgumentError: the object's type is not supported, or a path does not exist.

    Example:
        >>> reprolog.fingerprint(b"abc")[:15]
        'sha256:ba7816b'
    """
    return _fingerprint(obj, DATASET_TIME_BUDGET, DATASET_BYTE_BUDGET)[0]


def describe_data(
    obj: object, *, budget_s: float = DATASET_TIME_BUDGET, budget_bytes: int = DATASET_BYTE_BUDGET
) -> dict[str, Any]:
    """Fingerprint data and describe it for the run record's ``data`` section.

    Args:
        obj: anything `fingerprint` accepts.
        budget_s: seconds allowed to hash a map-style dataset in full before sampling.
        budget_bytes: bytes allowed likewise.

    Returns:
        ``{"fingerprint", "method", "kind", "seconds", ...}`` plus, by kind, ``shape``,
        ``length``, ``dtype``, ``schema``, ``bytes``, ``path``, ``files``, ``cached``,
        ``sample_size`` and ``sample_rule`` (see sections.md).

    Raises:
        ArgumentError: as `fingerprint`.
    """
    if not (budget_s > 0 and math.isfinite(budget_s)) or budget_bytes <= 0:
        raise ArgumentError(
            f"describe_data() needs a positive, finite budget; got budget_s={budget_s!r}, "
            f"budget_bytes={budget_bytes!r}"
        )
    start = time.perf_counter()
    fp, info = _fingerprint(obj, budget_s, budget_bytes)
    return {"fingerprint": fp, **info, "seconds": round(time.perf_counter() - start, 6)}
