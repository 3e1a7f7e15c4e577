"""`reprolog ui`: serve the local, read-only web UI."""

from __future__ import annotations

import click

from reprolog._cli._common import EXIT_CODES_HELP


@click.command("ui", epilog=EXIT_CODES_HELP)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; a non-loopback one needs the printed token.",
)
@click.option("--port", type=int, default=0, show_default=True, help="TCP port (0: any free port).")
@click.option("--no-open", is_flag=True, help="Do not open a web browser.")
@click.option(
    "--dir",
    "store_dir",
    type=click.Path(file_okay=False),
    metavar="STORE",
    default=None,
    help="Store folder or URI (s3://bucket/prefix); the same as `reprolog --dir STORE ui` "
    "(this one wins when both are given).",
)
@click.pass_context
def ui(ctx: click.Context, host: str, port: int, no_open: bool, store_dir: str | None) -> None:
    """Serve a read-only web UI of the store: runs table, run pages, compare.

    Prints its URL; stops on Ctrl-C. Nothing in the store is changed by viewing it.

    \b
    Examples:
      reprolog ui
      reprolog ui --dir runs/.reprolog --port 8765 --no-open
      reprolog ui --dir s3://team-bucket/reprolog
      reprolog --dir runs/.reprolog ui --no-open
    """
    from reprolog._ui import serve

    obj = ctx.find_root().obj or {}
    serve(store_dir or obj.get("dir"), host=host, port=port, open_browser=not no_open)


COMMANDS = [ui]
