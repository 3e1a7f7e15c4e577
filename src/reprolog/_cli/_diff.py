"""`reprolog diff A B`: why two runs differ; exit status 1 when they do, for CI."""

from __future__ import annotations

import json

import click

from reprolog._cli._common import (
    EXIT_CODES_HELP,
    EXIT_DIFFER,
    EXIT_OK,
    console,
    store_from,
    tolerance_options,
)
from reprolog._diff import diff


@click.command("diff", epilog=EXIT_CODES_HELP)
@click.argument("a")
@click.argument("b")
@tolerance_options
@click.option("--all", "show_all", is_flag=True, help="Show every difference, not the top 30.")
@click.option("--json", "as_json", is_flag=True, help="Print the diff as JSON.")
@click.pass_context
def diff_cmd(
    ctx: click.Context,
    a: str,
    b: str,
    rtol: float,
    atol: float,
    exact: bool,
    show_all: bool,
    as_json: bool,
) -> None:
    """Say why runs A and B differ.

    Lists what they recorded differently (data, code, hyperparameters, seeds and RNG state,
    determinism settings, packages with the ML ones first, hardware, command line), most likely
    cause first, then for each metric both logged: identical, within tolerance, or the first step
    where they diverge, with both values; last, from the per-step fingerprints the integrations
    record, one line naming the first step where the runs part and why (data order or content,
    randomness, numerics, code or logging) with its evidence. Exits 1 when the runs differ, 0
    when they do not.

    \b
    Examples:
      reprolog diff 01jb2 01jb3
      reprolog diff baseline candidate --exact || echo "not reproduced"
    """
    if exact:
        rtol = atol = 0.0
    result = diff(a, b, store=store_from(ctx), rtol=rtol, atol=atol)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, default=repr))
    else:
        from reprolog._diff._render import render_diff

        console().print(render_diff(result, limit=None if show_all else 30))
    ctx.exit(EXIT_DIFFER if result.differs else EXIT_OK)


COMMANDS = [diff_cmd]
