"""The hash stream both encoders write into: `Sink` (sha256 with typed, length-prefixed fields).

Also the one encoding of a plain (not object-dtype) numpy array that `_canonical` and `_tabular`
share. Imports nothing of reprolog, so neither encoder has to import the other for it.
"""

from __future__ import annotations

import hashlib
import os
import struct
import sys
from typing import Any

__all__ = ["LEAF", "Sink", "encode_plain_numpy", "encode_shape", "module_of"]

_VERSION = b"reprolog-fp1\0"  # bump only with a new prefix: old fingerprints must stay valid
# Array buffers above LEAF bytes are hashed as a fixed tree: sha256 of each LEAF-sized leaf
# (in parallel, hashlib releases the GIL), then the leaves' digests in order. The result does not
# depend on the number of threads, so it stays stable across machines.
LEAF = 4 << 20
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
        if view.nbytes <= LEAF:
            self.field(tag, view)
            return
        leaves = [view[i : i + LEAF] for i in range(0, view.nbytes, LEAF)]
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
    """The top-level package an object's type comes from (``"numpy"``, ``"pandas"``…)."""
    return type(obj).__module__.split(".")[0]


def encode_shape(sink: Sink, shape: Any) -> None:
    sink.field(b"shape", struct.pack(f"<{len(shape)}q", *shape))


def encode_plain_numpy(sink: Sink, arr: Any) -> None:
    """A numpy array of fixed-size items: its shape, little-endian dtype and bytes.

    An object-dtype array holds Python values: `_canonical.encode_numpy` encodes those.
    """
    np = sys.modules["numpy"]
    encode_shape(sink, arr.shape)
    dtype = arr.dtype
    if dtype.byteorder == ">" or (dtype.byteorder == "=" and sys.byteorder == "big"):
        dtype = dtype.newbyteorder("<")
        arr = arr.astype(dtype)
    sink.text(b"dtype", str(dtype.descr) if dtype.fields else dtype.str)
    flat = np.ascontiguousarray(arr).reshape(-1)
    sink.array(b"data", flat.view(np.uint8))
