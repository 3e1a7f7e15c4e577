"""`reprolog reproduce RUN`: re-run a recorded run and say whether it reproduced, and if not why."""

from __future__ import annotations

import json
import os
import shlex

import click

from reprolog._cli._common import EXIT_DIFFER, EXIT_OK, console, store_from, tolerance_options

EXIT_CODES_HELP = (
    "\b\nExit codes:\n"
    "  0  identical or within tolerance (also: a dry run that found everything it needs)\n"
    "  1  diverged, or the re-run failed (error, timeout, or it made no run)\n"
    "  2  error: unknown run, or the record lacks a commit, a command or a script, or its\n"
    "     repository is not here"
)

_STYLE = {"identical": "green", "within tolerance": "yellow", "diverged": "red", "failed": "red"}


@click.command("reproduce", epilog=EXIT_CODES_HELP)
@click.argument("run")
@tolerance_options
@click.option("--dry-run", is_flag=True, help="Check the record and print the plan; run nothing.")
@click.option("--keep", is_flag=True, help="Keep the git work tree the run was re-run in.")
@click.option(
    "--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
    help="Stop the re-run after this many seconds (verdict: failed).",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.pass_context
def reproduce_cmd(
    ctx: click.Context,
    run: str,
    exact: bool,
    rtol: float,
    atol: float,
    dry_run: bool,
    keep: bool,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Re-run RUN from its recorded code, command and seeds, and judge the result.

    Checks out the recorded commit in a temporary git work tree, applies the recorded
    uncommitted and untracked changes, runs the recorded script with this Python, the recorded
    seed, determinism and thread variables, and the original RNG states restored at
    reprolog.init; then compares the new run with the original. The verdict is identical,
    within tolerance, diverged at step N (with the likely cause), or failed.

    \b
    Examples:
      reprolog reproduce 01jb2
      reprolog reproduce baseline --exact --timeout 600 || echo "not reproduced"
      reprolog reproduce 01jb2 --dry-run
    """
    from reprolog._reproduce import reproduce

    result = reproduce(
        run, store=store_from(ctx), rtol=rtol, atol=atol, exact=exact, dry_run=dry_run,
        timeout=timeout, keep=keep,
    )  # fmt: skip
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, default=repr))
        ctx.exit(EXIT_OK if dry_run or result.reproduced else EXIT_DIFFER)
    from rich.text import Text

    out = console()
    out.print(f"Original run: {result.original}", highlight=False)
    out.print(f"Command: {shlex.join(result.command)}", highlight=False)
    out.print(f"Working directory: {result.cwd}", highlight=False)
    # Only the variables the re-run actually removes; most recorded ones were never set.
    unset = [name for name, value in result.env.items() if value is None and name in os.environ]
    for name, value in result.env.items():
        if value is not None:
            out.print(f"  env {name}={value}", highlight=False)
    if unset:
        out.print(f"  env unset as recorded: {' '.join(unset)}", highlight=False)
    for note in result.notes:
        out.print(f"Not exact: {note}", highlight=False)
    if dry_run:
        out.print("Dry run: nothing was run.")
        ctx.exit(EXIT_OK)
    verdict = str(result.verdict)
    if result.verdict == "diverged" and result.diverged_at is not None:
        verdict += f" at step {result.diverged_at} ({result.diverged_metric}"
        m = result.diff.metric(str(result.diverged_metric)) if result.diff else None
        verdict += f": {_num(m.a)} → {_num(m.b)})" if m is not None else ")"
    elif result.verdict == "diverged" and result.diverged_metric:
        verdict += f" (metric {result.diverged_metric} is in one run only)"
    out.print(
        f"Re-run: {result.new or '(none)'} in {result.seconds:.1f}s, exit {result.returncode}",
        highlight=False,
    )
    out.print(Text(f"Verdict: {verdict}", style=f"bold {_STYLE.get(str(result.verdict), '')}"))
    if result.likely_cause:
        out.print(f"Likely cause: {result.likely_cause}", highlight=False)
    if result.error:
        out.print(Text(result.error))
    if result.kept:
        out.print(
            f"Work tree kept at {result.workdir} (remove: git worktree remove --force <path>)",
            highlight=False,
        )
    if result.diff is not None and result.verdict != "identical":
        from reprolog._diff._render import render_diff

        out.print(render_diff(result.diff, limit=10))
    ctx.exit(EXIT_OK if result.reproduced else EXIT_DIFFER)


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.6g}"


COMMANDS = [reproduce_cmd]
