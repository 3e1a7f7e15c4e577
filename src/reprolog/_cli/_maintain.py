"""`reprolog export RUN` and `reprolog gc`: take a run out of the store, and clean the store."""

from __future__ import annotations

import click

from reprolog._cli._common import EXIT_CODES_HELP, console, store_from


@click.command("export", epilog=EXIT_CODES_HELP)
@click.argument("run")
@click.option(
    "--requirements", "fmt", flag_value="requirements",
    help="The recorded environment as a pip requirements file.",
)  # fmt: skip
@click.option(
    "--patch", "fmt", flag_value="patch",
    help="The recorded code diff, untracked files included, for `git apply` on its commit.",
)  # fmt: skip
@click.option("--json", "fmt", flag_value="json", help="The whole run record as JSON.")
@click.option(
    "--pylock", "fmt", flag_value="pylock",
    help="The recorded environment as a PEP 751 pylock.toml (files and hashes looked up by uv).",
)  # fmt: skip
@click.option(
    "--dockerfile", "fmt", flag_value="dockerfile",
    help="A Dockerfile: recorded Python, packages, commit + patch and command.",
)  # fmt: skip
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
    help="Write to this file instead of stdout.",
)  # fmt: skip
@click.pass_context
def export_cmd(ctx: click.Context, run: str, fmt: str | None, output: str | None) -> None:
    """Export RUN as a requirements file, a git patch, JSON, a pylock.toml or a Dockerfile.

    \b
    Examples:
      reprolog export 01jb2 --requirements -o requirements.txt
      git checkout <commit> && reprolog export 01jb2 --patch | git apply
      reprolog export 01jb2 --pylock -o pylock.toml && uv pip sync pylock.toml
      reprolog export 01jb2 --dockerfile -o Dockerfile && docker build .
    """
    from reprolog._reproduce._export_env import export

    if fmt is None:
        raise click.UsageError(
            "choose one of --requirements, --patch, --json, --pylock or --dockerfile"
        )
    text = export(store_from(ctx).run(run), fmt)
    if output is None:
        click.echo(text, nl=False)
    else:
        with open(output, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)


@click.command("gc", epilog=EXIT_CODES_HELP)
@click.option(
    "--older-than", "older_than", type=click.FloatRange(min=0), default=None, metavar="DAYS",
    help="Only runs that ended more than DAYS days ago (and blobs that old).",
)  # fmt: skip
@click.option("--dry-run", "-n", is_flag=True, help="Say what would be removed; remove nothing.")
@click.pass_context
def gc(ctx: click.Context, older_than: float | None, dry_run: bool) -> None:
    """Remove failed and crashed runs, and stored blobs that no remaining run references.

    Completed, interrupted and running runs are kept. Blobs written in the last hour are kept too,
    as a live run may not have recorded them yet.

    \b
    Examples:
      reprolog gc --dry-run
      reprolog gc --older-than 30
    """
    from reprolog._store._gc import collect

    report = collect(store_from(ctx, writes="gc"), older_than_days=older_than, dry_run=dry_run)
    out = console()
    verb = "would remove" if dry_run else "removed"
    for run_id in report.runs:
        out.print(f"{verb} run {run_id}")
    for blob in report.blobs:
        out.print(f"{verb} blob {blob}")
    out.print(
        f"{verb} {len(report.runs)} runs and {len(report.blobs)} blobs "
        f"({report.bytes / 1e6:.1f} MB)"
    )


COMMANDS = [export_cmd, gc]
