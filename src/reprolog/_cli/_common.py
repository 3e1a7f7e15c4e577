"""Shared CLI plumbing: the store option, the console, error handling and small formatters."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from reprolog._errors import RemoteStoreError, ReprologError, StoreError

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console

    from reprolog._store._store import Store

_F = TypeVar("_F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_DIFFER = 1
EXIT_ERROR = 2

EXIT_CODES_HELP = (
    "\b\nExit codes:\n"
    "  0  success (for diff: the runs do not differ)\n"
    "  1  diff only: the runs differ\n"
    "  2  error: bad usage, no store found, unknown run, ambiguous prefix, bad SQL"
)


class CliError(click.ClickException):
    """A one-line error with exit code 2 (click prints ``Error: <message>``)."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str) -> None:
        # One clean line, whatever the library message held.
        super().__init__(" ".join(str(message).split()))


def fail(error: ReprologError | str) -> NoReturn:
    """Raise a CliError from a library error or a message."""
    raise CliError(str(error))


def store_from(ctx: click.Context, *, writes: str | None = None) -> Store:
    """Open the store named by ``--dir`` (else ``$REPROLOG_DIR``, else the nearest .reprolog).

    ``--dir`` may be a URI (``s3://bucket/prefix``): a read-only store (see `Store`).

    Args:
        writes: the command's name when it changes the store: refused on a store at a URI.
    """
    from reprolog._storage._remote import display_uri, is_uri
    from reprolog._store._store import Store

    obj = ctx.find_root().obj or {}
    if writes is not None and is_uri(obj.get("dir")):
        uri = display_uri(obj["dir"])
        raise CliError(
            f"reprolog {writes} writes to the store, and a store at a URI is read-only here "
            f"({uri}): run it on a local store (`reprolog pull --from {uri}` copies runs "
            "into one)"
        )
    if "store" not in obj:
        try:
            obj["store"] = Store(obj.get("dir"))
        except StoreError as exc:
            raise CliError(_no_store_message(obj.get("dir"), exc)) from None
        ctx.find_root().obj = obj
    store: Store = obj["store"]
    return store


def _no_store_message(option: str | None, exc: StoreError) -> str:
    """Say where the command looked for a store, in its own terms (--dir, $REPROLOG_DIR)."""
    from reprolog._storage._layout import ENV_DIR, STORE_DIRNAME, StoreLayout
    from reprolog._storage._remote import is_uri

    if isinstance(exc, RemoteStoreError) or is_uri(option):
        return str(exc)  # one line that names the URI (never its credentials) and the cause
    path = exc.path or option
    if path is not None and StoreLayout(Path(path)).runs.is_dir():
        return str(exc)  # a store is there: the library's message says what is wrong with it
    if option is not None:
        return f"no reprolog store found at {path} (named by --dir); a run creates one"
    if os.environ.get(ENV_DIR):
        return f"no reprolog store found at {path} (named by ${ENV_DIR}); a run creates one"
    return (
        f"no reprolog store found: no {STORE_DIRNAME} in {os.getcwd()} or any folder above it; "
        f"name one with --dir or ${ENV_DIR}"
    )


def console() -> Console:
    """A rich console on stdout; plain (no colour, wide) when stdout is not a terminal."""
    from rich.console import Console

    return Console(soft_wrap=False, width=None if os.isatty(1) else 200)


def fmt_value(value: Any, limit: int = 40) -> str:
    """Format a param or metric value for a table cell."""
    if value is None:
        return ""
    if isinstance(value, float):
        # In a table built from many runs, NaN mostly means "this run has no such value".
        return "" if math.isnan(value) else f"{value:.6g}"
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return ""
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    text = value if isinstance(value, str) else json.dumps(value, default=repr)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fmt_duration(seconds: Any) -> str:
    """Format seconds as ``1h02m03s`` / ``2m03s`` / ``3.2s``."""
    try:
        s = float(seconds)
    except (TypeError, ValueError):
        return ""
    if s != s:
        return ""
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(round(s), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s"


STATUS_STYLE = {
    "completed": "green",
    "running": "cyan",
    "failed": "red",
    "crashed": "red",
    "interrupted": "yellow",
}


def frame_json(frame: pd.DataFrame) -> str:
    """Serialise a DataFrame as a JSON list of row objects (timestamps as ISO 8601)."""
    return frame.to_json(orient="records", date_format="iso", default_handler=str, indent=2) or "[]"


def print_frame(frame: pd.DataFrame, fmt: str, *, title: str | None = None) -> None:
    """Print a DataFrame as a rich table, CSV or JSON.

    Args:
        frame: what to print.
        fmt: ``"table"``, ``"csv"`` or ``"json"``.
        title: the table's title (table format only).
    """
    if fmt == "csv":
        click.echo(frame.to_csv(index=False), nl=False)
        return
    if fmt == "json":
        click.echo(frame_json(frame))
        return
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in frame.columns:
        table.add_column(str(col), overflow="fold")
    for row in frame.itertuples(index=False):
        table.add_row(*(fmt_value(v, 60) for v in row))
    console().print(table)


def tolerance_options(command: _F) -> _F:
    """Add --rtol, --atol and --exact, the metric tolerances of `diff` and `reproduce`."""
    from reprolog._diff import DEFAULT_ATOL, DEFAULT_RTOL

    for option in reversed(
        [
            click.option(
                "--rtol", type=click.FloatRange(min=0), default=DEFAULT_RTOL, show_default=True,
                help="Relative tolerance for metric values.",
            ),
            click.option(
                "--atol", type=click.FloatRange(min=0), default=DEFAULT_ATOL, show_default=True,
                help="Absolute tolerance for metric values.",
            ),
            click.option(
                "--exact", is_flag=True, help="Metrics must match bit for bit (rtol = atol = 0)."
            ),
        ]
    ):  # fmt: skip
        command = option(command)
    return command
