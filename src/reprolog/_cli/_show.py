"""`reprolog show RUN`: everything a run recorded, section by section."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from reprolog._cli._common import (
    EXIT_CODES_HELP,
    STATUS_STYLE,
    console,
    fmt_duration,
    fmt_value,
    store_from,
)
from reprolog._diff._rules import ML_PACKAGES

_KNOWN_SECTIONS = ("environment", "code", "command", "seeds", "determinism", "data")
_ENV_KEYS = ("platform", "hostname", "cpu_model", "cpu_count", "ram_bytes", "gpu_driver",
             "cuda_version", "cudnn_version", "container", "virtualenv", "conda_env")  # fmt: skip


@click.command("show", epilog=EXIT_CODES_HELP)
@click.argument("run")
@click.pass_context
def show(ctx: click.Context, run: str) -> None:
    """Show everything RUN recorded.

    Params, a metrics summary, artifacts, environment highlights, code state, seeds, determinism
    risks, data fingerprints, other sections and the capture report (what was skipped, what was
    redacted: names only).

    \b
    Example:
      reprolog show 01jb2
    """
    store = store_from(ctx)
    record = store.run(run)
    out = console()
    render_record(record, out, reproduced_by=reproductions_of(store, record.id))


def reproductions_of(store: Any, run_id: str) -> list[tuple[str, str | None]]:
    """The runs that `reprolog reproduce` made of ``run_id``: (id, verdict), oldest first."""
    try:
        runs = store.runs()
    except Exception:  # a listing problem must not stop `show`
        return []
    if "tags.reproduces" not in runs.columns:
        return []
    found: list[tuple[str, str | None]] = []
    for rid in runs.loc[runs["tags.reproduces"] == run_id, "id"]:
        try:
            verdict = store.run(str(rid)).section("reproduce").get("verdict")
        except Exception:
            verdict = None
        found.append((str(rid), verdict))
    return sorted(found)


def render_record(
    record: Any, out: Console, reproduced_by: list[tuple[str, str | None]] | None = None
) -> None:
    """Print a RunRecord section by section (with the re-runs made of it, when given)."""
    raw = record.raw
    sections = raw.get("sections") or {}
    status = str(raw.get("status"))
    head = [
        ("id", record.id),
        ("name", raw.get("name")),
        ("experiment", raw.get("experiment")),
        ("status", f"[{STATUS_STYLE.get(status, '')}]{status}[/]"),
        ("started", _when(raw.get("start_time"))),
        ("ended", _when(raw.get("end_time"))),
        ("duration", fmt_duration(record.duration)),
        ("folder", str(record.dir)),
    ]
    if raw.get("error"):
        err = raw["error"]
        text = f"{err.get('type')}: {err.get('message')}" if isinstance(err, Mapping) else err
        head.append(("error", f"[red]{fmt_value(text, 200)}[/]"))
    for key, value in sorted((raw.get("tags") or {}).items()):
        head.append((f"tag {key}", value))
    of = (raw.get("tags") or {}).get("reproduces")
    if of:
        verdict = (sections.get("reproduce") or {}).get("verdict")
        head.append(("reproduces", f"{of}" + (f" (verdict: {verdict})" if verdict else "")))
    for rid, verdict in reproduced_by or []:
        head.append(("reproduced by", rid + (f" (verdict: {verdict})" if verdict else "")))
    out.print(_kv(f"Run {record.id}", head, markup=True))
    out.print(_kv("Params", sorted((raw.get("params") or {}).items())))
    out.print(_metrics_table(raw.get("metrics_summary") or {}))
    out.print(_artifacts_table(raw.get("artifacts") or []))
    out.print(_kv("Environment", _environment(sections.get("environment") or {})))
    out.print(_kv("Code", _code(sections.get("code") or {})))
    out.print(_kv("Command", _flat(sections.get("command") or {})))
    out.print(_kv("Seeds and RNG state", _flat(sections.get("seeds") or {}, skip=("files",))))
    out.print(_kv("Determinism", _determinism(sections.get("determinism") or {})))
    out.print(_kv("Data", _data(sections.get("data") or {})))
    for name in sorted(set(sections) - set(_KNOWN_SECTIONS)):
        out.print(_kv(f"Section {name}", _flat(sections.get(name))))
    out.print(_kv("Capture report", _report(raw.get("capture_report") or {})))


def _when(ts: Any) -> str:
    if not isinstance(ts, int | float):
        return ""
    return dt.datetime.fromtimestamp(float(ts), dt.timezone.utc).isoformat(timespec="seconds")


def _kv(title: str, rows: Iterable[tuple[str, Any]], *, markup: bool = False) -> Table:
    table = Table(
        title=title, title_justify="left", title_style="bold", show_header=False, box=None
    )
    table.add_column("key", style="dim", no_wrap=True)
    table.add_column("value", overflow="fold")
    empty = True
    for key, value in rows:
        empty = False
        text = value if markup and isinstance(value, str) else fmt_value(value, 120)
        table.add_row(str(key), text if markup else _escape(text))
    if empty:
        table.add_row("", "(nothing recorded)")
    return table


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _flat(value: Any, prefix: str = "", skip: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    if not isinstance(value, Mapping):
        return [(prefix or "value", value)] if value is not None else []
    rows: list[tuple[str, Any]] = []
    for key, sub in value.items():
        if key in skip:
            continue
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(sub, Mapping) and sub:
            rows += _flat(sub, path)
        else:
            rows.append((path, sub))
    return rows


def _metrics_table(summary: Mapping[str, Any]) -> Table:
    table = Table(title="Metrics", title_justify="left", title_style="bold", box=None)
    for col in ("key", "last", "min", "max", "points", "last step"):
        table.add_column(col, justify="left" if col == "key" else "right")
    for key, s in sorted(summary.items()):
        s = s or {}
        table.add_row(
            key,
            *(fmt_value(s.get(x)) for x in ("last", "min", "max", "count", "last_step")),
        )
    if not summary:
        table.add_row("(none)", "", "", "", "", "")
    return table


def _artifacts_table(artifacts: list[Any]) -> Table:
    table = Table(title="Artifacts", title_justify="left", title_style="bold", box=None)
    for col in ("name", "kind", "step", "size", "sha256", "stored", "status"):
        table.add_column(col, overflow="fold")
    for art in artifacts:
        table.add_row(
            _escape(fmt_value(art.get("name") or art.get("path"), 60)),
            fmt_value(art.get("kind")),
            fmt_value(art.get("step")),
            fmt_value(art.get("size")),
            fmt_value((art.get("sha256") or "")[:12]),
            "yes" if art.get("blob") else "no",
            fmt_value(art.get("status")),
        )
    if not artifacts:
        table.add_row("(none)", "", "", "", "", "", "")
    return table


def _environment(env: Mapping[str, Any]) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    python = " ".join(
        str(env[k]) for k in ("python_implementation", "python_version") if env.get(k)
    )
    rows.append(("python", python or None))
    for key in _ENV_KEYS:
        if env.get(key) is not None:
            rows.append((key, env[key]))
    for gpu in env.get("gpus") or []:
        rows.append((f"gpu {gpu.get('index', '')}", gpu.get("name")))
    for key, value in (env.get("threads") or {}).items():
        if value is not None:
            rows.append((f"threads {key}", value))
    packages = env.get("packages") or {}
    ml = [f"{p}=={packages[p]}" for p in ML_PACKAGES if p in packages]
    if ml:
        rows.append(("ML packages", ", ".join(ml)))
    rows.append(("packages", f"{len(packages)} installed (reprolog export RUN --requirements)"))
    return rows


def _code(code: Mapping[str, Any]) -> list[tuple[str, Any]]:
    if not code:
        return []
    if not code.get("git"):
        return [("git", f"no ({code.get('reason') or 'not recorded'})")]
    rows: list[tuple[str, Any]] = [
        ("commit", code.get("commit")),
        ("branch", code.get("branch") or ("(detached)" if code.get("detached") else None)),
        ("remote", code.get("remote_url")),
        ("dirty", code.get("dirty")),
    ]
    for path, xy in sorted((code.get("changed") or {}).items()):
        rows.append((f"changed {xy}", path))
    diff = code.get("diff") or ""
    if diff:
        note = " (truncated)" if code.get("diff_truncated") else ""
        rows.append(("diff", f"{diff.count(chr(10))} lines, {code.get('diff_bytes')} bytes{note}"))
    for path, info in sorted((code.get("untracked") or {}).items()):
        info = info or {}
        how = (
            "content" if "content" in info else f"hash only, sha256 {str(info.get('sha256'))[:12]}"
        )
        rows.append(("untracked", f"{path} ({info.get('size')} bytes, {how})"))
    for path, commit in sorted((code.get("submodules") or {}).items()):
        rows.append((f"submodule {path}", commit))
    return rows


def _determinism(det: Mapping[str, Any]) -> list[tuple[str, Any]]:
    rows = [(k, v) for k, v in _flat(det, skip=("risks",))]
    for risk in det.get("risks") or []:
        rows.append((f"RISK {risk.get('id')}", risk.get("detail")))
    return rows


def _data(data: Mapping[str, Any]) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for name, info in sorted(data.items()):
        info = info if isinstance(info, Mapping) else {"value": info}
        shape = info.get("shape") or info.get("length")
        desc = f"{info.get('fingerprint')} ({info.get('kind')}, {info.get('method')}"
        desc += f", shape {shape})" if shape is not None else ")"
        rows.append((name, desc))
    return rows


def _report(report: Mapping[str, Any]) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    if report.get("captured"):
        rows.append(("captured", ", ".join(map(str, report["captured"]))))
    for item in report.get("skipped") or []:
        rows.append(("skipped", f"{item.get('what')}: {item.get('why')}"))
    if report.get("redacted"):
        rows.append(("redacted", ", ".join(map(str, report["redacted"]))))
    for item in report.get("errors") or []:
        rows.append(("error", f"{item.get('what')}: {item.get('error')}"))
    return rows


COMMANDS = [show]
