"""`seed_everything`: seed Python, numpy and torch (optionally deterministic) and record it."""

from __future__ import annotations

import datetime as _dt
import importlib.util
import os
import random
import sys
import threading
from typing import Any

from reprolog._capture.importhook import when_imported
from reprolog._errors import ArgumentError
from reprolog._run import _hooks
from reprolog._run._run import active_run

__all__ = ["seed_everything", "take_pending_seeding"]

_MAX_SEED = 2**32 - 1  # numpy's legacy RandomState accepts no more
_CUBLAS_CONFIG = ":4096:8"  # the setting cuBLAS documents for reproducible results
_pending: dict[str, Any] | None = None
_lock = threading.Lock()


def _seed_torch(seed: int, deterministic: bool, info: dict[str, Any]) -> None:
    if "torch" not in sys.modules:
        if importlib.util.find_spec("torch") is None:
            return
        # Not imported yet: seed it the moment it is, rather than paying ~1 s to import a
        # framework this program may never use (and reporting its determinism as a risk).
        info["seeded"].append("torch (when imported)")
        when_imported("torch", lambda torch: _apply_torch(torch, seed, deterministic, {}))
        return
    _apply_torch(sys.modules["torch"], seed, deterministic, info)


def _apply_torch(torch: Any, seed: int, deterministic: bool, info: dict[str, Any]) -> None:
    info.setdefault("seeded", [])
    info.setdefault("env_set", {})
    info.setdefault("warnings", [])
    torch.manual_seed(seed)  # also seeds every CUDA device, lazily, without starting CUDA
    info["seeded"].append("torch")
    if torch.cuda.is_available():
        info["seeded"].append("torch_cuda")
    if deterministic:
        if (
            torch.cuda.is_available()
            and torch.cuda.is_initialized()
            and (
                "CUBLAS_WORKSPACE_CONFIG" not in info["env_set"]
                and os.environ.get("CUBLAS_WORKSPACE_CONFIG") != _CUBLAS_CONFIG
            )
        ):
            info["warnings"].append(
                "CUDA was already initialized: CUBLAS_WORKSPACE_CONFIG may not take effect"
            )
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        info["torch_settings"] = {
            "use_deterministic_algorithms": True,
            "cudnn.deterministic": True,
            "cudnn.benchmark": False,
        }


def seed_everything(seed: int, *, deterministic: bool = False) -> dict[str, Any]:
    """Seed Python's ``random``, numpy's global RNG and torch (CPU and CUDA), and record it.

    Sets ``PYTHONHASHSEED`` for child processes (this interpreter's hashing is fixed at start).
    torch is seeded now if it is imported, else the moment it is imported (never imported just
    to be seeded). With ``deterministic=True`` it
    also sets ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (unless already set),
    ``torch.use_deterministic_algorithms(True)``, ``cudnn.deterministic = True`` and
    ``cudnn.benchmark = False``. What it did is recorded in the active run's ``seeds`` section
    (and ``determinism`` flags), or kept for the next run started.

    Args:
        seed: an int in [0, 2**32 - 1].
        deterministic: also switch on torch/cuDNN/cuBLAS determinism.

    Returns:
        What was done: ``{"seed", "deterministic", "seeded", "env_set", "torch_settings",
        "warnings", "time"}``.

    Raises:
        ArgumentError: `seed` is not an int in range, or `deterministic` is not a bool.

    Example:
        >>> reprolog.seed_everything(42)["seeded"][:2]
        ['python', 'numpy']
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= _MAX_SEED:
        raise ArgumentError(f"seed must be an int in [0, {_MAX_SEED}], got {seed!r}")
    if not isinstance(deterministic, bool):
        raise ArgumentError(f"deterministic must be True or False, got {deterministic!r}")
    info: dict[str, Any] = {
        "seed": seed,
        "deterministic": deterministic,
        "seeded": [],
        "env_set": {},
        "torch_settings": {},
        "warnings": [],
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(),
    }
    os.environ["PYTHONHASHSEED"] = str(seed)
    info["env_set"]["PYTHONHASHSEED"] = str(seed)
    if deterministic and "CUBLAS_WORKSPACE_CONFIG" not in os.environ:
        # Must be set before cuBLAS creates its handles, i.e. before the first CUDA matmul.
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = _CUBLAS_CONFIG
        info["env_set"]["CUBLAS_WORKSPACE_CONFIG"] = _CUBLAS_CONFIG
    random.seed(seed)
    info["seeded"].append("python")
    import numpy as np  # a core dependency

    np.random.seed(seed)
    info["seeded"].append("numpy")
    _seed_torch(seed, deterministic, info)
    _record(info)
    return info


def _record(info: dict[str, Any]) -> None:
    global _pending
    run = active_run()
    if run is None:
        with _lock:
            _pending = info  # handed to the next run by its start hook (`_hand_over`)
        return
    try:
        run.update_section("seeds", {"seed_everything": info})
        if info["deterministic"]:
            from reprolog._capture.determinism import capture_determinism
            from reprolog._capture.report import CaptureReport

            run.update_section("determinism", capture_determinism(CaptureReport()))
    except Exception as exc:  # recording must never undo the seeding the user asked for
        run.record_capture_error("seed_everything", exc)


def take_pending_seeding() -> dict[str, Any] | None:
    """Hand over (once) what `seed_everything` did before any run was active.

    Returns:
        The info dict of the last call made with no active run, or None.
    """
    global _pending
    with _lock:
        info, _pending = _pending, None
    return info


def _refresh_entropy() -> None:
    """After numpy drew fresh entropy: keep the live run's seeds section up to date."""
    from reprolog._capture import entropy as entropy

    facts = entropy.section_facts()
    if facts["numpy_entropy_count"] > entropy.MAX_KEPT:
        return  # only counted from here on: not worth a record write per draw
    try:
        run = active_run()
        if run is not None:
            run.update_section("seeds", facts)
    except Exception:  # the user's generator must work whatever happens here
        return


def _hand_over(run: _hooks.StartingRun) -> None:
    """A run's start hook: record what `seed_everything` did before any run was active."""
    info = take_pending_seeding()
    if info:
        run.update_section("seeds", {"seed_everything": info})


_hooks.on_run_start(_hand_over, what="seed_everything")


def _install_entropy_hook() -> None:
    from reprolog._capture import entropy as entropy

    entropy.on_draw(_refresh_entropy)
    entropy.install()


_install_entropy_hook()
