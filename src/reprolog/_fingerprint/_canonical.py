"""Canonical, typed byte encoding of Python values, numpy arrays and torch tensors for hashing."""

from __future__ import annotations

import hashlib
import os
import struct
import sys
from collections.abc import Mapping
from typing import Any

from reprolog._errors import ArgumentError

__all__ = ["Sink", "digest_of", "encode", "encode_numpy", "encode_tensor", "module_of"]

_VERSION = b"reprolog-fp1\0"  # bump only with a new prefix: old fingerprints must stay valid
# Array buffers above _LEAF bytes are hashed as a fixed tree: sha256 of each _LEAF-sized leaf
# (in parallel, hashlib releases the GIL), then the leaves' digests in order. The result does not
# depend on the number of threads, so it stays stable across machines.
_LEAF = 4 << 20
_pool: Any = None


class Sink:
    """A sha256 stream with a length-prefixed, typed framing (no ambiguity between fields)."""

    def __init__(self) -> None:
        self.h = hashlib.sha256(_VERSION)
        self.nbytes = 0

    def raw(self, data: Any) -> None:
        self.h.update(data)
        self.nbytes += memoryview(data).nbytes

    def field(self, tag: bytes, data: Any = b"") -> None:
        n = memoryview(data).nbytes
        self.h.update(tag + struct.pack("<Q", n))
        self.h.update(data)
        self.nbytes += n

    def array(self, tag: bytes, buffer: Any) -> None:
        """A large contiguous buffer (array data), hashed as a tree of leaves when big."""
        view = memoryview(buffer).cast("B")
        if view.nbytes <= _LEAF:
            self.field(tag, view)
            return
        leaves = [view[i : i + _LEAF] for i in range(0, view.nbytes, _LEAF)]
        self.field(tag + b"-tree", b"".join(_executor().map(_leaf_digest, leaves)))
        self.nbytes += view.nbytes

    def text(self, tag: bytes, value: str) -> None:
        self.field(tag, value.encode("utf-8", "surrogatepass"))

    def hexdigest(self) -> str:
        return self.h.hexdigest()


def _leaf_digest(leaf: memoryview) -> bytes:
    return hashlib.sha256(leaf).digest()


def _executor() -> Any:
    global _pool
    if _pool is None:
        from concurrent.futures import ThreadPoolExecutor

        workers = min(
            8,
            len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count() or 1,
        )
        _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reprolog-hash")
    return _pool


def module_of(obj: object) -> str:
    return type(obj).__module__.split(".")[0]


# ---------------------------------------------------------------- numpy, torch, python values


def encode_numpy(sink: Sink, arr: Any) -> None:
    np = sys.modules["numpy"]
    sink.field(b"shape", struct.pack(f"<{arr.ndim}q", *arr.shape))
    if arr.dtype.hasobject:
        sink.text(b"npobj", "O")
        for item in arr.reshape(-1):
            encode(sink, item)
        return
    dtype = arr.dtype
    if dtype.byteorder == ">" or (dtype.byteorder == "=" and sys.byteorder == "big"):
        dtype = dtype.newbyteorder("<")
        arr = arr.astype(dtype)
    sink.text(b"dtype", str(dtype.descr) if dtype.fields else dtype.str)
    flat = np.ascontiguousarray(arr).reshape(-1)
    sink.array(b"data", flat.view(np.uint8))


def encode_tensor(sink: Sink, tensor: Any) -> None:
    t = tensor.detach()
    if t.layout != sys.modules["torch"].strided:
        t = t.to_dense()
    t = t.cpu().resolve_conj().resolve_neg().contiguous()
    sink.text(b"torch", str(t.dtype))
    sink.field(b"shape", struct.pack(f"<{t.dim()}q", *t.shape))
    torch = sys.modules["torch"]
    sink.array(b"data", t.reshape(-1).view(torch.uint8).numpy())


def encode(sink: Sink, obj: Any) -> None:
    """Encode a Python value (or an array/tensor/frame inside one) canonically."""
    if obj is None:
        sink.field(b"N")
    elif isinstance(obj, bool):
        sink.field(b"T" if obj else b"F")
    elif isinstance(obj, int):
        sink.text(b"i", str(obj))
    elif isinstance(obj, float):
        sink.field(b"f", struct.pack("<d", obj))
    elif isinstance(obj, complex):
        sink.field(b"c", struct.pack("<dd", obj.real, obj.imag))
    elif isinstance(obj, str):
        sink.text(b"s", obj)
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        sink.field(b"b", obj)
    elif isinstance(obj, (list, tuple)):
        sink.field(b"l" if isinstance(obj, list) else b"t", struct.pack("<Q", len(obj)))
        for item in obj:
            encode(sink, item)
    elif isinstance(obj, Mapping):
        # Key order does not change content: sort entries by their encoded key.
        entries = sorted((digest_of(k), k, v) for k, v in _items(obj))
        sink.field(b"d", struct.pack("<Q", len(entries)))
        for key_digest, _, value in entries:
            sink.field(b"k", key_digest)
            encode(sink, value)
    elif isinstance(obj, (set, frozenset)):
        digests = sorted(digest_of(item) for item in obj)
        sink.field(b"S", b"".join(digests))
    elif hasattr(obj, "isoformat"):  # datetime, date, time
        sink.text(b"dt", obj.isoformat())
    elif type(obj).__name__ == "Decimal":
        sink.text(b"dec", str(obj))
    else:
        _structured(sink, obj)


def _items(mapping: Mapping[Any, Any]) -> list[tuple[Any, Any]]:
    return list(mapping.items())


def digest_of(obj: Any) -> bytes:
    sub = Sink()
    encode(sub, obj)
    return sub.h.digest()


def _structured(sink: Sink, obj: Any) -> None:
    module = module_of(obj)
    if module == "numpy":
        np = sys.modules["numpy"]
        sink.text(b"type", "numpy")
        encode_numpy(sink, np.asarray(obj))
    elif module == "torch" and type(obj).__name__ in ("Tensor", "Parameter"):
        encode_tensor(sink, obj)
    elif module in ("pandas", "pyarrow"):
        from reprolog._fingerprint import _tabular as tabular  # on first use: it needs numpy

        (tabular.encode_pandas if module == "pandas" else tabular.encode_arrow)(sink, obj)
    elif hasattr(obj, "__array__"):  # PIL images and other array-likes
        np = sys.modules.get("numpy") or __import__("numpy")
        sink.text(b"type", "array-like")
        encode_numpy(sink, np.asarray(obj))
    else:
        raise ArgumentError(
            f"fingerprint() cannot hash a {type(obj).__module__}.{type(obj).__qualname__}; "
            "it accepts bytes, paths, numpy arrays, pandas DataFrames/Series, pyarrow tables, "
            "torch tensors and Datasets, Hugging Face datasets, and lists/tuples/dicts of these "
            "and of Python scalars"
        )
