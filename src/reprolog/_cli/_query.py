"""`reprolog metrics RUN` and `reprolog sql QUERY`: points or SQL results as a table, CSV, JSON."""

from __future__ import annotations

import click

from reprolog._cli._common import EXIT_CODES_HELP, print_frame, store_from


def _format_options(func: click.decorators.FC) -> click.decorators.FC:
    func = click.option(
        "--json", "fmt", flag_value="json", help="Print JSON (a list of row objects)."
    )(func)
    func = click.option("--csv", "fmt", flag_value="csv", help="Print CSV.")(func)
    return func


@click.command("metrics", epilog=EXIT_CODES_HELP)
@click.argument("run")
@click.option("--key", "-k", "keys", multiple=True, help="Only this metric key (repeatable).")
@_format_options
@click.pass_context
def metrics(ctx: click.Context, run: str, keys: tuple[str, ...], fmt: str | None) -> None:
    """Print the metric points of RUN: key, step, epoch, value, time.

    \b
    Examples:
      reprolog metrics 01jb2 --key loss
      reprolog metrics 01jb2 --csv > points.csv
    """
    store = store_from(ctx)
    record = store.run(run)
    frame = store.metrics(runs=[record.id], keys=list(keys) or None)
    frame = frame.drop(columns=["run_id"], errors="ignore")
    print_frame(frame, fmt or "table", title=f"Metrics of {record.id}")


@click.command("sql", epilog=EXIT_CODES_HELP)
@click.argument("query")
@_format_options
@click.pass_context
def sql(ctx: click.Context, query: str, fmt: str | None) -> None:
    """Run a DuckDB SQL QUERY over the views runs, params, metrics and artifacts.

    Dotted column names of the runs view need double quotes: "params.lr".

    \b
    Examples:
      reprolog sql "SELECT run_id, min(value) FROM metrics WHERE key = 'loss' GROUP BY 1"
      reprolog sql 'SELECT id, "params.lr" FROM runs ORDER BY 2' --csv
    """
    frame = store_from(ctx).sql(query)
    print_frame(frame, fmt or "table")


COMMANDS = [metrics, sql]
