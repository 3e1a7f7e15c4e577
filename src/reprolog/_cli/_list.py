"""`reprolog ls`: a table of runs with the params that vary between them and final metrics."""

from __future__ import annotations

import itertools
import os
from typing import TYPE_CHECKING

import click

from reprolog._cli._columns import IDENTITY, METRICS, build, candidates, interleave, resolve
from reprolog._cli._common import (
    EXIT_CODES_HELP,
    STATUS_STYLE,
    console,
    frame_json,
    store_from,
)
from reprolog._cli._table import display_order, fit, plain, render
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
@click.option(
    "--columns",
    "-c",
    default=None,
    metavar="A,B,…",
    help="Show these columns after the identity ones: params.lr or lr, metrics.loss.last or loss, "
    "loss.min, end, …",
)
@click.option(
    "--wide",
    is_flag=True,
    help="Every param and final metric, full names, nothing cut (for piping; ignores the width).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON (all columns).")
@click.pass_context
def ls(
    ctx: click.Context,
    experiment: str | None,
    where: str | None,
    sort_key: str,
    limit: int,
    columns: str | None,
    wide: bool,
    as_json: bool,
) -> None:
    """List runs: status, duration, start, the params that vary between them, final metrics.

    Params are shown when the runs that have them do not all hold the same value; the
    params most runs have and the metrics most runs share come first, as many as the
    terminal fits, and a last line counts the columns left out.

    \b
    Examples:
      reprolog ls
      reprolog ls -e mnist --where '"params.optimizer.lr" >= 0.001' --sort -metrics.acc.last
      reprolog ls --columns lr,batch_size,loss,val_loss.min
      reprolog ls --wide --limit 0 | less -S
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
    names = [n.strip() for n in columns.split(",") if n.strip()] if columns is not None else None
    _print_listing(frame, names, wide=wide, id_len=unique_prefix_len(all_ids), total=total)


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
    try:
        column = resolve(frame, name)
    except ArgumentError as exc:
        raise ArgumentError(f"cannot sort by {name!r}: {exc}") from None
    return frame.sort_values(column, ascending=not descending, na_position="last", kind="stable")


def unique_prefix_len(ids: list[str]) -> int:
    """The shortest id prefix length (at least 8) that tells every run of the store apart."""
    ordered = sorted(ids)
    longest = 0
    for left, right in itertools.pairwise(ordered):
        n = len(os.path.commonprefix([left, right]))  # noqa: RUF071 (characters wanted)
        longest = max(longest, n)
    return max(MIN_ID_CHARS, longest + 1)


def _print_listing(
    frame: pd.DataFrame, names: list[str] | None, *, wide: bool, id_len: int, total: int
) -> None:
    """Choose the columns (explicit, all, or what fits), then print the table and footnotes."""
    import datetime as dt

    out = console()
    now = dt.datetime.now(dt.timezone.utc)
    ranked = candidates(frame)
    fixed = build(frame, list(IDENTITY), id_len=id_len, wide=wide, now=now)
    left_out, constant = 0, 0
    if names is not None:
        keys = list(dict.fromkeys(resolve(frame, n) for n in names))
        shown = fixed + build(
            frame, [k for k in keys if k not in IDENTITY], id_len=id_len, wide=wide, now=now
        )
    elif wide:
        extra = build(frame, [c.key for c in ranked], id_len=id_len, wide=True, now=now)
        shown = display_order(fixed + extra)
    else:
        varying = interleave([c for c in ranked if c.varies or c.group == METRICS])
        constant = len(ranked) - len(varying)
        extra = build(frame, [c.key for c in varying], id_len=id_len, wide=False, now=now)
        shown, left_out = fit(fixed, extra, out.width)
    lines = render(shown, group_line=not wide, styles={"status": STATUS_STYLE})
    if total == 0:
        out.print("no runs", style="dim")
        return
    if out.is_terminal and len(frame) <= RICH_MAX_ROWS:
        from rich.text import Text

        for line in lines:
            out.print(Text.assemble(*line), soft_wrap=True)
    else:
        # Plain text is instant at any row count; rich would lay out each styled line.
        click.echo(plain(lines))
    if left_out or constant:
        # Constant params: the same value in every run that has them (see candidates()).
        why = [f"{left_out} for width"] if left_out else []
        why += [f"{constant} constant params"] if constant else []
        out.print(
            f"+{left_out + constant} more columns ({', '.join(why)}): "
            "use --columns/--wide or --json",
            style="dim",
            soft_wrap=True,
            highlight=False,
        )
    if total > len(frame):
        more = f"… {total - len(frame)} more runs (use --limit 0 to list all)"
        out.print(more, style="dim", highlight=False)


COMMANDS = [ls]
