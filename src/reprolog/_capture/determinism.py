"""The determinism section: torch/cuDNN/cuBLAS flags, determinism env vars, and detected risks."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from reprolog._capture.report import CaptureReport

__all__ = ["DETERMINISM_ENV", "capture_determinism", "compute_risks", "torch_flags"]

DETERMINISM_ENV = (
    "CUBLAS_WORKSPACE_CONFIG",
    "PYTHONHASHSEED",
    "CUDA_LAUNCH_BLOCKING",
    "TF_DETERMINISTIC_OPS",
    "TF_CUDNN_DETERMINISTIC",
    "TF_ENABLE_ONEDNN_OPTS",
    "NVIDIA_TF32_OVERRIDE",
    "TORCH_CUDNN_V8_API_DISABLED",
)
_TORCH_KEYS = (
    "torch_deterministic_algorithms",
    "torch_deterministic_warn_only",
    "cudnn_deterministic",
    "cudnn_benchmark",
    "cudnn_enabled",
    "float32_matmul_precision",
    "cuda_matmul_allow_tf32",
    "cudnn_allow_tf32",
)
# A seed below 2**32 was almost surely chosen by a person: torch seeds itself with 64 random bits.
_MANUAL_SEED_LIMIT = 1 << 32


def torch_flags() -> dict[str, Any]:
    """Read torch's determinism flags, or nulls when torch is not imported (never imports it).

    Returns:
        ``torch_loaded`` plus one key per flag (see sections.md).
    """
    flags: dict[str, Any] = dict.fromkeys(_TORCH_KEYS)
    torch = sys.modules.get("torch")
    flags["torch_loaded"] = torch is not None
    if torch is None:
        return flags
    flags.update(
        torch_deterministic_algorithms=bool(torch.are_deterministic_algorithms_enabled()),
        torch_deterministic_warn_only=bool(torch.is_deterministic_algorithms_warn_only_enabled()),
        cudnn_deterministic=bool(torch.backends.cudnn.deterministic),
        cudnn_benchmark=bool(torch.backends.cudnn.benchmark),
        cudnn_enabled=bool(torch.backends.cudnn.enabled),
        float32_matmul_precision=str(torch.get_float32_matmul_precision()),
        cuda_matmul_allow_tf32=bool(torch.backends.cuda.matmul.allow_tf32),
        cudnn_allow_tf32=bool(torch.backends.cudnn.allow_tf32),
    )
    return flags


def capture_determinism(report: CaptureReport) -> dict[str, Any]:
    """Capture the determinism section (risks are added by `capture_all` via `compute_risks`).

    Args:
        report: collects skipped items and errors.

    Returns:
        The section without ``risks``.
    """
    section: dict[str, Any] = {}
    try:
        section.update(torch_flags())
    except Exception as exc:
        report.error("determinism.torch", exc)
        section.update(dict.fromkeys(_TORCH_KEYS), torch_loaded=False)
    if not section["torch_loaded"]:
        report.skip("determinism.torch", "torch not imported")
    section["CUBLAS_WORKSPACE_CONFIG"] = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    section["env"] = {name: os.environ.get(name) for name in DETERMINISM_ENV}
    report.done("determinism")
    return section


def _risk(risk_id: str, detail: str) -> dict[str, str]:
    return {"id": risk_id, "detail": detail}


def _seeded(seeds: Mapping[str, Any]) -> bool:
    if seeds.get("seed_everything"):
        return True
    if (seeds.get("env") or {}).get("PL_GLOBAL_SEED") not in (None, ""):
        return True
    torch_seed = seeds.get("torch_seed")
    if isinstance(torch_seed, int) and torch_seed < _MANUAL_SEED_LIMIT:
        return True
    # An integration (Lightning, Trainer args) may record the seed it saw.
    return any(seeds.get(k) is not None for k in ("seed", "global_seed", "trainer_seed"))


def compute_risks(sections: Mapping[str, Any]) -> list[dict[str, str]]:
    """List what threatens an exact re-run, from the captured sections alone.

    Args:
        sections: the run record's sections (``seeds``, ``determinism``, ``code``, ``data``);
            a missing section adds no risk of its own except ``data``.

    Returns:
        ``{"id", "detail"}`` dicts sorted by id; ids are stable: ``unseeded``,
        ``cudnn_benchmark``, ``nondeterministic_algorithms``, ``dirty_tree``,
        ``untracked_files``, ``no_git``, ``data_not_fingerprinted``, ``data_sampled``.
    """
    risks: list[dict[str, str]] = []
    seeds = sections.get("seeds")
    if isinstance(seeds, Mapping) and not _seeded(seeds):
        risks.append(
            _risk(
                "unseeded",
                "no seed recorded: no seed_everything, no PL_GLOBAL_SEED, "
                "and torch's seed (if loaded) is its random default",
            )
        )
    det = sections.get("determinism")
    if isinstance(det, Mapping) and det.get("torch_loaded"):
        if det.get("cudnn_benchmark"):
            risks.append(
                _risk(
                    "cudnn_benchmark",
                    "torch.backends.cudnn.benchmark is on: "
                    "cuDNN may pick different kernels on each run",
                )
            )
        if det.get("torch_deterministic_algorithms") is False:
            risks.append(
                _risk("nondeterministic_algorithms", "torch.use_deterministic_algorithms is off")
            )
    code = sections.get("code")
    if isinstance(code, Mapping):
        if not code.get("git"):
            risks.append(_risk("no_git", f"code is not under git: {code.get('reason')}"))
        else:
            if code.get("changed"):
                risks.append(
                    _risk(
                        "dirty_tree",
                        f"{len(code['changed'])} tracked file(s) differ from the commit",
                    )
                )
            if code.get("untracked"):
                risks.append(
                    _risk(
                        "untracked_files",
                        f"{len(code['untracked'])} untracked file(s) are not in the commit",
                    )
                )
    data = sections.get("data")
    if not data:
        risks.append(
            _risk(
                "data_not_fingerprinted",
                "no dataset was logged with run.log_dataset, so changed data would go unnoticed",
            )
        )
    elif isinstance(data, Mapping):
        sampled = sorted(
            name
            for name, d in data.items()
            if isinstance(d, Mapping) and d.get("method") == "sample"
        )
        if sampled:
            risks.append(
                _risk(
                    "data_sampled",
                    "fingerprinted from a sample, not in full: " + ", ".join(sampled),
                )
            )
    return sorted(risks, key=lambda r: r["id"])
