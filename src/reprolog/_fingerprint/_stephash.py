"""Fast fingerprints of what a training step consumes: its batch, the RNG states, the weights.

Pure functions over numpy / torch objects, imported only when a run records step
fingerprints (never by ``import reprolog``). Every hash is xxh3-64 (the `xxhash` package)
or built from it, stable across processes, machines and thread counts:

- **batch**: each sample (row ``i`` of every array leaf whose leading dimension is the batch
  size) gets a 64-bit hash, a linear form of its raw bytes (as 8/4/2/1-byte words, times
  fixed odd 64-bit coefficients, mod 2**64; each leaf its own coefficients).
  Each is then mixed (xor-shift, odd multiply, xor-shift). ``batch`` = xxh3 of the sample
  hashes in order, seeded by the batch's layout (dtypes, row shapes): order-sensitive.
  ``samples`` = their sum mod 2**64: order-free, and
  the sum over an epoch's steps is a fingerprint of the epoch's multiset of samples. Leaves
  without a batch dimension (a scalar, a list of strings) are folded into ``batch`` only.
- **RNG**: torch's CPU generator (its state bytes), each initialised CUDA generator (seed and
  Philox offset), numpy's legacy global ``RandomState`` (MT19937 key and position, read
  through numpy's documented ctypes interface to the bit generator) and Python's ``random``
  (its Mersenne Twister state read in place, and ``gauss_next``): 32 bits each. The in-place
  reads are checked once per process against ``getstate()``/``get_state()``, and replaced
  by those (slower) calls when they do not match.
- **weights / gradients**: CPU tensors are hashed exactly (their bytes); tensors on an
  accelerator are reduced on the device to the int64 sum of their raw bit patterns (exact,
  so independent of reduction order) plus a strided sample of 1,024 elements, and copied
  to the host in one transfer. The per-tensor digests, in parameter order, hash to 64 bits.

0 means "not recorded" in every field, so a hash that comes out 0 is stored as 1.
"""

from __future__ import annotations

import ctypes
import random
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import xxhash

_xxh: Any = xxhash.xxh3_64_intdigest  # takes any buffer (numpy arrays too)
_MASK32 = 0xFFFFFFFF
_K1 = np.uint64(0xBF58476D1CE4E5B9)
_K2 = np.uint64(0x94D049BB133111EB)
_MAX_DEPTH = 6
SAMPLE_ELEMENTS = 1024  # elements of an accelerator tensor hashed exactly


def _coefficients(n: int) -> Any:
    # Fixed odd 64-bit multipliers (splitmix64 of 1..n), the same in every process.
    z = np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    z ^= z >> np.uint64(30)
    z *= _K1
    z ^= z >> np.uint64(27)
    z *= _K2
    z ^= z >> np.uint64(31)
    return z | np.uint64(1)


_coef = _coefficients(4096)
_leaf_seeds: dict[tuple[Any, ...], int] = {}  # batch layout (dtypes, row shapes) -> token


def _nonzero(h: int) -> int:
    return h or 1


# ---------------------------------------------------------------- batches


# A captured batch: its leaves with a batch dimension (numpy arrays, owned), and the
# description of its other leaves (strings, hashed into ``batch`` only).
Captured = tuple[list[Any], list[str]]


def capture(batch: Any, *, copy: bool = True) -> Captured:
    """Take what `hash_captured` needs from a batch, cheaply (no hashing of the samples).

    Args:
        batch: a tensor/array, or a tuple, list or mapping of them (nested).
        copy: copy the array leaves, so that hashing them later sees the batch as it was now
            (a loader may refill the same buffer, a step may change its batch in place).
    """
    leaves: list[Any] = []
    other: list[str] = []
    _collect(batch, leaves, other, 0)
    size = -1
    for arr in leaves:
        if arr.ndim:
            size = arr.shape[0]
            break
    batched = []
    for arr in leaves:
        if not arr.ndim or arr.shape[0] != size:
            other.append(f"{arr.dtype.str}:{arr.shape}:{_xxh(np.ascontiguousarray(arr))}")
        else:
            batched.append(arr.copy() if copy else arr)  # the caller may reuse its buffer
    return batched, other


def batch_hash(batch: Any) -> tuple[int, int]:
    """Return (batch, samples) fingerprints of one batch (see the module docstring).

    Args:
        batch: a tensor/array, or a tuple, list or mapping of them (nested), as the model
            receives it.

    Returns:
        Two unsigned 64-bit ints; ``samples`` is 0 when no leaf has a batch dimension.
    """
    return hash_captured([capture(batch, copy=False)])[0]


def hash_captured(batches: list[Captured]) -> list[tuple[int, int]]:
    """The (batch, samples) fingerprints of many captured batches, computed together.

    Batches of one layout (the same leaves, dtypes and row shapes; any batch size) are stacked
    so that each leaf costs one matrix product for all of them: the result is the same as
    hashing each alone.
    """
    out: list[tuple[int, int]] = [(0, 0)] * len(batches)
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, (leaves, other) in enumerate(batches):
        if not leaves:
            out[i] = (_nonzero(_xxh("\x00".join(other).encode())), 0) if other else (0, 0)
            continue
        key = tuple((arr.dtype.str, arr.shape[1:]) for arr in leaves)
        groups.setdefault(key, []).append(i)
    for key, members in groups.items():
        h = _row_hashes(key, [batches[i][0] for i in members])
        token = _leaf_seeds.get(key)
        if token is None:
            token = _leaf_seeds[key] = _xxh(repr(key).encode())
        sizes = [batches[i][0][0].shape[0] for i in members]
        starts = np.cumsum([0, *sizes[:-1]])
        sums = np.add.reduceat(h, starts) if len(h) else np.zeros(len(members), np.uint64)
        for j, i in enumerate(members):
            lo = int(starts[j])
            other = batches[i][1]
            seed = _xxh("\x00".join(other).encode(), token) if other else token
            rows = h[lo : lo + sizes[j]]
            out[i] = _nonzero(_xxh(rows, seed)), _nonzero(int(sums[j]) if sizes[j] else 0)
    return out


def _row_hashes(key: tuple[Any, ...], stack: list[list[Any]]) -> Any:
    """One mixed 64-bit hash per sample of every batch in `stack` (all of layout `key`)."""
    global _coef
    h: Any = None
    off = 0
    for pos in range(len(key)):
        parts = [leaves[pos] for leaves in stack]
        arr = parts[0] if len(parts) == 1 else np.concatenate(parts)
        words = _words(arr, arr.shape[0])
        width = words.shape[1]
        if off + width > len(_coef):
            _coef = _coefficients(max(2 * len(_coef), off + width))
        # Each leaf has its own run of coefficients: the same bytes in another leaf differ.
        r = words @ _coef[off : off + width]
        h = r if h is None else h + r
        off += width
    # Mix each row hash (xor-shift, odd multiply, xor-shift) before the order-free sum: a sum
    # of linear row hashes would see only the batch's column sums, blind to values swapped
    # between rows, and products alone keep the trailing zeros of float bit differences.
    h ^= h >> _S1
    h *= _K1
    h ^= h >> _S2
    return h


def combine(parts: list[tuple[int, int]]) -> tuple[int, int]:
    """The fingerprints of a step made of several micro-batches, in order."""
    b, s = parts[0]
    for b2, s2 in parts[1:]:
        b = _xxh(b.to_bytes(8, "little") + b2.to_bytes(8, "little")) or 1
        s = ((s + s2) & 0xFFFFFFFFFFFFFFFF or 1) if s or s2 else 0
    return b, s


_S1 = np.uint64(31)
_S2 = np.uint64(29)


def _words(arr: Any, size: int) -> Any:
    rows = arr.reshape(size, -1)
    nbytes = rows.shape[1] * rows.dtype.itemsize
    if nbytes % 8 == 0:
        return rows.view(np.uint64)
    as_bytes = rows.view(np.uint8)
    for width, kind in ((4, np.uint32), (2, np.uint16)):
        if nbytes % width == 0:
            return as_bytes.view(kind)
    return as_bytes


def _collect(obj: Any, out: list[Any], other: list[str], depth: int) -> None:
    """Append a C-contiguous numpy array per array leaf, in a fixed order."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.Tensor):
        out.append(tensor_to_numpy(obj))
    elif isinstance(obj, np.ndarray):
        out.append(np.ascontiguousarray(obj))
    elif depth > _MAX_DEPTH:
        other.append(type(obj).__qualname__)
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            _collect(item, out, other, depth + 1)
    elif isinstance(obj, Mapping):
        for key in sorted(obj, key=str):
            other.append(f"k:{key}")
            _collect(obj[key], out, other, depth + 1)
    elif obj is None or isinstance(obj, (str, bytes, int, float, bool)):
        other.append(repr(obj))
    else:
        # Another array type (a Keras/JAX tensor, a DataFrame): through numpy if it converts.
        try:
            out.append(np.ascontiguousarray(np.asarray(obj)))
        except Exception:
            other.append(type(obj).__qualname__)


def tensor_to_numpy(t: Any) -> Any:
    """A host numpy view (or copy) of a torch tensor's data; bfloat16 etc. as raw integers."""
    try:
        arr = t.numpy()  # the common case: a CPU float32/int tensor, no grad, no copy
    except (RuntimeError, TypeError):
        pass
    else:
        return arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)
    import torch

    if t.requires_grad:
        t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()  # a device sync; accelerator batches pay one per step
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.view(torch.int16)
    elif t.dtype.is_floating_point and t.dtype not in (torch.float32, torch.float64):
        t = t.view(torch.uint8)
    elif t.is_complex():
        t = torch.view_as_real(t)
    return np.ascontiguousarray(t.numpy())


# ---------------------------------------------------------------- RNG states


class RngProbe:
    """Reads the 32-bit fingerprints of each RNG state; built once per process."""

    def __init__(self) -> None:
        self._py, self._py_inst = _python_reader()
        self._mtrand: Any = None
        self._np_rs: Any = None
        self._np: Any = None
        self._torch_state: Any = None
        self._cuda_initialized: Any = None
        self.methods: dict[str, str] = {
            "python": "in place" if self._py is not None else "getstate"
        }

    def __call__(self) -> tuple[int, int, int, int]:
        """Return (torch CPU, torch CUDA, numpy, python); 0 for a generator not in use."""
        # Runs at every step: everything that stays the same is looked up once.
        t = c = n = 0
        get_state = self._torch_state
        if get_state is None and "torch" in sys.modules:
            torch = sys.modules["torch"]
            get_state = self._torch_state = torch.default_generator.get_state
            self._cuda_initialized = torch.cuda.is_initialized
        if get_state is not None:
            t = _xxh(get_state().numpy()) & _MASK32 or 1
            if self._cuda_initialized():
                c = _cuda_hash(sys.modules["torch"])
        mtrand = self._mtrand
        if mtrand is None and "numpy.random" in sys.modules:
            mtrand = self._mtrand = sys.modules["numpy.random"].mtrand
        if mtrand is not None:
            rs = mtrand._rand
            if rs is not self._np_rs:
                self._np_rs, self._np = rs, _numpy_reader(rs)
                self.methods["numpy"] = "in place" if self._np is not None else "get_state"
            view = self._np
            n = _xxh(view) if view is not None else _xxh(repr(rs.get_state()).encode())
            n = n & _MASK32 or 1
        view = self._py
        if view is not None:
            gauss = self._py_inst.gauss_next
            p = _xxh(view) if gauss is None else _xxh(view, _gauss_seed(gauss))
        else:
            p = _xxh(repr(random.getstate()).encode())
        return t, c, n, p & _MASK32 or 1


def _gauss_seed(gauss: float | None) -> int:
    return 0 if gauss is None else _xxh(repr(gauss).encode())


def _python_reader() -> tuple[Any, Any]:
    # CPython's RandomObject: PyObject_HEAD, int index, uint32_t state[624]. Checked against
    # getstate() before use; any other layout (PyPy, a future CPython) takes getstate().
    inst = random._inst
    try:
        if sys.implementation.name != "cpython":
            return None, inst
        state = inst.getstate()[1]
        buf = (ctypes.c_uint32 * 625).from_address(id(inst) + object.__basicsize__)
        view = np.ctypeslib.as_array(buf)
        if int(view[0]) != state[624] or view[1:].tolist() != list(state[:624]):
            return None, inst
        view.flags.writeable = False
        return view, inst
    except Exception:
        return None, inst


def _numpy_reader(rs: Any) -> Any:
    try:
        bitgen = rs._bit_generator
        state = rs.get_state(legacy=False)["state"]
        buf = (ctypes.c_uint32 * 625).from_address(bitgen.ctypes.state_address)
        view = np.ctypeslib.as_array(buf)
        if int(view[624]) != int(state["pos"]) or not (view[:624] == state["key"]).all():
            return None
        view.flags.writeable = False
        return view
    except Exception:
        return None


def _cuda_hash(torch: Any) -> int:
    parts = [(g.initial_seed(), g.get_offset()) for g in torch.cuda.default_generators]
    return _nonzero(_xxh(repr(parts).encode()) & _MASK32)


# ---------------------------------------------------------------- weights and gradients


def tensors_of(model: Any) -> list[Any]:
    """The parameter tensors of a torch module, a Keras model, or an iterable of arrays."""
    parameters = getattr(model, "parameters", None)
    if callable(parameters) and not isinstance(model, np.ndarray):
        return list(parameters())
    weights = getattr(model, "weights", None)
    if weights is not None:
        return [getattr(w, "value", w) for w in weights]
    if isinstance(model, Iterable):
        return list(model)
    raise TypeError(
        f"cannot read weights from {type(model).__name__}: give a torch.nn.Module, a Keras "
        "model or an iterable of tensors/arrays"
    )


def tensors_hash(tensors: Iterable[Any]) -> int:
    """Return the 64-bit fingerprint of a sequence of tensors/arrays (0 for none)."""
    digests: list[int] = []
    device: list[Any] = []
    torch = sys.modules.get("torch")
    for t in tensors:
        if t is None:
            digests.append(0)
        elif torch is not None and isinstance(t, torch.Tensor):
            if t.device.type == "cpu":
                digests.append(_xxh(tensor_to_numpy(t), t.numel()))
            else:
                digests.append(-1 - len(device))  # placeholder, filled after one transfer
                device.append(t)
        else:
            arr = np.ascontiguousarray(np.asarray(t))
            digests.append(_xxh(arr, arr.size))
    if device:
        reduced = _device_reductions(torch, device)
        digests = [reduced[-1 - d] if d < 0 else d for d in digests]
    if not digests:
        return 0
    return _nonzero(_xxh(np.asarray(digests, dtype=np.uint64)))


def _device_reductions(torch: Any, tensors: list[Any]) -> list[int]:
    rows = []
    with torch.no_grad():
        for t in tensors:
            flat = t.detach().reshape(-1)
            size = flat.element_size()
            kind = {8: torch.int64, 4: torch.int32, 2: torch.int16, 1: torch.uint8}[size]
            bits = flat.view(kind) if flat.dtype != torch.bool else flat.to(torch.uint8)
            stride = max(1, flat.numel() // SAMPLE_ELEMENTS)
            sample = bits[::stride][:SAMPLE_ELEMENTS].to(torch.int64)
            padded = torch.zeros(SAMPLE_ELEMENTS + 2, dtype=torch.int64, device=t.device)
            padded[0] = bits.to(torch.int64).sum()
            padded[1] = flat.numel()
            padded[2 : 2 + sample.numel()] = sample
            rows.append(padded)
        host = torch.stack(rows).cpu().numpy()  # one transfer for every tensor
    return [_xxh(np.ascontiguousarray(row)) for row in host]


def grads_of(model: Any) -> list[Any]:
    """The gradients of a model's parameters (None where a parameter has none)."""
    return [getattr(t, "grad", None) for t in tensors_of(model)]
