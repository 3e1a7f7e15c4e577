"""The git-like `reprolog` command: ls, show, diff, export, reproduce, run, logs, ui and more."""

from __future__ import annotations

from typing import Any

import click

from reprolog._cli._common import EXIT_CODES_HELP, CliError
from reprolog._errors import ReprologError

__all__ = ["main"]


class _Group(click.Group):
    """A click group that turns every ReprologError into one clean line and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ReprologError as exc:
            raise CliError(str(exc)) from None


@click.group(
    cls=_Group,
    epilog=EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--dir",
    "store_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Store folder (default: $REPROLOG_DIR, else the nearest .reprolog here or above), "
    "or a store at a URI (s3://bucket/prefix), read-only.",
)
@click.version_option(package_name="reprolog", prog_name="reprolog")
@click.pass_context
def main(ctx: click.Context, store_dir: str | None) -> None:
    """List, inspect, compare and export reproducible ML runs.

    RUN arguments take a full run id, a unique id prefix, or a run name.

    \b
    Examples:
      reprolog ls --where '"params.lr" < 0.01' --sort -metrics.loss.last
      reprolog show 01jb2
      reprolog diff 01jb2 01jb3
    """
    ctx.obj = {"dir": store_dir}


def _register() -> None:
    from reprolog._cli import (
        _diff,
        _list,
        _logs,
        _maintain,
        _query,
        _reproduce,
        _run,
        _show,
        _sync,
        _ui,
    )

    modules = (_list, _show, _query, _diff, _reproduce, _maintain, _run, _logs, _ui, _sync)
    for module in modules:
        for command in module.COMMANDS:
            main.add_command(command)


_register()
