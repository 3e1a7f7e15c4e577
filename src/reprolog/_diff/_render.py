"""Render a RunDiff for people: rich tables for the terminal, or plain text."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from reprolog._diff._model import MetricComparison, MetricStatus, RunDiff
from reprolog._diff._records import short

_STATUS_STYLE = {
    MetricStatus.IDENTICAL: "green",
    MetricStatus.WITHIN_TOLERANCE: "yellow",
    MetricStatus.DIVERGED: "red",
}


def verdict(m: MetricComparison) -> str:
    """Return one phrase for a metric comparison, e.g. ``diverged at step 3``."""
    if m.status is MetricStatus.IDENTICAL:
        return f"identical ({m.shared_steps} steps)"
    if m.status is MetricStatus.WITHIN_TOLERANCE:
        return f"within tolerance ({m.shared_steps} steps, max |Δ| {m.max_abs_diff:.3g})"
    return f"diverged at step {m.step}"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.6g}"


def render_diff(d: RunDiff, *, limit: int | None = 30) -> RenderableType:
    """Build a rich renderable of a diff: a headline, the ranked differences, then the metrics.

    Args:
        d: the diff.
        limit: show at most this many differences (None: all); the rest are counted.

    Returns:
        Something ``rich.console.Console.print`` accepts.
    """
    parts: list[RenderableType] = []
    head = "differ" if d.differs else "do not differ"
    parts.append(Text(f"Runs A={d.a} and B={d.b} {head}.", style="bold"))
    if d.differences:
        table = Table(title="What differs, most likely cause first", title_justify="left")
        for col in ("#", "category", "key", "A", "B"):
            table.add_column(col, overflow="fold")
        shown = d.differences if limit is None else d.differences[:limit]
        for x in shown:
            table.add_row(str(x.rank), x.category.value, x.key, _cell(x.a), _cell(x.b))
        parts.append(table)
        rest = len(d.differences) - len(shown)
        if rest > 0:
            parts.append(Text(f"… and {rest} more differences (use --all to see them)"))
        parts.append(Text(f"Most likely cause: {d.differences[0].explanation}"))
    else:
        parts.append(Text("Nothing recorded differs (code, data, params, seeds, environment)."))
    if d.metrics:
        table = Table(title=f"Metrics (rtol={d.rtol:g}, atol={d.atol:g})", title_justify="left")
        for col in ("key", "verdict", "A", "B"):
            table.add_column(col)
        for m in d.metrics:
            style = _STATUS_STYLE[m.status]
            table.add_row(m.key, Text(verdict(m), style=style), _num(m.a), _num(m.b))
        parts.append(table)
    for side, keys in (("A", d.metrics_only_in_a), ("B", d.metrics_only_in_b)):
        if keys:
            parts.append(Text(f"Metrics only in {side}: {', '.join(keys)}"))
    if d.system_metrics:
        n = len(d.system_metrics)
        parts.append(Text(f"System metrics not compared ({n} sys/ keys: they measure the machine)"))
    if d.explanation is not None:
        parts.append(Text(f"Why they part: {d.explanation}", style="bold"))
        for note in d.explanation.notes:
            parts.append(Text(f"  note: {note}"))
    return Group(*parts)


def _cell(value: Any) -> str:
    return "—" if value is None else short(value, 48)


def diff_text(d: RunDiff, *, limit: int | None = 30, width: int = 120) -> str:
    """Return the rendering of a diff as plain text (no colour), e.g. for logs or CI output.

    Args:
        d: the diff.
        limit: show at most this many differences (None: all).
        width: line width.

    Returns:
        The text.
    """
    console = Console(width=width, no_color=True, record=True, file=io.StringIO())
    console.print(render_diff(d, limit=limit))
    return console.export_text()
