"""`reprolog push` and `reprolog pull`: copy finished runs to and from a store at a URI."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from reprolog._cli._common import EXIT_CODES_HELP, CliError

if TYPE_CHECKING:
    from pathlib import Path

    from reprolog._storage._publish import SyncReport

_DIR_HELP = "Local store folder (as reprolog --dir; this one wins when both are given)."


def _size(nbytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} B"


def _local_dir(ctx: click.Context, option: str | None, *, must_exist: bool) -> Path:
    from reprolog._errors import StoreError
    from reprolog._storage._layout import resolve_store_dir

    given = option or (ctx.find_root().obj or {}).get("dir")
    try:
        return resolve_store_dir(given, must_exist=must_exist)
    except StoreError as exc:
        raise CliError(str(exc)) from None


def _summary(verb: str, report: SyncReport, where: str) -> str:
    n = len(report.done)
    line = f"{verb} {n} run{'' if n == 1 else 's'} ({_size(report.bytes)}), "
    line += f"{len(report.already)} already there"
    if report.skipped:
        why: dict[str, list[str]] = {}
        for run_id, reason in report.skipped:
            why.setdefault(reason, []).append(run_id)
        parts = [f"{len(ids)} {reason} ({', '.join(ids[:3])}{', …' if len(ids) > 3 else ''})"
                 for reason, ids in why.items()]  # fmt: skip
        line += "; skipped " + "; ".join(parts)
    return f"{line} [{where}]"


@click.command("push", epilog=EXIT_CODES_HELP)
@click.argument("runs", nargs=-1)
@click.option(
    "--to",
    "to",
    required=True,
    metavar="URI",
    help="Target store: s3://bucket/prefix[?options], file:///path or a shared folder.",
)
@click.option("--dir", "store_dir", type=click.Path(file_okay=False), default=None, help=_DIR_HELP)
@click.pass_context
def push_cmd(ctx: click.Context, runs: tuple[str, ...], to: str, store_dir: str | None) -> None:
    """Publish finished runs (all, or each RUN) to the store at URI.

    Idempotent and resumable: runs already there are not sent again, and a push that was
    interrupted is completed by the next one. Runs still running are skipped. Credentials and
    the endpoint come from the usual AWS places (AWS_* variables, AWS_ENDPOINT_URL, profiles)
    or the URI's options (endpoint_override, region, ...).

    \b
    Examples:
      reprolog push --to s3://team-bucket/reprolog
      reprolog push --dir runs/.reprolog --to /shared/reprolog 01jb2 01jb3
    """
    from reprolog._storage._publish import push
    from reprolog._storage._remote import open_remote

    root = _local_dir(ctx, store_dir, must_exist=True)
    remote = open_remote(to)
    try:
        report = push(root, remote, list(runs) or None)
    except OSError as exc:  # a local file that cannot be read: one line, like every error
        raise CliError(f"push to {remote.display} failed: {exc}") from None
    click.echo(_summary("pushed", report, remote.display))


@click.command("pull", epilog=EXIT_CODES_HELP)
@click.argument("runs", nargs=-1)
@click.option(
    "--from",
    "source",
    required=True,
    metavar="URI",
    help="Source store: s3://bucket/prefix[?options], file:///path or a shared folder.",
)
@click.option("--dir", "store_dir", type=click.Path(file_okay=False), default=None, help=_DIR_HELP)
@click.pass_context
def pull_cmd(ctx: click.Context, runs: tuple[str, ...], source: str, store_dir: str | None) -> None:
    """Fetch finished runs (all, or each RUN) from the store at URI into the local store.

    Each run's record is written last, so a reader of the local store never sees half a run.
    Runs already here are not fetched again.

    \b
    Examples:
      reprolog pull --from s3://team-bucket/reprolog
      reprolog pull --from /shared/reprolog --dir here/.reprolog 01jb2
    """
    from reprolog._storage._publish import pull
    from reprolog._storage._remote import open_remote

    root = _local_dir(ctx, store_dir, must_exist=False)
    remote = open_remote(source)
    try:
        report = pull(remote, root, list(runs) or None)
    except OSError as exc:  # a local folder that cannot be written
        raise CliError(f"pull from {remote.display} failed: {exc}") from None
    click.echo(_summary("pulled", report, str(root)))


COMMANDS = [push_cmd, pull_cmd]
