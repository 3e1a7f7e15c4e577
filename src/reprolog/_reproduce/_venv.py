"""`--env recorded`: rebuild the recorded packages in a cached venv (uv if installed, else pip)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from reprolog._reproduce._model import REDACTED, ReproduceError
from reprolog._storage import _locks

__all__ = ["BuiltEnv", "Requirements", "build_env", "find_interpreter", "requirements_of"]

_MARKER = "reprolog-venv.json"
_LOG_TAIL = 3000


@dataclass
class Requirements:
    """What to install for a recorded environment.

    Attributes:
        lines: requirement lines for the installer, sorted (``name==version``, ``name @ url``,
            ``-e path``).
        project: the distributions recorded as installed from inside the run's repository:
            name → (path relative to the repository, editable); installed from the work tree.
        notes: what cannot be rebuilt exactly, one sentence each.
        index: the recorded index settings the installer is pointed at.
    """

    lines: list[str] = field(default_factory=list)
    project: dict[str, tuple[str, bool]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    index: dict[str, Any] = field(default_factory=dict)


def _file_path(url: str) -> str | None:
    parsed = urlparse(url)
    return unquote(parsed.path) if parsed.scheme == "file" else None


def requirements_of(env: Mapping[str, Any], repo_root: str | None) -> Requirements:
    """Turn an environment section into installable requirements.

    Args:
        env: the record's ``environment`` section.
        repo_root: the recorded repository root (distributions installed from inside it are
            the project under training: installed from the work tree instead).

    Returns:
        The requirements.
    """
    out = Requirements()
    packages: Mapping[str, str] = env.get("packages") or {}
    sources: Mapping[str, Any] = env.get("package_sources") or {}
    for name, version in sorted(packages.items()):
        src = sources.get(name) or {}
        kind, url = src.get("kind"), str(src.get("url") or "")
        if REDACTED in url:
            out.notes.append(
                f"{name}: its recorded URL had credentials masked; installed {version}"
            )
            out.lines.append(f"{name}=={version}")
        elif kind in ("editable", "directory"):
            path = _file_path(url)
            sub = src.get("subdirectory")
            if path and sub:
                path = os.path.join(path, str(sub))
            rel = _inside(path, repo_root) if path and repo_root else None
            if rel is not None:
                out.project[name] = (rel, kind == "editable")
            elif path and os.path.isdir(path):
                out.lines.append(f"-e {path}" if kind == "editable" else f"{name} @ {url}")
                out.notes.append(
                    f"{name} is installed from {path} as it is now, not as it was at the run"
                )
            else:
                out.notes.append(
                    f"{name} {version} was installed from {url or 'a local path'}, which is not "
                    "here: left out of the rebuilt environment"
                )
        elif kind == "vcs" and src.get("commit"):
            ref = f"{src.get('vcs') or 'git'}+{url}@{src['commit']}"
            if src.get("subdirectory"):
                ref += f"#subdirectory={src['subdirectory']}"
            out.lines.append(f"{name} @ {ref}")
        elif kind == "archive" and url:
            path = _file_path(url)
            if path is not None and not os.path.isfile(path):
                out.notes.append(
                    f"{name} {version} came from the archive {path}, which is not here: "
                    f"{name}=={version} is taken from the index instead"
                )
                out.lines.append(f"{name}=={version}")
            else:
                out.lines.append(f"{name} @ {url}")
        else:
            out.lines.append(f"{name}=={version}")
    out.index = dict(env.get("index_urls") or {})
    return out


def _inside(path: str, root: str) -> str | None:
    rel = os.path.relpath(os.path.abspath(path), root)
    return None if rel == ".." or rel.startswith(".." + os.sep) else rel


# ---------------------------------------------------------------------------------- interpreter


def _probe(exe: str) -> tuple[str, str] | None:
    """(version, implementation) of an interpreter, or None when it does not run."""
    if os.path.realpath(exe) == os.path.realpath(sys.executable):
        import platform

        return platform.python_version(), platform.python_implementation()
    try:
        done = subprocess.run(
            [exe, "-I", "-c", "import platform as p;print(p.python_version(),"
             "p.python_implementation())"],
            capture_output=True, text=True, timeout=20, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    parts = done.stdout.split()
    return (parts[0], parts[1]) if done.returncode == 0 and len(parts) == 2 else None


def _candidates(env: Mapping[str, Any], version: str) -> list[str]:
    major_minor = ".".join(version.split(".")[:2])
    names = [f"python{major_minor}", f"python{major_minor.split('.')[0]}", "python"]
    found: list[str] = []
    for key in ("python_base_executable", "python_executable"):
        if env.get(key):
            found.append(str(env[key]))
    found.append(getattr(sys, "_base_executable", "") or sys.executable)
    found.append(sys.executable)
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        found += [os.path.join(folder, n) for n in names]
    for folder in ("/usr/bin", "/usr/local/bin", "/opt/homebrew/bin"):
        found.append(os.path.join(folder, names[0]))
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    with contextlib.suppress(OSError):
        for entry in sorted(pyenv.iterdir()):
            if entry.name.startswith(major_minor):
                found.append(str(entry / "bin" / names[0]))
    seen: set[str] = set()
    out: list[str] = []
    for exe in found:
        if not exe or not os.path.isfile(exe) or not os.access(exe, os.X_OK):
            continue
        real = os.path.realpath(exe)
        if real not in seen:
            seen.add(real)
            out.append(exe)
    return out


def find_interpreter(env: Mapping[str, Any]) -> tuple[str, str, list[str]]:
    """An interpreter of the recorded Python version on this machine.

    Returns:
        ``(path, its version, notes)``: the exact version when one is found, else the same
        major.minor (with a note).

    Raises:
        ReproduceError: no interpreter of the recorded major.minor version is here.
    """
    version = str(env.get("python_version") or "")
    impl = str(env.get("python_implementation") or "CPython")
    if not version:
        raise ReproduceError("the run recorded no Python version; use --env current")
    major_minor = ".".join(version.split(".")[:2])
    near: tuple[str, str] | None = None
    for exe in _candidates(env, version):
        got = _probe(exe)
        if got is None or got[1] != impl:
            continue
        if got[0] == version:
            return exe, got[0], []
        if near is None and ".".join(got[0].split(".")[:2]) == major_minor:
            near = (exe, got[0])
    if near is not None:
        note = f"Python {version} is not on this machine: the venv uses {near[1]} ({near[0]})"
        return near[0], near[1], [note]
    raise ReproduceError(
        f"no {impl} {major_minor} interpreter found on this machine (the run used Python "
        f"{version}); install one, or re-run in this environment with --env current"
    )


# ---------------------------------------------------------------------------------- build


@dataclass
class BuiltEnv:
    """A venv rebuilt from a record: where it is, its interpreter, and how it was made."""

    path: str
    python: str
    version: str
    tool: str  # "uv" or "pip"
    cached: bool
    seconds: float
    notes: list[str]
    requirements: Requirements


def venvs_root() -> Path:
    """Where rebuilt venvs are kept: ``venvs/`` in reprolog's cache folder (`cache_root`)."""
    from reprolog._storage._layout import cache_root

    return cache_root() / "venvs"


def find_uv() -> str | None:
    """The uv executable: beside this interpreter (``reprolog[reproduce]``), then on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "uv")
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
        return beside
    return shutil.which("uv")


def _index_args(index: Mapping[str, Any], tool: str) -> list[str]:
    args: list[str] = []
    if index.get("index_url") and REDACTED not in str(index["index_url"]):
        args += ["--index-url", str(index["index_url"])]
    for url in index.get("extra_index_urls") or []:
        if REDACTED not in str(url):
            args += ["--extra-index-url", str(url)]
    for link in index.get("find_links") or []:
        if REDACTED not in str(link):
            args += ["--find-links", str(link)]
    if tool == "uv":
        args += ["--index-strategy", "unsafe-best-match"]  # pip's rule: every index counts
    return args


def _venv_python(path: Path) -> Path:
    return path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``.lock (one build, or one re-run's install, at a time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locks.held(path.with_name(path.name + ".lock")):
        yield


def _run(cmd: list[str], what: str, env: Mapping[str, str] | None = None) -> None:
    done = subprocess.run(
        cmd, capture_output=True, text=True, check=False, env=None if env is None else dict(env)
    )
    if done.returncode != 0:
        # One line for the CLI's `Error:`: the installer's last few lines, joined.
        lines = [ln.strip() for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
        tail = "; ".join(lines[-4:])[-_LOG_TAIL:]
        raise ReproduceError(f"{what} failed (exit {done.returncode}): {tail}")


def install(python: str, args: list[str], index: Mapping[str, Any], tool: str) -> None:
    """Install ``args`` (no dependencies: the record is the whole set) into a venv."""
    if tool == "uv":
        uv = find_uv() or "uv"
        cmd = [uv, "pip", "install", "--python", python, "--no-deps", *_index_args(index, tool)]
        _run([*cmd, *args], "uv pip install")
    else:
        cmd = [python, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "-q"]
        _run([*cmd, *_index_args(index, tool), *args], "pip install")


def build_env(
    env: Mapping[str, Any], repo_root: str | None, *, installer: str | None = None
) -> BuiltEnv:
    """Build (or reuse from the cache) a venv with the recorded packages.

    The cache key is a hash of the interpreter version, the requirement lines and the index
    settings; the project under training (a distribution installed from its own repository) is
    not part of it: it is installed from the work tree for each re-run.

    Args:
        env: the record's ``environment`` section.
        repo_root: the recorded repository root.
        installer: ``"uv"`` or ``"pip"``; default: uv when it is installed, else pip.

    Returns:
        The venv.

    Raises:
        ReproduceError: no interpreter of the recorded version, or the install failed.
    """
    start = time.monotonic()
    reqs = requirements_of(env, repo_root)
    python, version, notes = find_interpreter(env)
    tool = installer or ("uv" if find_uv() else "pip")
    if tool not in ("uv", "pip"):
        raise ReproduceError(f"installer must be 'uv' or 'pip', got {tool!r}")
    key_doc = {"python": version, "lines": reqs.lines, "index": reqs.index, "tool": tool}
    key = hashlib.sha256(json.dumps(key_doc, sort_keys=True).encode()).hexdigest()[:20]
    path = venvs_root() / key
    cached = True
    with locked(path):
        if not (path / _MARKER).is_file():
            cached = False
            _build(path, python, reqs, tool)
            (path / _MARKER).write_text(json.dumps(key_doc, indent=1) + "\n")
    return BuiltEnv(
        str(path), str(_venv_python(path)), version, tool, cached,
        time.monotonic() - start, notes + reqs.notes, reqs,
    )  # fmt: skip


def _build(path: Path, python: str, reqs: Requirements, tool: str) -> None:
    if path.exists():
        shutil.rmtree(path)  # a build that died half way
    if tool == "uv":
        _run([find_uv() or "uv", "venv", "-q", "--python", python, str(path)], "uv venv")
    else:
        _run([python, "-m", "venv", str(path)], "python -m venv")
    lines = [ln for ln in reqs.lines if not ln.startswith("-e ")]
    editable = [ln[3:] for ln in reqs.lines if ln.startswith("-e ")]
    req_file = path / "reprolog-requirements.txt"
    req_file.write_text("".join(f"{ln}\n" for ln in lines))
    try:
        if lines:
            install(str(_venv_python(path)), ["-r", str(req_file)], reqs.index, tool)
        for folder in editable:
            install(str(_venv_python(path)), ["-e", folder], reqs.index, tool)
    except ReproduceError:
        shutil.rmtree(path, ignore_errors=True)
        raise


def install_project(built: BuiltEnv, tree: str) -> list[str]:
    """Install the project under training from the work tree (editable when it was). Notes."""
    notes: list[str] = []
    for name, (rel, editable) in sorted(built.requirements.project.items()):
        folder = os.path.normpath(os.path.join(tree, rel))
        if not os.path.isdir(folder):
            notes.append(f"{name} was installed from {rel}, which the recorded commit lacks")
            continue
        args = ["-e", folder] if editable else [folder]
        install(built.python, args, built.requirements.index, built.tool)
    return notes


def venv_packages(path: str) -> dict[str, str]:
    """name → version of what a venv holds (read from its dist-info folders)."""
    from reprolog._capture.environment import distributions

    sites = [str(p) for p in Path(path).glob("lib/*/site-packages")]
    sites += [str(p) for p in Path(path).glob("Lib/site-packages")]
    return {name: version for name, (version, _) in distributions(sites).items()}
