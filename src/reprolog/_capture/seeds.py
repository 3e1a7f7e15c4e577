"""The seeds section: observe (never change) RNG states, store them in side files, restore them."""

from __future__ import annotations

import hashlib
import json
import os
import random
import struct
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reprolog._capture.report import CaptureReport
from reprolog._errors import CorruptFileError
from reprolog._storage._atomic import replacing
from reprolog._storage._layout import RunLayout

__all__ = ["SEED_ENV", "capture_seeds", "restore_rng"]

SEED_ENV = (
    "PYTHONHASHSEED",
    "PL_GLOBAL_SEED",
    "PL_SEED_WORKERS",
    "TF_DETERMINISTIC_OPS",
    "TF_CUDNN_DETERMINISTIC",
)


def _dumps(obj: Mapping[str, Any]) -> bytes:
    # Canonical JSON so that equal states always give equal bytes, hence equal hashes.
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def python_state_bytes(state: tuple[Any, ...] | None = None) -> bytes:
    """Encode Python ``random``'s state (default: the current one) as canonical JSON bytes."""
    version, internal, gauss_next = random.getstate() if state is None else state
    return _dumps(
        {
            "version": version,
            "state_hex": struct.pack(f"<{len(internal)}I", *internal).hex(),
            "gauss_next": gauss_next,
        }
    )


def _python_state_from(data: bytes) -> tuple[Any, ...]:
    doc = json.loads(data)
    raw = bytes.fromhex(doc["state_hex"])
    return (doc["version"], struct.unpack(f"<{len(raw) // 4}I", raw), doc["gauss_next"])


def numpy_state_bytes() -> bytes:
    """Encode numpy's global legacy RandomState (numpy must be imported) as canonical JSON."""
    np = sys.modules["numpy"]
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return _dumps(
        {
            "kind": kind,
            "keys_hex": np.asarray(keys, dtype="<u4").tobytes().hex(),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        }
    )


def _write(run_dir: Path, name: str, data: bytes, files: dict[str, str]) -> str:
    layout = RunLayout(run_dir)
    layout.rng_dir.mkdir(parents=True, exist_ok=True)
    target = layout.rng_dir / name
    with replacing(target) as tmp:  # a reader never sees half a state
        tmp.write_bytes(data)
    files[name.split(".")[0]] = target.relative_to(layout.dir).as_posix()
    return hashlib.sha256(data).hexdigest()


def capture_seeds(run_dir: Path, report: CaptureReport) -> dict[str, Any]:
    """Capture seeds and RNG states; large states go to ``run_dir/rng/`` side files.

    Nothing is seeded or drawn: reading a state does not advance it.

    Args:
        run_dir: the run's folder (``rng/`` is created in it).
        report: collects skipped items and errors.

    Returns:
        The section (see sections.md for every key).
    """
    files: dict[str, str] = {}
    section: dict[str, Any] = {
        "python_random_sha256": None,
        "numpy_sha256": None,
        "torch_seed": None,
        "torch_cpu_state_sha256": None,
        "torch_cuda_state_sha256": None,
        "env": {name: os.environ.get(name) for name in SEED_ENV},
        "hash_randomization": bool(sys.flags.hash_randomization),
        "files": files,
    }
    try:
        section["python_random_sha256"] = _write(
            run_dir, "python_random.json", python_state_bytes(), files
        )
    except Exception as exc:
        report.error("seeds.python_random", exc)
    if "numpy" in sys.modules:
        try:
            section["numpy_sha256"] = _write(run_dir, "numpy.json", numpy_state_bytes(), files)
        except Exception as exc:
            report.error("seeds.numpy", exc)
    else:
        report.skip("seeds.numpy", "numpy not imported")
    torch = sys.modules.get("torch")
    if torch is None:
        report.skip("seeds.torch", "torch not imported")
    else:
        try:
            section["torch_seed"] = int(torch.initial_seed())
            cpu = torch.get_rng_state().numpy().tobytes()
            section["torch_cpu_state_sha256"] = _write(run_dir, "torch_cpu.bin", cpu, files)
            # Reading CUDA states would initialize CUDA, which breaks fork-based DataLoader
            # workers later on: only read them once the user's code has started CUDA.
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                hashes = []
                for i, state in enumerate(torch.cuda.get_rng_state_all()):
                    data = state.cpu().numpy().tobytes()
                    hashes.append(_write(run_dir, f"torch_cuda_{i}.bin", data, files))
                section["torch_cuda_state_sha256"] = hashes
            elif torch.cuda.is_available():
                report.skip(
                    "seeds.torch_cuda", "CUDA not initialized yet (capture never starts it)"
                )
        except Exception as exc:
            report.error("seeds.torch", exc)
    try:
        from reprolog._capture.entropy import section_facts

        section.update(section_facts())
    except Exception as exc:
        report.error("seeds.numpy_entropy", exc)
    report.done("seeds")
    return section


def _load(run_dir: Path, section: Mapping[str, Any], key: str, sha_key: str | None) -> bytes:
    rel = (section.get("files") or {}).get(key)
    if rel is None:
        raise FileNotFoundError(key)
    path = run_dir / str(rel)
    data = path.read_bytes()
    expected = section.get(sha_key) if sha_key else None
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise CorruptFileError(
            f"RNG state file {path} does not match its recorded sha256 {expected}", path=str(path)
        )
    return data


def restore_rng(run_dir: Path, seeds_section: Mapping[str, Any]) -> list[str]:
    """Restore the RNG states captured at init, exactly.

    Python ``random`` always; numpy's global RNG when it was captured (numpy is imported);
    torch's CPU (and CUDA, when available) states when torch is imported.

    Args:
        run_dir: the recorded run's folder.
        seeds_section: its ``seeds`` section.

    Returns:
        What was restored, e.g. ``["python", "numpy", "torch_cpu"]``.

    Raises:
        CorruptFileError: a side file does not match its recorded hash.
    """
    run_dir = Path(run_dir)
    restored: list[str] = []
    files = seeds_section.get("files") or {}
    if "python_random" in files:
        data = _load(run_dir, seeds_section, "python_random", "python_random_sha256")
        random.setstate(_python_state_from(data))
        restored.append("python")
    if "numpy" in files:
        import numpy as np

        doc = json.loads(_load(run_dir, seeds_section, "numpy", "numpy_sha256"))
        keys = np.frombuffer(bytes.fromhex(doc["keys_hex"]), dtype="<u4").astype(np.uint32)
        np.random.set_state(
            (doc["kind"], keys, doc["pos"], doc["has_gauss"], doc["cached_gaussian"])
        )
        restored.append("numpy")
    torch = sys.modules.get("torch")
    if torch is not None and "torch_cpu" in files:
        data = _load(run_dir, seeds_section, "torch_cpu", "torch_cpu_state_sha256")
        torch.set_rng_state(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        restored.append("torch_cpu")
        cuda_hashes = seeds_section.get("torch_cuda_state_sha256") or []
        if cuda_hashes and torch.cuda.is_available():
            for i, expected in enumerate(cuda_hashes[: torch.cuda.device_count()]):
                rel = files.get(f"torch_cuda_{i}")
                if rel is None:
                    continue
                data = (run_dir / rel).read_bytes()
                if hashlib.sha256(data).hexdigest() != expected:
                    raise CorruptFileError(
                        f"RNG state file {run_dir / rel} does not match its recorded sha256",
                        path=str(run_dir / rel),
                    )
                state = torch.frombuffer(bytearray(data), dtype=torch.uint8)
                torch.cuda.set_rng_state(state, device=i)
            restored.append("torch_cuda")
    return restored
