"""`reprolog run [OPTIONS] -- CMD [ARGS...]`: record any command as one run."""

from __future__ import annotations

import sys

import click

from reprolog._cli._common import CliError

__all__ = ["COMMANDS"]


def _parse_tags(values: tuple[str, ...]) -> dict[str, str]:
    tags = {}
    for value in values:
        key, sep, tag = value.partition("=")
        if not sep or not key:
            raise CliError(f"--tag takes KEY=VALUE, got {value!r}")
        tags[key] = tag
    return tags


@click.command(
    "run",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option(
    "--dir",
    "store_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Store folder (as reprolog --dir).",
)
@click.option("--name", default=None, help="Run name (reprolog show NAME finds it).")
@click.option("--experiment", default=None, help="Experiment the run belongs to.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="A tag; repeatable.")
@click.option(
    "--console/--no-console",
    default=True,
    help="Record stdout/stderr (default on); --no-console leaves them untouched.",
)
@click.option(
    "--console-limit",
    default=None,
    metavar="SIZE",
    help="Most console bytes kept, e.g. 16M (default: $REPROLOG_CONSOLE_LIMIT or 16M).",
)
@click.option(
    "--system-metrics",
    "system_metrics",
    default=None,
    type=float,
    metavar="SECONDS",
    help="Seconds between system samples; 0 turns them off (default 10).",
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def run_command(
    ctx: click.Context,
    store_dir: str | None,
    name: str | None,
    experiment: str | None,
    tags: tuple[str, ...],
    console: bool,
    console_limit: str | None,
    system_metrics: float | None,
    command: tuple[str, ...],
) -> None:
    """Run CMD as one recorded run: console, system metrics, exit status as the status.

    Autolog is on in CMD, so the integrations of the frameworks it uses record into this
    run; a script that never imports reprolog still gets its command, environment, code
    state and console. Exits with CMD's exit code (128+N when a signal N ended it).

    \b
    Examples:
      reprolog run -- python train.py --lr 0.1
      reprolog run --name baseline --tag team=nlp -- torchrun --nproc-per-node 2 train.py
      reprolog run --system-metrics 2 -- python -m mypkg.train
    """
    from reprolog._capture.console import parse_size
    from reprolog._run._launch import LaunchOptions, launch

    limit = None
    if console_limit is not None:
        try:
            limit = parse_size(console_limit)
        except ValueError as exc:
            raise CliError(f"--console-limit: {exc}") from None
    if system_metrics is not None and not system_metrics >= 0:
        raise CliError(f"--system-metrics takes seconds >= 0, got {system_metrics}")
    options = LaunchOptions(
        command=list(command),
        name=name,
        experiment=experiment,
        tags=_parse_tags(tags),
        dir=store_dir or (ctx.find_root().obj or {}).get("dir"),
        console=console,
        console_limit=limit,
        system_metrics=system_metrics if system_metrics is None else (system_metrics or False),
    )
    code = launch(options)
    sys.stdout.flush()
    ctx.exit(code)


COMMANDS = [run_command]
