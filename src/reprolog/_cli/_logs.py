"""`reprolog logs RUN [--follow]`: print a run's recorded console."""

from __future__ import annotations

import sys
import time

import click

from reprolog._cli._common import store_from

__all__ = ["COMMANDS"]

_NAMES = {"o": "stdout", "e": "stderr", "r": "reprolog"}


@click.command("logs")
@click.argument("run")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until the run ends.")
@click.option(
    "--stream",
    type=click.Choice(["all", "stdout", "stderr"]),
    default="all",
    show_default=True,
    help="Which stream's lines to print.",
)
@click.option("-t", "--timestamps", is_flag=True, help="Prefix each line with its UTC time.")
@click.pass_context
def logs(ctx: click.Context, run: str, follow: bool, stream: str, timestamps: bool) -> None:
    """Print the console (stdout and stderr, in order) recorded for RUN.

    \b
    Examples:
      reprolog logs 01jb2
      reprolog logs baseline --follow
      reprolog logs 01jb2 --stream stderr -t
    """
    from reprolog._capture.console import iter_console
    from reprolog._storage._layout import RunLayout
    from reprolog._storage._recordfile import read_json

    store = store_from(ctx)
    record = store.run(run)
    if follow and store.uri is not None:
        # A store at a URI holds what was published (a snapshot at most): nothing to follow.
        click.echo(f"reprolog: {store.uri} is a published store: printing what it holds", err=True)
        follow = False
    layout = RunLayout(record.dir)
    path = layout.console
    if not follow and not path.exists():
        console = record.section("console")
        why = "it was recorded with the console off" if not console else "it printed nothing"
        click.echo(f"reprolog: run {record.id} has no console lines ({why})", err=True)
        return
    offset = 0
    while True:
        printed = False
        for end, (t, kind, text) in iter_console(path, offset=offset):
            offset = end
            printed = True
            if stream != "all" and _NAMES.get(kind) not in (stream, "reprolog"):
                continue
            if timestamps:
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
                text = f"{stamp}.{int(t % 1 * 1000):03d}Z {text}"
            sys.stdout.write(text + "\n")
        sys.stdout.flush()
        if not follow:
            return
        if not printed:
            try:
                status = read_json(layout.record).get("status")
            except Exception:
                status = None
            if status != "running":
                # one last read: lines written just before the end
                for _, (_, kind, text) in iter_console(path, offset=offset):
                    if stream == "all" or _NAMES.get(kind) in (stream, "reprolog"):
                        sys.stdout.write(text + "\n")
                sys.stdout.flush()
                return
            time.sleep(0.25)


COMMANDS = [logs]
