"""Canonical hashing of pyarrow tables/arrays and pandas frames/series, independent of chunking.

The Python values inside a table (column names, nested Arrow items, object columns) are encoded
by the `encode` the caller passes in (`_canonical.encode`), so this module imports only `_sink`.
"""

from __future__ import annotations

import hashlib
import struct
import sys
from collections.abc import Callable
from typing import Any

from reprolog._fingerprint._sink import Sink, encode_plain_numpy

__all__ = ["Encode", "encode_arrow", "encode_pandas"]

Encode = Callable[[Sink, Any], None]  # encodes one Python value into the sink


def _fixed_width(arrow_type: Any) -> int:
    """Byte width of a fixed-width, two-buffer Arrow type (ints, floats, temporals), else 0."""
    try:
        bits = int(arrow_type.bit_width)
    except ValueError:
        return 0
    return bits // 8 if bits % 8 == 0 and arrow_type.num_buffers == 2 else 0


def _arrow_chunks(sink: Sink, chunks: list[Any], arrow_type: Any, encode: Encode) -> None:
    """Hash Arrow chunks so that the result does not depend on how the column is chunked."""
    pa = sys.modules["pyarrow"]
    np = sys.modules["numpy"]
    nulls, lengths, data = hashlib.sha256(), hashlib.sha256(), hashlib.sha256()
    position = 0
    kind = "other"
    items = Sink()  # nested types, one stream across chunks so chunking does not matter
    for arr in chunks:
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        if isinstance(arr.type, pa.ExtensionType):
            arr = arr.storage
        t = arr.type
        if arr.null_count:
            valid = arr.is_valid().to_numpy(zero_copy_only=False)
            nulls.update((np.flatnonzero(~valid) + position).astype("<i8"))
        if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
            kind = "utf8"
            arr = arr.cast(pa.large_string()).fill_null("")
        elif pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
            kind = "binary"
            arr = arr.cast(pa.large_binary()).fill_null(b"")
        elif pa.types.is_boolean(t):
            kind = "bool"
            data.update(arr.fill_null(False).to_numpy(zero_copy_only=False).view(np.uint8))
        elif width := _fixed_width(t):
            kind = str(t)
            if arr.null_count:
                arr = arr.fill_null(pa.scalar(0, type=t))
            buf = arr.buffers()[1]
            if buf is not None:
                data.update(memoryview(buf)[arr.offset * width : (arr.offset + len(arr)) * width])
        else:
            kind = str(t)
            for item in arr.to_pylist():
                encode(items, item)
        if kind in ("utf8", "binary"):
            offsets = np.frombuffer(arr.buffers()[1], dtype="<i8")[
                arr.offset : arr.offset + len(arr) + 1
            ]
            lengths.update(np.diff(offsets).astype("<i8"))
            buf = arr.buffers()[2]
            if buf is not None and len(arr):
                data.update(memoryview(buf)[int(offsets[0]) : int(offsets[-1])])
        position += len(arr)
    sink.text(b"arrow", kind if chunks else str(arrow_type))
    sink.field(b"len", struct.pack("<Q", position))
    sink.field(b"parts", nulls.digest() + lengths.digest() + data.digest() + items.h.digest())
    sink.nbytes += sum(c.nbytes for c in chunks)


def encode_arrow(sink: Sink, obj: Any, encode: Encode) -> None:
    pa = sys.modules["pyarrow"]
    if isinstance(obj, (pa.Table, pa.RecordBatch)):
        sink.text(b"type", "pyarrow.Table")
        sink.field(b"rows", struct.pack("<Q", obj.num_rows))
        for name, column in zip(obj.schema.names, obj.columns, strict=True):
            sink.text(b"col", name)
            chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
            _arrow_chunks(sink, chunks, column.type, encode)
    elif isinstance(obj, pa.ChunkedArray):
        sink.text(b"type", "pyarrow.Array")
        _arrow_chunks(sink, obj.chunks, obj.type, encode)
    elif isinstance(obj, pa.Array):
        sink.text(b"type", "pyarrow.Array")
        _arrow_chunks(sink, [obj], obj.type, encode)
    else:
        encode(sink, obj.as_py() if hasattr(obj, "as_py") else str(obj))


def _pandas_values(sink: Sink, values: Any, encode: Encode) -> None:
    """Hash a Series' or Index's values: numpy bytes when numeric, else through Arrow."""
    np = sys.modules["numpy"]
    dtype = values.dtype
    if isinstance(dtype, np.dtype) and not dtype.hasobject:
        encode_plain_numpy(sink, values.to_numpy())
        return
    pa = sys.modules.get("pyarrow") or __import__("pyarrow")
    try:
        arr = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        sink.text(b"type", "pandas-objects")  # mixed Python objects: hash one by one
        for item in values.to_numpy(dtype=object):
            encode(sink, None if item is getattr(sys.modules["pandas"], "NA", None) else item)
        return
    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    _arrow_chunks(sink, chunks, arr.type, encode)


def encode_pandas(sink: Sink, obj: Any, encode: Encode) -> None:
    pd = sys.modules["pandas"]
    if isinstance(obj, pd.DataFrame):
        sink.text(b"type", "pandas.DataFrame")
        sink.field(b"shape", struct.pack("<2q", *obj.shape))
        sink.text(b"index", "")
        _pandas_values(sink, obj.index, encode)
        for position in range(obj.shape[1]):
            encode(sink, obj.columns[position])
            _pandas_values(sink, obj.iloc[:, position], encode)
    elif isinstance(obj, pd.Series):
        sink.text(b"type", "pandas.Series")
        encode(sink, obj.name)
        _pandas_values(sink, obj.index, encode)
        _pandas_values(sink, obj, encode)
    elif isinstance(obj, pd.Index):
        sink.text(b"type", "pandas.Index")
        _pandas_values(sink, obj, encode)
    else:
        encode(sink, str(obj))  # pandas scalars such as Timestamp print canonically
