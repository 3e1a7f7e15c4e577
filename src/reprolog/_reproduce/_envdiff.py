"""The recorded environment against the one a re-run uses, ranked as `diff` ranks packages."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from reprolog._reproduce._model import EnvDifference

__all__ = ["compare_env", "strict_refusal"]

# Installer tooling: which pip built a venv changes no number a training computes.
_TOOLING = frozenset({"pip", "uv", "wheel"})


def compare_env(
    recorded: Mapping[str, Any],
    packages: Mapping[str, str],
    python_version: str,
    *,
    skip: Iterable[str] = (),
) -> list[EnvDifference]:
    """Compare the record's Python and packages with an environment's.

    Args:
        recorded: the record's ``environment`` section.
        packages: name → version of the environment the re-run uses.
        python_version: its Python version.
        skip: names not to compare (the project under training, installed from the tree).

    Returns:
        The differences, ranked: Python, then ML packages in ``diff``'s order (torch, CUDA and
        cuDNN runtimes, numpy, the frameworks...), then the rest by name.
    """
    from reprolog._diff._rules import ML_PACKAGES

    ml_rank = {name: i for i, name in enumerate(ML_PACKAGES)}
    out: list[tuple[tuple[int, int, str], EnvDifference]] = []
    rec_python = str(recorded.get("python_version") or "")
    if rec_python and rec_python != python_version:
        out.append(((0, 0, ""), EnvDifference("python", rec_python, python_version, True)))
    rec_pkgs: Mapping[str, str] = recorded.get("packages") or {}
    ignore = set(skip) | _TOOLING
    for name in sorted((set(rec_pkgs) | set(packages)) - ignore):
        a, b = rec_pkgs.get(name), packages.get(name)
        if a == b:
            continue
        # A package the run did not have cannot have changed it: listed, never ML-relevant.
        ml = a is not None and (
            name in ml_rank or name.startswith(("nvidia-cudnn", "nvidia-cuda", "nvidia-cublas"))
        )
        key = (1, ml_rank.get(name, len(ml_rank)), name) if ml else (2, 0, name)
        out.append((key, EnvDifference(name, a, b, ml)))
    out.sort(key=lambda kv: kv[0])
    return [EnvDifference(d.name, d.recorded, d.actual, d.ml, rank=i)
            for i, (_, d) in enumerate(out, 1)]  # fmt: skip


def strict_refusal(differences: list[EnvDifference], where: str) -> str | None:
    """The one-line refusal ``--strict`` gives on an ML-relevant mismatch, or None."""
    ml = [d for d in differences if d.ml]
    if not ml:
        return None
    shown = ", ".join(
        f"{d.name} {d.recorded or '(absent)'} → {d.actual or '(absent)'}" for d in ml[:5]
    )
    more = f" and {len(ml) - 5} more" if len(ml) > 5 else ""
    return (
        f"--strict: the {where} environment differs from the record in ML-relevant packages: "
        f"{shown}{more}"
    )
