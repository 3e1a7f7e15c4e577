"""Compare two run records section by section and turn each difference into a ranked Difference."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from typing import Any

from reprolog._diff import _rules as R
from reprolog._diff._flatten import Path, compare_trees, same, scrub
from reprolog._diff._model import Category, Difference

Classifier = Callable[[Path], tuple[Category, float]]

_PACKAGE_KEYS = ("packages", "distributions", "installed", "pip")
_PATCH_HEADER = re.compile(r"(?m)^(?=diff --git )")
_UNTRACKED = re.compile(r"untracked", re.IGNORECASE)
# Sections that describe the capture itself or the run's outcome, never a cause of a difference.
_SKIPPED_SECTIONS = frozenset({"capture_report", "capture", "outcome"})
# Records of actions rather than state: `env_set` says which variables seed_everything had to set,
# which differs between two otherwise identical runs when the first one already set them. The
# resulting state is compared where it lives (environment.env, determinism.env).
_SKIPPED_PATHS = frozenset({("seeds", "seed_everything", "env_set")})


def compare_records(ra: Mapping[str, Any], rb: Mapping[str, Any]) -> list[Difference]:
    """Return every cause-like difference between two raw run records, ranked.

    Identity (id, name), status, timestamps, metrics and artifacts are outcomes of a run rather than
    causes, so they are not compared here; metrics are compared separately, step by step.

    Args:
        ra: run A's record (the parsed run.json).
        rb: run B's record.

    Returns:
        The differences, highest weight first, with ``rank`` set from 1.
    """
    # Values that embed the run's own id or folder (e.g. side files of RNG state) differ between
    # any two runs; replace them by a placeholder first.
    a = scrub(dict(ra), {str(ra.get("id", "")): "<run>"})
    b = scrub(dict(rb), {str(rb.get("id", "")): "<run>"})
    found: list[Difference] = []
    found += _params(a.get("params") or {}, b.get("params") or {})
    found += _labels(a, b)
    sa, sb = a.get("sections") or {}, b.get("sections") or {}
    for name in sorted(set(sa) | set(sb)):
        if name in _SKIPPED_SECTIONS:
            continue
        xa, xb = sa.get(name), sb.get(name)
        if name == "environment":
            found += _environment(xa, xb)
        elif name == "code":
            found += _code(xa, xb)
        else:
            found += _generic(xa, xb, (name,), _SECTION_CLASSIFIERS.get(name, _other))
    found.sort(key=lambda d: (-d.weight, d.category.value, d.key))
    return [_with_rank(d, i) for i, d in enumerate(found, 1)]


def _with_rank(d: Difference, rank: int) -> Difference:
    return Difference(d.category, d.key, d.a, d.b, d.weight, d.explanation, rank)


def _diff(category: Category, path: Path, a: Any, b: Any, weight: float, why: str) -> Difference:
    return Difference(category, ".".join(path), a, b, weight, why)


def _params(pa: Mapping[str, Any], pb: Mapping[str, Any]) -> list[Difference]:
    out = []
    for key in sorted(set(pa) | set(pb)):
        va, vb = pa.get(key), pb.get(key)
        if key in pa and key in pb and same(va, vb):
            continue
        path = ("params", key)
        kw = R.classify_keyword(path)
        # A param named like a seed or a determinism switch is that, whoever set it.
        if kw is not None and kw[0] in (Category.SEEDS, Category.DETERMINISM):
            cat, weight = kw
        else:
            cat, weight = Category.HYPERPARAMETERS, R.W_PARAM
        out.append(_diff(cat, path, va, vb, weight, _sentence(f"hyperparameter {key}", va, vb)))
    return out


def _labels(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[Difference]:
    out = []
    if a.get("experiment") != b.get("experiment"):
        ea, eb = a.get("experiment"), b.get("experiment")
        out.append(
            _diff(
                Category.OTHER, ("experiment",), ea, eb, R.W_LABEL, _sentence("experiment", ea, eb)
            )
        )
    for path, va, vb in compare_trees(a.get("tags") or {}, b.get("tags") or {}, ("tags",)):
        label = "tag " + ".".join(path[1:])
        out.append(_diff(Category.OTHER, path, va, vb, R.W_LABEL, _sentence(label, va, vb)))
    return out


def _generic(a: Any, b: Any, prefix: Path, classify: Classifier) -> list[Difference]:
    out = []
    for path, va, vb in compare_trees(a, b, prefix):
        if any(path[: len(skip)] == skip for skip in _SKIPPED_PATHS):
            continue
        # A subtree present on one side only is classified by what it holds, too: a
        # "torch_settings" object full of cudnn flags is a determinism difference.
        whole = va if va is not None else vb
        probe = (*path, *_leaf_keys(whole)) if isinstance(whole, Mapping) else path
        cat, weight = classify(probe)
        out.append(_diff(cat, path, va, vb, weight, _sentence(".".join(path), va, vb)))
    return out


def _leaf_keys(tree: Mapping[str, Any]) -> list[str]:
    keys: list[str] = []
    for k, v in tree.items():
        keys += _leaf_keys(v) if isinstance(v, Mapping) else [str(k)]
    return keys


def _data(path: Path) -> tuple[Category, float]:
    kw = R.classify_keyword(path)
    if kw is not None and kw[0] is Category.DATA:
        return kw
    return Category.DATA, R.W_DATA


def _seeds(path: Path) -> tuple[Category, float]:
    kw = R.classify_keyword(path)
    if kw is not None and kw[0] is Category.DETERMINISM:
        return kw
    return Category.SEEDS, R.W_SEED


def _determinism(path: Path) -> tuple[Category, float]:
    if any("risk" in p for p in path):
        return Category.DETERMINISM, R.W_DETERMINISM_RISKS
    return Category.DETERMINISM, R.W_DETERMINISM


def _command(path: Path) -> tuple[Category, float]:
    text = ".".join(path[1:]).lower()
    if "hash" in text or "sha" in text:
        # The entry script's content changed: that is a code change.
        return Category.CODE, R.W_CODE_SCRIPT
    if "cwd" in text or "dir" in text:
        return Category.COMMAND, R.W_COMMAND_CWD
    return Category.COMMAND, R.W_COMMAND


def _other(path: Path) -> tuple[Category, float]:
    return R.classify_keyword(path) or (Category.OTHER, R.W_OTHER)


_SECTION_CLASSIFIERS: dict[str, Classifier] = {
    "data": _data,
    "seeds": _seeds,
    "determinism": _determinism,
    "command": _command,
}


def find_packages(env: Any) -> dict[str, str] | None:
    """Return the installed distributions recorded in an environment section as name -> version.

    Accepts a mapping of name to version, a list of ``{"name", "version"}`` mappings or a list of
    ``name==version`` strings, under any of the usual keys.

    Args:
        env: the environment section.

    Returns:
        Normalised name -> version, or None when the section records no packages.
    """
    if not isinstance(env, Mapping):
        return None
    for key in _PACKAGE_KEYS:
        raw = env.get(key)
        if isinstance(raw, Mapping):
            return {str(k): str(v) for k, v in raw.items()}
        if isinstance(raw, list):
            out: dict[str, str] = {}
            for item in raw:
                if isinstance(item, Mapping) and "name" in item:
                    out[str(item["name"])] = str(item.get("version", ""))
                elif isinstance(item, str) and "==" in item:
                    name, _, version = item.partition("==")
                    out[name.strip()] = version.strip()
            return out
    return None


def _environment(a: Any, b: Any) -> list[Difference]:
    out = []
    pa, pb = find_packages(a), find_packages(b)
    if pa is not None or pb is not None:
        na = {R.normalise_package(k): v for k, v in (pa or {}).items()}
        nb = {R.normalise_package(k): v for k, v in (pb or {}).items()}
        for name in sorted(set(na) | set(nb)):
            va, vb = na.get(name), nb.get(name)
            if va == vb:
                continue
            weight = R.package_weight(name)
            why = _sentence(f"package {name}", va, vb)
            if weight > R.W_PACKAGE:
                why += " (on the numeric path of training)"
            out.append(_diff(Category.PACKAGES, ("packages", name), va, vb, weight, why))
    rest_a = _without(a, _PACKAGE_KEYS)
    rest_b = _without(b, _PACKAGE_KEYS)
    out += _generic(rest_a, rest_b, ("environment",), _env_classifier)
    return out


def _env_classifier(path: Path) -> tuple[Category, float]:
    if "executable" in path[-1] or path[-1] in ("virtualenv", "conda_env", "container"):
        return Category.OTHER, R.W_OTHER
    return R.classify_keyword(path) or R.classify_environment(path)


def _without(section: Any, keys: tuple[str, ...]) -> Any:
    if not isinstance(section, Mapping):
        return section
    return {k: v for k, v in section.items() if k not in keys}


def _code(a: Any, b: Any) -> list[Difference]:
    patches_a: dict[Path, str] = {}
    patches_b: dict[Path, str] = {}
    rest_a = _pop_patches(a, ("code",), patches_a)
    rest_b = _pop_patches(b, ("code",), patches_b)
    out = []
    for where in sorted(set(patches_a) | set(patches_b)):
        fa, fb = split_patch(patches_a.get(where, "")), split_patch(patches_b.get(where, ""))
        for file in sorted(set(fa) | set(fb)):
            ca, cb = fa.get(file), fb.get(file)
            if ca == cb:
                continue
            why = (
                f"uncommitted changes to {file} differ (A: {_patch_stat(ca)}, B: {_patch_stat(cb)})"
            )
            out.append(_diff(Category.CODE, (*where, file), ca, cb, R.W_CODE_FILE, why))
    seen: set[Path] = set()
    for path, va, vb in compare_trees(rest_a, rest_b, ("code",)):
        # Only the section's own key says what a value is; deeper parts are file names.
        text = path[1].lower() if len(path) > 1 else ""
        if len(path) > 1 and _UNTRACKED.search(path[1]):
            # One difference per untracked file, however many of its fields differ.
            top = path[:3]
            if top in seen:
                continue
            seen.add(top)
            va, vb = _pick(rest_a, top), _pick(rest_b, top)
            why = _sentence(f"untracked file {'.'.join(top[2:]) or path[-1]}", va, vb)
            out.append(_diff(Category.CODE, top, va, vb, R.W_CODE_FILE, why))
            continue
        if "commit" in text or "head" in text:
            weight = R.W_CODE_COMMIT
        elif "submodule" in text:
            weight = R.W_CODE_FILE
        elif "dirty" in text or "diff" in text:
            weight = R.W_CODE_DIRTY
        else:
            weight = R.W_CODE_OTHER
        out.append(_diff(Category.CODE, path, va, vb, weight, _sentence(".".join(path), va, vb)))
    return out


def _pop_patches(node: Any, path: Path, out: dict[Path, str]) -> Any:
    """Move every unified-diff text out of ``node`` into ``out`` (by path); return the rest.

    A string under a key named ``diff`` moves too, even when empty (a clean tree), so that a clean
    run and a dirty one differ by the edited files only, not also by the emptiness of the text.
    """
    if isinstance(node, str) and (
        path[-1] == "diff" or "diff --git " in node[:200] or "\ndiff --git " in node
    ):
        out[path] = node
        return None
    if isinstance(node, Mapping):
        kept = {}
        for k, v in node.items():
            rest = _pop_patches(v, (*path, str(k)), out)
            if rest is not None or v is None:
                kept[k] = rest
        return kept
    return node


def _pick(tree: Any, path: Path) -> Any:
    from reprolog._diff._flatten import keyed_list

    node = tree
    for part in path[1:]:
        if isinstance(node, list):
            node = keyed_list(node)
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def split_patch(text: str) -> dict[str, str]:
    """Split a unified git diff into one chunk per file, keyed by the file's path.

    Args:
        text: the output of ``git diff``.

    Returns:
        path -> that file's part of the diff.
    """
    out: dict[str, str] = {}
    for chunk in _PATCH_HEADER.split(text):
        if not chunk.startswith("diff --git "):
            continue
        first = chunk.split("\n", 1)[0]
        m = re.match(r"diff --git a/(.+?) b/(.+)$", first)
        out[m.group(2) if m else first] = chunk
    return out


def _patch_stat(chunk: str | None) -> str:
    if chunk is None:
        return "no change"
    lines = chunk.splitlines()
    plus = sum(1 for x in lines if x.startswith("+") and not x.startswith("+++"))
    minus = sum(1 for x in lines if x.startswith("-") and not x.startswith("---"))
    digest = hashlib.sha256(chunk.encode()).hexdigest()[:8]
    return f"+{plus} -{minus} [{digest}]"


def short(value: Any, limit: int = 60) -> str:
    """Return a one-line, bounded text for a recorded value."""
    if isinstance(value, list) and all(isinstance(x, str | int | float) for x in value):
        text = " ".join(str(x) for x in value)
    elif isinstance(value, str):
        text = value
    else:
        from reprolog._diff._flatten import canonical

        text = canonical(value)
    text = text.replace("\n", "⏎")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _sentence(what: str, a: Any, b: Any) -> str:
    if a is None:
        return f"{what} only in B ({short(b)})"
    if b is None:
        return f"{what} only in A ({short(a)})"
    return f"{what}: {short(a)} → {short(b)}"
