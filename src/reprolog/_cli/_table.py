"""Lay out `reprolog ls` columns to a width and render them, with a params/metrics group line."""

from __future__ import annotations

from reprolog._cli._columns import PARAMS, Column

GAP = 2  # spaces between columns
RULE = "─"

# A rendered line: (text, style) segments; style is a rich style name or "".
Line = list[tuple[str, str]]


def widths(columns: list[Column]) -> list[int]:
    """Each column's width, the last column of a group widened so its group label fits above."""
    out = [c.width for c in columns]
    for start, end, group in _segments(columns):
        span = sum(out[start:end]) + GAP * (end - start - 1)
        if span < len(group):
            out[end - 1] += len(group) - span
    return out


def total_width(columns: list[Column]) -> int:
    """Characters one line of these columns takes."""
    w = widths(columns)
    return sum(w) + GAP * (len(w) - 1) if w else 0


def display_order(columns: list[Column]) -> list[Column]:
    """Identity and other columns first, then params, then metrics, each kind in its given order."""
    rank = {"": 0, PARAMS: 1}
    return sorted(columns, key=lambda c: rank.get(c.group, 2))


def fit(fixed: list[Column], ranked: list[Column], width: int) -> tuple[list[Column], int]:
    """Keep the best-ranked columns that fit beside the fixed ones in ``width`` characters.

    Columns are tried best first; one too wide for what is left is skipped and the next,
    perhaps narrower, one is tried, so no column is squeezed and no header is cut.

    Args:
        fixed: the identity columns, always shown.
        ranked: the optional columns, best first.
        width: the terminal width.

    Returns:
        The columns to show in display order, and how many optional columns were left out.
    """
    chosen: list[Column] = []
    for col in ranked:
        trial = display_order([*fixed, *chosen, col])
        if total_width(trial) <= width:
            chosen.append(col)
    return display_order([*fixed, *chosen]), len(ranked) - len(chosen)


def _segments(columns: list[Column]) -> list[tuple[int, int, str]]:
    """(start, end, group) of each run of adjacent columns sharing a non-empty group."""
    out = []
    start = 0
    for i in range(1, len(columns) + 1):
        if i == len(columns) or columns[i].group != columns[start].group:
            if columns[start].group:
                out.append((start, i, columns[start].group))
            start = i
    return out


def render(
    columns: list[Column],
    *,
    group_line: bool = True,
    styles: dict[str, dict[str, str]] | None = None,
) -> list[Line]:
    """The lines of the table: group labels (optional), headers, one line per run.

    Args:
        columns: in display order; every column has the same number of cells.
        group_line: print ``params ────`` / ``metrics ────`` above the grouped headers.
        styles: per column key, a style for given cell texts (``{"status": {"failed": "red"}}``).

    Returns:
        Lines of (text, style) segments, without trailing spaces.
    """
    w = widths(columns)
    styles = styles or {}
    lines: list[Line] = []
    segments = _segments(columns)
    if group_line and segments:
        line: Line = []
        cursor = 0
        offsets = [sum(w[:i]) + GAP * i for i in range(len(w))]
        for start, end, group in segments:
            span = offsets[end - 1] + w[end - 1] - offsets[start]
            line.append((" " * (offsets[start] - cursor), ""))
            line.append((f"{group} ".ljust(span, RULE)[:span], "dim"))
            cursor = offsets[start] + span
        lines.append(line)
    header: Line = []
    for i, (col, width) in enumerate(zip(columns, w, strict=True)):
        text = col.header.rjust(width) if col.right else col.header.ljust(width)
        header.append((_sep(i) + text, "bold"))
    lines.append(_strip(header))
    for r in range(len(columns[0].cells) if columns else 0):
        row: Line = []
        for i, (col, width) in enumerate(zip(columns, w, strict=True)):
            cell = col.cells[r]
            text = cell.rjust(width) if col.right else cell.ljust(width)
            row.append((_sep(i), ""))
            row.append((text, styles.get(col.key, {}).get(cell, "")))
        lines.append(_strip(row))
    return lines


def _sep(i: int) -> str:
    return " " * GAP if i else ""


def _strip(line: Line) -> Line:
    """Drop the trailing spaces of a line (the last cells are padded to their column)."""
    while line and not line[-1][0].strip():
        line.pop()
    if line:
        text, style = line[-1]
        line[-1] = (text.rstrip(), style)
    return line


def plain(lines: list[Line]) -> str:
    """The lines as plain text."""
    return "\n".join("".join(text for text, _ in line) for line in lines)
