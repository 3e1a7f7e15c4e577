"""`reprolog ls`: a table of runs with the params that vary between them and final metrics."""

from __future__ import annotations

import itertools
import os
from typing import TYPE_CHECKING, Any

import click

from reprolog._cli._common import (
    EXIT_CODES_HELP,
    STATUS_STYLE,
    console,
    fmt_duration,
    fmt_value,
    frame_json,
    store_from,
)
from reprolog._errors import ArgumentError, QueryError

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_LIMIT = 50
MIN_ID_CHARS = 8
# rich lays a table out cell by cell (~1.5 ms a row); above this many rows ls prints plain,
# aligned columns instead, so `ls --limit 0` over 10,000 runs stays fast.
RICH_MAX_ROWS = 200


@click.command("ls", epilog=EXIT_CODES_HELP)
@click.option("--experiment", "-e", default=None, help="Only runs of this experiment.")
@click.option(
    "--where",
    "-w",
    default=None,
    help="SQL predicate over the runs table, e.g. '\"params.lr\" < 0.01'.",
)
@click.option(
    "--sort",
    "-s",
    "sort_key",
    default="-start",
    show_default=True,
    help="Column to sort by, '-' first: descending ('lr': params.lr, 'loss': metrics.loss.last).",
)
@click.option(
    "--limit",
    "-n",
    default=DEFAULT_LIMIT,
    show_default=True,
    type=click.IntRange(min=0),
    help="Show at most N runs (0: all).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON (all columns).")
@click.pass_context
def ls(
    ctx: click.Context,
    experiment: str | None,
    where: str | None,
    sort_key: str,
    limit: int,
    as_json: bool,
) -> None:
    """List runs: status, duration, the params that vary between them, final metrics.

    \b
    Examples:
      reprolog ls
      reprolog ls -e mnist --where '"params.optimizer.lr" >= 0.001' --sort -metrics.acc.last
      reprolog ls --json --limit 0 > runs.json
    """
    store = store_from(ctx)
    frame = store.runs(experiment=experiment)
    all_ids = frame["id"].tolist()
    if where:
        frame = filter_where(frame, where)
    frame = sort_frame(frame, sort_key)
    total = len(frame)
    if limit:
        frame = frame.head(limit)
    if as_json:
        click.echo(frame_json(frame))
        return
    _print_table(frame, unique_prefix_len(all_ids), total)


def filter_where(frame: pd.DataFrame, predicate: str) -> pd.DataFrame:
    """Keep the rows of a runs frame for which a SQL predicate holds (DuckDB dialect).

    Args:
        frame: ``Store.runs()``.
        predicate: a SQL boolean expression over its columns; quote dotted names:
            ``"params.lr" < 0.01``.

    Returns:
        The matching rows, in the original order.

    Raises:
        QueryError: DuckDB rejected the predicate.
    """
    import duckdb

    con = duckdb.connect()
    try:
        con.register("runs", frame)
        try:
            ids = con.execute(f"SELECT id FROM runs WHERE ({predicate})").df()["id"]
        except duckdb.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise QueryError(f"bad --where predicate {predicate!r}: {first}") from None
    finally:
        con.close()
    return frame[frame["id"].isin(set(ids))]


def sort_frame(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """Sort a runs frame by a column, '-' prefix for descending; short names are looked up.

    Raises:
        ArgumentError: no such column.
    """
    descending = key.startswith("-")
    name = key.lstrip("-+")
    for candidate in (name, f"params.{name}", f"metrics.{name}.last", f"metrics.{name}"):
        if candidate in frame.columns:
            return frame.sort_values(
                candidate, ascending=not descending, na_position="last", kind="stable"
            )
    shown = ", ".join(list(frame.columns)[:12])
    raise ArgumentError(f"cannot sort by {name!r}: no such column (columns include: {shown})")


def unique_prefix_len(ids: list[str]) -> int:
    """The shortest id prefix length (at least 8) that tells every run of the store apart."""
    ordered = sorted(ids)
    longest = 0
    for left, right in itertools.pairwise(ordered):
        n = len(os.path.commonprefix([left, right]))  # noqa: RUF071 (characters wanted)
        longest = max(longest, n)
    return max(MIN_ID_CHARS, longest + 1)


def varying_params(frame: pd.DataFrame) -> list[str]:
    """The params.* columns whose value is not the same for every listed run."""
    cols = [c for c in frame.columns if c.startswith("params.")]
    out = []
    for col in cols:
        values = frame[col]
        try:
            distinct = values.nunique(dropna=False)
        except TypeError:  # unhashable (lists, dicts): compare their text
            distinct = values.map(repr).nunique(dropna=False)
        if distinct > 1:
            out.append(col)
    return out


def _cells(frame: pd.DataFrame, id_len: int) -> tuple[list[str], list[list[str]]]:
    """Header and text cells of the listing: fixed columns, varying params, final metrics."""
    params = varying_params(frame)
    metrics = [c for c in frame.columns if c.startswith("metrics.") and c.endswith(".last")]
    header = ["id", "name", "experiment", "status", "duration"]
    header += [c.removeprefix("params.") for c in params]
    header += [c.removeprefix("metrics.").removesuffix(".last") for c in metrics]
    columns: list[list[str]] = [
        [str(x)[:id_len] for x in frame["id"].tolist()],
        [fmt_value(x) for x in frame["name"].tolist()],
        [fmt_value(x) for x in frame["experiment"].tolist()],
        [str(x) for x in frame["status"].tolist()],
        [fmt_duration(x) for x in frame["duration"].tolist()],
    ]
    columns += [[fmt_value(x, 24) for x in frame[c].tolist()] for c in (*params, *metrics)]
    return header, columns


def _print_table(frame: pd.DataFrame, id_len: int, total: int) -> None:
    from rich.table import Table
    from rich.text import Text

    header, columns = _cells(frame, id_len)
    out = console()
    if len(frame) > RICH_MAX_ROWS:
        click.echo(plain_table(header, columns))
    else:
        table = Table(box=None, header_style="bold", pad_edge=False)
        for i, col in enumerate(header):
            table.add_column(col, no_wrap=i < 5, justify="left" if i < 5 else "right")
        for row in zip(*columns, strict=True):
            cells: list[Any] = list(row)
            cells[3] = Text(row[3], style=STATUS_STYLE.get(row[3], ""))
            table.add_row(*cells)
        out.print(table)
    if total > len(frame):
        out.print(f"… {total - len(frame)} more runs (use --limit 0 to list all)", style="dim")
    elif total == 0:
        out.print("no runs", style="dim")


def plain_table(header: list[str], columns: list[list[str]]) -> str:
    """Aligned plain-text columns: text left-aligned, params and metrics right-aligned."""
    widths = [max([len(h), *map(len, col)]) for h, col in zip(header, columns, strict=True)]

    def line(cells: list[str]) -> str:
        parts = [
            c.ljust(w) if i < 5 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rows = [line(header)] + [line(list(r)) for r in zip(*columns, strict=True)]
    return "\n".join(rows)


COMMANDS = [ls]
