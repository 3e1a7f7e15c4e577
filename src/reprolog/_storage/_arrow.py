"""Arrow arrays straight from numpy buffers and Python strings, without `pa.array`.

`pa.array(...)` asks pandas whether its argument is a pandas object, and so imports pandas
(about 0.3 s) the first time it is called in a process. The write path (finishing a run,
compacting its logs, updating the index) builds every array it needs here instead, so a
training script that never touches pandas does not pay for it when its run ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["from_numpy", "strings", "to_numpy"]


def from_numpy(values: Any, type: pa.DataType, mask: Any = None) -> pa.Array:
    """A fixed-width Arrow array over a numpy array of the matching width.

    Args:
        values: a 1-D numpy array whose item size is `type`'s (int32 for int32, int64 for
            int64 or a timestamp, float64 for float64).
        type: the Arrow type of the result.
        mask: a boolean numpy array, True where the value is null, or None for no nulls.

    Raises:
        ValueError: the item size of `values` does not match `type`'s bit width.
    """
    import numpy as np
    import pyarrow as pa

    data = np.ascontiguousarray(values)
    if data.ndim != 1 or data.dtype.itemsize * 8 != type.bit_width:
        raise ValueError(f"a 1-D array of {type.bit_width}-bit items is needed, got {data.dtype}")
    n = len(data)
    validity, nulls = None, 0
    if mask is not None:
        nulls = int(np.count_nonzero(mask))
        if nulls:
            validity = pa.py_buffer(np.packbits(~np.asarray(mask, bool), bitorder="little"))
    return pa.Array.from_buffers(type, n, [validity, pa.py_buffer(data)], null_count=nulls)


def strings(values: list[str]) -> pa.Array:
    """A UTF-8 string array of `values` (no nulls)."""
    import numpy as np
    import pyarrow as pa

    encoded = [v.encode("utf-8") for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return pa.Array.from_buffers(
        pa.string(), len(encoded), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    )


def to_numpy(array: pa.Array | pa.ChunkedArray) -> Any:
    """A numpy view of a fixed-width Arrow array without nulls (a copy when chunked).

    `Array.to_numpy` also asks pandas about its argument; this reads the data buffer.

    Raises:
        ValueError: the array holds nulls or is not of a fixed-width numeric type.
    """
    import numpy as np
    import pyarrow as pa

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if array.null_count:
        raise ValueError(f"an array without nulls is needed, got {array.null_count} nulls")
    dtype = _NUMPY.get(str(array.type))
    if dtype is None:
        raise ValueError(f"a fixed-width numeric array is needed, got {array.type}")
    data = array.buffers()[1]
    if data is None:
        return np.zeros(0, dtype)
    return np.frombuffer(
        data, dtype=dtype, count=len(array), offset=array.offset * np.dtype(dtype).itemsize
    )


_NUMPY = {
    "int8": "int8",
    "int16": "int16",
    "int32": "int32",
    "int64": "int64",
    "uint32": "uint32",
    "uint64": "uint64",
    "double": "float64",
    "float": "float32",
}
