"""Export a run's environment for elsewhere: a PEP 751 ``pylock.toml`` and a ``Dockerfile``.

Also `export(record, fmt)`, the one dispatcher of `reprolog export`'s formats (the record-only
ones come from `reprolog._store._export`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import subprocess
from collections.abc import Mapping
from typing import Any

from reprolog._errors import ArgumentError, StoreError
from reprolog._store._export import patch, record_json, requirements

__all__ = ["dockerfile", "pylock"]

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _sections(record: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    sections = record.raw.get("sections") or {}
    env, code, command = (dict(sections.get(n) or {}) for n in ("environment", "code", "command"))
    if not env.get("packages"):
        raise StoreError(
            f"run {record.id} recorded no installed packages (environment.packages is "
            "missing or empty); was it started with capture=False?"
        )
    return env, code, command


# ---------------------------------------------------------------------------------- TOML


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _toml_key(key: str) -> str:
    return key if _BARE.match(key) else json.dumps(key)


def _toml(doc: Mapping[str, Any]) -> str:
    """Top-level keys, then ``[[packages]]`` tables, then ``[tool.*]`` tables."""
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in doc.items()
             if k not in ("packages", "tool")]  # fmt: skip
    for pkg in doc.get("packages") or []:
        lines += ["", "[[packages]]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in pkg.items()]
    for name, table in (doc.get("tool") or {}).items():
        lines += ["", f"[tool.{_toml_key(name)}]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------- pylock


def _resolve_index(pins: list[str], env: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Wheels and sdist (URLs, sizes, hashes) of exact pins, looked up by uv: name → entry."""
    import tomllib

    from reprolog._reproduce._venv import _index_args, find_uv

    if not pins:
        return {}
    uv = find_uv()
    if uv is None:
        raise StoreError(
            f"--pylock needs uv to look up the files and hashes of {len(pins)} packages from "
            "their index (pip install 'reprolog[reproduce]'); --requirements needs nothing"
        )
    version = str(env.get("python_version") or "")
    cmd = [uv, "pip", "compile", "-q", "--no-deps", "--no-header", "--format", "pylock.toml",
           "--python-version", version or "3", *_index_args(env.get("index_urls") or {}, "uv"),
           "-"]  # fmt: skip
    done = subprocess.run(
        cmd, input="".join(f"{p}\n" for p in pins), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise StoreError(
            f"uv could not look up the recorded packages: {done.stderr.strip()[-800:]}"
        )
    found = tomllib.loads(done.stdout)
    return {str(p["name"]).lower(): p for p in found.get("packages") or []}


def pylock(record: Any) -> str:
    """Return the run's recorded environment as a PEP 751 ``pylock.toml``.

    Packages installed from an index get their files and hashes from that index (through uv);
    VCS installs their commit; editable and local installs a ``directory`` (the project under
    training relative to its repository root); archives their URL and hash.

    Args:
        record: a ``RunRecord``.

    Returns:
        The TOML text.

    Raises:
        StoreError: the run recorded no packages, uv is not installed, or the index lookup failed.
    """
    from reprolog._reproduce._venv import requirements_of

    env, code, _ = _sections(record)
    root = str(code.get("root") or "") or None
    reqs = requirements_of(env, root)
    sources: Mapping[str, Any] = env.get("package_sources") or {}
    versions: Mapping[str, str] = env.get("packages") or {}
    pins = [ln for ln in reqs.lines if "==" in ln and " @ " not in ln and not ln.startswith("-")]
    resolved = _resolve_index(pins, env)
    packages: list[dict[str, Any]] = []
    for name in sorted(versions):
        src = sources.get(name) or {}
        entry: dict[str, Any] = {"name": name}
        kind = src.get("kind")
        if name in reqs.project:
            rel, editable = reqs.project[name]
            entry["directory"] = {"path": rel, "editable": editable}
        elif kind in ("editable", "directory"):
            path = str(src.get("url") or "").removeprefix("file://")
            entry["directory"] = {"path": path, "editable": kind == "editable"}
        elif kind == "vcs" and src.get("commit"):
            entry["version"] = versions[name]
            vcs: dict[str, Any] = {"type": src.get("vcs") or "git", "url": src.get("url")}
            if src.get("requested_revision"):
                vcs["requested-revision"] = src["requested_revision"]
            vcs["commit-id"] = src["commit"]
            if src.get("subdirectory"):
                vcs["subdirectory"] = src["subdirectory"]
            entry["vcs"] = vcs
        elif kind == "archive" and src.get("archive_hash"):
            algo, _, value = str(src["archive_hash"]).partition("=")
            entry["version"] = versions[name]
            entry["archive"] = {"url": src.get("url"), "hashes": {algo: value}}
        else:
            got = resolved.get(name)
            if got is None:
                continue
            entry["version"] = versions[name]
            for key in ("index", "sdist", "wheels"):
                if key in got:
                    entry[key] = got[key]
        packages.append(entry)
    doc: dict[str, Any] = {"lock-version": "1.0"}
    if env.get("python_version"):
        doc["requires-python"] = f"=={env['python_version']}"
    doc["created-by"] = "reprolog"
    doc["packages"] = packages
    doc["tool"] = {"reprolog": {"run": record.id, "commit": code.get("commit") or ""}}
    if reqs.notes:
        doc["tool"]["reprolog"]["notes"] = reqs.notes
    return _toml(doc)


# ---------------------------------------------------------------------------------- Dockerfile


def _docker_python_tag(env: Mapping[str, Any]) -> str:
    version = str(env.get("python_version") or "3")
    impl = str(env.get("python_implementation") or "CPython")
    return (
        f"pypy:{'.'.join(version.split('.')[:2])}-slim"
        if impl == "PyPy"
        else (f"python:{version}-slim")
    )


def _heredoc(target: str, text: str) -> list[str]:
    tag = "REPROLOG_EOF_" + hashlib.sha256(text.encode()).hexdigest()[:8].upper()
    body = text if text.endswith("\n") else text + "\n"
    return [f"COPY <<'{tag}' {target}", body.rstrip("\n"), tag]


def _cmd(command: Mapping[str, Any], root: str, src: str) -> list[str]:
    argv = [str(a) for a in command.get("argv") or []]
    launcher = command.get("launcher") or {}
    mapped = [a.replace(root + os.sep, src + "/") if root else a for a in argv]
    if launcher.get("kind") in ("torchrun", "accelerate", "command", "python") and launcher.get(
        "argv"
    ):
        largv = [str(a).replace(root + os.sep, src + "/") if root else str(a)
                 for a in launcher["argv"]]  # fmt: skip
        prog = os.path.basename(largv[0])
        return ["python" if prog.startswith("python") else prog, *largv[1:]]
    if launcher.get("kind") == "console_script":
        return [os.path.basename(argv[0]), *mapped[1:]]
    if command.get("entry_kind") == "module":
        return ["python", "-m", str(command.get("entry")), *mapped[1:]]
    return ["python", *mapped]


def dockerfile(record: Any) -> str:
    """Return a Dockerfile that rebuilds the run elsewhere: Python, packages, code and command.

    The base image is the recorded Python's; the recorded commit is cloned from the recorded
    remote (or copied from the build context when there was none) and the recorded patch
    applied; the packages are installed as recorded (the project under training from the
    checkout); the recorded seed/determinism/thread variables are set and the recorded command
    is the image's command. Needs BuildKit (``# syntax=docker/dockerfile:1``) for the inline
    files.

    Args:
        record: a ``RunRecord``.

    Returns:
        The Dockerfile text.

    Raises:
        StoreError: the run recorded no packages, or no git state, or a truncated diff.
    """
    from reprolog._reproduce._model import REDACTED
    from reprolog._reproduce._venv import requirements_of

    env, code, command = _sections(record)
    if not code.get("git") or not code.get("commit"):
        raise StoreError(f"run {record.id} recorded no git commit; a Dockerfile needs one")
    root = str(code.get("root") or "")
    src = "/work/src"
    reqs = requirements_of(env, root or None)
    out = [
        "# syntax=docker/dockerfile:1",
        f"# Rebuilds reprolog run {record.id}: Python {env.get('python_version')}, "
        f"{len(env.get('packages') or {})} packages, commit {code.get('commit')} plus its patch.",
        f"FROM {_docker_python_tag(env)}",
        "RUN apt-get update && apt-get install -y --no-install-recommends git "
        "&& rm -rf /var/lib/apt/lists/*",
        "WORKDIR /work",
    ]
    remote = code.get("remote_url")
    if remote:
        out.append(
            f"RUN git clone {remote} {src} && git -C {src} checkout --detach {code['commit']}"
        )
    else:
        out += [
            "# The run's repository had no remote: build from a checkout of the recorded commit",
            f"# (git worktree add ctx {code['commit']}; docker build ctx).",
            f"COPY . {src}",
        ]
    text = patch(record)
    if "diff --git " in text:
        out += _heredoc("/tmp/run.patch", text)
        out.append(f"RUN cd {src} && git apply --whitespace=nowarn /tmp/run.patch")
    lines = [ln for ln in reqs.lines if not ln.startswith("-e ")]
    for ln in reqs.lines:
        if ln.startswith("-e "):
            out.append(f"# not installable in the image (a local path here): {ln}")
    for note in reqs.notes:
        out.append(f"# {note}")
    index = env.get("index_urls") or {}
    flags: list[str] = []
    if index.get("index_url") and not str(index["index_url"]).startswith("file:"):
        flags += ["--index-url", str(index["index_url"])]
    for url in index.get("extra_index_urls") or []:
        if not str(url).startswith("file:") and "[REDACTED]" not in str(url):
            flags += ["--extra-index-url", str(url)]
    if lines:
        out += _heredoc("/tmp/requirements.txt", "".join(f"{ln}\n" for ln in lines))
        out.append(
            " ".join(
                ["RUN pip install --no-cache-dir --no-deps", *flags, "-r /tmp/requirements.txt"]
            )
        )
    for name, (rel, editable) in sorted(reqs.project.items()):
        target = src if rel in ("", ".") else f"{src}/{rel}"
        out.append(f"RUN pip install --no-cache-dir --no-deps {'-e ' if editable else ''}{target}"
                   f"  # {name}, the project under training")  # fmt: skip
    variables: dict[str, str] = {}
    for section in ("seeds", "determinism"):
        recorded = ((record.raw.get("sections") or {}).get(section) or {}).get("env") or {}
        for key, value in recorded.items():
            if value is not None and value != REDACTED:
                variables[str(key)] = str(value)
    for key, value in (env.get("threads") or {}).items():
        if key.endswith("_NUM_THREADS") and key.isupper() and value is not None:
            variables[key] = str(value)
    for key, value in sorted(variables.items()):
        out.append(f"ENV {key}={json.dumps(value)}")
    cwd = str(command.get("cwd") or root)
    rel = os.path.relpath(cwd, root) if root else "."
    out.append(f"WORKDIR {src if rel in ('.', '') or rel.startswith('..') else src + '/' + rel}")
    out.append(f"CMD {json.dumps(_cmd(command, root, src))}")
    return "\n".join(out) + "\n"


FORMATS = ("requirements", "patch", "json", "pylock", "dockerfile")


def export(record: Any, fmt: str) -> str:
    """Export a run in one of ``FORMATS``.

    Args:
        record: a ``RunRecord``.
        fmt: ``"requirements"``, ``"patch"``, ``"json"``, ``"pylock"`` (PEP 751) or
            ``"dockerfile"``.

    Returns:
        The exported text.

    Raises:
        ArgumentError: an unknown format.
        StoreError: the record lacks what the format needs.
    """
    if fmt == "requirements":
        return requirements(record)
    if fmt == "patch":
        return patch(record)
    if fmt == "json":
        return record_json(record)
    if fmt in ("pylock", "dockerfile"):
        return pylock(record) if fmt == "pylock" else dockerfile(record)
    raise ArgumentError(f"export format must be one of {', '.join(FORMATS)}; got {fmt!r}")
