"""Canonical, typed byte encoding of Python values, numpy arrays and torch tensors for hashing.

`encode` is the one entry: pandas and pyarrow objects (inside a list or dict too) go to
`_tabular`, imported on first use and handed `encode` for the Python values inside a table, so
`_tabular` never imports this module back. Both write into `_sink.Sink`.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Mapping
from typing import Any

from reprolog._errors import ArgumentError
from reprolog._fingerprint._sink import Sink, encode_plain_numpy, encode_shape, module_of

__all__ = ["digest_of", "encode", "encode_numpy", "encode_tensor"]

# ---------------------------------------------------------------- numpy, torch, python values


def encode_numpy(sink: Sink, arr: Any) -> None:
    if not arr.dtype.hasobject:
        encode_plain_numpy(sink, arr)
        return
    encode_shape(sink, arr.shape)
    sink.text(b"npobj", "O")
    for item in arr.reshape(-1):
        encode(sink, item)


def encode_tensor(sink: Sink, tensor: Any) -> None:
    t = tensor.detach()
    if t.layout != sys.modules["torch"].strided:
        t = t.to_dense()
    t = t.cpu().resolve_conj().resolve_neg().contiguous()
    sink.text(b"torch", str(t.dtype))
    encode_shape(sink, t.shape)
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
        from reprolog._fingerprint import _tabular  # on first use: only tables need it

        (_tabular.encode_pandas if module == "pandas" else _tabular.encode_arrow)(sink, obj, encode)
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
