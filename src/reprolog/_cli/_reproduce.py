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
    "     repository or commit is not here, or no interpreter of the recorded Python (--env\n"
    "     recorded), or --strict found an ML-relevant package mismatch"
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
@click.option(
    "--env", "env_mode", type=click.Choice(["current", "recorded"]), default="current",
    show_default=True,
    help="current: this Python and its packages. recorded: a venv rebuilt from the recorded "
    "packages (uv if installed, else pip; cached by a hash of the requirement set).",
)  # fmt: skip
@click.option(
    "--strict", is_flag=True,
    help="Refuse to run when Python, torch, CUDA/cuDNN, numpy or a framework differs from the "
    "record.",
)  # fmt: skip
@click.option(
    "--steps", type=click.IntRange(min=1), default=None, metavar="N",
    help="Stop the re-run after N training steps and compare only that prefix.",
)  # fmt: skip
@click.option(
    "--installer", type=click.Choice(["uv", "pip"]), default=None,
    help="With --env recorded: build the venv with this tool (default: uv when installed).",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as one JSON object.")
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
    env_mode: str,
    strict: bool,
    steps: int | None,
    installer: str | None,
    as_json: bool,
) -> None:
    """Re-run RUN from its recorded code, command and seeds, and judge the result.

    Checks out the recorded commit in a temporary git work tree, applies the recorded
    uncommitted and untracked changes, and re-launches the recorded command the way it was
    started (python script.py, python -m pkg.mod, a console script, torchrun, accelerate
    launch) with the recorded seed, determinism and thread variables; the original RNG states
    and numpy's fresh entropy are restored at reprolog.init. Then compares the new run with the
    original: identical, within tolerance, diverged at step N (with the likely causes), or
    failed, plus the environment and the checkpoints saved at common steps.

    By default (--env current) the re-run uses this Python and its packages: fast, and it
    answers "does it still reproduce here". --env recorded rebuilds the recorded packages in
    a venv (an interpreter of the recorded Python version must be on this machine; the project
    under training, when it was an editable install, is installed from the work tree) and
    answers "can someone else reproduce it". --steps N sets $REPROLOG_MAX_STEPS, which the
    Lightning, transformers and Keras integrations honour (scikit-learn has no steps: it runs
    whole), and compares the first N steps only.

    \b
    Examples:
      reprolog reproduce 01jb2
      reprolog reproduce baseline --exact --timeout 600 || echo "not reproduced"
      reprolog reproduce 01jb2 --env recorded --strict
      reprolog reproduce 01jb2 --steps 20 --json
      reprolog reproduce 01jb2 --dry-run
    """
    from reprolog._reproduce import reproduce

    store = store_from(ctx, writes=None if dry_run else "reproduce")  # a re-run is a new run
    result = reproduce(
        run, store=store, rtol=rtol, atol=atol, exact=exact, dry_run=dry_run,
        timeout=timeout, keep=keep, env=env_mode, strict=strict, steps=steps,
        installer=installer,
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
    env_line = f"Environment: {result.env_mode} ({result.python})"
    if result.venv:
        how = "reused from the cache" if result.venv_cached else "built"
        env_line += f", venv {how} in {result.build_seconds:.1f}s"
    out.print(env_line, highlight=False)
    for d in result.env_differences[:10]:
        mark = " (ML)" if d.ml else ""
        out.print(
            f"  differs{mark}: {d.name} recorded {d.recorded or '(absent)'}, "
            f"here {d.actual or '(absent)'}",
            highlight=False,
        )
    if len(result.env_differences) > 10:
        out.print(f"  … and {len(result.env_differences) - 10} more", highlight=False)
    for d in result.restored[:10]:
        out.print(
            f"  rebuilt as recorded: {d.name} {d.recorded} "
            f"(this environment: {d.actual or '(absent)'})",
            highlight=False,
        )
    if len(result.restored) > 10:
        out.print(f"  … and {len(result.restored) - 10} more rebuilt as recorded", highlight=False)
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
    if result.unjudged:
        out.print(
            f"Not judged (timing and system metrics): {', '.join(result.unjudged)}",
            highlight=False,
        )
    out.print(Text(f"Verdict: {verdict}", style=f"bold {_STYLE.get(str(result.verdict), '')}"))
    if result.steps is not None:
        out.print(
            f"Prefix: --steps {result.steps}; the re-run stopped at step {result.new_steps}",
            highlight=False,
        )
    if result.likely_cause:
        out.print(f"Likely cause: {result.likely_cause}", highlight=False)
    for cause in result.causes[1:]:
        out.print(f"  also: {cause}", highlight=False)
    for ck in result.checkpoints:
        same = "equal" if ck.equal else "differ"
        out.print(f"Checkpoint at step {ck.step} ({ck.name}): {same}", highlight=False)
    if result.reproduced and any(not ck.equal for ck in result.checkpoints):
        out.print(
            "  (checkpoint files also hold run-specific facts, e.g. Lightning stores its "
            "checkpoint folder in them: different bytes need not mean different weights)",
            highlight=False,
        )
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
