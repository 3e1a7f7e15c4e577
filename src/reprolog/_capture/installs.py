"""How each distribution was installed: direct_url.json facts, the installer, the index URLs."""

from __future__ import annotations

import configparser
import json
import os
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from reprolog._capture.redact import redact_url
from reprolog._capture.report import CaptureReport

__all__ = ["index_urls", "install_facts", "source_of"]

# Variables that say which index an installer reads (pip's and uv's), in the order they win.
INDEX_ENV = (
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS",
    "UV_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_INDEX",
    "UV_EXTRA_INDEX_URL",
    "UV_FIND_LINKS",
)


def _read_text(path: Path, limit: int = 1 << 16) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(limit)
    except OSError:
        return None


def source_of(direct_url: Mapping[str, Any]) -> dict[str, Any]:
    """Turn a PEP 610 ``direct_url.json`` document into the record's flat source entry.

    Args:
        direct_url: the parsed ``direct_url.json``.

    Returns:
        ``{"kind": "editable"|"directory"|"vcs"|"archive", "url": str, ...}`` with ``vcs``,
        ``commit``, ``requested_revision``, ``archive_hash`` and ``subdirectory`` when known.
        The URL has its credentials stripped.
    """
    url = redact_url(str(direct_url.get("url") or ""))
    out: dict[str, Any] = {"url": url}
    vcs = direct_url.get("vcs_info")
    archive = direct_url.get("archive_info")
    folder = direct_url.get("dir_info")
    if isinstance(vcs, Mapping):
        out.update(kind="vcs", vcs=vcs.get("vcs"), commit=vcs.get("commit_id"))
        if vcs.get("requested_revision"):
            out["requested_revision"] = vcs["requested_revision"]
    elif isinstance(archive, Mapping):
        out["kind"] = "archive"
        hashes = archive.get("hashes")
        if isinstance(hashes, Mapping) and hashes.get("sha256"):
            out["archive_hash"] = f"sha256={hashes['sha256']}"
        elif archive.get("hash"):
            out["archive_hash"] = str(archive["hash"])
    else:
        editable = isinstance(folder, Mapping) and bool(folder.get("editable"))
        out["kind"] = "editable" if editable else "directory"
    if direct_url.get("subdirectory"):
        out["subdirectory"] = direct_url["subdirectory"]
    return out


def install_facts(
    dist_infos: Mapping[str, Path], report: CaptureReport
) -> tuple[dict[str, dict[str, Any]], str | None, dict[str, int]]:
    """Read each distribution's ``direct_url.json`` and ``INSTALLER``.

    Args:
        dist_infos: normalized name → its ``.dist-info`` folder.
        report: collects errors (one unreadable file never stops the rest).

    Returns:
        ``(sources, installer, installers)``: name → source entry (only distributions installed
        from a URL, a path or a VCS: from an index they have none), the most common installer,
        and installer → count.
    """
    sources: dict[str, dict[str, Any]] = {}
    counts: Counter[str] = Counter()
    for name, path in dist_infos.items():
        tool = (_read_text(path / "INSTALLER", 256) or "").strip()
        if tool:
            counts[tool] += 1
        text = _read_text(path / "direct_url.json")
        if text is None:
            continue
        try:
            doc = json.loads(text)
            entry = source_of(doc)
        except (ValueError, TypeError, AttributeError) as exc:
            report.error(f"environment.package_sources.{name}", exc)
            continue
        if tool:
            entry["installer"] = tool
        sources[name] = entry
    installer = counts.most_common(1)[0][0] if counts else None
    return dict(sorted(sources.items())), installer, dict(sorted(counts.items()))


def _pip_config_files(env: Mapping[str, str]) -> list[Path]:
    """pip's configuration files, lowest priority first (global, user, site, $PIP_CONFIG_FILE)."""
    home = Path(os.path.expanduser("~"))
    xdg_dirs = (env.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(os.pathsep)
    files = [Path(d) / "pip" / "pip.conf" for d in xdg_dirs if d]
    files.append(Path("/etc/pip.conf"))
    files.append(home / ".pip" / "pip.conf")
    files.append(Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "pip" / "pip.conf")
    files.append(Path(sys.prefix) / "pip.conf")
    if env.get("PIP_CONFIG_FILE"):
        files.append(Path(env["PIP_CONFIG_FILE"]))
    return files


def _split(value: str) -> list[str]:
    return [v for v in value.split() if v]


def index_urls(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The package indexes in effect for pip and uv, credentials stripped.

    Args:
        environ: the environment to read; ``os.environ`` by default.

    Returns:
        ``{"index_url": str|None, "extra_index_urls": [str], "find_links": [str],
        "from": [where each came from: "pip.conf <path>", "env PIP_INDEX_URL", ...]}``.
    """
    env = os.environ if environ is None else environ
    index: str | None = None
    extra: list[str] = []
    links: list[str] = []
    origin: list[str] = []
    for path in _pip_config_files(env):
        if not path.is_file():
            continue
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError):
            continue
        for section in ("global", "install"):
            if not parser.has_section(section):
                continue
            got = parser[section]
            if got.get("index-url"):
                index = got["index-url"].strip()
            if got.get("extra-index-url"):
                extra += _split(got["extra-index-url"])
            if got.get("find-links"):
                links += _split(got["find-links"])
            if any(k in got for k in ("index-url", "extra-index-url", "find-links")):
                origin.append(f"pip.conf {path}")
    for name in INDEX_ENV:
        value = env.get(name, "").strip()
        if not value:
            continue
        origin.append(f"env {name}")
        if name in ("PIP_INDEX_URL", "UV_INDEX_URL", "UV_DEFAULT_INDEX"):
            index = value
        elif name.endswith("FIND_LINKS"):
            links += _split(value)
        else:
            extra += _split(value)
    return {
        "index_url": redact_url(index) if index else None,
        "extra_index_urls": _dedupe(redact_url(u) for u in extra),
        "find_links": _dedupe(redact_url(u) for u in links),
        "from": _dedupe(origin),
    }


def _dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
