"""The environment section: Python, OS, hardware, GPUs, packages, containers, threads, env vars."""

from __future__ import annotations

import os
import platform
import re
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reprolog._capture.installs import index_urls, install_facts
from reprolog._capture.redact import redact_value
from reprolog._capture.report import CaptureReport

__all__ = [
    "ENV_NAMES",
    "ENV_PREFIXES",
    "capture_environment",
    "distributions",
    "packages",
    "requirements_txt",
]

ENV_NAMES = frozenset(
    {
        "PYTHONHASHSEED",
        "PYTHONPATH",
        "PYTHONOPTIMIZE",
        "PYTHONUTF8",
        "VIRTUAL_ENV",
        "CONDA_DEFAULT_ENV",
        "CONDA_PREFIX",
        "LANG",
        "LC_ALL",
        "TZ",
        "RANK",
        "LOCAL_RANK",
        "WORLD_SIZE",
        "NODE_RANK",
        "MASTER_ADDR",
        "MASTER_PORT",
    }
)
ENV_PREFIXES = (
    "CUDA_",
    "CUBLAS_",
    "CUDNN_",
    "NCCL_",
    "NVIDIA_",
    "TORCH_",
    "PYTORCH_",
    "PL_",
    "LIGHTNING_",
    "TF_",
    "KERAS_",
    "XLA_",
    "JAX_",
    "HF_",
    "TRANSFORMERS_",
    "HUGGINGFACE_",
    "HUGGING_FACE_",
    "TOKENIZERS_",
    "DATASETS_",
    "ACCELERATE_",
    "OMP_",
    "MKL_",
    "OPENBLAS_",
    "KMP_",
    "SLURM_",
    "REPROLOG_",
)
_NORMALIZE = re.compile(r"[-_.]+")


def _normalize(name: str) -> str:
    return _NORMALIZE.sub("-", name).lower()


def capture_env_vars(
    report: CaptureReport, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Select the allow-listed environment variables and mask secrets among them.

    Args:
        report: receives the names of masked variables (``env.NAME``).
        environ: the environment to read; ``os.environ`` by default.

    Returns:
        name → (masked) value, sorted by name.
    """
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for name in sorted(env):
        if name in ENV_NAMES or name.startswith(ENV_PREFIXES):
            masked, hit = redact_value(name, env[name])
            out[name] = str(masked)
            if hit:
                report.redact([f"env.{name}"])
    return out


def packages() -> dict[str, str]:
    """Every installed distribution on ``sys.path`` as normalized name → version.

    Reads ``*.dist-info`` folder names (no file opened), which is ~200x faster than iterating
    ``importlib.metadata.distributions()``; entries whose name carries no version (egg-info,
    odd layouts) fall back to importlib.metadata. The first entry on ``sys.path`` wins, as it
    does for imports.

    Returns:
        name → version, sorted by name.
    """
    return {name: version for name, (version, _) in distributions().items()}


def distributions(paths: list[str] | None = None) -> dict[str, tuple[str, Path]]:
    """Every installed distribution on ``paths`` (default ``sys.path``): name → (version, folder).

    Args:
        paths: the import path to scan (e.g. another venv's site-packages).

    Returns:
        normalized name → (version, its ``.dist-info``/``.egg-info`` folder), sorted by name.
    """
    found: dict[str, tuple[str, Path]] = {}
    slow: list[Path] = []
    for entry in sys.path if paths is None else paths:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for fname in names:
            if fname.endswith(".dist-info"):
                stem = fname[: -len(".dist-info")]
                name, sep, version = stem.partition("-")
                if sep and version:
                    found.setdefault(_normalize(name), (version, Path(entry or ".", fname)))
                    continue
                slow.append(Path(entry or ".", fname))
            elif fname.endswith(".egg-info"):
                slow.append(Path(entry or ".", fname))
    if slow:
        import importlib.metadata as md

        for path in slow:
            try:
                dist = md.PathDistribution(path)
                name = dist.metadata["Name"]
                if name:
                    found.setdefault(_normalize(name), (dist.version, path))
            except Exception:  # a broken metadata folder must not stop capture
                continue
    return dict(sorted(found.items()))


def requirements_txt(section: Mapping[str, Any]) -> str:
    """Render an environment section's packages as a pip requirements file.

    Args:
        section: the ``environment`` section of a run record.

    Returns:
        ``name==version`` lines, sorted.
    """
    pkgs: Mapping[str, str] = section.get("packages") or {}
    return "".join(f"{name}=={version}\n" for name, version in sorted(pkgs.items()))


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(1 << 16)
    except OSError:
        return None


def _cpu_model() -> str | None:
    info = _read("/proc/cpuinfo")
    if info:
        for line in info.splitlines():
            if line.startswith(("model name", "Hardware", "cpu model")):
                return line.split(":", 1)[1].strip() or None
    return platform.processor() or None


def _ram_bytes() -> int | None:
    if "psutil" in sys.modules or sys.platform != "linux":
        try:
            import psutil

            return int(psutil.virtual_memory().total)
        except Exception:
            return None
    info = _read("/proc/meminfo") or ""
    match = re.search(r"^MemTotal:\s+(\d+) kB", info, re.M)
    return int(match.group(1)) * 1024 if match else None


def _container() -> str | None:
    if os.path.exists("/run/.containerenv"):
        return "podman"
    if os.path.exists("/.dockerenv"):
        return "docker"
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return "kubernetes"
    cgroup = _read("/proc/1/cgroup") or ""
    for kind in ("docker", "kubepods", "containerd", "podman", "lxc"):
        if kind in cgroup:
            return "kubernetes" if kind == "kubepods" else kind
    # systemd's convention, set by podman and lxc: lower-case on purpose.
    return os.environ.get("container") or None  # noqa: SIM112


def _gpus_from_proc() -> tuple[list[dict[str, Any]], str | None]:
    """NVIDIA GPUs and driver from /proc: no subprocess, no CUDA initialization."""
    gpus: list[dict[str, Any]] = []
    base = Path("/proc/driver/nvidia/gpus")
    try:
        entries = sorted(base.iterdir())
    except OSError:
        entries = []
    for index, entry in enumerate(entries):
        info = _read(str(entry / "information")) or ""
        fields = dict(
            (k.strip(), v.strip()) for k, _, v in (ln.partition(":") for ln in info.splitlines())
        )
        gpu: dict[str, Any] = {"index": index, "name": fields.get("Model")}
        if fields.get("GPU UUID"):
            gpu["uuid"] = fields["GPU UUID"]
        gpus.append(gpu)
    version = _read("/proc/driver/nvidia/version") or ""
    match = re.search(r"Kernel Module\s+(?:for \S+\s+)?([\d.]+)", version)
    return gpus, (match.group(1) if match else None)


def _gpu_facts(pkgs: Mapping[str, str], report: CaptureReport) -> dict[str, Any]:
    gpus, driver = _gpus_from_proc()
    cuda: str | None = None
    cudnn: str | None = None
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            cuda = torch.version.cuda
            if torch.backends.cudnn.is_available():
                cudnn = str(torch.backends.cudnn.version())
            # Only ask for device properties once CUDA is up: initializing it here would break
            # the user's later fork-based DataLoader workers.
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                gpus = []
                for i in range(torch.cuda.device_count()):
                    props = torch.cuda.get_device_properties(i)
                    gpus.append(
                        {"index": i, "name": props.name, "memory_bytes": int(props.total_memory)}
                    )
        except Exception as exc:
            report.error("environment.gpus", exc)
    if cuda is None:
        cuda = next((v for k, v in pkgs.items() if k.startswith("nvidia-cuda-runtime")), None)
    if cudnn is None:
        cudnn = next((v for k, v in pkgs.items() if k.startswith("nvidia-cudnn")), None)
    return {"gpus": gpus, "gpu_driver": driver, "cuda_version": cuda, "cudnn_version": cudnn}


def _base_executable() -> str | None:
    """The interpreter a venv was made from (``sys._base_executable``), resolved."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    try:
        return os.path.realpath(base) if base else None
    except OSError:
        return None


def _threads() -> dict[str, Any]:
    threads: dict[str, Any] = {
        name: os.environ.get(name)
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            threads["torch_num_threads"] = int(torch.get_num_threads())
            threads["torch_num_interop_threads"] = int(torch.get_num_interop_threads())
        except Exception:  # a half-imported torch: skip its thread facts
            pass
    return threads


def capture_environment(report: CaptureReport) -> dict[str, Any]:
    """Capture the environment section (see /work/notes/sections.md for every key).

    Args:
        report: collects skipped items, masked names and errors.

    Returns:
        The section.
    """
    section: dict[str, Any] = {
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "python_executable": sys.executable,
        "os": platform.system(),
        "os_release": platform.release(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "hostname": socket.gethostname(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "ram_bytes": _ram_bytes(),
    }
    try:
        dists = distributions()
    except Exception as exc:
        report.error("environment.packages", exc)
        dists = {}
    pkgs = {name: version for name, (version, _) in dists.items()}
    section.update(_gpu_facts(pkgs, report))
    if not section["gpus"]:
        report.skip("environment.gpus", "no NVIDIA GPU found (/proc/driver/nvidia absent)")
    section["packages"] = pkgs
    try:
        folders = {name: path for name, (_, path) in dists.items()}
        sources, installer, installers = install_facts(folders, report)
    except Exception as exc:
        report.error("environment.package_sources", exc)
        sources, installer, installers = {}, None, {}
    section["package_sources"] = sources
    section["installer"] = installer
    section["installers"] = installers
    try:
        section["index_urls"] = index_urls()
    except Exception as exc:
        report.error("environment.index_urls", exc)
        section["index_urls"] = None
    section["python_base_executable"] = _base_executable()
    section["container"] = _container()
    section["virtualenv"] = sys.prefix if sys.prefix != sys.base_prefix else None
    conda_prefix = os.environ.get("CONDA_PREFIX")
    section["conda_env"] = os.environ.get("CONDA_DEFAULT_ENV") or (
        os.path.basename(conda_prefix) if conda_prefix else None
    )
    section["threads"] = _threads()
    section["env"] = capture_env_vars(report)
    report.done("environment")
    return section
